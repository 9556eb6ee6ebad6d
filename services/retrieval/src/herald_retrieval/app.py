"""Retrieval wiring: the gRPC `herald.v1.Retrieval` API (with health and reflection) over the
Weaviate knowledge base, and the knowledge intake.

Handlers, by topic:
    herald.knowledge.v1        → KnowledgeIntake.on_knowledge (answers on herald.knowledge-indexed.v1)
    herald.events.v1           → MemoryKeeper.on_interaction (replies, meetings)
    herald.executed.v1         → MemoryKeeper.on_interaction (emails sent)
    herald.review-decision.v1  → MemoryKeeper.on_review_decision (reviewers' feedback)
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from importlib.resources import files
from pathlib import Path

import grpc
import numpy as np
from aiokafka import ConsumerRecord
from fastapi import FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram

from herald_core.auth.services import ServiceKeys, ServiceTokenInterceptor
from herald_core.bus import ConsumerWorker, Rejected, TopicFollower, Unreadable, cancel_and_wait, read_record
from herald_core.contracts import MAX_QUERY_CHARS
from herald_core.db import create_pool, migrate, readiness
from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_core.settings import CommonSettings
from herald_core.tenants import TenantDirectory
from herald_core.topics import EVENTS, EXECUTED, KNOWLEDGE, KNOWLEDGE_INDEXED, REVIEW_DECISION
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.interactions import InteractionLog
from herald_retrieval.adapters.llm_rerank import LlmReranker, llm_configured
from herald_retrieval.adapters.memory_store import Memory, WeaviateMemoryStore
from herald_retrieval.adapters.registry import DocumentRegistry
from herald_retrieval.adapters.weaviate_store import Passage, SearchFilters, WeaviateKnowledgeStore
from herald_retrieval.answerability import load_model
from herald_retrieval.grounding import Evidence, check_claims
from herald_retrieval.knowledge import KnowledgeIndexer, KnowledgeIntake
from herald_retrieval.memory import MemoryKeeper
from herald_retrieval.search import Searcher, SearchResult, Vocabularies
from herald_retrieval.settings import Settings

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64)
SEARCH_SECONDS = Histogram(
    "herald_retrieval_search_seconds",
    "Search latency, embedding included, by first stage and re-ranker.",
    ["mode", "rerank"],
    buckets=LATENCY_BUCKETS,
)
GROUND_SECONDS = Histogram("herald_retrieval_ground_seconds", "Grounding check latency.")
RECALL_SECONDS = Histogram(
    "herald_retrieval_recall_seconds", "Recall latency (both tiers, embedding included).", buckets=LATENCY_BUCKETS
)
RESEMBLE_SECONDS = Histogram(
    "herald_retrieval_resemble_seconds", "Resemble latency (embedding included).", buckets=LATENCY_BUCKETS
)
CLAIMS = Counter(
    "herald_retrieval_claims_total", "Claims checked for grounding, by kind and result.", ["kind", "result"]
)
SEARCHES = Counter("herald_retrieval_searches_total", "Searches, by cache outcome.", ["cache"])
VERDICTS = Counter(
    "herald_retrieval_answerability_total", "Searches the knowledge base answers, or abstains on.", ["verdict"]
)
log = get_logger("herald.retrieval")
MIGRATIONS = Path(str(files("herald_retrieval") / "migrations"))
TENANT_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class SearchCache:
    """Recent answers by (tenant, query, k, collections), for `ttl` seconds.

    Many leads ask the same thing (same industry, same role); a knowledge base changes by loads that
    are minutes apart, so an answer a few seconds old is as good as a new one and costs nothing.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[object, ...], tuple[float, SearchResult]] = OrderedDict()

    def get(self, key: tuple[object, ...]) -> SearchResult | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def forget_all(self) -> None:
        self._entries.clear()

    def forget(self, tenant: str) -> None:
        """Drop a tenant's answers: its knowledge base just changed."""
        for key in [k for k in self._entries if k[0] == tenant]:
            del self._entries[key]

    def put(self, key: tuple[object, ...], result: SearchResult) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl, result)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


MODES = {
    retrieval_pb2.SEARCH_MODE_UNSPECIFIED: "hybrid",
    retrieval_pb2.SEARCH_MODE_HYBRID: "hybrid",
    retrieval_pb2.SEARCH_MODE_BM25: "bm25",
    retrieval_pb2.SEARCH_MODE_VECTOR: "vector",
}
RERANKS = {retrieval_pb2.RERANK_NONE: "none", retrieval_pb2.RERANK_FUSION: "fusion", retrieval_pb2.RERANK_LLM: "llm"}


class CacheInvalidator(TopicFollower):
    """Follows `herald.knowledge-indexed.v1` from its end and forgets a tenant's cached answers on every change.

    Whichever replica indexed a document, every replica hears of it, so none serves an answer
    that a replaced or deleted document could still be in. A record whose tenant cannot be read empties the
    whole cache (it may have been anyone's) and is dead-lettered.
    """

    def __init__(self, common: CommonSettings, cache: SearchCache, vocabularies: Vocabularies) -> None:
        self.cache = cache
        self.vocabularies = vocabularies
        super().__init__(
            common,
            KNOWLEDGE_INDEXED,
            self._apply,
            "retrieval-cache-invalidator",
            service="retrieval",
            from_beginning=False,
        )

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        read = read_record(record, KNOWLEDGE_INDEXED)
        if isinstance(read, Unreadable):
            self.cache.forget_all()
            self.vocabularies.forget_all()
            raise Rejected(read.reason)
        self.cache.forget(read.envelope.tenant)
        self.vocabularies.forget(read.envelope.tenant)


class MemorySweeper:
    """Every `interval` seconds, folds expired interactions into long-term summaries (any replica may;
    rows are locked with SKIP LOCKED, so two replicas never fold the same ones)."""

    def __init__(self, memory: MemoryKeeper, interval: float) -> None:
        self.memory = memory
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="retrieval-memory-sweeper")

    async def _run(self) -> None:
        while True:
            try:
                while await self.memory.consolidate() > 0:
                    pass
            except Exception as exc:  # the next round tries again; the rows are still there
                log.warning("memory sweep failed", error=repr(exc)[:300])
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)


class RetrievalService(retrieval_pb2_grpc.RetrievalServicer):
    def __init__(
        self,
        searcher: Searcher,
        settings: Settings,
        cache: SearchCache,
        tenants: TenantDirectory,
        memory: MemoryKeeper,
    ) -> None:
        self.searcher = searcher
        self.store = searcher.store
        self.embedder = searcher.embedder
        self.settings = settings
        self.cache = cache
        self.tenants = tenants
        self.memory = memory

    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.SearchResponse:
        await _check_tenant(request.tenant, context)
        if not request.query.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "query is empty")
        await _check_query_length(request.query, context)
        k = await _check_k(request.k, 5, context)
        mode = MODES.get(request.mode)
        rerank = RERANKS.get(request.rerank, self.settings.rerank)
        if mode is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unknown search mode {request.mode}")
        if rerank == "llm" and self.searcher.llm is None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "no LLM re-ranker is configured (set ANTHROPIC_API_KEY)"
            )
        filters = SearchFilters(
            tuple(sorted(request.filters.collections)),
            tuple(sorted(request.filters.tags)),
            tuple(sorted(request.filters.doc_ids)),
        )
        key = (request.tenant, request.query, k, f"{mode}:{rerank}", filters)
        result = self.cache.get(key)
        SEARCHES.labels("hit" if result is not None else "miss").inc()
        if result is None:
            with SEARCH_SECONDS.labels(mode, rerank).time():
                result = await self.searcher.search_with_verdict(
                    request.tenant, request.query, k, str(mode), rerank, filters
                )
            self.cache.put(key, result)
            VERDICTS.labels("answerable" if result.verdict.answerable else "abstain").inc()
        verdict = result.verdict
        return retrieval_pb2.SearchResponse(
            passages=[_to_proto(p) for p in result.passages],
            answerable=verdict.answerable,
            answerable_score=verdict.probability,
            answerable_threshold=verdict.threshold,
            answerable_reason=verdict.reason,
            answerable_features=dict(verdict.features),
        )

    async def Ground(
        self, request: retrieval_pb2.GroundRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.GroundResponse:
        await _check_tenant(request.tenant, context)
        if not request.draft.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "draft is empty")
        if len(request.draft) > 50_000 or len(request.evidence_ids) > 100:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "draft over 50,000 characters or over 100 evidence ids"
            )
        tenant = self.tenants.get(request.tenant)
        if tenant is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown tenant {request.tenant!r}")
            raise AssertionError("unreachable")  # abort raises; this tells the type checker
        wanted = list(dict.fromkeys(request.evidence_ids))
        passages = {p.chunk_id: p for p in await self.store.fetch_chunks(request.tenant, wanted)}
        # a passage's headings are part of what it says ("Growth — $49 per seat per month" is a heading), and
        # are said of everything under them ("Release 2026.2 (March 2026)" of the features it lists)
        evidence = [
            Evidence(chunk_id, passages[chunk_id].text, headings=passages[chunk_id].section_path)
            for chunk_id in wanted
            if chunk_id in passages
        ]

        def similarity(query: str, candidates: Sequence[str]) -> list[float]:
            vectors = self.embedder.embed([query, *candidates])
            return [float(v) for v in vectors[1:] @ vectors[0]]

        with GROUND_SECONDS.time():
            checks = await asyncio.to_thread(
                check_claims,
                request.draft,
                evidence,
                products=tenant.products,
                competitors=tenant.competitors,
                similarity=similarity,
            )
        for check in checks:
            CLAIMS.labels(check.claim.kind, "supported" if check.supported else "unsupported").inc()
        return retrieval_pb2.GroundResponse(
            claims=[
                retrieval_pb2.Claim(
                    kind=c.claim.kind,
                    text=c.claim.text,
                    value=c.claim.value,
                    start=c.claim.start,
                    end=c.claim.end,
                    supported=c.supported,
                    passage_id=c.passage_id or "",
                    reason=c.reason,
                )
                for c in checks
            ],
            grounded=all(c.supported for c in checks),
            unknown_evidence_ids=[chunk_id for chunk_id in wanted if chunk_id not in passages],
        )

    async def Recall(
        self, request: retrieval_pb2.RecallRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.RecallResponse:
        await _check_tenant(request.tenant, context)
        if not request.contact_id.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "contact_id is required")
        k = await _check_k(request.k, 8, context)
        await _check_query_length(request.query, context)
        with RECALL_SECONDS.time():
            memories = await self.memory.recall(request.tenant, request.contact_id, request.query, k)
        return retrieval_pb2.RecallResponse(memories=[_memory_to_proto(m) for m in memories])

    async def Resemble(
        self, request: retrieval_pb2.ResembleRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.ResembleResponse:
        await _check_resemble(request, context)

        def similarities() -> list[float]:
            # each example's vector is computed once, then comes from the embedder's cache
            text = np.asarray(self.embedder.embed_one(request.text))
            examples = np.asarray([self.embedder.embed_one(e.text) for e in request.examples])
            return [float(score) for score in examples @ text]

        with RESEMBLE_SECONDS.time():
            scores = await asyncio.to_thread(similarities)
        best: dict[str, float] = {}
        for example, score in zip(request.examples, scores, strict=True):
            best[example.label] = max(best.get(example.label, -1.0), float(score))
        ranked = sorted(best.items(), key=lambda item: -item[1])
        return retrieval_pb2.ResembleResponse(
            scores=[retrieval_pb2.LabelScore(label=label, score=score) for label, score in ranked]
        )


async def _check_resemble(request: retrieval_pb2.ResembleRequest, context: grpc.aio.ServicerContext) -> None:
    if not request.text.strip():
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
    if len(request.text) > 10_000:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text over 10,000 characters")
    if not request.examples or len(request.examples) > 500:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "between 1 and 500 examples")
    if any(not e.label or not e.text.strip() or len(e.text) > 2000 for e in request.examples):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "every example needs a label and 1..2,000 characters")


async def _check_query_length(query: str, context: grpc.aio.ServicerContext) -> None:
    if len(query) > MAX_QUERY_CHARS:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"query over {MAX_QUERY_CHARS:,} characters")


def _memory_to_proto(m: Memory) -> retrieval_pb2.Memory:
    return retrieval_pb2.Memory(
        memory_id=m.memory_id,
        tier=m.tier,
        kind=m.kind,
        text=m.text,
        occurred_at=m.occurred_at.isoformat(),
        score=m.score,
        contact_id=m.contact_id,
    )


async def _check_k(k: int, default: int, context: grpc.aio.ServicerContext) -> int:
    """How many results a request asks for (0 means `default`), within 1..50."""
    k = k or default
    if not 1 <= k <= 50:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "k must be between 1 and 50")
    return k


async def _check_tenant(tenant: str, context: grpc.aio.ServicerContext) -> None:
    if not tenant or not set(tenant) <= TENANT_NAME_OK:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant must be a Herald tenant id")


def _to_proto(p: Passage) -> retrieval_pb2.Passage:
    return retrieval_pb2.Passage(
        chunk_id=p.chunk_id,
        doc_id=p.doc_id,
        collection=p.collection,
        title=p.title,
        section_path=list(p.section_path),
        text=p.text,
        score=p.score,
        start=p.start,
        end=p.end,
    )


def make_store(settings: Settings) -> WeaviateKnowledgeStore:
    return WeaviateKnowledgeStore(
        settings.weaviate_host, settings.weaviate_http_port, settings.weaviate_grpc_port, settings.collection
    )


@contextlib.asynccontextmanager
async def knowledge_base(settings: Settings) -> AsyncIterator[tuple[WeaviateKnowledgeStore, DocumentRegistry]]:
    """The store and registry, migrated and connected, for work outside the service (bulk loads, evaluation)."""
    pool = await create_pool(settings.common.pg_dsn, max_size=2)
    store = make_store(settings)
    try:
        await migrate(pool, "retrieval", MIGRATIONS)
        await store.connect()
        await store.ensure_schema()
        yield store, DocumentRegistry(pool)
    finally:
        await store.close()
        await pool.close()


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn, max_size=4)
    await migrate(pool, "retrieval", MIGRATIONS)
    store = make_store(settings)
    embedder = OnnxEmbedder(threads=settings.embed_threads)
    tenants = TenantDirectory(common.tenants_dir)
    intake = KnowledgeIntake(KnowledgeIndexer(store, DocumentRegistry(pool), embedder), tenants)
    worker = ConsumerWorker(common, "retrieval", "knowledge", {KNOWLEDGE: intake.on_knowledge}, max_batch=20)
    memory_store = WeaviateMemoryStore(store.client, settings.memory_collection)
    interactions = InteractionLog(pool, timedelta(days=settings.memory_ttl_days))
    # the gRPC API answers Herald's services only (the planner, the guard, the operator's CLI)
    service_keys = ServiceKeys(common.auth.service_keys_dir, "retrieval", common.auth.service_token_seconds)
    memory = MemoryKeeper(interactions, memory_store, embedder, alpha=settings.alpha, decision_keys=service_keys)
    memory_worker = ConsumerWorker(
        common,
        "retrieval",
        "memory",
        {EVENTS: memory.on_interaction, EXECUTED: memory.on_interaction, REVIEW_DECISION: memory.on_review_decision},
        max_batch=100,
    )
    sweeper = MemorySweeper(memory, settings.memory_sweep_seconds)

    cache = SearchCache(settings.search_cache_seconds)
    vocabularies = Vocabularies(store, settings.vocabulary_refresh_seconds)
    invalidator = CacheInvalidator(common, cache, vocabularies)
    server = grpc.aio.server(interceptors=[ServiceTokenInterceptor(service_keys, ("planner", "guard", "cli"))])
    llm = LlmReranker(settings.llm_rerank_model) if llm_configured() else None
    searcher = Searcher(
        store,
        embedder,
        alpha=settings.alpha,
        rerank_depth=settings.rerank_depth,
        llm=llm,
        llm_depth=settings.llm_rerank_depth,
        model=load_model(),
        vocabularies=vocabularies,
    )
    service = RetrievalService(searcher, settings, cache, tenants, memory)
    retrieval_pb2_grpc.add_RetrievalServicer_to_server(service, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            retrieval_pb2.DESCRIPTOR.services_by_name["Retrieval"].full_name,
            reflection.SERVICE_NAME,
            health.SERVICE_NAME,
        ),
        server,
    )
    server.add_insecure_port(f"{settings.grpc_host}:{settings.grpc_port}")

    async def start() -> None:
        await store.connect()
        await store.ensure_schema()
        await memory_store.ensure_schema()
        await server.start()
        await health_servicer.set("herald.v1.Retrieval", health_pb2.HealthCheckResponse.SERVING)
        log.info("retrieval gRPC listening", port=settings.grpc_port)

    async def stop() -> None:
        await server.stop(grace=2)
        await store.close()
        if llm is not None:
            await llm.close()

    http = FastAPI(title="herald-retrieval")
    checks = {
        "weaviate": store.ready,
        "postgres": readiness(pool),
        "knowledge_consumer": worker.ready,
        "memory_consumer": memory_worker.ready,
        "cache_invalidator": invalidator.ready,
    }
    add_ops_routes(http, checks)
    runtime = ServiceRuntime("retrieval", http, settings.ops_host, settings.ops_port)
    runtime.on_start += [invalidator.start, start, worker.start, memory_worker.start, sweeper.start]
    runtime.on_stop += [pool.close, invalidator.stop, stop, worker.stop, memory_worker.stop, sweeper.stop]
    return runtime
