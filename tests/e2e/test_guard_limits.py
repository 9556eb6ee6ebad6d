"""Hard limits hold under load: with two guard replicas racing, a tenant's hourly cap of N lets
exactly N emails out of 200 proposals; every other one is blocked by that rule, on the audit."""

from __future__ import annotations

import asyncio
import secrets
import urllib.request

import pytest

from herald_core.contracts import ActionBlocked, ActionProposed
from herald_core.envelope import Envelope
from herald_core.topics import APPROVED_ACTION, DECISION, PROPOSED_ACTION, contact_key
from support import email_action, envelope, eventually, mails_to, publish_many, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

CAP = 7
PROPOSALS = 200


def _proposal(tenant: str, run: str, n: int) -> tuple[bytes, Envelope, ActionProposed]:
    contact_id = f"{run}{n:04d}"
    action = email_action(
        tenant, contact_id=contact_id, email=f"cap-{run}-{n}@buyers.example", rationale="cap race", first_name="Lee"
    )
    env = envelope(tenant, action, source="test/planner", subject=f"contact/{contact_id}")
    return contact_key(tenant, contact_id), env, action


def _decisions_made(ops_port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{ops_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("herald_guard_decisions_total{")
    )


async def test_hourly_cap_is_exact_with_two_racing_guards(herald) -> None:  # type: ignore[no-untyped-def]
    assert sum(1 for r in herald.services.replicas.values() if r.service == "guard") >= 2
    tenant = herald.add_tenant(
        f"cap{secrets.token_hex(3)}", limits={"emails_per_hour": CAP, "emails_per_contact_per_day": 1}
    )
    run = secrets.token_hex(3)
    proposals = (_proposal(tenant, run, n) for n in range(PROPOSALS))
    await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), proposals)

    def decided(records):  # type: ignore[no-untyped-def]
        return [r for r in records if r.headers.get("ce_tenant") == tenant]

    blocked = decided(
        await read_topic(
            herald.bootstrap, herald.topic(DECISION), timeout=90, until=lambda rs: len(decided(rs)) >= PROPOSALS - CAP
        )
    )
    approved = decided(
        await read_topic(
            herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=30, until=lambda rs: len(decided(rs)) >= CAP
        )
    )
    assert len(approved) == CAP
    assert len(blocked) == PROPOSALS - CAP
    rules = {ActionBlocked.model_validate_json(r.value).rule for r in blocked}
    assert rules == {"limits.tenant_emails_per_hour"}
    # both replicas took part in the race (each decided some of this test's proposals)
    for replica in (r for r in herald.services.replicas.values() if r.service == "guard"):
        assert _decisions_made(replica.ops_port) > 0, replica.name

    def sent() -> int:
        return sum(len(mails_to(herald.maildir, f"cap-{run}-{n}@buyers.example")) for n in range(PROPOSALS))

    await eventually(lambda: sent() >= CAP, timeout=60, what=f"{CAP} emails")
    await asyncio.sleep(2)  # anything beyond the cap would have arrived by now
    assert sent() == CAP
