"""Re-ranking candidates (pure): reciprocal-rank fusion of several first-stage lists."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Protocol, TypeVar

# the usual constant of reciprocal-rank fusion: damps the weight of the very first ranks
RRF_K = 60


class Ranked(Protocol):
    @property
    def chunk_id(self) -> str: ...


P = TypeVar("P", bound=Ranked)


def reciprocal_rank_fusion(lists: Sequence[Sequence[P]], k: int, *, rrf_k: int = RRF_K) -> list[P]:
    """One list from several: each item scores sum(1 / (rrf_k + rank)) over the lists it appears in.

    Items are identified by `chunk_id`; the first list an item appears in supplies it. The
    fused score replaces the item's `score` when it has one (a dataclass with a `score` field).
    """
    scores: dict[str, float] = {}
    items: dict[str, P] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, start=1):
            scores[item.chunk_id] = scores.get(item.chunk_id, 0.0) + 1.0 / (rrf_k + rank)
            items.setdefault(item.chunk_id, item)
    order = sorted(scores, key=lambda chunk_id: -scores[chunk_id])[:k]
    fused = []
    for chunk_id in order:
        item = items[chunk_id]
        try:
            fused.append(replace(item, score=scores[chunk_id]))  # type: ignore[type-var]
        except TypeError:
            fused.append(item)
    return fused
