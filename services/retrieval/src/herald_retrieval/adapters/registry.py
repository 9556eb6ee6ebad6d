"""The document registry in Postgres (schema `retrieval`): which documents a tenant's knowledge base holds."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class RegisteredDocument:
    doc_id: str
    collection: str
    title: str
    media_type: str
    content_hash: str
    chunks: int
    source_uri: str | None


class DocumentRegistry:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get(self, tenant: str, doc_id: str) -> RegisteredDocument | None:
        row = await self.pool.fetchrow(
            "SELECT doc_id, collection, title, media_type, content_hash, chunks, source_uri"
            " FROM retrieval.documents WHERE tenant = $1 AND doc_id = $2",
            tenant,
            doc_id,
        )
        return RegisteredDocument(**dict(row)) if row else None

    async def put(self, tenant: str, document: RegisteredDocument) -> None:
        await self.pool.execute(
            """
            INSERT INTO retrieval.documents
                (tenant, doc_id, collection, title, media_type, content_hash, chunks, source_uri)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT (tenant, doc_id) DO UPDATE SET
                collection = EXCLUDED.collection, title = EXCLUDED.title, media_type = EXCLUDED.media_type,
                content_hash = EXCLUDED.content_hash, chunks = EXCLUDED.chunks, source_uri = EXCLUDED.source_uri,
                indexed_at = now()
            """,
            tenant,
            document.doc_id,
            document.collection,
            document.title,
            document.media_type,
            document.content_hash,
            document.chunks,
            document.source_uri,
        )

    async def remove(self, tenant: str, doc_id: str) -> RegisteredDocument | None:
        """Forget a document; return what was registered, if anything."""
        row = await self.pool.fetchrow(
            "DELETE FROM retrieval.documents WHERE tenant = $1 AND doc_id = $2"
            " RETURNING doc_id, collection, title, media_type, content_hash, chunks, source_uri",
            tenant,
            doc_id,
        )
        return RegisteredDocument(**dict(row)) if row else None

    async def remove_tenant(self, tenant: str) -> None:
        await self.pool.execute("DELETE FROM retrieval.documents WHERE tenant = $1", tenant)
