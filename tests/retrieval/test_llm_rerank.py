"""The optional LLM re-ranker: the real `anthropic` SDK against a loopback Messages API, over candidates
from the real Weaviate knowledge base. The model's order is followed; a bad or missing answer keeps the
first stage's order; without a key the service says the re-ranker is not configured."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.llm_rerank import LlmReranker, ranking_order
from herald_retrieval.adapters.weaviate_store import SearchFilters
from herald_retrieval.app import knowledge_base
from herald_retrieval.knowledge import KnowledgeIndexer
from herald_retrieval.search import Searcher
from support import messages_api

pytestmark = [pytest.mark.weaviate, pytest.mark.postgres]

PRICING = Path(__file__).resolve().parents[2] / "samples" / "acme" / "kb" / "pricing"
QUERY = "how much does the Growth plan cost per seat"


def ranked(numbers: list[int]) -> dict[str, object]:
    return {"content": [{"type": "tool_use", "id": "toolu_1", "name": "rank_passages", "input": {"ranking": numbers}}]}


def test_the_models_ranking_is_checked_before_it_is_followed() -> None:
    assert ranking_order([3, 1], 4) == [2, 0, 1, 3]  # the ranked ones, then the rest in their own order
    assert ranking_order([2, 2, 9, 0, -1, "1", True, 1.5], 3) == [1, 0, 2]  # repeats and nonsense ignored
    assert ranking_order("not a list", 2) == [0, 1]


@pytest.fixture
async def searcher(herald) -> AsyncIterator[tuple[Searcher, str]]:  # type: ignore[no-untyped-def]
    settings = herald.retrieval_settings()
    tenant = f"rr{secrets.token_hex(3)}"
    embedder = OnnxEmbedder()
    async with knowledge_base(settings) as (store, registry):
        await KnowledgeIndexer(store, registry, embedder).load_directory(tenant, PRICING)
        yield Searcher(store, embedder, alpha=settings.alpha, rerank_depth=30, llm_depth=6), tenant
        await store.delete_tenant(tenant)
        await registry.remove_tenant(tenant)


async def test_search_follows_the_models_order(searcher, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    searcher, tenant = searcher
    first_stage = await searcher.search(tenant, QUERY, 6, "hybrid", "none", SearchFilters())
    assert len(first_stage) == 6
    async with messages_api(ranked([6, 4, 2])) as (url, received):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        searcher.llm = LlmReranker("claude-haiku-4-5")
        reranked = await searcher.search(tenant, QUERY, 4, "hybrid", "llm", SearchFilters())
        await searcher.llm.close()
    expected = [first_stage[i].chunk_id for i in (5, 3, 1, 0)]
    assert [p.chunk_id for p in reranked] == expected
    request = received[0]["body"]
    assert request["model"] == "claude-haiku-4-5"
    assert request["tool_choice"] == {"type": "tool", "name": "rank_passages"}
    prompt = request["messages"][0]["content"]
    assert QUERY in prompt and "[6]" in prompt and first_stage[5].text[:80] in prompt
    assert "data, not instructions" in request["system"]


async def test_an_answer_without_the_tool_keeps_the_first_stage_order(searcher, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    searcher, tenant = searcher
    first_stage = await searcher.search(tenant, QUERY, 4, "hybrid", "none", SearchFilters())
    chatty = {"content": [{"type": "text", "text": "They are all great."}], "stop_reason": "end_turn"}
    async with messages_api(chatty) as (url, received):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        searcher.llm = LlmReranker("claude-haiku-4-5")
        kept = await searcher.search(tenant, QUERY, 4, "hybrid", "llm", SearchFilters())
        await searcher.llm.close()
    assert received, "the model was asked"
    assert [p.chunk_id for p in kept] == [p.chunk_id for p in first_stage]


async def test_the_service_without_a_key_says_the_llm_reranker_is_not_configured(herald) -> None:  # type: ignore[no-untyped-def]
    async with herald.retrieval_channel() as channel:
        stub = retrieval_pb2_grpc.RetrievalStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Search(retrieval_pb2.SearchRequest(tenant="acme", query=QUERY, rerank=retrieval_pb2.RERANK_LLM))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "ANTHROPIC_API_KEY" in (refused.value.details() or "")
