"""Retrieval wiring: the gRPC `herald.v1.Retrieval` API (with health and reflection) over the
Weaviate knowledge base, plus the knowledge-base loader."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from pathlib import Path

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Histogram

from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.weaviate_store import Passage, WeaviateKnowledgeStore
from herald_retrieval.chunking import chunk_document, parse_document
from herald_retrieval.settings import Settings

SEARCH_SECONDS = Histogram(
    "herald_retrieval_search_seconds",
    "Search latency, embedding included.",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64),
)
SEARCHES = Counter("herald_retrieval_searches_total", "Searches, by cache outcome.", ["cache"])
log = get_logger("herald.retrieval")
TENANT_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


class SearchCache:
    """Recent answers by (tenant, query, k, collections), for `ttl` seconds.

    Many leads ask the same thing (same industry, same role); a knowledge base changes by loads that
    are minutes apart, so an answer a few seconds old is as good as a new one and costs nothing.
    """

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str, int, tuple[str, ...]], tuple[float, list[Passage]]] = OrderedDict()

    def get(self, key: tuple[str, str, int, tuple[str, ...]]) -> list[Passage] | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: tuple[str, str, int, tuple[str, ...]], passages: list[Passage]) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + self.ttl, passages)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


class RetrievalService(retrieval_pb2_grpc.RetrievalServicer):
    def __init__(self, store: WeaviateKnowledgeStore, embedder: OnnxEmbedder, alpha: float, cache: SearchCache) -> None:
        self.store = store
        self.embedder = embedder
        self.alpha = alpha
        self.cache = cache

    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: grpc.aio.ServicerContext
    ) -> retrieval_pb2.SearchResponse:
        if not request.tenant or not set(request.tenant) <= TENANT_NAME_OK:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant must be a Herald tenant id")
        if not request.query.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "query is empty")
        k = request.k or 5
        if not 1 <= k <= 50:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "k must be between 1 and 50")
        key = (request.tenant, request.query, k, tuple(sorted(request.filters.collections)))
        passages = self.cache.get(key)
        SEARCHES.labels("hit" if passages is not None else "miss").inc()
        if passages is None:
            with SEARCH_SECONDS.time():
                vector = await asyncio.to_thread(self.embedder.embed_one, request.query)
                passages = await self.store.hybrid_search(
                    request.tenant,
                    request.query,
                    vector,
                    k,
                    alpha=self.alpha,
                    collections=list(request.filters.collections) or None,
                )
            self.cache.put(key, passages)
        return retrieval_pb2.SearchResponse(
            passages=[
                retrieval_pb2.Passage(
                    chunk_id=p.chunk_id,
                    doc_id=p.doc_id,
                    collection=p.collection,
                    title=p.title,
                    section_path=list(p.section_path),
                    text=p.text,
                    score=p.score,
                )
                for p in passages
            ]
        )


async def load_knowledge_base(
    store: WeaviateKnowledgeStore, embedder: OnnxEmbedder, tenant: str, directory: Path
) -> tuple[int, int]:
    """Load every `*.md` under `directory` (doc id = its path inside it); return (documents, chunks)."""
    await store.ensure_schema()
    documents = chunks_total = 0
    for path in sorted(await asyncio.to_thread(lambda: list(directory.rglob("*.md")))):
        doc_id = path.relative_to(directory).with_suffix("").as_posix()
        text = await asyncio.to_thread(path.read_text)
        doc = parse_document(doc_id, text)
        chunks = chunk_document(doc, text)
        vectors = await asyncio.to_thread(embedder.embed, [f"{doc.title}. {c.text}" for c in chunks])
        chunks_total += await store.upsert_document(tenant, doc, chunks, vectors)
        documents += 1
    return documents, chunks_total


def make_store(settings: Settings) -> WeaviateKnowledgeStore:
    return WeaviateKnowledgeStore(
        settings.weaviate_host, settings.weaviate_http_port, settings.weaviate_grpc_port, settings.collection
    )


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    store = make_store(settings)
    embedder = OnnxEmbedder(threads=settings.embed_threads)
    server = grpc.aio.server()
    retrieval_pb2_grpc.add_RetrievalServicer_to_server(
        RetrievalService(store, embedder, settings.alpha, SearchCache(settings.search_cache_seconds)), server
    )
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
        await server.start()
        await health_servicer.set("herald.v1.Retrieval", health_pb2.HealthCheckResponse.SERVING)
        log.info("retrieval gRPC listening", port=settings.grpc_port)

    async def stop() -> None:
        await server.stop(grace=2)
        await store.close()

    http = FastAPI(title="herald-retrieval")
    add_ops_routes(http, {"weaviate": store.ready})
    runtime = ServiceRuntime("retrieval", http, settings.ops_host, settings.ops_port)
    runtime.on_start.append(start)
    runtime.on_stop.append(stop)
    return runtime
