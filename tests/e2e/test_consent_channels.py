"""Consent per channel: an SMS opt-out does not stop an email; a withdrawal for all channels (do not
contact) does — through the ingest edge, the compacted consent topic and the guard."""

from __future__ import annotations

import json
import os

import httpx
import pytest

from herald_core.contracts import ActionApproved, ActionBlocked
from herald_core.topics import APPROVED_ACTION, DECISION, PROPOSED_ACTION, contact_key
from support import email_action, envelope, eventually, publish, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


async def withdraw(herald, tenant: str, contact_id: str, channel: str) -> None:  # type: ignore[no-untyped-def]
    event = {
        "specversion": "1.0",
        "id": f"ce-{os.urandom(6).hex()}",
        "source": "esp/preferences",
        "type": "herald.consent.withdrawn.v1",
        "tenant": tenant,
        "datacontenttype": "application/json",
        "data": {
            "contact_id": contact_id,
            "channel": channel,
            "reason": "manual_dnc" if channel == "all" else "unsubscribe",
            "upstream_source": "esp",
            "upstream_event_id": f"pref-{os.urandom(4).hex()}",
            "occurred_at": "2026-11-25T10:00:00Z",
        },
    }
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{herald.services.ingest_url}/v1/events",
            content=json.dumps(event),
            headers={"Content-Type": "application/cloudevents+json"},
        )
    assert response.status_code == 202, response.text


async def decision_for(herald, tenant: str, contact_id: str):  # type: ignore[no-untyped-def]
    action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@{tenant}.example")
    env = envelope(tenant, action, source="test/planner")
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, contact_id), env, action)

    async def decided():  # type: ignore[no-untyped-def]
        for spec, model in ((DECISION, ActionBlocked), (APPROVED_ACTION, ActionApproved)):
            for r in await read_topic(herald.bootstrap, herald.topic(spec), timeout=2):
                if r.tenant == tenant and r.type == model.TYPE and action.action_id in (r.value or b"").decode():
                    return r.body(model)
        return None

    return await eventually(decided, timeout=30, what=f"the decision for {contact_id}")


async def test_consent_is_per_channel_and_all_covers_every_channel(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"chan{os.urandom(3).hex()}")
    await withdraw(herald, tenant, "sms-only", "sms")
    await withdraw(herald, tenant, "dnc", "all")
    approved = await decision_for(herald, tenant, "sms-only")
    assert isinstance(approved, ActionApproved), approved
    assert next(h for h in approved.rules if h.rule == "consent.opt_out").outcome == "pass"
    blocked = await decision_for(herald, tenant, "dnc")
    assert isinstance(blocked, ActionBlocked) and blocked.rule == "consent.opt_out"
    assert "manual_dnc" in blocked.reason
