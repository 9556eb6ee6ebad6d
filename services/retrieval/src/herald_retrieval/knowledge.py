"""Keeping a tenant's knowledge base: documents in (read, chunked, embedded, stored), replaced or deleted.

One `KnowledgeIndexer` serves both ways in: the Kafka intake (`herald.knowledge.v1` →
`on_knowledge`, answered on `herald.knowledge-indexed.v1`) and the operator's bulk
`herald-retrieval load-kb`. Writes are idempotent (chunk ids are deterministic and a document's
old chunks are deleted before its new ones go in), so a redelivered submission does no harm.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from pathlib import Path
from typing import TypeAlias

from prometheus_client import Counter

from herald_core.bus import Inbound, Outbound, Rejected
from herald_core.contracts import DocumentDeleted, DocumentIndexed, DocumentRefused, DocumentSubmitted, MediaType
from herald_core.observability import get_logger
from herald_core.tenants import TenantDirectory
from herald_core.topics import KNOWLEDGE_INDEXED, document_key
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.registry import DocumentRegistry, RegisteredDocument
from herald_retrieval.adapters.weaviate_store import WeaviateKnowledgeStore
from herald_retrieval.chunking import chunk_document
from herald_retrieval.documents import DocumentError, media_type_for, parse_document

SOURCE = "herald/retrieval"
DOCUMENTS = Counter("herald_retrieval_documents_total", "Knowledge documents handled, by outcome.", ["outcome"])
CHUNKS = Counter("herald_retrieval_chunks_indexed_total", "Chunks written to the knowledge base.")
log = get_logger("herald.retrieval.knowledge")


# what the intake answers about a document
Answer: TypeAlias = DocumentIndexed | DocumentRefused


class KnowledgeIndexer:
    def __init__(self, store: WeaviateKnowledgeStore, registry: DocumentRegistry, embedder: OnnxEmbedder) -> None:
        self.store = store
        self.registry = registry
        self.embedder = embedder

    async def add(
        self,
        tenant: str,
        doc_id: str,
        collection: str,
        media_type: MediaType,
        content: bytes,
        source_uri: str | None = None,
    ) -> Answer:
        content_hash = hashlib.sha256(content).hexdigest()
        known = await self.registry.get(tenant, doc_id)
        if known and known.content_hash == content_hash and known.collection == collection:
            DOCUMENTS.labels("unchanged").inc()
            return DocumentIndexed(
                doc_id=doc_id,
                collection=collection,
                title=known.title,
                status="unchanged",
                chunks=known.chunks,
                content_hash=content_hash,
            )
        try:
            doc = parse_document(doc_id, collection, media_type, content)
        except DocumentError as exc:
            return _refused(doc_id, exc)
        chunks = await asyncio.to_thread(chunk_document, doc, self.embedder.embed)
        vectors = await asyncio.to_thread(
            self.embedder.embed, [" — ".join((doc.title, *c.section_path)) + ". " + c.text for c in chunks]
        )
        written = await self.store.upsert_document(tenant, doc, chunks, vectors)
        await self.registry.put(
            tenant,
            RegisteredDocument(doc_id, doc.collection, doc.title, media_type.value, content_hash, written, source_uri),
        )
        DOCUMENTS.labels("indexed").inc()
        CHUNKS.inc(written)
        log.info("document indexed", doc_id=doc_id, chunks=written, replaced=known is not None)
        return DocumentIndexed(
            doc_id=doc_id,
            collection=doc.collection,
            title=doc.title,
            status="indexed",
            chunks=written,
            content_hash=content_hash,
        )

    async def submit(self, tenant: str, body: DocumentSubmitted) -> Answer:
        """`add` for a submission as it arrives on Kafka (its content inline or base64)."""
        try:
            content = _content(body)
        except DocumentError as exc:
            return _refused(body.doc_id, exc)
        return await self.add(tenant, body.doc_id, body.collection, body.media_type, content, body.source_uri)

    async def delete(self, tenant: str, doc_id: str) -> DocumentIndexed:
        await self.store.delete_document(tenant, doc_id)
        known = await self.registry.remove(tenant, doc_id)
        DOCUMENTS.labels("deleted").inc()
        log.info("document deleted", doc_id=doc_id, was_known=known is not None)
        return DocumentIndexed(
            doc_id=doc_id,
            collection=known.collection if known else "",
            title=known.title if known else "",
            status="deleted",
            chunks=0,
        )

    async def load_directory(self, tenant: str, directory: Path) -> list[Answer]:
        """Every readable file under `directory`; doc id = its path inside it, collection = its top folder."""
        answers = []
        paths = await asyncio.to_thread(lambda: sorted(p for p in directory.rglob("*") if p.is_file()))
        for path in paths:
            media_type = media_type_for(path.name)
            if media_type is None:
                continue
            relative = path.relative_to(directory)
            collection = relative.parts[0] if len(relative.parts) > 1 else "general"
            content = await asyncio.to_thread(path.read_bytes)
            answers.append(
                await self.add(tenant, relative.with_suffix("").as_posix(), collection, media_type, content, str(path))
            )
        return answers


class KnowledgeIntake:
    """The handler of `herald.knowledge.v1`."""

    def __init__(self, indexer: KnowledgeIndexer, tenants: TenantDirectory) -> None:
        self.indexer = indexer
        self.tenants = tenants

    async def on_knowledge(self, msg: Inbound) -> list[Outbound]:
        tenant = msg.envelope.tenant
        if self.tenants.get(tenant) is None:
            raise Rejected(f"unknown tenant {tenant!r}")
        body = msg.body
        answer: Answer
        if isinstance(body, DocumentDeleted):
            answer = await self.indexer.delete(tenant, body.doc_id)
        elif isinstance(body, DocumentSubmitted):
            answer = await self.indexer.submit(tenant, body)
        else:
            raise Rejected(f"{msg.envelope.type} is not a knowledge message")
        envelope = msg.envelope.caused(source=SOURCE, type=answer.TYPE, subject=f"document/{answer.doc_id}")
        return [Outbound(KNOWLEDGE_INDEXED, document_key(tenant, answer.doc_id), envelope, answer)]


def _refused(doc_id: str, exc: DocumentError) -> DocumentRefused:
    DOCUMENTS.labels("refused").inc()
    log.warning("document refused", doc_id=doc_id, reason=str(exc))
    return DocumentRefused(doc_id=doc_id, reason=str(exc))


def _content(body: DocumentSubmitted) -> bytes:
    """The submitted bytes; raises `DocumentError` with the reason they cannot be had."""
    if (body.content is None) == (body.content_base64 is None):
        raise DocumentError("exactly one of content and content_base64 must be given")
    if body.content is not None:
        if body.media_type is MediaType.PDF:
            raise DocumentError("a PDF must be sent as content_base64")
        return body.content.encode()
    try:
        return base64.b64decode(body.content_base64 or "", validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DocumentError(f"content_base64 is not valid base64: {exc}") from exc
