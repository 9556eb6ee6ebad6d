"""Search on the real retrieval service over the sample knowledge base: what each mode's scores mean, and
whether a search says the knowledge base answers its query (read by the planner beside the evidence)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import numpy as np
import pytest
import weaviate
from weaviate.classes.query import Filter

from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_planner.adapters.retrieval import RetrievalClient
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.answerability import FEATURES

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.e2e]


@pytest.fixture(scope="module")
def tenant(herald) -> str:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"se{secrets.token_hex(3)}")
    herald.load_kb(tenant)
    return tenant


@pytest.fixture
async def stub(herald) -> AsyncIterator[retrieval_pb2_grpc.RetrievalStub]:  # type: ignore[no-untyped-def]
    async with herald.retrieval_channel() as channel:
        yield retrieval_pb2_grpc.RetrievalStub(channel)


def stored_vectors(herald, tenant: str, chunk_ids: list[str]) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """The vectors Weaviate holds for these chunks, read with Weaviate's own client."""
    config = herald.services.config
    with weaviate.connect_to_local(port=config.weaviate_http_port, grpc_port=config.weaviate_grpc_port) as client:
        collection = client.collections.get(herald.services.extra_env["HERALD_RETRIEVAL_COLLECTION"]).with_tenant(
            tenant
        )
        response = collection.query.fetch_objects(
            filters=Filter.by_property("chunk_id").contains_any(chunk_ids), limit=len(chunk_ids), include_vector=True
        )
        return {str(o.properties["chunk_id"]): np.asarray(o.vector["default"]) for o in response.objects}


async def test_vector_scores_are_the_cosine_similarity_of_query_and_passage(stub, herald, tenant) -> None:  # type: ignore[no-untyped-def]
    query = "How long are audit records kept on the Enterprise plan?"
    response = await stub.Search(
        retrieval_pb2.SearchRequest(tenant=tenant, query=query, k=8, mode=retrieval_pb2.SEARCH_MODE_VECTOR)
    )
    scores = [p.score for p in response.passages]
    assert len(scores) == 8
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[-1]
    vectors = stored_vectors(herald, tenant, [p.chunk_id for p in response.passages])
    query_vector = np.asarray(OnnxEmbedder().embed_one(query))
    for passage in response.passages:
        assert passage.score == pytest.approx(float(vectors[passage.chunk_id] @ query_vector), abs=1e-3)
    # the best passage by meaning says how long Enterprise keeps its audit records
    assert "seven years" in response.passages[0].text


async def test_an_unrelated_query_scores_lower_in_vector_mode_than_a_related_one(stub, tenant) -> None:  # type: ignore[no-untyped-def]
    async def best(query: str) -> float:
        response = await stub.Search(
            retrieval_pb2.SearchRequest(tenant=tenant, query=query, k=3, mode=retrieval_pb2.SEARCH_MODE_VECTOR)
        )
        return response.passages[0].score

    related = await best("Which identity providers work with single sign-on?")
    unrelated = await best("a recipe for sourdough bread with a long cold proof")
    assert 0.0 < unrelated < related <= 1.0


@pytest.fixture
async def client(herald) -> AsyncIterator[RetrievalClient]:  # type: ignore[no-untyped-def]
    retrieval = RetrievalClient(herald.services.retrieval_target, 30, herald.service_keys("planner"))
    yield retrieval
    await retrieval.close()


ANSWERED = (
    "How much does the Growth plan cost per seat?",
    "How long are audit records kept on Enterprise?",
    "Which identity providers work with single sign-on?",
)
NOT_ANSWERED = (
    "Does Acme Relay integrate with Workday?",
    "Is there a Kubernetes operator for running Acme Relay on-prem?",
    "Is Acme Relay PCI DSS certified for handling card data?",
)
# Not every question is told apart: "What does the Enterprise Plus plan cost?" uses only words the knowledge base
# knows, and is judged answerable (the README gives the measured precision and recall).


@pytest.mark.parametrize(("query", "answerable"), [(q, True) for q in ANSWERED] + [(q, False) for q in NOT_ANSWERED])
async def test_a_search_says_whether_the_knowledge_base_answers_its_query(stub, tenant, query, answerable) -> None:  # type: ignore[no-untyped-def]
    response = await stub.Search(retrieval_pb2.SearchRequest(tenant=tenant, query=query, k=3))
    assert len(response.passages) == 3  # the nearest passages come back either way
    assert response.answerable is answerable, (response.answerable_score, response.answerable_reason)
    assert (response.answerable_score >= response.answerable_threshold) is answerable
    assert 0.0 < response.answerable_threshold < 1.0
    assert set(response.answerable_features) == set(FEATURES)
    expected = "answerable: " if answerable else "not answered by the knowledge base: "
    assert response.answerable_reason.startswith(expected)


async def test_the_verdict_is_the_same_whatever_the_mode_and_re_ranker(stub, tenant) -> None:  # type: ignore[no-untyped-def]
    query = "Does Acme Relay integrate with Workday?"
    scores = set()
    for mode, rerank in (
        (retrieval_pb2.SEARCH_MODE_HYBRID, retrieval_pb2.RERANK_NONE),
        (retrieval_pb2.SEARCH_MODE_BM25, retrieval_pb2.RERANK_NONE),
        (retrieval_pb2.SEARCH_MODE_VECTOR, retrieval_pb2.RERANK_NONE),
        (retrieval_pb2.SEARCH_MODE_HYBRID, retrieval_pb2.RERANK_FUSION),
    ):
        response = await stub.Search(
            retrieval_pb2.SearchRequest(tenant=tenant, query=query, k=2, mode=mode, rerank=rerank)
        )
        assert not response.answerable
        scores.add(round(response.answerable_score, 5))
    assert len(scores) == 1, scores


async def test_the_planner_reads_the_verdict_beside_the_evidence(client, tenant) -> None:  # type: ignore[no-untyped-def]
    answered = await client.search_with_verdict(tenant, ANSWERED[0], 3, ["pricing"])
    assert answered.answerable and answered.score >= answered.threshold
    assert answered.evidence and all(e.doc_id.startswith("pricing/") for e in answered.evidence)
    assert await client.search(tenant, ANSWERED[0], 3, ["pricing"]) == answered.evidence
    unanswered = await client.search_with_verdict(tenant, NOT_ANSWERED[0], 3)
    assert not unanswered.answerable and unanswered.score < unanswered.threshold
    assert len(unanswered.evidence) == 3 and unanswered.reason.startswith("not answered by the knowledge base")
    assert set(unanswered.features) == set(FEATURES)
