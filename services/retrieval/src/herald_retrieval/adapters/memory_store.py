"""Long-term memory in Weaviate: summaries of a contact's past and reviewers' feedback, searchable.

One multi-tenant collection beside the knowledge base (a Weaviate tenant per Herald tenant).
A memory is about one contact (`scope` = `contact:<id>`) or holds for the whole tenant
(`scope` = `tenant`, e.g. a reviewer's feedback on a kind of email). Writes are idempotent: a
memory's object id comes from its `memory_id`, so writing it again replaces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import weaviate
from weaviate.classes.config import Configure, DataType, Property, Tokenization
from weaviate.classes.query import Filter, MetadataQuery, Sort
from weaviate.util import generate_uuid5

from herald_retrieval.adapters.weaviate_store import TenantCollections

TENANT_SCOPE = "tenant"


def contact_scope(contact_id: str) -> str:
    return f"contact:{contact_id}"


@dataclass(frozen=True)
class Memory:
    memory_id: str
    tier: str  # "medium" (a recent interaction, in Postgres) or "long" (here)
    kind: str  # email_sent, reply, meeting, summary, reviewer_feedback
    text: str
    occurred_at: datetime
    contact_id: str  # "" for a memory that holds for the whole tenant
    score: float = 0.0
    about: str = ""  # the contact a tenant-wide memory was learnt from, if any


class WeaviateMemoryStore:
    def __init__(self, client: weaviate.WeaviateAsyncClient, collection: str) -> None:
        self.client = client
        self.name = collection
        self.memories = TenantCollections(client, collection)

    async def ensure_schema(self) -> None:
        def exact(name: str) -> Property:  # matched whole, never split into words
            return Property(
                name=name, data_type=DataType.TEXT, skip_vectorization=True, tokenization=Tokenization.FIELD
            )

        if await self.client.collections.exists(self.name):
            collection = self.client.collections.get(self.name)
            config = await collection.config.get()
            if "about" not in {p.name for p in config.properties}:  # a collection made before erasure existed
                await collection.config.add_property(exact("about"))
            return

        await self.client.collections.create(
            self.name,
            multi_tenancy_config=Configure.multi_tenancy(enabled=True, auto_tenant_creation=True),
            vector_config=Configure.Vectors.self_provided(),
            properties=[
                exact("memory_id"),
                exact("scope"),
                exact("kind"),
                exact("about"),  # the contact a tenant-wide memory came from (reviewer feedback), for erasure
                Property(name="text", data_type=DataType.TEXT),
                Property(name="occurred_at", data_type=DataType.DATE),
            ],
        )

    async def put(self, tenant: str, memories: list[Memory], vectors: Any) -> None:
        if not memories:
            return
        collection = await self.memories.of(tenant)
        objects = [
            weaviate.classes.data.DataObject(
                properties={
                    "memory_id": m.memory_id,
                    "scope": contact_scope(m.contact_id) if m.contact_id else TENANT_SCOPE,
                    "kind": m.kind,
                    "about": m.about,
                    "text": m.text,
                    "occurred_at": m.occurred_at,
                },
                uuid=generate_uuid5(f"{tenant}:{m.memory_id}"),
                vector=[float(x) for x in vector],
            )
            for m, vector in zip(memories, vectors, strict=True)
        ]
        result = await collection.data.insert_many(objects)
        if result.errors:
            raise RuntimeError(f"weaviate refused {len(result.errors)} memories: {list(result.errors.values())[:3]}")

    async def search(
        self, tenant: str, contact_id: str, query: str, vector: list[float] | None, k: int, *, alpha: float
    ) -> list[Memory]:
        """The contact's memories and the tenant-wide ones: by hybrid relevance to `query`, else newest first."""
        collection = await self.memories.of(tenant)
        where = Filter.by_property("scope").contains_any([contact_scope(contact_id), TENANT_SCOPE])
        if query.strip():
            response = await collection.query.hybrid(
                query=query,
                vector=vector,
                alpha=alpha,
                limit=k,
                filters=where,
                return_metadata=MetadataQuery(score=True),
            )
        else:
            response = await collection.query.fetch_objects(
                filters=where, limit=k, sort=Sort.by_property("occurred_at", ascending=False)
            )
        return [_memory(o) for o in response.objects]

    async def forget_contact(self, tenant: str, contact_id: str) -> int:
        """Delete the contact's memories and the tenant-wide ones learnt from it; how many went."""
        collection = await self.memories.of(tenant)
        where = Filter.by_property("scope").equal(contact_scope(contact_id)) | Filter.by_property("about").equal(
            contact_id
        )
        result = await collection.data.delete_many(where=where)
        return int(result.successful)

    async def delete_tenant(self, tenant: str) -> None:
        await self.memories.remove(tenant)


def _memory(o: Any) -> Memory:
    scope = str(o.properties["scope"])
    return Memory(
        memory_id=str(o.properties["memory_id"]),
        tier="long",
        kind=str(o.properties["kind"]),
        text=str(o.properties["text"]),
        occurred_at=o.properties["occurred_at"],
        contact_id=scope.removeprefix("contact:") if scope != TENANT_SCOPE else "",
        score=float(o.metadata.score) if o.metadata and o.metadata.score is not None else 0.0,
    )
