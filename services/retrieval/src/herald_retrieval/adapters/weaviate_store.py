"""The knowledge base in Weaviate: one multi-tenant collection, one Weaviate tenant per Herald tenant.

We bring our own vectors (computed on the CPU by the embedder) and search with Weaviate's hybrid
query (BM25 + vector, weighted by `alpha`), filtered by collection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import weaviate
from weaviate.classes.config import Configure, DataType, Property
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.util import generate_uuid5

from herald_retrieval.chunking import Chunk
from herald_retrieval.documents import Document


@dataclass(frozen=True)
class SearchFilters:
    """Metadata a passage must match: any of these collections, any of these tags, any of these documents."""

    collections: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    doc_ids: tuple[str, ...] = ()

    def to_weaviate(self) -> Any:
        parts = []
        if self.collections:
            parts.append(Filter.by_property("collection").contains_any(list(self.collections)))
        if self.tags:
            parts.append(Filter.by_property("tags").contains_any(list(self.tags)))
        if self.doc_ids:
            parts.append(Filter.by_property("doc_id").contains_any(list(self.doc_ids)))
        return Filter.all_of(parts) if len(parts) > 1 else (parts[0] if parts else None)


@dataclass(frozen=True)
class Passage:
    chunk_id: str
    doc_id: str
    collection: str
    title: str
    section_path: tuple[str, ...]
    text: str
    score: float
    start: int = 0
    end: int = 0
    # cosine similarity of the passage's vector to the query's (-1..1), when the search had a query vector
    similarity: float | None = None


class TenantCollections:
    """One multi-tenant Weaviate collection: a Weaviate tenant per Herald tenant, made on first use."""

    def __init__(self, client: weaviate.WeaviateAsyncClient, name: str) -> None:
        self.client = client
        self.name = name
        self._tenants: set[str] = set()

    async def of(self, tenant: str) -> Any:
        """The collection, scoped to one tenant (created if it is new)."""
        collection = self.client.collections.get(self.name)
        if tenant not in self._tenants:
            if tenant not in await collection.tenants.get():
                await collection.tenants.create([Tenant(name=tenant)])
            self._tenants.add(tenant)
        return collection.with_tenant(tenant)

    async def remove(self, tenant: str) -> None:
        await self.client.collections.get(self.name).tenants.remove([tenant])
        self._tenants.discard(tenant)


def connect_client(host: str, http_port: int, grpc_port: int) -> weaviate.WeaviateAsyncClient:
    """An async client for a Weaviate server (not connected yet)."""
    return weaviate.use_async_with_custom(
        http_host=host,
        http_port=http_port,
        http_secure=False,
        grpc_host=host,
        grpc_port=grpc_port,
        grpc_secure=False,
    )


class WeaviateKnowledgeStore:
    def __init__(self, host: str, http_port: int, grpc_port: int, collection: str = "KnowledgeChunk") -> None:
        self.client = connect_client(host, http_port, grpc_port)
        self.collection_name = collection
        self.chunks = TenantCollections(self.client, collection)

    async def connect(self) -> None:
        await self.client.connect()

    async def close(self) -> None:
        await self.client.close()

    async def ready(self) -> bool:
        return bool(await self.client.is_ready())

    async def ensure_schema(self) -> None:
        if await self.client.collections.exists(self.collection_name):
            return
        await self.client.collections.create(
            self.collection_name,
            multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_creation=True),
            vector_config=Configure.Vectors.self_provided(),
            properties=[
                Property(name="chunk_id", data_type=DataType.TEXT, skip_vectorization=True),
                Property(name="doc_id", data_type=DataType.TEXT, skip_vectorization=True),
                Property(name="collection", data_type=DataType.TEXT, skip_vectorization=True),
                Property(name="title", data_type=DataType.TEXT),
                Property(name="section_path", data_type=DataType.TEXT_ARRAY),
                Property(name="text", data_type=DataType.TEXT),
                Property(name="tags", data_type=DataType.TEXT_ARRAY),
                Property(name="start", data_type=DataType.INT),
                Property(name="end", data_type=DataType.INT),
            ],
        )

    async def upsert_document(self, tenant: str, doc: Document, chunks: list[Chunk], vectors: Any) -> int:
        """Replace the document's chunks: its old ones are deleted first, so a shorter version leaves none behind."""
        await self.delete_document(tenant, doc.doc_id)
        collection = await self.chunks.of(tenant)
        objects = [
            weaviate.classes.data.DataObject(
                properties={
                    "chunk_id": c.chunk_id,
                    "doc_id": c.doc_id,
                    "collection": doc.collection,
                    "title": doc.title,
                    "section_path": list(c.section_path),
                    "text": c.text,
                    "tags": list(doc.tags),
                    "start": c.start,
                    "end": c.end,
                },
                uuid=generate_uuid5(f"{tenant}:{c.chunk_id}"),
                vector=[float(x) for x in vector],
            )
            for c, vector in zip(chunks, vectors, strict=True)
        ]
        if objects:
            result = await collection.data.insert_many(objects)
            if result.errors:
                raise RuntimeError(
                    f"weaviate refused {len(result.errors)} chunk(s): {list(result.errors.values())[:3]}"
                )
        return len(objects)

    async def delete_document(self, tenant: str, doc_id: str) -> None:
        collection = await self.chunks.of(tenant)
        await collection.data.delete_many(where=Filter.by_property("doc_id").equal(doc_id))

    async def search(
        self,
        tenant: str,
        mode: str,
        query: str,
        vector: list[float] | None,
        k: int,
        *,
        alpha: float = 0.5,
        filters: SearchFilters = SearchFilters(),
    ) -> list[Passage]:
        """`mode` "bm25" (keywords alone), "vector" (the embedding alone) or "hybrid" (Weaviate's fusion of both,
        weighted by `alpha`: 0 is all BM25, 1 all vector).

        A passage's `score` is the first stage's own: BM25's, the cosine similarity (1 - cosine distance) in
        vector mode, the fused score in hybrid mode. With a query vector, every passage also carries its
        cosine `similarity` to the query.
        """
        collection = await self.chunks.of(tenant)
        where = filters.to_weaviate()
        if mode == "bm25":
            response = await collection.query.bm25(
                query=query, limit=k, filters=where, return_metadata=MetadataQuery(score=True)
            )
            return [_passage(o, o.metadata.score) for o in response.objects]
        if vector is None:
            raise ValueError(f"a {mode} search needs the query's vector")
        if mode == "vector":
            # near_vector answers a distance, not a score (its score field is always 0)
            response = await collection.query.near_vector(
                near_vector=vector, limit=k, filters=where, return_metadata=MetadataQuery(distance=True)
            )
            return [_passage(o, _cosine(o.metadata.distance), _cosine(o.metadata.distance)) for o in response.objects]
        response = await collection.query.hybrid(
            query=query,
            vector=vector,
            alpha=alpha,
            limit=k,
            filters=where,
            return_metadata=MetadataQuery(score=True),
            include_vector=True,
        )
        query_vector = np.asarray(vector, dtype=np.float32)
        return [
            _passage(o, o.metadata.score, float(np.asarray(o.vector["default"], dtype=np.float32) @ query_vector))
            for o in response.objects
        ]

    async def fetch_chunks(self, tenant: str, chunk_ids: list[str]) -> list[Passage]:
        """The passages with these chunk ids (those that exist), in no particular order."""
        if not chunk_ids:
            return []
        collection = await self.chunks.of(tenant)
        response = await collection.query.fetch_objects(
            filters=Filter.by_property("chunk_id").contains_any(chunk_ids), limit=len(chunk_ids)
        )
        return [_passage(o) for o in response.objects]

    async def all_chunks(self, tenant: str) -> list[Passage]:
        """Every chunk of a tenant's knowledge base (for evaluation: the ideal ranking needs the whole corpus)."""
        collection = await self.chunks.of(tenant)
        return [_passage(o) async for o in collection.iterator()]

    async def delete_tenant(self, tenant: str) -> None:
        await self.chunks.remove(tenant)

    async def count(self, tenant: str, filters: SearchFilters = SearchFilters()) -> int:
        collection = await self.chunks.of(tenant)
        result = await collection.aggregate.over_all(filters=filters.to_weaviate(), total_count=True)
        return int(result.total_count or 0)


def _cosine(distance: float | None) -> float:
    """The cosine similarity a cosine distance stands for (the collection's metric)."""
    if distance is None:
        raise ValueError("weaviate answered a vector search without distances")
    return 1.0 - float(distance)


def _passage(o: Any, score: float | None = None, similarity: float | None = None) -> Passage:
    return Passage(
        chunk_id=str(o.properties["chunk_id"]),
        doc_id=str(o.properties["doc_id"]),
        collection=str(o.properties["collection"]),
        title=str(o.properties["title"]),
        section_path=tuple(o.properties.get("section_path") or ()),
        text=str(o.properties["text"]),
        score=float(score or 0.0),
        start=int(o.properties.get("start") or 0),
        end=int(o.properties.get("end") or 0),
        similarity=similarity,
    )
