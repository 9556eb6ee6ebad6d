"""Search: a first stage in Weaviate (hybrid, BM25 or vector), then a re-ranker.

Re-rankers: `none` (the first stage's order), `fusion` (reciprocal-rank fusion of the BM25,
vector and hybrid lists, each to `rerank_depth`), `llm` (the hybrid list to `llm_depth`, ordered
by an LLM when one is configured). The evaluation harness measures each (`make eval-retrieval`).
"""

from __future__ import annotations

import asyncio

from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.llm_rerank import LlmReranker
from herald_retrieval.adapters.weaviate_store import Passage, SearchFilters, WeaviateKnowledgeStore
from herald_retrieval.ranking import reciprocal_rank_fusion


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
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.alpha = alpha
        self.rerank_depth = rerank_depth
        self.llm = llm
        self.llm_depth = llm_depth

    async def search(
        self, tenant: str, query: str, k: int, mode: str, rerank: str, filters: SearchFilters
    ) -> list[Passage]:
        vector = None if mode == "bm25" and rerank != "fusion" else await self._embed(query)
        if rerank == "fusion":
            depth = max(k, self.rerank_depth)
            lists = await asyncio.gather(
                *(self._first_stage(tenant, m, query, vector, depth, filters) for m in ("bm25", "vector", "hybrid"))
            )
            return reciprocal_rank_fusion(lists, k)
        if rerank == "llm":
            if self.llm is None:
                raise LookupError("no LLM re-ranker is configured")
            candidates = await self._first_stage(tenant, mode, query, vector, max(k, self.llm_depth), filters)
            return (await self.llm.rerank(query, candidates))[:k]
        return await self._first_stage(tenant, mode, query, vector, k, filters)

    async def _embed(self, query: str) -> list[float]:
        return await asyncio.to_thread(self.embedder.embed_one, query)

    async def _first_stage(
        self, tenant: str, mode: str, query: str, vector: list[float] | None, k: int, filters: SearchFilters
    ) -> list[Passage]:
        return await self.store.search(tenant, mode, query, vector, k, alpha=self.alpha, filters=filters)
