"""“Why did it do that?” — `herald explain` and `GET /v1/explain/{action_id}` rebuild an approved, a
blocked and an escalated-then-approved action's story from the audit alone."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from test_first_touch import _contact, _creation, post_hubspot

from herald_core.contracts import ActionProposed
from herald_core.topics import PROPOSED_ACTION
from support import eventually, herald_command, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]


@pytest.fixture(scope="module")
def tenant(herald):  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"why{secrets.token_hex(3)}")
    herald.load_kb(tenant)
    return tenant


async def action_for(herald, tenant: str, contact_id: str) -> ActionProposed:  # type: ignore[no-untyped-def]
    def mine(records):  # type: ignore[no-untyped-def]
        return [
            r.body(ActionProposed)
            for r in records
            if r.tenant == tenant and r.body(ActionProposed).contact.contact_id == contact_id
        ]

    found = mine(await read_topic(herald.bootstrap, herald.topic(PROPOSED_ACTION), timeout=60, until=mine))
    assert found, f"no proposal for {contact_id}"
    return found[0]


async def explained(herald, action_id: str, until: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    async with herald.review_client() as review:

        async def ready() -> dict[str, Any] | None:
            response = await review.get(f"/v1/explain/{action_id}")
            if response.status_code != 200:
                return None
            body: dict[str, Any] = response.json()
            return body if body["outcome"].startswith(until) else None

        return await eventually(ready, timeout=60, interval=0.5, what=f"{action_id} explained as {until}")


async def test_explain_tells_an_approved_a_blocked_and_a_reviewed_actions_story(herald, tenant, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.token_hex(3)
    plain, opted_out, vip = _contact(run, 11), _contact(run, 12, opted_out=True), _contact(run, 13, vip=True)
    herald.seed_contacts(tenant, [plain, opted_out, vip], tmp_path)
    batch = [_creation(c, int(f"6{int(run, 16)}{n}")) for n, c in enumerate((plain, opted_out, vip))]
    assert (await post_hubspot(herald, tenant, batch)).json()["accepted"] == 3

    # approved and sent
    sent = await action_for(herald, tenant, str(plain["contact_id"]))
    story = await explained(herald, sent.action_id, "executed: succeeded")
    assert story["upstream"]["type"] == "herald.contact.created.v1"
    assert story["plan"]["evidence"] and story["plan"]["query"]
    assert story["proposal"]["to"] == plain["email"] and story["proposal"]["subject"] == sent.input.subject
    (decision,) = story["decisions"]
    assert decision["decision"] == "approved" and decision["policy_version"].startswith("v1-")
    rules = {h["rule"]: h for h in decision["rules"]}
    assert rules["consent.opt_out"]["outcome"] == "pass" and "escalation.vip" in rules
    assert story["execution"][0]["result"]["message_id"]

    # blocked: the rule, its inputs in words, and nothing executed
    blocked = await action_for(herald, tenant, str(opted_out["contact_id"]))
    story = await explained(herald, blocked.action_id, "blocked by consent.opt_out")
    (decision,) = story["decisions"]
    assert decision["rule"] == "consent.opt_out" and "suppressed" in decision["reason"]
    assert story["execution"] == []

    # escalated, then approved by a reviewer, then sent
    escalated = await action_for(herald, tenant, str(vip["contact_id"]))
    waiting = await explained(herald, escalated.action_id, "awaiting review")
    review_id = waiting["review"]["review_id"]
    async with herald.review_client() as review:
        ok = await review.post(f"/v1/reviews/{review_id}/approve", json={"reason": "fine"})
        assert ok.status_code == 200, ok.text
    story = await explained(herald, escalated.action_id, "executed: succeeded")
    assert [d["decision"] for d in story["decisions"]] == ["escalated", "approved"]
    assert [d["stage"] for d in story["decisions"]] == ["proposal", "review"]
    assert story["decisions"][1]["approved_by"] == "review:dana@acme.example"
    assert story["review"]["reviewer"] == "dana@acme.example" and story["review"]["decision"] == "approved"
    assert "VIP" in story["review"]["why"]

    # the same story on the command line, and a clear answer for an action nobody knows
    said = herald_command(herald, "explain", escalated.action_id)
    assert said.returncode == 0, said.stderr
    assert "escalated at proposal" in said.stdout and "approved at review" in said.stdout
    assert "dana@acme.example" in said.stdout and "executor: succeeded" in said.stdout
    unknown = herald_command(herald, "explain", "01JNOSUCHACTION0000000000")
    assert unknown.returncode == 1 and "no action" in unknown.stderr
