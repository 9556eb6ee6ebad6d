"""The knowledge intake on the real stack: documents in over Kafka, indexed in Weaviate, searchable over gRPC.

Read back through real clients: the answers topic and the audit with a plain Kafka consumer,
the chunks with Weaviate's own client, search with a gRPC stub.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import AsyncIterator

import pytest
import weaviate
from aiokafka import AIOKafkaProducer
from fpdf import FPDF
from weaviate.classes.query import Filter

from herald_core.contracts import (
    MAX_DOCUMENT_BYTES,
    DeadLettered,
    DocumentDeleted,
    DocumentIndexed,
    DocumentRefused,
    DocumentSubmitted,
    MediaType,
)
from herald_core.envelope import Envelope
from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_core.topics import AUDIT, KNOWLEDGE, KNOWLEDGE_INDEXED, dead_letter_topic, document_key
from support import Record, envelope, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.e2e]

PRICING_V1 = """---
title: Pricing and plans
collection: pricing
---
# Pricing and plans

## Growth

Growth costs $49 per seat per month and includes the zephyrine audit export.
"""
PRICING_V2 = """---
title: Pricing and plans
collection: pricing
---
# Pricing and plans

## Growth

Growth costs $54 per seat per month and includes the quillfeather approval inbox.
"""


def markdown(doc_id: str, text: str, collection: str = "pricing") -> DocumentSubmitted:
    return DocumentSubmitted(doc_id=doc_id, collection=collection, media_type=MediaType.MARKDOWN, content=text)


async def submit(herald, tenant: str, bodies: list[DocumentSubmitted | DocumentDeleted]) -> str:  # type: ignore[no-untyped-def]
    """Send `bodies` as one upstream system would (a plain producer), under one correlation id."""
    first = envelope(tenant, bodies[0], source="test/kb")
    producer = AIOKafkaProducer(bootstrap_servers=herald.bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for body in bodies:
            env = Envelope.new_chain(
                source="test/kb",
                type=body.TYPE,
                tenant=tenant,
                correlation_id=first.correlation_id,
                subject=f"document/{body.doc_id}",
            )
            value = body.model_dump_json().encode()
            await producer.send(
                herald.topic(KNOWLEDGE), value, key=document_key(tenant, body.doc_id), headers=env.to_headers()
            )
        await producer.flush()
    finally:
        await producer.stop()
    return first.correlation_id


async def answers(herald, correlation_id: str, count: int) -> list[Record]:  # type: ignore[no-untyped-def]
    def mine(records: list[Record]) -> list[Record]:
        return [r for r in records if r.headers.get("ce_correlationid") == correlation_id]

    records = await read_topic(
        herald.bootstrap, herald.topic(KNOWLEDGE_INDEXED), timeout=120, until=lambda rs: len(mine(rs)) >= count
    )
    found = mine(records)
    assert len(found) == count, f"expected {count} answers, got {[r.json() for r in found]}"
    return found


@pytest.fixture
async def search(herald) -> AsyncIterator[retrieval_pb2_grpc.RetrievalStub]:  # type: ignore[no-untyped-def]
    async with herald.retrieval_channel() as channel:
        yield retrieval_pb2_grpc.RetrievalStub(channel)


@pytest.fixture
def chunks_in_weaviate(herald):  # type: ignore[no-untyped-def]
    """How many chunks of a document Weaviate holds for a tenant, asked of Weaviate itself."""
    config = herald.services.config
    client = weaviate.connect_to_local(port=config.weaviate_http_port, grpc_port=config.weaviate_grpc_port)
    collection_name = herald.services.extra_env["HERALD_RETRIEVAL_COLLECTION"]

    def count(tenant: str, doc_id: str) -> list[str]:
        collection = client.collections.get(collection_name).with_tenant(tenant)
        response = collection.query.fetch_objects(filters=Filter.by_property("doc_id").equal(doc_id), limit=100)
        return sorted(str(o.properties["text"]) for o in response.objects)

    yield count
    client.close()


def new_tenant(herald) -> str:  # type: ignore[no-untyped-def]
    return herald.add_tenant(f"kb{secrets.token_hex(3)}")


async def test_a_document_is_indexed_replaced_when_changed_kept_when_unchanged_and_deleted(
    herald, search, chunks_in_weaviate
) -> None:  # type: ignore[no-untyped-def]
    tenant = new_tenant(herald)
    first = await submit(herald, tenant, [markdown("pricing/plans", PRICING_V1)])
    (indexed,) = await answers(herald, first, 1)
    assert indexed.body(DocumentIndexed).status == "indexed"
    assert indexed.body(DocumentIndexed).title == "Pricing and plans"
    assert any("zephyrine" in t for t in chunks_in_weaviate(tenant, "pricing/plans"))

    found = await search.Search(retrieval_pb2.SearchRequest(tenant=tenant, query="zephyrine audit export", k=3))
    assert found.passages[0].doc_id == "pricing/plans"
    assert list(found.passages[0].section_path) == ["Pricing and plans", "Growth"]
    assert PRICING_V1[found.passages[0].start : found.passages[0].end].strip() == found.passages[0].text

    again = await submit(herald, tenant, [markdown("pricing/plans", PRICING_V1)])
    (unchanged,) = await answers(herald, again, 1)
    assert unchanged.body(DocumentIndexed).status == "unchanged"

    changed = await submit(herald, tenant, [markdown("pricing/plans", PRICING_V2)])
    (replaced,) = await answers(herald, changed, 1)
    assert replaced.body(DocumentIndexed).status == "indexed"
    texts = chunks_in_weaviate(tenant, "pricing/plans")
    assert any("quillfeather" in t for t in texts)
    assert not any("zephyrine" in t for t in texts), "the old version's chunks must be gone"

    gone = await submit(herald, tenant, [DocumentDeleted(doc_id="pricing/plans")])
    (deleted,) = await answers(herald, gone, 1)
    assert deleted.body(DocumentIndexed).status == "deleted"
    assert chunks_in_weaviate(tenant, "pricing/plans") == []
    after = await search.Search(
        retrieval_pb2.SearchRequest(
            tenant=tenant, query="quillfeather approval inbox", k=3, rerank=retrieval_pb2.RERANK_NONE
        )
    )
    assert all(p.doc_id != "pricing/plans" for p in after.passages)


async def test_one_tenants_documents_never_reach_another_tenants_search(herald, search) -> None:  # type: ignore[no-untyped-def]
    owner, other = new_tenant(herald), new_tenant(herald)
    secret = markdown("customers/private-note", "# Private note\n\nThe moonbeam-orchid renewal closes in May.\n")
    decoy = markdown("product/overview", "# Overview\n\nAcme Relay automates operations workflows.\n", "product")
    await answers(herald, await submit(herald, owner, [secret]), 1)
    await answers(herald, await submit(herald, other, [decoy]), 1)
    for mode in (retrieval_pb2.SEARCH_MODE_HYBRID, retrieval_pb2.SEARCH_MODE_BM25, retrieval_pb2.SEARCH_MODE_VECTOR):
        request = retrieval_pb2.SearchRequest(tenant=other, query="moonbeam-orchid renewal", k=10, mode=mode)
        leaked = [p.doc_id for p in (await search.Search(request)).passages]
        assert "customers/private-note" not in leaked, mode
        mine = retrieval_pb2.SearchRequest(tenant=owner, query="moonbeam-orchid renewal", k=10, mode=mode)
        assert [p.doc_id for p in (await search.Search(mine)).passages] == ["customers/private-note"], mode


async def test_filters_keep_to_the_collections_tags_and_documents_asked_for(herald, search) -> None:  # type: ignore[no-untyped-def]
    tenant = new_tenant(herald)
    docs = [
        markdown("pricing/plans", "---\ntags: [plans]\n---\n# Plans\n\nThe saffron plan costs $10.\n"),
        markdown(
            "campaigns/spring",
            "---\ntags: [email]\n---\n# Spring\n\nThe saffron campaign doubled replies.\n",
            "campaigns",
        ),
    ]
    await answers(herald, await submit(herald, tenant, docs), 2)

    async def doc_ids(**filters: list[str]) -> list[str]:
        request = retrieval_pb2.SearchRequest(
            tenant=tenant, query="saffron", k=10, filters=retrieval_pb2.SearchFilters(**filters)
        )
        return sorted(p.doc_id for p in (await search.Search(request)).passages)

    assert await doc_ids() == ["campaigns/spring", "pricing/plans"]
    assert await doc_ids(collections=["campaigns"]) == ["campaigns/spring"]
    assert await doc_ids(tags=["plans"]) == ["pricing/plans"]
    assert await doc_ids(doc_ids=["campaigns/spring"]) == ["campaigns/spring"]
    assert await doc_ids(collections=["competitors"]) == []


def _pdf(text: str) -> str:
    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, text)
    return base64.b64encode(bytes(pdf.output())).decode()


async def test_a_batch_with_bad_documents_keeps_the_good_ones_and_says_why_for_the_rest(
    herald, search, chunks_in_weaviate
) -> None:  # type: ignore[no-untyped-def]
    tenant = new_tenant(herald)
    good = markdown("brand/voice", "# Voice\n\nWe write plainly, like a colleague who respects your time.\n", "brand")
    pdf = DocumentSubmitted(
        doc_id="product/whitepaper",
        collection="product",
        media_type=MediaType.PDF,
        content_base64=_pdf("Relay keeps audit history for seven years on Enterprise."),
    )
    not_a_pdf = DocumentSubmitted(
        doc_id="product/scan",
        collection="product",
        media_type=MediaType.PDF,
        content_base64=base64.b64encode(b"nope").decode(),
    )
    bad_base64 = DocumentSubmitted(
        doc_id="product/garbled", collection="product", media_type=MediaType.PDF, content_base64="%%%not base64%%%"
    )
    empty = markdown("brand/empty", "   \n", "brand")
    both = DocumentSubmitted(
        doc_id="brand/both", collection="brand", media_type=MediaType.TEXT, content="x", content_base64="eA=="
    )
    correlation = await submit(herald, tenant, [good, not_a_pdf, pdf, bad_base64, empty, both])
    outcome = {r.json()["doc_id"]: r for r in await answers(herald, correlation, 6)}

    assert outcome["brand/voice"].body(DocumentIndexed).status == "indexed"
    assert outcome["product/whitepaper"].body(DocumentIndexed).status == "indexed"
    assert "not a readable PDF" in outcome["product/scan"].body(DocumentRefused).reason
    assert "not valid base64" in outcome["product/garbled"].body(DocumentRefused).reason
    assert "empty" in outcome["brand/empty"].body(DocumentRefused).reason
    assert "exactly one of" in outcome["brand/both"].body(DocumentRefused).reason
    assert chunks_in_weaviate(tenant, "product/scan") == []
    found = await search.Search(retrieval_pb2.SearchRequest(tenant=tenant, query="audit history seven years", k=1))
    assert found.passages[0].doc_id == "product/whitepaper"
    assert list(found.passages[0].section_path) == ["page 1"]

    audit = await read_topic(
        herald.bootstrap,
        herald.topic(AUDIT),
        timeout=30,
        until=lambda rs: sum(r.headers.get("ce_correlationid") == correlation for r in rs) >= 6,
    )
    refusals = [r for r in audit if r.headers.get("ce_correlationid") == correlation and r.type == DocumentRefused.TYPE]
    assert len(refusals) == 4, "every refusal is on the audit"


async def test_messages_the_intake_cannot_accept_go_to_its_dead_letter_topic_with_the_reason(herald, search) -> None:  # type: ignore[no-untyped-def]
    tenant = new_tenant(herald)
    huge = {
        "doc_id": "brand/huge",
        "collection": "brand",
        "media_type": "text/markdown",
        "content": "x" * (MAX_DOCUMENT_BYTES + 10),
    }
    bad_id = {
        "doc_id": "../../etc/passwd",
        "collection": "brand",
        "media_type": "text/markdown",
        "content": "# x\n\ny\n",
    }
    unknown_type = {"doc_id": "brand/word", "collection": "brand", "media_type": "application/msword", "content": "x"}
    stranger = markdown("brand/x", "# x\n\nsome text\n").model_dump()
    messages = [(tenant, huge), (tenant, bad_id), (tenant, unknown_type), ("no-such-tenant", stranger)]
    envelopes = [envelope(t, markdown("brand/x", "x"), source="test/kb") for t, _ in messages]
    sent = [env.id for env in envelopes]
    producer = AIOKafkaProducer(bootstrap_servers=herald.bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        for env, (_, raw) in zip(envelopes, messages, strict=True):
            await producer.send(herald.topic(KNOWLEDGE), json.dumps(raw).encode(), key=b"k", headers=env.to_headers())
        await producer.flush()
    finally:
        await producer.stop()
    dlq = dead_letter_topic("retrieval")
    records = await read_topic(
        herald.bootstrap,
        herald.topic(dlq),
        timeout=60,
        until=lambda rs: {r.id for r in rs} >= set(sent),
    )
    reasons = {r.id: r.headers.get("herald_dlq_reason", "") for r in records if r.id in sent}
    assert set(reasons) == set(sent)
    assert "content" in reasons[sent[0]] and "at most" in reasons[sent[0]]
    assert "doc_id" in reasons[sent[1]]
    assert "media_type" in reasons[sent[2]]
    assert "unknown tenant" in reasons[sent[3]]
    chains = {env.correlation_id for env in envelopes}

    def dead_lettered(records: list[Record]) -> set[str]:
        return {r.headers["ce_correlationid"] for r in records if r.type == DeadLettered.TYPE} & chains

    audit = await read_topic(
        herald.bootstrap, herald.topic(AUDIT), timeout=30, until=lambda rs: dead_lettered(rs) == chains
    )
    assert dead_lettered(audit) == chains, "every dead letter is on the audit"
    # the intake still serves: a good document after the bad ones is indexed
    fine = await submit(herald, tenant, [markdown("brand/fine", "# Fine\n\nStill serving after bad input.\n", "brand")])
    (answer,) = await answers(herald, fine, 1)
    assert answer.body(DocumentIndexed).status == "indexed"
