"""Reflection: a touch the guard blocks for its words is drafted again with the block's reason and proposed
again — the template leaves out the passage the reason quotes, and the second draft passes and is sent;
where the refused words are not the passages' (a redraft cannot mend it), the run stops after the configured
number of attempts. An LLM draft blocked by the grounding check is drafted again with the reason (the model is
told what was refused) and the grounded redraft is sent. "Why did it do that?" tells every attempt."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
from sequence_support import lead, new_lead, runs_of

from herald_core.contracts import ActionBlocked, ActionProposed
from herald_core.topics import PROPOSED_ACTION
from support import (
    eventually,
    guard_answer,
    mails_to,
    messages_api,
    part_of,
    planner_drafting_with,
    read_topic,
    tenant_with_policy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

POLICY = """tenant: {tenant}
version: 1
rules:
  - id: content.banned_phrases
    kind: banned_phrases
    phrases: [guaranteed results]
    reason: words our brand rules forbid
"""
STORIES = {
    "harbor": "Harbor Line operations teams saw guaranteed results within a week of moving exceptions to Acme Relay.",
    "delta": "Delta Cargo cut exception handling time by 40% for its operations team with Acme Relay.",
    "kestrel": "Kestrel Haulage routes every late-shipment alert to the right dispatcher with Acme Relay.",
}


def _kb(directory: Path, stories: dict[str, str]) -> Path:
    (directory / "customers").mkdir(parents=True)
    for name, text in stories.items():
        (directory / "customers" / f"{name}.md").write_text(
            f'---\ntitle: "Customer story: {name} (logistics)"\ncollection: customers\n'
            f"tags: [customer, logistics]\n---\n{text}\n"
        )
    return directory


async def _proposals(herald, tenant: str, count: int) -> list[ActionProposed]:  # type: ignore[no-untyped-def]
    def mine(records) -> list[ActionProposed]:  # type: ignore[no-untyped-def]
        return [r.body(ActionProposed) for r in records if r.tenant == tenant and r.type == ActionProposed.TYPE]

    records = await read_topic(
        herald.bootstrap, herald.topic(PROPOSED_ACTION), timeout=90, until=lambda rs: len(mine(rs)) >= count
    )
    found = mine(records)
    assert len(found) >= count, f"{len(found)} proposal(s), not {count}"
    return found


async def _explained(herald, action_id: str, until: str) -> tuple[dict[str, Any], str]:  # type: ignore[no-untyped-def]
    async with herald.review_client() as review:

        async def ready() -> dict[str, Any] | None:
            response = await review.get(f"/v1/explain/{action_id}")
            story: dict[str, Any] = response.json() if response.status_code == 200 else {}
            return story if until in str(story.get("outcome")) else None

        story = await eventually(ready, timeout=60, interval=0.5, what=f"{action_id} explained")
        text = (await review.get(f"/v1/explain/{action_id}", params={"format": "text"})).text
        return story, text


async def test_a_blocked_touch_is_drafted_again_without_what_was_refused_and_sent(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = await tenant_with_policy(
        herald, "refl", POLICY, tmp_path, workflows={"new_lead_sequence": {"reflection_attempts": 2}}
    )
    herald.load_kb(tenant, _kb(tmp_path / "kb", STORIES))
    contact = lead(secrets.token_hex(3), "ida", company="Fabrikam Logistics")
    await new_lead(herald, tenant, contact)

    first, second = await _proposals(herald, tenant, 2)
    refused = await guard_answer(herald, tenant, first.action_id)
    assert isinstance(refused, ActionBlocked) and refused.rule == "content.banned_phrases", refused
    assert "guaranteed results" in first.input.body_text  # type: ignore[union-attr]
    assert "guaranteed results" not in second.input.body_text  # type: ignore[union-attr]
    assert "drafted again after: content.banned_phrases" in second.rationale
    assert second.workflow_id == first.workflow_id

    (mail,) = await eventually(lambda: mails_to(herald.maildir, contact["email"]), timeout=60, what="the redraft")
    assert "guaranteed results" not in part_of(mail, "plain")
    story, text = await _explained(herald, second.action_id, "executed: succeeded")
    attempts = [s for s in story["workflow"]["steps"] if s["kind"] == "proposed"]
    assert [a["action_id"] for a in attempts] == [first.action_id, second.action_id]
    assert attempts[0]["outcome"].startswith("blocked by content.banned_phrases")
    assert attempts[1]["outcome"] == "executed: succeeded"
    assert "step by step" in text and text.count(" proposed email ") == 2, text


async def test_redrafts_stop_after_the_configured_attempts(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the template's own call to action is refused: no redraft can leave it out
    policy = POLICY.replace("[guaranteed results]", "[20-minute call]")
    tenant = await tenant_with_policy(
        herald, "reflx", policy, tmp_path, workflows={"new_lead_sequence": {"reflection_attempts": 1}}
    )
    herald.load_kb(tenant, _kb(tmp_path / "kb", STORIES))
    contact = lead(secrets.token_hex(3), "jo", company="Fabrikam Logistics")
    await new_lead(herald, tenant, contact)

    async def blocked() -> dict[str, Any] | None:
        run = (await runs_of(herald, tenant)).get(contact["contact_id"])
        return run if run and run["state"] == "blocked" else None

    await eventually(blocked, timeout=90, what="the run blocked after its redraft")
    proposals = await _proposals(herald, tenant, 2)
    assert len(proposals) == 2, "one draft and one redraft, no more"
    for proposal in proposals:
        answer = await guard_answer(herald, tenant, proposal.action_id)
        assert isinstance(answer, ActionBlocked) and answer.rule == "content.banned_phrases"
    assert mails_to(herald.maildir, contact["email"]) == []


GROUNDED = """tenant: {tenant}
version: 1
rules:
  - id: content.grounded
    kind: grounding
    claims: [price, percentage, date]
    reason: a claim no evidence passage supports
"""


def _draft(body: str) -> dict[str, object]:
    return {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "draft_email",
        "input": {"subject": "Exception handling at Fabrikam", "body_text": body, "confidence": 0.9},
    }


async def test_an_llm_draft_blocked_by_grounding_is_drafted_again_with_the_reason_and_passes(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = await tenant_with_policy(herald, "reflg", GROUNDED, tmp_path, workflows={"new_lead_sequence": {}})
    herald.load_kb(tenant, _kb(tmp_path / "kb", STORIES))
    invented = "Hi Ida,\n\nTeams like yours cut exception handling time by 90% in a week.\n"
    grounded = "Hi Ida,\n\nDelta Cargo cut exception handling time by 40% for its operations team with Acme Relay.\n"
    contact = lead(secrets.token_hex(3), "ida", company="Fabrikam Logistics")
    async with messages_api([{"content": [_draft(invented)]}, {"content": [_draft(grounded)]}]) as (url, received):
        async with planner_drafting_with(herald, url):
            await new_lead(herald, tenant, contact)
            first, second = await _proposals(herald, tenant, 2)
            refused = await guard_answer(herald, tenant, first.action_id)
            assert isinstance(refused, ActionBlocked) and refused.rule == "content.grounded", refused
            assert "90%" in refused.reason
            (mail,) = await eventually(
                lambda: mails_to(herald.maildir, contact["email"]), timeout=60, what="the redraft"
            )
    assert "40%" in part_of(mail, "plain") and "90%" not in part_of(mail, "plain")
    assert second.drafted_by == "llm" and "drafted again after: content.grounded" in second.rationale
    # the second request told the model what was refused, and why
    retry = received[1]["body"]["messages"][0]["content"]
    assert "Earlier drafts of this email were refused" in retry and "90%" in retry
