"""Consent per channel: an SMS opt-out does not stop an email; a withdrawal for all channels (do not
contact) does — through the ingest edge, the compacted consent topic and the guard."""

from __future__ import annotations

import os

import pytest

from herald_core.contracts import ActionApproved, ActionBlocked
from herald_core.topics import PROPOSED_ACTION, contact_key
from support import email_action, envelope, guard_answer, post_event, publish

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


async def withdraw(herald, tenant: str, contact_id: str, channel: str) -> None:  # type: ignore[no-untyped-def]
    data = {
        "contact_id": contact_id,
        "channel": channel,
        "reason": "manual_dnc" if channel == "all" else "unsubscribe",
        "upstream_source": "esp",
        "upstream_event_id": f"pref-{os.urandom(4).hex()}",
        "occurred_at": "2026-11-25T10:00:00Z",
    }
    response = await post_event(herald, tenant, "herald.consent.withdrawn.v1", data, source="esp/preferences")
    assert response.status_code == 202, response.text


async def decision_for(herald, tenant: str, contact_id: str):  # type: ignore[no-untyped-def]
    action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@{tenant}.example")
    env = envelope(tenant, action, source="test/planner")
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, contact_id), env, action)
    return await guard_answer(herald, tenant, action.action_id)


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
