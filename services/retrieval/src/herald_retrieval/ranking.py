"""Re-ranking candidates (pure): reciprocal-rank fusion of several ranked lists."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

# the usual constant of reciprocal-rank fusion: damps the weight of the very first ranks
RRF_K = 60

P = TypeVar("P")


def _chunk_id(item: Any) -> str:
    return str(item.chunk_id)


def reciprocal_rank_fusion(
    lists: Sequence[Sequence[P]], k: int, *, rrf_k: int = RRF_K, key: Callable[[P], str] = _chunk_id
) -> list[P]:
    """One list from several: each item scores sum(1 / (rrf_k + rank)) over the lists it appears in.

    Items are identified by `key` (a passage's `chunk_id` unless told); the first list an item
    appears in supplies it. The fused score replaces the item's `score` when it has one (a
    dataclass with a `score` field).
    """
    scores: dict[str, float] = {}
    items: dict[str, P] = {}
    for ranked in lists:
        for rank, item in enumerate(ranked, start=1):
            scores[key(item)] = scores.get(key(item), 0.0) + 1.0 / (rrf_k + rank)
            items.setdefault(key(item), item)
    order = sorted(scores, key=lambda item_id: -scores[item_id])[:k]
    fused = []
    for item_id in order:
        item = items[item_id]
        try:
            fused.append(replace(item, score=scores[item_id]))  # type: ignore[type-var]
        except TypeError:
            fused.append(item)
    return fused
