"""Caps stay exact under a race: four guard replicas decide 1,000 proposals for one tenant whose
policy allows 250 emails an hour and 3 per contact a week, one replica is SIGKILLed mid-race and
started again — and exactly 250 are approved, no contact gets a fourth, every proposal is decided
once, and exactly 250 emails arrive."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import asyncpg
import pytest

from herald_core.contracts import ActionApproved, ActionBlocked
from herald_core.topics import APPROVED_ACTION, DECISION, PROPOSED_ACTION, contact_key
from support import (
    email_action,
    envelope,
    eventually,
    herald_command,
    on_every_guard,
    publish_many,
    read_topic,
    recipients,
)

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

PROPOSALS = 1000
CONTACTS = 100
TENANT_CAP = 250
CONTACT_CAP = 3
POLICY = """\
tenant: {tenant}
version: 1
limits:
  - id: limits.tenant_burst
    max: {tenant_cap}
    per: 1h
  - id: limits.contact_weekly
    scope: contact
    channel: any
    max: {contact_cap}
    per: 7d
"""


async def _decided(pg_dsn: str, tenant: str) -> int:
    conn = await asyncpg.connect(pg_dsn)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM guard.decisions WHERE tenant = $1", tenant))
    finally:
        await conn.close()


async def test_caps_are_exact_with_four_racing_guards_and_one_killed(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"race{secrets.token_hex(3)}", limits={"emails_per_hour": 100_000, "emails_per_contact_per_day": 100}
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(tenant=tenant, tenant_cap=TENANT_CAP, contact_cap=CONTACT_CAP))
    applied = herald_command(herald, "policy", "apply", str(policy))
    assert applied.returncode == 0, applied.stderr
    extra = [herald.services.add("guard", str(n)).name for n in (2, 3)]
    try:
        for name in extra:
            herald.services.start(name, wait=False)
        for name in extra:
            herald.services.wait_ready(name)
        guards = [r for r in herald.services.replicas.values() if r.service == "guard"]
        assert len(guards) == 4

        await on_every_guard(herald, tenant, "v1-")

        run = secrets.token_hex(3)
        addresses = [f"race-{run}-{c}@buyers.example" for c in range(CONTACTS)]
        recipients(herald.maildir)  # read the mailbox once now, so counting later is quick

        def proposal(n: int):  # type: ignore[no-untyped-def]
            contact = n % CONTACTS
            action = email_action(tenant, contact_id=f"{run}{contact:03d}", email=addresses[contact], rationale="race")
            key = contact_key(tenant, action.contact.contact_id)
            return key, envelope(tenant, action, source="test/planner"), action

        await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), (proposal(n) for n in range(PROPOSALS)))

        # SIGKILL one replica in the middle of the race, then start it again
        async def a_quarter_decided() -> bool:
            return await _decided(herald.pg_dsn, tenant) >= PROPOSALS // 4

        await eventually(a_quarter_decided, timeout=90, interval=0.05, what="a quarter of the proposals decided")
        herald.services.kill("guard-1")
        killed_at = await _decided(herald.pg_dsn, tenant)
        herald.services.start("guard-1")
        assert killed_at < PROPOSALS, "the race ended before the kill; raise PROPOSALS"

        def ours(records):  # type: ignore[no-untyped-def]
            return [r for r in records if r.headers.get("ce_tenant") == tenant]

        def answered(records) -> set[str]:  # type: ignore[no-untyped-def]
            ids = set()
            for r in ours(records):
                if r.type == ActionApproved.TYPE:
                    ids.add(ActionApproved.model_validate_json(r.value).action.action_id)
                elif r.type == ActionBlocked.TYPE:
                    ids.add(ActionBlocked.model_validate_json(r.value).action_id)
            return ids

        blocked_records = await read_topic(
            herald.bootstrap,
            herald.topic(DECISION),
            timeout=120,
            until=lambda rs: len(answered(rs)) >= PROPOSALS - TENANT_CAP,
        )
        approved_records = await read_topic(
            herald.bootstrap,
            herald.topic(APPROVED_ACTION),
            timeout=60,
            until=lambda rs: len(answered(rs)) >= TENANT_CAP,
        )
        approved = {
            a.action.action_id: a.action.contact.contact_id
            for a in (ActionApproved.model_validate_json(r.value) for r in ours(approved_records))
        }
        blocked = {
            b.action_id: b.rule for b in (ActionBlocked.model_validate_json(r.value) for r in ours(blocked_records))
        }
        assert len(approved) == TENANT_CAP
        assert max(Counter(approved.values()).values()) <= CONTACT_CAP
        assert len(blocked) == PROPOSALS - TENANT_CAP and not set(blocked) & set(approved)
        assert "limits.tenant_burst" in set(blocked.values()) <= {"limits.tenant_burst", "limits.contact_weekly"}
        assert await _decided(herald.pg_dsn, tenant) == PROPOSALS  # each proposal decided once, by one replica

        wanted = set(addresses)

        def delivered() -> Counter[str]:
            return Counter(r for r in recipients(herald.maildir) if r in wanted)

        await eventually(lambda: sum(delivered().values()) >= TENANT_CAP, timeout=90, what=f"{TENANT_CAP} emails")
        await asyncio.sleep(2)  # anything beyond the cap would have arrived by now
        mail = delivered()
        assert sum(mail.values()) == TENANT_CAP
        assert max(mail.values()) <= CONTACT_CAP
    finally:
        for name in extra:
            herald.services.stop(name)
            del herald.services.replicas[name]
