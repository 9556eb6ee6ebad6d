"""A circuit breaker: after 10 sends of each of two campaigns, three of one campaign's recipients bounce
(hard bounces through the ingest edge). That campaign's next email waits in the review queue with
the rate as its reason; the other campaign keeps sending."""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime

import httpx
import pytest

from herald_core.contracts import ActionApproved, ActionEscalated
from herald_core.topics import APPROVED_ACTION, DECISION, PROPOSED_ACTION, contact_key
from support import email_action, envelope, eventually, herald_command, on_every_guard, publish_many, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

POLICY = """\
tenant: {tenant}
version: 1
breakers:
  - id: breaker.bounces
    reasons: [hard_bounce, complaint]
    max_rate: 0.2
    min_sends: 5
    window: 1h
    scope: campaign
    reason: too many of this campaign's emails bounce
"""


async def bounce(herald, tenant: str, contact_id: str) -> None:  # type: ignore[no-untyped-def]
    event = {
        "specversion": "1.0",
        "id": f"ce-{os.urandom(6).hex()}",
        "source": "esp/bounces",
        "type": "herald.consent.withdrawn.v1",
        "tenant": tenant,
        "datacontenttype": "application/json",
        "data": {
            "contact_id": contact_id,
            "reason": "hard_bounce",
            "upstream_source": "esp",
            "upstream_event_id": f"dsn-{os.urandom(4).hex()}",
            "occurred_at": datetime.now(UTC).isoformat(),
        },
    }
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{herald.services.ingest_url}/v1/events",
            content=json.dumps(event),
            headers={"Content-Type": "application/cloudevents+json"},
        )
    assert response.status_code == 202, response.text


def _proposal(tenant: str, contact_id: str, campaign: str):  # type: ignore[no-untyped-def]
    action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@buyers.example").model_copy(
        update={"campaign_id": campaign}
    )
    return contact_key(tenant, contact_id), envelope(tenant, action, source="test/planner"), action


async def test_a_campaign_over_its_bounce_rate_waits_for_a_reviewer_and_the_other_keeps_sending(
    herald, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"brk{secrets.token_hex(3)}")
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(tenant=tenant))
    assert herald_command(herald, "policy", "apply", str(policy)).returncode == 0
    await on_every_guard(herald, tenant, "v1-")
    run = secrets.token_hex(3)
    sent = [
        _proposal(tenant, f"{run}-{campaign}-{n}", campaign) for campaign in ("spring", "autumn") for n in range(10)
    ]
    await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), sent)

    def ours(records):  # type: ignore[no-untyped-def]
        return [r for r in records if r.tenant == tenant]

    approved = await read_topic(
        herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=60, until=lambda rs: len(ours(rs)) >= 20
    )
    assert len(ours(approved)) == 20

    for n in range(3):
        await bounce(herald, tenant, f"{run}-spring-{n}")

    async def decision_of(action_id: str):  # type: ignore[no-untyped-def]
        for spec, model in ((DECISION, ActionEscalated), (APPROVED_ACTION, ActionApproved)):
            for r in ours(await read_topic(herald.bootstrap, herald.topic(spec), timeout=2)):
                if r.type == model.TYPE and action_id in (r.value or b"").decode():
                    return r.body(model)
        return None

    spring = _proposal(tenant, f"{run}-spring-late", "spring")
    autumn = _proposal(tenant, f"{run}-autumn-late", "autumn")
    await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), [spring, autumn])
    held = await eventually(lambda: decision_of(spring[2].action_id), timeout=30, what="the spring decision")
    assert isinstance(held, ActionEscalated), held
    hit = next(h for h in held.rules if h.rule == "breaker.bounces")
    assert hit.outcome == "escalate" and "3 hard_bounce/complaint in 10 sends from campaign spring" in hit.detail
    assert "too many of this campaign's emails bounce" in held.reason
    kept = await eventually(lambda: decision_of(autumn[2].action_id), timeout=30, what="the autumn decision")
    assert isinstance(kept, ActionApproved), kept

    async with httpx.AsyncClient(base_url=herald.services.review_url, timeout=30) as review:

        async def queued():  # type: ignore[no-untyped-def]
            items = (await review.get("/v1/reviews", params={"tenant": tenant, "status": "pending"})).json()
            return [i for i in items if i["review_id"] == held.review_id]

        (item,) = await eventually(queued, timeout=30, what="the review item")
    assert "bounce" in item["reason"]
