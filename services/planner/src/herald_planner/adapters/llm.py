"""Drafting with Anthropic's Messages API (tool use), when `ANTHROPIC_API_KEY` is set.

The model must answer by calling the `draft_email` tool, whose input schema is the
`send_email` tool's subject and body; it sees the retrieved passages and is told to use no
fact that is not in them. Without a key the planner drafts from templates and says so.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from anthropic import AsyncAnthropic

from herald_core.contracts import ContactFacts, EvidenceRef, LlmUsageReported, MemoryRef
from herald_core.tools import anthropic_tool
from herald_planner.logic import Draft


def _draft_tool() -> dict[str, Any]:
    """The `send_email` tool's subject and body, exactly as the registry (and so the executor) constrains
    them, and the model's confidence in the draft."""
    email = anthropic_tool("send_email")["input_schema"]["properties"]
    return {
        "name": "draft_email",
        "description": "Return the first-touch email to send to the lead.",
        "input_schema": {
            "type": "object",
            "properties": {
                "subject": email["subject"],
                "body_text": email["body_text"],
                "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            },
            "required": ["subject", "body_text", "confidence"],
        },
    }


DRAFT_TOOL = _draft_tool()


def llm_configured() -> bool:
    return bool(os.environ.get("ANTHROPIC_API_KEY"))


class LlmDrafter:
    def __init__(self, model: str, max_tokens: int) -> None:
        self.client = AsyncAnthropic(max_retries=2)
        self.model = model
        self.max_tokens = max_tokens

    async def draft(
        self,
        contact: ContactFacts,
        evidence: list[EvidenceRef],
        memories: list[MemoryRef],
        *,
        company_name: str,
        sender: str,
    ) -> Draft:
        passages = "\n\n".join(f"[{e.chunk_id}] {e.title}\n{e.quote}" for e in evidence)
        remembered = "\n".join(f"- ({m.kind}, {m.occurred_at:%Y-%m-%d}) {m.text}" for m in memories)
        if remembered:
            remembered = f"\n\nMemories (recent interactions, reviewers' feedback):\n{remembered}"
        response = await self.client.messages.create(
            model=self.model,
            max_tokens=self.max_tokens,
            system=(
                f"You write first-touch emails for {company_name}, signed by {sender}. Use only facts from "
                "the passages given; never invent prices, discounts, dates or competitor claims. Follow the "
                "reviewers' feedback in the memories; they are not facts to quote."
            ),
            tools=[DRAFT_TOOL],  # type: ignore[list-item]
            tool_choice={"type": "tool", "name": "draft_email"},
            messages=[
                {
                    "role": "user",
                    "content": (
                        f"Lead: {contact.first_name} {contact.last_name}, {contact.job_title} at {contact.company} "
                        f"({contact.industry}).\n\nPassages:\n{passages}" + remembered
                    ),
                }
            ],
        )
        for block in response.content:
            if block.type == "tool_use" and block.name == "draft_email":
                data = dict(block.input)  # type: ignore[arg-type]
                return Draft(
                    subject=str(data["subject"])[:200],
                    body_text=str(data["body_text"]),
                    confidence=float(data.get("confidence", 0.6)),
                    rationale=f"LLM draft ({self.model}) grounded in {len(evidence)} passage(s)",
                    usage=LlmUsageReported(
                        purpose="draft",
                        model=self.model,
                        input_tokens=response.usage.input_tokens,
                        output_tokens=response.usage.output_tokens,
                        occurred_at=datetime.now(UTC),
                    ),
                )
        raise ValueError("the model did not call draft_email")
