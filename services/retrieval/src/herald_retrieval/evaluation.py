"""Retrieval quality against graded labels (pure): NDCG@10, recall@20 and MRR.

A labelled query grades documents (`relevant`: doc id → 0..3) and, more finely, sections
(`sections`: "doc id#heading" → 0..3). A retrieved chunk is worth the best grade that applies
to it: its document's, or that of a labelled heading on its section path. NDCG's ideal ranking
is built from every chunk of the corpus, so a system is judged against what it could have found.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class LabelledQuery:
    query_id: str
    query: str
    style: str
    relevant: dict[str, int]
    sections: dict[str, int] = field(default_factory=dict)

    def grade(self, doc_id: str, section_path: Sequence[str]) -> int:
        best = self.relevant.get(doc_id, 0)
        for heading in section_path:
            best = max(best, self.sections.get(f"{doc_id}#{heading}", 0))
        return best


@dataclass(frozen=True)
class ChunkRef:
    doc_id: str
    section_path: tuple[str, ...]


def load_queries(path: Path) -> list[LabelledQuery]:
    queries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            queries.append(
                LabelledQuery(
                    raw["id"], raw["query"], raw.get("style", ""), dict(raw["relevant"]), dict(raw.get("sections", {}))
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a labelled query: {exc}") from exc
    return queries


def dcg(gains: Iterable[int]) -> float:
    return sum((2**g - 1) / math.log2(rank + 1) for rank, g in enumerate(gains, start=1))


def ndcg_at(query: LabelledQuery, ranked: Sequence[ChunkRef], corpus: Sequence[ChunkRef], k: int = 10) -> float:
    ideal = dcg(sorted((query.grade(c.doc_id, c.section_path) for c in corpus), reverse=True)[:k])
    if ideal == 0:
        return 0.0
    return dcg(query.grade(c.doc_id, c.section_path) for c in ranked[:k]) / ideal


def recall_at(query: LabelledQuery, ranked: Sequence[ChunkRef], k: int = 20, min_grade: int = 2) -> float:
    """The share of highly relevant documents (grade ≥ `min_grade`) that one of the top `k` chunks comes from."""
    wanted = {doc for doc, grade in query.relevant.items() if grade >= min_grade}
    wanted |= {key.split("#", 1)[0] for key, grade in query.sections.items() if grade >= min_grade}
    if not wanted:
        return 0.0
    found = {c.doc_id for c in ranked[:k]} & wanted
    return len(found) / len(wanted)


def reciprocal_rank(query: LabelledQuery, ranked: Sequence[ChunkRef], min_grade: int = 2) -> float:
    for rank, chunk in enumerate(ranked, start=1):
        if query.grade(chunk.doc_id, chunk.section_path) >= min_grade:
            return 1.0 / rank
    return 0.0


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class Scores:
    """Per-query metrics of one system, and their means."""

    ndcg10: list[float] = field(default_factory=list)
    recall20: list[float] = field(default_factory=list)
    mrr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def add(self, query: LabelledQuery, ranked: Sequence[ChunkRef], corpus: Sequence[ChunkRef], seconds: float) -> None:
        self.ndcg10.append(ndcg_at(query, ranked, corpus, 10))
        self.recall20.append(recall_at(query, ranked, 20))
        self.mrr.append(reciprocal_rank(query, ranked))
        self.seconds.append(seconds)

    def summary(self) -> dict[str, float]:
        n = max(len(self.ndcg10), 1)
        return {
            "queries": len(self.ndcg10),
            "ndcg@10": sum(self.ndcg10) / n,
            "recall@20": sum(self.recall20) / n,
            "mrr": sum(self.mrr) / n,
            "p50_ms": percentile(self.seconds, 50) * 1000,
            "p95_ms": percentile(self.seconds, 95) * 1000,
        }


@dataclass(frozen=True)
class UnanswerableQuery:
    """A query about the tenant's domain that its knowledge base does not answer."""

    query_id: str
    query: str
    style: str


def load_unanswerable(path: Path) -> list[UnanswerableQuery]:
    queries = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if raw.get("relevant"):
                raise ValueError("an unanswerable query grades no document")
            queries.append(UnanswerableQuery(str(raw["id"]), str(raw["query"]), str(raw.get("style", ""))))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"{path}:{number}: not an unanswerable query: {exc}") from exc
    return queries


CALIBRATION = "calibration"
HELD_OUT = "held-out"


def part_of(query_id: str) -> str:
    """Which part of the labelled sets a query belongs to, fixed by its id: the calibration part (the
    answerability model is fitted on it) when the SHA-256 of the id is even, else the held-out part."""
    return CALIBRATION if int(hashlib.sha256(query_id.encode()).hexdigest(), 16) % 2 == 0 else HELD_OUT
