"""Planning a free-text task with the LLM, through the real `anthropic` SDK against a loopback Messages API: the
model reads through the tools it is given (each answer, or refusal, shown to it), is bounded by its steps (the last
call is forced to `propose_brief`), and what it proposes is held to `CampaignBrief` — anything else is no plan."""

from __future__ import annotations

from typing import Any

import pytest

from herald_core.contracts import SegmentFilter
from herald_planner.tasks.planning import LlmTaskPlanner, PlanningFailed, Reads
from support import messages_api

BRIEF = {
    "campaign_id": "reengage",
    "topic": "approval workflows",
    "segment": {"industries": ["logistics"]},
    "variants": {"proof": "lead with a customer result"},
}


def _call(n: int, name: str, given: dict[str, Any]) -> dict[str, Any]:
    return {"content": [{"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": given}]}


def _reads(seen: list[str]) -> Reads:
    async def search(query: str) -> str:
        seen.append(f"search {query}")
        return "[product/approvals] Approvals: route purchase orders to the right approver."

    async def segment(wanted: SegmentFilter) -> str:
        seen.append(f"segment {','.join(wanted.industries)}")
        return "3 contact(s) can be written to."

    async def stats(campaign: str) -> str:
        raise ValueError(f"no campaign {campaign}")

    return Reads(search, segment, stats)


async def _plan(monkeypatch: pytest.MonkeyPatch, replies: list[dict[str, Any]], steps: int = 4) -> Any:
    seen: list[str] = []
    async with messages_api(replies) as (url, received):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        planner = LlmTaskPlanner("claude-sonnet-5", max_steps=steps)
        try:
            planned = await planner.plan("re-engage logistics COOs", "Acme Relay", _reads(seen))
        finally:
            await planner.client.close()
    return planned, received, seen


async def test_the_model_reads_then_proposes_a_brief_and_every_call_is_a_step(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [
        _call(1, "search_knowledge_base", {"query": "approval workflows"}),
        _call(2, "fetch_campaign_stats", {"campaign_id": "spring"}),
        _call(3, "list_segment", {"industries": ["logistics"]}),
        _call(4, "propose_brief", BRIEF),
    ]
    planned, received, seen = await _plan(monkeypatch, replies, steps=5)
    assert planned.brief.campaign_id == "reengage"
    assert seen == ["search approval workflows", "segment logistics"]
    assert [s.tool for s in planned.steps] == [
        "search_knowledge_base",
        "fetch_campaign_stats",
        "list_segment",
        "propose_brief",
    ]
    assert "refused: no campaign spring" in planned.steps[1].purpose  # the model saw the refusal, as an error
    assert received[2]["body"]["messages"][-1]["content"][0]["is_error"] is True
    assert "<task>re-engage logistics COOs</task>" in received[0]["body"]["messages"][0]["content"]
    assert planned.usage.purpose == "plan_task" and planned.usage.input_tokens == 4 * 321


async def test_the_last_step_is_forced_to_propose_and_a_model_that_will_not_is_no_plan(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    searching = _call(1, "search_knowledge_base", {"query": "approvals again"})
    with pytest.raises(PlanningFailed, match="did not propose a brief within its steps") as failed:
        await _plan(monkeypatch, [searching], steps=3)
    assert failed.value.usage is not None and failed.value.usage.input_tokens == 3 * 321
    planned, received, _ = await _plan(monkeypatch, [searching, _call(2, "propose_brief", BRIEF)], steps=2)
    assert received[-1]["body"]["tool_choice"] == {"type": "tool", "name": "propose_brief"}
    assert planned.brief.topic == "approval workflows"


@pytest.mark.parametrize(
    "brief",
    [
        {**BRIEF, "discount_percent": 90},  # a field a brief does not declare
        {**BRIEF, "variants": {}},
        {**BRIEF, "segment": {"emails": ["boss@other.example"]}},  # a recipient of its own: no such field
        {**BRIEF, "topic": "approvals\nBcc: x@y.example"},
    ],
)
async def test_a_brief_outside_the_schema_is_no_plan(monkeypatch: pytest.MonkeyPatch, brief: dict[str, Any]) -> None:
    with pytest.raises(PlanningFailed, match="the model's brief does not hold"):
        await _plan(monkeypatch, [_call(1, "propose_brief", brief)])


async def test_a_tool_it_was_not_given_is_refused_to_it(monkeypatch: pytest.MonkeyPatch) -> None:
    replies = [_call(1, "send_email", {"to": "boss@other.example"}), _call(2, "propose_brief", BRIEF)]
    planned, received, _ = await _plan(monkeypatch, replies)
    result = received[1]["body"]["messages"][-1]["content"][0]
    assert result["is_error"] is True and "not a tool you can call here" in result["content"]
    assert planned.steps[0].tool == "send_email" and "refused" in planned.steps[0].purpose
