"""LLM drafting through the real `anthropic` SDK, against a loopback server that speaks the Messages API.

The server records what the SDK sent (model, tools, forced tool choice, the passages) and answers
the way the API does: a `tool_use` block with the draft. A model that answers without calling the
tool makes the planner fall back to its template.

For a tenant with a first-touch campaign the model may first call the read-only `fetch_campaign_stats`;
a loopback app stands for the executor's read API (`POST /v1/tools/<tool>`, the same validation and
refusals), and the next request must carry its answer as the tool result.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from herald_core.contracts import ContactFacts, EvidenceRef, MemoryRef
from herald_core.tenants import FirstTouch
from herald_core.tools import ToolInputInvalid, validate_input
from herald_planner.adapters.llm import DraftingFailed, LlmDrafter
from herald_planner.adapters.tools import ReadToolError, ReadTools
from herald_planner.logic import DraftRequest
from support import loopback, messages_api, throwaway_service_keys

EVIDENCE = [
    EvidenceRef(
        chunk_id="customers/logistics-northwind#000",
        doc_id="customers/logistics-northwind",
        title="Customer story: Northwind Freight",
        score=0.9,
        quote="Northwind Freight cut carrier-exception handling time by 62% in the first quarter.",
    ),
]
CONTACT = ContactFacts(
    contact_id="5100001",
    email="jordan.reyes@northwindfreight.example",
    first_name="Jordan",
    last_name="Reyes",
    company="Northwind Freight",
    job_title="Head of Operations",
    industry="logistics",
)
FEEDBACK = MemoryRef(
    memory_id="feedback-rv-1",
    tier="long",
    kind="reviewer_feedback",
    text="Reviewer feedback (rejected): never quote per-seat prices in a first email",
    occurred_at=datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
    score=0.03,
)


def system_text(body: dict[str, Any]) -> str:
    """The system prompt a Messages API request carried, as text (it is sent as blocks, to be cached)."""
    system = body["system"]
    return system if isinstance(system, str) else "".join(block["text"] for block in system)


async def test_draft_comes_from_the_forced_tool_call(monkeypatch: pytest.MonkeyPatch) -> None:
    tool_use = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "draft_email",
        "input": {
            "subject": "Jordan, 62% faster exceptions at Northwind?",
            "confidence": 0.82,
            "body_text": "Hi Jordan,\n\nNorthwind Freight cut carrier-exception handling by 62%.",
        },
    }
    async with messages_api({"content": [tool_use]}) as (url, received):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        drafter = LlmDrafter("claude-sonnet-5", 800)
        draft = await drafter.draft(CONTACT, EVIDENCE, [FEEDBACK], company_name="Acme Relay", sender="Maya")
        await drafter.client.close()
    assert draft.subject == "Jordan, 62% faster exceptions at Northwind?"
    assert draft.confidence == 0.82
    assert draft.usage is not None and (draft.usage.input_tokens, draft.usage.output_tokens) == (321, 87)
    assert "62%" in draft.body_text
    sent = received[0]
    credentials = sent["headers"].get("x-api-key") or sent["headers"].get("authorization", "")
    assert credentials.endswith("sk-ant-loopback"), sorted(sent["headers"])
    assert sent["body"]["tool_choice"] == {"type": "tool", "name": "draft_email"}
    assert [t["name"] for t in sent["body"]["tools"]] == ["draft_email"]
    # the subject the model may write is the one the executor accepts: one line, at most 200 characters
    subject = sent["body"]["tools"][0]["input_schema"]["properties"]["subject"]
    assert subject["maxLength"] == 200 and subject["pattern"] == "^[^\\r\\n]*$"
    assert "customers/logistics-northwind#000" in sent["body"]["messages"][0]["content"]
    # what memory recalled goes with the request: the model is told to follow reviewers' feedback
    assert "never quote per-seat prices in a first email" in sent["body"]["messages"][0]["content"]
    assert "never invent prices" in system_text(sent["body"])
    # the stable prefix (tools, then the system text) is marked for the prompt cache
    assert sent["body"]["system"][-1]["cache_control"] == {"type": "ephemeral"}


async def test_the_brand_guide_and_house_rules_ride_in_the_cached_prefix_and_cache_reads_are_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tool_use = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "draft_email",
        "input": {"subject": "Jordan, exceptions", "confidence": 0.8, "body_text": "Hi Jordan,\n\nA note."},
    }
    usage = {
        "input_tokens": 240,
        "output_tokens": 90,
        "cache_read_input_tokens": 1700,
        "cache_creation_input_tokens": 0,
    }
    brief = DraftRequest(
        tenant_id="acme",
        contact=CONTACT,
        evidence=EVIDENCE,
        memories=(),
        company_name="Acme Relay",
        sender="Maya",
        house_rules="Products you may name: Acme Relay, Growth.",
    )
    async with messages_api({"content": [tool_use], "usage": usage}) as (url, received):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        drafter = LlmDrafter("claude-sonnet-5", 800)
        draft = await drafter.draft(
            CONTACT,
            EVIDENCE,
            [],
            company_name="Acme Relay",
            sender="Maya",
            brief=brief,
            guide="[brand/voice-and-tone] Plain words, short sentences.",
        )
        await drafter.client.close()
    (block,) = received[0]["body"]["system"]
    assert block["cache_control"] == {"type": "ephemeral"}
    assert "Plain words, short sentences." in block["text"] and "Products you may name: Acme Relay" in block["text"]
    # what varies per lead is after the cached prefix, in the message
    assert "Plain words" not in received[0]["body"]["messages"][0]["content"]
    assert draft.usage is not None
    assert (draft.usage.input_tokens, draft.usage.cache_read_tokens, draft.usage.cache_write_tokens) == (1940, 1700, 0)


async def test_an_answer_without_the_tool_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async with messages_api(
        {"content": [{"type": "text", "text": "Sure! 90% off today."}], "stop_reason": "end_turn"}
    ) as (url, _):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        drafter = LlmDrafter("claude-sonnet-5", 800)
        with pytest.raises(ValueError, match="did not call draft_email"):
            await drafter.draft(CONTACT, EVIDENCE, [], company_name="Acme Relay", sender="Maya")
        await drafter.client.close()


FIRST_TOUCH = FirstTouch(
    campaign_id="first-touch",
    variants={"proof": "lead with a customer result", "question": "open with a question about their work"},
)
STATS = {
    "campaign_id": "first-touch",
    "variants": [
        {"variant": "proof", "sends": 12, "deliveries": 12, "opens": 5, "clicks": 1, "replies": 1},
        {"variant": "question", "sends": 10, "deliveries": 9, "opens": 2, "clicks": 0, "replies": 0},
    ],
}


def _stats_call(n: int, campaign_id: str = "first-touch") -> dict[str, Any]:
    return {
        "content": [
            {
                "type": "tool_use",
                "id": f"toolu_read_{n}",
                "name": "fetch_campaign_stats",
                "input": {"campaign_id": campaign_id},
            }
        ],
        "usage": {"input_tokens": 400, "output_tokens": 30},
    }


DRAFT_PROOF = {
    "content": [
        {
            "type": "tool_use",
            "id": "toolu_draft",
            "name": "draft_email",
            "input": {
                "subject": "Jordan, 62% faster exceptions at Northwind?",
                "body_text": "Hi Jordan,\n\nNorthwind Freight cut carrier-exception handling by 62%.",
                "confidence": 0.8,
                "variant": "proof",
            },
        }
    ],
    "usage": {"input_tokens": 600, "output_tokens": 90},
}


@asynccontextmanager
async def executor_read_api() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """The executor's read API as the planner sees it: input checked against the registry (422 with the typed
    failure), tools with side effects refused (403), `STATS` for a valid question; every request recorded."""
    asked: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/v1/tools/{tool}")
    async def read_tool(tool: str, request: Request) -> JSONResponse:
        body = await request.json()
        asked.append({"tool": tool, **body})
        if tool != "fetch_campaign_stats":
            return JSONResponse({"error": "needs_approval", "detail": f"{tool} needs the guard"}, status_code=403)
        try:
            validate_input(tool, body["input"])
        except ToolInputInvalid as exc:
            return JSONResponse({"error": "invalid_input", "failure": exc.failure.model_dump(mode="json")}, 422)
        return JSONResponse(STATS)

    async with loopback(app) as url:
        yield url, asked


@asynccontextmanager
async def drafter_with_reads(
    monkeypatch: pytest.MonkeyPatch, replies: list[dict[str, Any]], max_tool_rounds: int = 3
) -> AsyncIterator[tuple[LlmDrafter, list[dict[str, Any]], list[dict[str, Any]]]]:
    """A drafter whose model answers `replies` in turn and whose read tools go to the executor stand-in."""
    async with messages_api(replies) as (url, received), executor_read_api() as (executor, asked):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        read_tools = ReadTools(executor, 5, throwaway_service_keys("planner"))
        drafter = LlmDrafter("claude-sonnet-5", 800, read_tools, max_tool_rounds=max_tool_rounds)
        try:
            yield drafter, received, asked
        finally:
            await drafter.client.close()
            await read_tools.close()


def _tool_results(request: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        block
        for message in request["body"]["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block["type"] == "tool_result"
    ]


async def test_the_model_reads_the_campaign_figures_then_drafts_a_variant(monkeypatch: pytest.MonkeyPatch) -> None:
    async with drafter_with_reads(monkeypatch, [_stats_call(1), DRAFT_PROOF]) as (drafter, received, asked):
        draft = await drafter.draft(
            CONTACT, EVIDENCE, [], company_name="Acme Relay", sender="Maya", tenant="acme", first_touch=FIRST_TOUCH
        )
    assert len(received) == 2
    first, second = (r["body"] for r in received)
    # offered: the draft and the registry's read-only tools, any of them; nothing with side effects
    assert [t["name"] for t in first["tools"]] == ["draft_email", "fetch_campaign_stats"]
    assert first["tool_choice"] == {"type": "any"}
    variant = first["tools"][0]["input_schema"]["properties"]["variant"]
    assert variant["enum"] == ["proof", "question"] and "variant" not in first["tools"][0]["input_schema"]["required"]
    stats_schema = first["tools"][1]["input_schema"]
    assert stats_schema["required"] == ["campaign_id"] and "pattern" in stats_schema["properties"]["campaign_id"]
    assert "'first-touch'" in system_text(first)
    assert "- proof: lead with a customer result" in system_text(first)
    assert "- question: open with a question about their work" in system_text(first)
    # the executor was asked once, for this tenant and campaign
    assert asked == [{"tool": "fetch_campaign_stats", "tenant": "acme", "input": {"campaign_id": "first-touch"}}]
    # the second request carries the model's call and the executor's answer to it
    assistant = second["messages"][1]
    assert assistant["role"] == "assistant" and assistant["content"][0]["id"] == "toolu_read_1"
    (result,) = _tool_results(received[1])
    assert result["tool_use_id"] == "toolu_read_1" and not result.get("is_error")
    assert json.loads(result["content"]) == STATS
    # the draft: the chosen variant, the tokens of both calls, and a rationale naming what was consulted
    assert draft.variant == "proof" and draft.consulted == ("fetch_campaign_stats",)
    assert draft.usage is not None and (draft.usage.input_tokens, draft.usage.output_tokens) == (1000, 120)
    assert "consulted fetch_campaign_stats(first-touch): proof 12 sends 5 opens 1 clicks 1 replies" in draft.rationale
    assert "question 10 sends 2 opens" in draft.rationale and "variant proof" in draft.rationale


async def test_a_read_tool_that_fails_is_an_error_result_and_the_draft_still_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replies = [_stats_call(1, campaign_id="first touch!"), DRAFT_PROOF]
    async with drafter_with_reads(monkeypatch, replies) as (drafter, received, asked):
        draft = await drafter.draft(
            CONTACT, EVIDENCE, [], company_name="Acme Relay", sender="Maya", tenant="acme", first_touch=FIRST_TOUCH
        )
    assert len(asked) == 1 and len(received) == 2
    (result,) = _tool_results(received[1])
    assert result["is_error"] is True and result["tool_use_id"] == "toolu_read_1"
    assert "HTTP 422" in result["content"] and "campaign_id" in result["content"]
    assert draft.variant == "proof" and draft.consulted == ("fetch_campaign_stats",)
    assert "fetch_campaign_stats(first touch!) failed: HTTP 422" in draft.rationale


async def test_running_out_of_rounds_forces_draft_email(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [_stats_call(1), _stats_call(2), DRAFT_PROOF]
    async with drafter_with_reads(monkeypatch, replies, max_tool_rounds=3) as (drafter, received, asked):
        draft = await drafter.draft(
            CONTACT, EVIDENCE, [], company_name="Acme Relay", sender="Maya", tenant="acme", first_touch=FIRST_TOUCH
        )
    assert [r["body"]["tool_choice"] for r in received] == [
        {"type": "any"},
        {"type": "any"},
        {"type": "tool", "name": "draft_email"},
    ]
    assert len(asked) == 2 and [r["tool_use_id"] for r in _tool_results(received[2])] == [
        "toolu_read_1",
        "toolu_read_2",
    ]
    assert draft.variant == "proof"
    assert draft.usage is not None and (draft.usage.input_tokens, draft.usage.output_tokens) == (1400, 150)

    # a model that still does not draft in the forced round: no fourth call, and its tokens are not lost
    async with drafter_with_reads(monkeypatch, [_stats_call(1)], max_tool_rounds=3) as (drafter, received, asked):
        with pytest.raises(DraftingFailed, match="did not call draft_email") as failed:
            await drafter.draft(
                CONTACT, EVIDENCE, [], company_name="Acme Relay", sender="Maya", tenant="acme", first_touch=FIRST_TOUCH
            )
    assert len(received) == 3 and len(asked) == 2
    assert (failed.value.usage.input_tokens, failed.value.usage.output_tokens) == (1200, 90)


async def test_without_a_first_touch_campaign_the_model_reads_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    async with drafter_with_reads(monkeypatch, [_stats_call(1), DRAFT_PROOF]) as (drafter, received, asked):
        with pytest.raises(DraftingFailed, match="did not call draft_email"):
            await drafter.draft(CONTACT, EVIDENCE, [], company_name="Acme Relay", sender="Maya", tenant="acme")
    assert len(received) == 1 and asked == []
    (request,) = (r["body"] for r in received)
    assert request["tool_choice"] == {"type": "tool", "name": "draft_email"}
    assert [t["name"] for t in request["tools"]] == ["draft_email"]
    assert "variant" not in request["tools"][0]["input_schema"]["properties"]
    assert "fetch_campaign_stats" not in system_text(request)


async def test_read_tools_refuse_a_tool_with_side_effects_before_asking() -> None:
    async with executor_read_api() as (executor, asked):
        read_tools = ReadTools(executor, 5, throwaway_service_keys("planner"))
        try:
            with pytest.raises(ReadToolError, match="only the guard's approval"):
                await read_tools.call("send_email", "acme", {"to": "a@b.example", "subject": "Hi", "body_text": "x"})
            with pytest.raises(ReadToolError, match="no tool named"):
                await read_tools.call("drop_tables", "acme", {})
            assert asked == []
            with pytest.raises(ReadToolError) as refused:
                await read_tools.call("fetch_campaign_stats", "acme", {"campaign_id": "a b"})
            assert refused.value.status == 422 and "campaign_id" in refused.value.reason
            assert await read_tools.call("fetch_campaign_stats", "acme", {"campaign_id": "first-touch"}) == STATS
        finally:
            await read_tools.close()
