"""Whether a search found what answers its query, or the knowledge base does not say (pure, no I/O).

A search always returns passages, and their scores alone do not tell a question the knowledge base
answers from one it does not. The verdict weighs what a search knows at the moment it answers:

- ``coverage``: the share of the query's content words (weighted by how rare each is in the knowledge
  base) that the candidate passages use;
- ``unknown_words``: the share of the query's content words that no passage of the knowledge base uses;
- ``unknown_names``: how many capitalised words of the query (names: "Zapier", "Kubernetes") the
  knowledge base never uses;
- ``missing_weight``: the rarity of the rarest query word the best passage lacks (0 when it has them all);
- ``best_similarity``: the best cosine similarity of a candidate passage to the query;
- ``hybrid_top``: the best passage's hybrid score.

A logistic regression over them gives the probability that the knowledge base answers the query; it is
fitted offline on the calibration part of the labelled sets (`herald-retrieval calibrate`) and shipped
as `answerability.json` beside this module. At or above its threshold a search is ``answerable``.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from herald_retrieval.grounding import content_words

FEATURES = ("coverage", "unknown_words", "unknown_names", "missing_weight", "best_similarity", "hybrid_top")
# candidates the features look at: the first stage's best ten, whatever `k` the caller asked for
FEATURE_DEPTH = 10
MODEL_PATH = Path(str(files("herald_retrieval") / "answerability.json"))
_SAID = {
    "coverage": "the passages use {coverage:.0%} of the query's words (weighted by rarity)",
    "unknown_words": "{unknown_words:.0%} of the query's words appear nowhere in the knowledge base",
    "unknown_names": "{unknown_names:.0f} name(s) in the query appear nowhere in the knowledge base",
    "missing_weight": "the best passage lacks a query word of rarity {missing_weight:.2f}",
    "best_similarity": "the closest passage's similarity is {best_similarity:.2f}",
    "hybrid_top": "the best hybrid score is {hybrid_top:.2f}",
}
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9.+'’-]*[A-Za-z0-9]|[A-Za-z]")


@dataclass(frozen=True)
class Vocabulary:
    """How many of a knowledge base's chunks use each (stemmed) content word."""

    chunks: int
    document_frequency: Mapping[str, int]

    @classmethod
    def of(cls, texts: Iterable[str]) -> Vocabulary:
        frequency: dict[str, int] = {}
        count = 0
        for text in texts:
            count += 1
            for word in content_words(text):
                frequency[word] = frequency.get(word, 0) + 1
        return cls(count, frequency)

    def weight(self, word: str) -> float:
        """How rare a word is, 0..1: 1 for a word no chunk uses, near 0 for one every chunk uses."""
        n = self.chunks + 1
        return max(0.0, math.log(n / (self.document_frequency.get(word, 0) + 0.5)) / math.log(2 * n))


@dataclass(frozen=True)
class Candidate:
    """What the verdict reads of a passage: its words (headings included), hybrid score and similarity."""

    text: str
    score: float
    similarity: float


@dataclass(frozen=True)
class Verdict:
    answerable: bool
    probability: float
    threshold: float
    reason: str
    features: Mapping[str, float]


def features(query: str, candidates: Sequence[Candidate], vocabulary: Vocabulary) -> dict[str, float]:
    """The verdict's inputs for a query and the first stage's candidates, best first."""
    words = content_words(query)
    top = candidates[:FEATURE_DEPTH]
    passage_words = [content_words(c.text) for c in top]
    seen = set().union(*passage_words) if passage_words else set()
    total = sum(vocabulary.weight(w) for w in words)
    coverage = sum(vocabulary.weight(w) for w in words & seen) / total if total else 1.0
    unknown = [w for w in words if w not in vocabulary.document_frequency]
    missing = [vocabulary.weight(w) for w in words - (passage_words[0] if passage_words else set())]
    return {
        "coverage": coverage,
        "unknown_words": len(unknown) / len(words) if words else 0.0,
        "unknown_names": float(sum(1 for w in _names(query) if w not in vocabulary.document_frequency)),
        "missing_weight": max(missing, default=0.0),
        "best_similarity": max((c.similarity for c in top), default=0.0),
        "hybrid_top": top[0].score if top else 0.0,
    }


def _names(query: str) -> set[str]:
    """The stems of the query's names: capitalised words after its first, and acronyms anywhere."""
    names: set[str] = set()
    for i, word in enumerate(_WORD.findall(query)):
        if (i > 0 and word[0].isupper()) or (len(word) > 1 and word.isupper()):
            names |= content_words(word)
    return names


@dataclass(frozen=True)
class AnswerabilityModel:
    """A logistic regression over standardised features, and the probability at which a query counts as answerable."""

    features: tuple[str, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    fitted_on: Mapping[str, Any]

    def __post_init__(self) -> None:
        if not (len(self.features) == len(self.mean) == len(self.scale) == len(self.weights)):
            raise ValueError("an answerability model needs one mean, scale and weight per feature")
        if unknown := set(self.features) - set(FEATURES):
            raise ValueError(f"unknown answerability features: {sorted(unknown)}")
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"the threshold must be a probability strictly between 0 and 1, not {self.threshold}")
        if any(s <= 0 for s in self.scale):
            raise ValueError("every feature's scale must be positive")

    def _pulls(self, values: Mapping[str, float]) -> dict[str, float]:
        """Each feature's share of the log-odds."""
        missing = [f for f in self.features if f not in values]
        if missing:
            raise ValueError(f"the answerability model needs the features {missing}")
        parts = zip(self.features, self.mean, self.scale, self.weights, strict=True)
        return {f: w * (float(values[f]) - m) / s for f, m, s, w in parts}

    def probability(self, values: Mapping[str, float]) -> float:
        z = self.bias + sum(self._pulls(values).values())
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def verdict(self, values: Mapping[str, float]) -> Verdict:
        probability = self.probability(values)
        answerable = probability >= self.threshold
        return Verdict(answerable, probability, self.threshold, self._reason(values, answerable), dict(values))

    def _reason(self, values: Mapping[str, float], answerable: bool) -> str:
        """The feature that pushed the verdict hardest its way, in words."""
        pulls = self._pulls(values)
        strongest = max(pulls, key=lambda f: pulls[f] if answerable else -pulls[f])
        said = _SAID[strongest].format(**values)
        return f"{'answerable' if answerable else 'not answered by the knowledge base'}: {said}"

    def to_json(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "fitted_on": dict(self.fitted_on),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AnswerabilityModel:
        try:
            return cls(
                tuple(str(f) for f in raw["features"]),
                tuple(float(x) for x in raw["mean"]),
                tuple(float(x) for x in raw["scale"]),
                tuple(float(x) for x in raw["weights"]),
                float(raw["bias"]),
                float(raw["threshold"]),
                dict(raw.get("fitted_on", {})),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an answerability model: {exc}") from exc


def load_model(path: Path = MODEL_PATH) -> AnswerabilityModel:
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read the answerability model: {exc}") from exc
    return AnswerabilityModel.from_json(raw)


def fit(
    rows: Sequence[Mapping[str, float]],
    answerable: Sequence[bool],
    *,
    names: Sequence[str] = FEATURES,
    l2: float = 1.0,
    iterations: int = 50,
) -> AnswerabilityModel:
    """A logistic regression (Newton's method, L2-penalised, on standardised features) and the threshold that
    maximises balanced accuracy (Youden's J) on the same rows."""
    if len(rows) != len(answerable):
        raise ValueError(f"{len(rows)} feature rows for {len(answerable)} labels")
    labels = np.asarray([1.0 if a else 0.0 for a in answerable])
    if labels.min() == labels.max():
        raise ValueError("fitting needs both answerable and unanswerable queries")
    x = np.asarray([[row[f] for f in names] for row in rows], dtype=float)
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = np.hstack([(x - mean) / scale, np.ones((len(x), 1))])
    penalty = np.diag([l2] * len(names) + [0.0])
    w = np.zeros(z.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(z @ w)))
        gradient = z.T @ (p - labels) + penalty @ w
        hessian = (z * (p * (1 - p))[:, None]).T @ z + penalty
        step = np.linalg.solve(hessian, gradient)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    probabilities = 1.0 / (1.0 + np.exp(-(z @ w)))
    threshold = best_threshold(probabilities.tolist(), [bool(a) for a in answerable])
    return AnswerabilityModel(
        tuple(names),
        tuple(float(m) for m in mean),
        tuple(float(s) for s in scale),
        tuple(float(v) for v in w[:-1]),
        float(w[-1]),
        threshold,
        {"answerable": int(labels.sum()), "unanswerable": int(len(labels) - labels.sum()), "l2": l2},
    )


def best_threshold(probabilities: Sequence[float], answerable: Sequence[bool]) -> float:
    """The cut (midway between two neighbouring probabilities) that maximises recall of the answerable plus
    recall of the unanswerable."""
    ordered = sorted(set(probabilities))
    cuts = [(a + b) / 2 for a, b in itertools.pairwise(ordered)] or [0.5]
    positives = sum(answerable)
    negatives = len(answerable) - positives

    def balanced(cut: float) -> float:
        kept = sum(1 for p, a in zip(probabilities, answerable, strict=True) if a and p >= cut)
        refused = sum(1 for p, a in zip(probabilities, answerable, strict=True) if not a and p < cut)
        return kept / positives + refused / negatives

    return min(max(max(cuts, key=balanced), 1e-6), 1 - 1e-6)


@dataclass(frozen=True)
class Agreement:
    """How well a signal's decisions agree with the labels, abstaining ("not answerable") as the positive class."""

    abstain_precision: float
    abstain_recall: float
    answer_precision: float
    answer_recall: float
    auc: float
    queries: int
    unanswerable: int

    def to_json(self) -> dict[str, float]:
        return {
            "abstain_precision": self.abstain_precision,
            "abstain_recall": self.abstain_recall,
            "answer_precision": self.answer_precision,
            "answer_recall": self.answer_recall,
            "auc": self.auc,
            "queries": self.queries,
            "unanswerable": self.unanswerable,
        }


def agreement(probabilities: Sequence[float], answerable: Sequence[bool], threshold: float) -> Agreement:
    if len(probabilities) != len(answerable):
        raise ValueError(f"{len(probabilities)} probabilities for {len(answerable)} labels")
    abstained = [p < threshold for p in probabilities]
    pairs = list(zip(abstained, answerable, strict=True))
    true_abstain = sum(1 for a, ok in pairs if a and not ok)
    true_answer = sum(1 for a, ok in pairs if not a and ok)

    def share(part: int, whole: int) -> float:
        return part / whole if whole else 0.0

    return Agreement(
        abstain_precision=share(true_abstain, sum(abstained)),
        abstain_recall=share(true_abstain, sum(1 for ok in answerable if not ok)),
        answer_precision=share(true_answer, sum(1 for a in abstained if not a)),
        answer_recall=share(true_answer, sum(answerable)),
        auc=auc(probabilities, answerable),
        queries=len(answerable),
        unanswerable=sum(1 for ok in answerable if not ok),
    )


def auc(scores: Sequence[float], positive: Sequence[bool]) -> float:
    """The probability that a random positive scores above a random negative (ties count half)."""
    pos = [s for s, p in zip(scores, positive, strict=True) if p]
    neg = [s for s, p in zip(scores, positive, strict=True) if not p]
    if not pos or not neg:
        raise ValueError("an AUC needs both positive and negative examples")
    above = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg)
    return above / (len(pos) * len(neg))
