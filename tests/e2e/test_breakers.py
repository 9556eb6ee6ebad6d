"""A circuit breaker: after 10 sends of each of two campaigns, three of one campaign's recipients bounce
(hard bounces through the ingest edge). That campaign's next email waits in the review queue with
the rate as its reason; the other campaign keeps sending."""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

import pytest

from herald_core.contracts import ActionApproved, ActionEscalated
from herald_core.topics import APPROVED_ACTION, PROPOSED_ACTION, contact_key
from support import (
    email_action,
    envelope,
    eventually,
    guard_answer,
    post_event,
    publish_many,
    read_topic,
    tenant_with_policy,
)

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
    data = {
        "contact_id": contact_id,
        "reason": "hard_bounce",
        "upstream_source": "esp",
        "upstream_event_id": f"dsn-{os.urandom(4).hex()}",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    response = await post_event(herald, tenant, "herald.consent.withdrawn.v1", data, source="esp/bounces")
    assert response.status_code == 202, response.text


def _proposal(tenant: str, contact_id: str, campaign: str):  # type: ignore[no-untyped-def]
    action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@buyers.example").model_copy(
        update={"campaign_id": campaign}
    )
    return contact_key(tenant, contact_id), envelope(tenant, action, source="test/planner"), action


async def test_a_campaign_over_its_bounce_rate_waits_for_a_reviewer_and_the_other_keeps_sending(
    herald, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    tenant = await tenant_with_policy(herald, "brk", POLICY, tmp_path)
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

    spring = _proposal(tenant, f"{run}-spring-late", "spring")
    autumn = _proposal(tenant, f"{run}-autumn-late", "autumn")
    await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), [spring, autumn])
    held = await guard_answer(herald, tenant, spring[2].action_id)
    assert isinstance(held, ActionEscalated), held
    hit = next(h for h in held.rules if h.rule == "breaker.bounces")
    assert hit.outcome == "escalate" and "3 hard_bounce/complaint in 10 sends from campaign spring" in hit.detail
    assert "too many of this campaign's emails bounce" in held.reason
    kept = await guard_answer(herald, tenant, autumn[2].action_id)
    assert isinstance(kept, ActionApproved), kept

    async with herald.review_client() as review:

        async def queued():  # type: ignore[no-untyped-def]
            items = (await review.get("/v1/reviews", params={"tenant": tenant, "status": "pending"})).json()
            return [i for i in items if i["review_id"] == held.review_id]

        (item,) = await eventually(queued, timeout=30, what="the review item")
    assert "bounce" in item["reason"]
