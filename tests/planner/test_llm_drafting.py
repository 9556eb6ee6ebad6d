"""LLM drafting through the real `anthropic` SDK, against a loopback server that speaks the Messages API.

The server records what the SDK sent (model, tools, forced tool choice, the passages) and answers
the way the API does: a `tool_use` block with the draft. A model that answers without calling the
tool makes the planner fall back to its template.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from herald_core.contracts import ContactFacts, EvidenceRef, MemoryRef
from herald_planner.adapters.llm import LlmDrafter
from support import messages_api

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
    assert "never invent prices" in sent["body"]["system"]


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
