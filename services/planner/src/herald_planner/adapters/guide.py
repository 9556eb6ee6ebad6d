"""The tenant's brand guide for the LLM's system prompt: its `brand` knowledge-base passages (voice and tone,
writing rules, signatures, objections), read through retrieval, kept a while per tenant and put in a stable
order — the same bytes every draft, so the prompt cache can serve them."""

from __future__ import annotations

import time

from herald_core.observability import get_logger
from herald_planner.engine.ports import Retrieval

log = get_logger("herald.planner")

QUERY = "brand voice tone writing rules email style signature objections"


class BrandGuide:
    def __init__(self, retrieval: Retrieval, *, k: int = 50, ttl_seconds: float = 600.0, max_chars: int = 24_000):
        self.retrieval = retrieval
        self.k = k
        self.ttl_seconds = ttl_seconds
        self.max_chars = max_chars
        self._cached: dict[str, tuple[float, str]] = {}

    async def for_tenant(self, tenant: str) -> str:
        """The guide as text ("" when the tenant has no brand passages or retrieval cannot answer now)."""
        cached = self._cached.get(tenant)
        if cached is not None and time.monotonic() - cached[0] < self.ttl_seconds:
            return cached[1]
        try:
            passages = await self.retrieval.search(tenant, QUERY, self.k, ["brand"])
        except Exception as exc:  # the draft goes on without the guide; the guard's rules still hold
            log.warning("brand guide unavailable", error=repr(exc)[:300])
            return cached[1] if cached is not None else ""
        text = "\n\n".join(f"[{p.doc_id}] {p.quote}" for p in sorted(passages, key=lambda p: p.chunk_id))
        guide = text[: self.max_chars]
        self._cached[tenant] = (time.monotonic(), guide)
        return guide
