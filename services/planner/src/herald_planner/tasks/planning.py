"""Planning a free-text campaign task with the LLM (Anthropic tool use): a bounded number of steps over the read
tools, ending in a defined brief that the task's state machine then carries like any other.

The model reads before it decides: `search_knowledge_base` (retrieval, the tenant's passages), `list_segment` (how
many contacts of the contact store a segment holds, and a few of their titles) and `fetch_campaign_stats` (the
executor's read API). It must end by calling `propose_brief`, whose input is `CampaignBrief` itself: what the
model writes can only fill the fields a defined brief declares — a segment filter, a topic, a goal, variants and
their angles — never a recipient, a price or an email's text. Every email is then drafted from retrieved passages
(the task's template quotes them), each decided by the guard (grounding and content rules included) and the batch
reviewed. The steps, tokens and the tenant's daily LLM budget bound it; every step is kept in the task's plan.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from anthropic import AsyncAnthropic
from anthropic.types import ToolUseBlock
from pydantic import ValidationError

from herald_core.contracts import CampaignBrief, LlmUsageReported, PlanStep, SegmentFilter
from herald_planner.adapters.llm import as_param, tokens_read

SYSTEM = (
    "You plan marketing campaigns for {company}. A marketer's request is quoted between <task> markers: turn it "
    "into one campaign brief by calling propose_brief. Before you do, you may look: search_knowledge_base for what "
    "{company} can truthfully say about the topic, list_segment to check who a segment holds, and "
    "fetch_campaign_stats for how an earlier campaign did. Choose the segment only from what list_segment shows; "
    "the emails will quote only the knowledge base's passages, so pick a topic it covers. You have at most {steps} "
    "calls; the last must be propose_brief."
)

TOOLS: list[dict[str, Any]] = [
    {
        "name": "search_knowledge_base",
        "description": "Passages of the knowledge base about a query (titles and the first words of each).",
        "input_schema": {
            "type": "object",
            "properties": {"query": {"type": "string", "minLength": 3, "maxLength": 300}},
            "required": ["query"],
            "additionalProperties": False,
        },
    },
    {
        "name": "list_segment",
        "description": "How many contacts a segment holds, and the job titles and companies of a few of them.",
        "input_schema": SegmentFilter.model_json_schema(),
    },
    {
        "name": "fetch_campaign_stats",
        "description": "Sends, opens, clicks and replies of an earlier campaign, per variant.",
        "input_schema": {
            "type": "object",
            "properties": {"campaign_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"}},
            "required": ["campaign_id"],
            "additionalProperties": False,
        },
    },
    {
        "name": "propose_brief",
        "description": "The campaign brief: its campaign id, topic, goal, segment and one to five variants.",
        "input_schema": CampaignBrief.model_json_schema(),
    },
]
FORCE_BRIEF = {"type": "tool", "name": "propose_brief"}


class PlanningFailed(ValueError):
    """The model gave no brief that holds; `usage` is what its calls cost all the same (the budget counts it)."""

    def __init__(self, message: str, usage: LlmUsageReported | None, steps: tuple[PlanStep, ...]) -> None:
        super().__init__(message)
        self.usage = usage
        self.steps = steps


@dataclass(frozen=True)
class Planned:
    brief: CampaignBrief
    steps: tuple[PlanStep, ...]  # every call the model made, and what it was answered
    usage: LlmUsageReported


@dataclass
class Reads:
    """What the model may read, each answering with text the model is shown (or raising `ValueError` with a reason
    it can read)."""

    search: Callable[[str], Awaitable[str]]
    segment: Callable[[SegmentFilter], Awaitable[str]]
    stats: Callable[[str], Awaitable[str]]
    calls: list[str] = field(default_factory=list)


class LlmTaskPlanner:
    def __init__(self, model: str, max_tokens: int = 1200, max_steps: int = 6, max_total_tokens: int = 60_000) -> None:
        self.client = AsyncAnthropic(max_retries=2)
        self.model = model
        self.max_tokens = max_tokens
        self.max_steps = max(1, max_steps)
        self.max_total_tokens = max_total_tokens

    async def plan(self, text: str, company: str, reads: Reads) -> Planned:
        system = SYSTEM.format(company=company, steps=self.max_steps)
        messages: list[dict[str, Any]] = [{"role": "user", "content": f"<task>{text[:2000]}</task>"}]
        steps: list[PlanStep] = []
        spent_in = spent_out = 0
        usage: LlmUsageReported | None = None
        for step in range(1, self.max_steps + 1):
            last = step == self.max_steps or spent_in + spent_out >= self.max_total_tokens
            response = await self.client.messages.create(  # type: ignore[call-overload]
                model=self.model,
                max_tokens=self.max_tokens,
                system=[{"type": "text", "text": system, "cache_control": {"type": "ephemeral"}}],
                tools=TOOLS,
                tool_choice=FORCE_BRIEF if last else {"type": "any"},
                messages=messages,
            )
            spent_in += tokens_read(response.usage)
            spent_out += response.usage.output_tokens
            usage = LlmUsageReported(
                purpose="plan_task",
                model=self.model,
                input_tokens=spent_in,
                output_tokens=spent_out,
                occurred_at=datetime.now(UTC),
            )
            uses = [b for b in response.content if isinstance(b, ToolUseBlock)]
            proposed = next((u for u in uses if u.name == "propose_brief"), None)
            if proposed is not None:
                try:
                    brief = CampaignBrief.model_validate(proposed.input)
                except ValidationError as exc:
                    why = f"the model's brief does not hold: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}"
                    steps.append(PlanStep(tool="propose_brief", purpose=why[:500]))
                    raise PlanningFailed(why[:500], usage, tuple(steps)) from exc
                steps.append(PlanStep(tool="propose_brief", purpose=f"the brief: {brief.topic!r} to {_said(brief)}"))
                return Planned(brief, tuple(steps), usage)
            if last or not uses:
                raise PlanningFailed("the model did not propose a brief within its steps", usage, tuple(steps))
            messages.append({"role": "assistant", "content": [as_param(b) for b in response.content]})
            results = []
            for use in uses:
                answer, error = await _answered(use, reads)
                steps.append(PlanStep(tool=use.name, purpose=_purpose(use, answer, error)))
                result: dict[str, Any] = {"type": "tool_result", "tool_use_id": use.id, "content": answer}
                if error:
                    result["is_error"] = True
                results.append(result)
            messages.append({"role": "user", "content": results})
        raise AssertionError("unreachable: the last step proposes or raises")


def _said(brief: CampaignBrief) -> str:
    segment = brief.segment.model_dump(exclude_defaults=True)
    return f"{json.dumps(segment)}, variants {', '.join(brief.variants)}"


def _purpose(use: ToolUseBlock, answer: str, error: bool) -> str:
    asked = json.dumps(use.input, sort_keys=True)[:200]
    said = ("refused: " if error else "") + answer.replace("\n", " ")[:240]
    return f"read {use.name}({asked}): {said}"[:500]


async def _answered(use: ToolUseBlock, reads: Reads) -> tuple[str, bool]:
    """The read tool's answer as the model is shown it, and whether it is an error."""
    given = dict(use.input) if isinstance(use.input, dict) else {}
    try:
        match use.name:
            case "search_knowledge_base":
                query = str(given.get("query", "")).strip()
                if not 3 <= len(query) <= 300:
                    raise ValueError("query: 3 to 300 characters")
                return await reads.search(query), False
            case "list_segment":
                try:
                    segment = SegmentFilter.model_validate(given)
                except ValidationError as exc:
                    raise ValueError(f"not a segment: {exc.errors()[0]['msg']} at {exc.errors()[0]['loc']}") from exc
                return await reads.segment(segment), False
            case "fetch_campaign_stats":
                return await reads.stats(str(given.get("campaign_id", ""))), False
    except ValueError as exc:
        return str(exc)[:500], True
    return f"{use.name} is not a tool you can call here", True
