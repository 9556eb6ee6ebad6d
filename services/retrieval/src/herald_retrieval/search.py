"""Search: a first stage in Weaviate (hybrid, BM25 or vector), then a re-ranker, and whether the knowledge
base answers the query at all.

Re-rankers: `none` (the first stage's order), `fusion` (reciprocal-rank fusion of the BM25,
vector and hybrid lists, each to `rerank_depth`), `llm` (the hybrid list to `llm_depth`, ordered
by an LLM when one is configured). The evaluation harness measures each (`make eval-retrieval`).

The verdict (`answerability`) is always read from the hybrid first stage, whatever mode or re-ranker
the caller chose, so one calibration holds for every search.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.llm_rerank import LlmReranker
from herald_retrieval.adapters.weaviate_store import Passage, SearchFilters, WeaviateKnowledgeStore
from herald_retrieval.answerability import (
    FEATURE_DEPTH,
    AnswerabilityModel,
    Candidate,
    Verdict,
    Vocabulary,
    features,
    load_model,
)
from herald_retrieval.ranking import reciprocal_rank_fusion


@dataclass(frozen=True)
class SearchResult:
    passages: list[Passage]
    verdict: Verdict


def passage_words(passage: Passage) -> str:
    """What a passage says, headings included ("Growth — $49 per seat per month" is a heading)."""
    return "\n".join((passage.title, *passage.section_path, passage.text))


class Vocabularies:
    """Each tenant's vocabulary (document frequency per word), built from its chunks on first use.

    A change to a tenant's knowledge base marks its vocabulary stale; the next search rebuilds it, at most
    once per `refresh_seconds` (a bulk load changes it many times a second), using the old one meanwhile.
    """

    def __init__(self, store: WeaviateKnowledgeStore, refresh_seconds: float = 30.0) -> None:
        self.store = store
        self.refresh_seconds = refresh_seconds
        self._entries: dict[str, tuple[Vocabulary, float, bool]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def of(self, tenant: str) -> Vocabulary:
        entry = self._entries.get(tenant)
        if entry is not None and not (entry[2] and time.monotonic() - entry[1] >= self.refresh_seconds):
            return entry[0]
        async with self._locks.setdefault(tenant, asyncio.Lock()):
            again = self._entries.get(tenant)
            if again is not None and again is not entry:
                return again[0]
            vocabulary = Vocabulary.of(passage_words(p) for p in await self.store.all_chunks(tenant))
            self._entries[tenant] = (vocabulary, time.monotonic(), False)
            return vocabulary

    def forget(self, tenant: str) -> None:
        entry = self._entries.get(tenant)
        if entry is not None:
            self._entries[tenant] = (entry[0], entry[1], True)

    def forget_all(self) -> None:
        for tenant in list(self._entries):
            self.forget(tenant)


class Searcher:
    def __init__(
        self,
        store: WeaviateKnowledgeStore,
        embedder: OnnxEmbedder,
        *,
        alpha: float,
        rerank_depth: int,
        llm: LlmReranker | None = None,
        llm_depth: int = 20,
        model: AnswerabilityModel | None = None,
        vocabularies: Vocabularies | None = None,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.alpha = alpha
        self.rerank_depth = rerank_depth
        self.llm = llm
        self.llm_depth = llm_depth
        self._model = model
        self.vocabularies = vocabularies or Vocabularies(store)

    @property
    def model(self) -> AnswerabilityModel:
        """The shipped answerability model unless one was given (read on first use: calibration needs none)."""
        if self._model is None:
            self._model = load_model()
        return self._model

    async def features_of(self, tenant: str, query: str, filters: SearchFilters = SearchFilters()) -> dict[str, float]:
        """The verdict's inputs for a query, from the hybrid first stage (what calibration fits on)."""
        vector = await self._embed(query)
        hybrid, vocabulary = await asyncio.gather(
            self._first_stage(tenant, "hybrid", query, vector, FEATURE_DEPTH, filters), self.vocabularies.of(tenant)
        )
        return features(query, _candidates(hybrid), vocabulary)

    async def search(
        self, tenant: str, query: str, k: int, mode: str, rerank: str, filters: SearchFilters
    ) -> list[Passage]:
        """The passages alone (no verdict, and no hybrid query it would need in other modes)."""
        vector = None if mode == "bm25" and rerank != "fusion" else await self._embed(query)
        passages, _ = await self._passages(tenant, query, vector, k, mode, rerank, filters)
        return passages

    async def search_with_verdict(
        self, tenant: str, query: str, k: int, mode: str, rerank: str, filters: SearchFilters
    ) -> SearchResult:
        """The passages, and whether the knowledge base answers the query (read from the hybrid first stage)."""
        vector = await self._embed(query)
        (passages, hybrid), vocabulary = await asyncio.gather(
            self._passages(tenant, query, vector, k, mode, rerank, filters), self.vocabularies.of(tenant)
        )
        if hybrid is None:
            hybrid = await self._first_stage(tenant, "hybrid", query, vector, FEATURE_DEPTH, filters)
        return SearchResult(passages, self.model.verdict(features(query, _candidates(hybrid), vocabulary)))

    async def _passages(
        self,
        tenant: str,
        query: str,
        vector: list[float] | None,
        k: int,
        mode: str,
        rerank: str,
        filters: SearchFilters,
    ) -> tuple[list[Passage], list[Passage] | None]:
        """The ranked passages, and the hybrid first stage's list (to `FEATURE_DEPTH` at least) when it was run."""
        if rerank == "fusion":
            depth = max(k, self.rerank_depth, FEATURE_DEPTH)
            lists = await asyncio.gather(
                *(self._first_stage(tenant, m, query, vector, depth, filters) for m in ("bm25", "vector", "hybrid"))
            )
            return reciprocal_rank_fusion(lists, k), lists[2]
        if rerank == "llm":
            if self.llm is None:
                raise LookupError("no LLM re-ranker is configured")
            depth = max(k, self.llm_depth, FEATURE_DEPTH)
            candidates = await self._first_stage(tenant, mode, query, vector, depth, filters)
            return (await self.llm.rerank(query, candidates))[:k], candidates if mode == "hybrid" else None
        if mode == "hybrid":
            candidates = await self._first_stage(tenant, mode, query, vector, max(k, FEATURE_DEPTH), filters)
            return candidates[:k], candidates
        return await self._first_stage(tenant, mode, query, vector, k, filters), None

    async def _embed(self, query: str) -> list[float]:
        return await asyncio.to_thread(self.embedder.embed_one, query)

    async def _first_stage(
        self, tenant: str, mode: str, query: str, vector: list[float] | None, k: int, filters: SearchFilters
    ) -> list[Passage]:
        return await self.store.search(tenant, mode, query, vector, k, alpha=self.alpha, filters=filters)


def _candidates(hybrid: list[Passage]) -> list[Candidate]:
    return [Candidate(passage_words(p), p.score, p.similarity or 0.0) for p in hybrid[:FEATURE_DEPTH]]
