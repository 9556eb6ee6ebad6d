"""Two planner replicas share a tenant's sequences and their timers; on a moved clock the timers come due
together, and one replica is SIGKILLed while they fire and started again. Every lead still gets each touch
exactly once — none twice, none lost — and every timer fired once (read from the mailbox and Postgres)."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest

from herald_core.contracts import ContactCreated, ContactFacts
from herald_core.envelope import Envelope
from herald_core.topics import EVENTS, contact_key
from support import envelope, eventually, mails_to, publish_many

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

LEADS = 60
DAY = 86_400.0
OFFSET = "HERALD_PLANNER_CLOCK_OFFSET_SECONDS"


def _counts(herald, addresses: list[str]) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter({address: len(mails_to(herald.maildir, address)) for address in addresses})


async def _steps(pg_dsn: str, tenant: str) -> tuple[list[str], Counter[str]]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        states = [r["state"] for r in await conn.fetch("SELECT state FROM planner.timers WHERE tenant = $1", tenant)]
        rows = await conn.fetch(
            "SELECT s.workflow_id FROM planner.run_steps s JOIN planner.workflow_runs r USING (workflow_id) "
            "WHERE r.tenant = $1 AND s.event_type = 'herald.workflow.timer-fired.v1'",
            tenant,
        )
    finally:
        await conn.close()
    return states, Counter(r["workflow_id"] for r in rows)


async def test_racing_planners_and_a_kill_fire_each_timer_once_and_send_each_touch_once(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"tmr{secrets.token_hex(3)}",
        workflows={"new_lead_sequence": {"waits_business_days": [1]}},
        escalation={"vip": False},
        limits={"emails_per_hour": 100_000, "emails_per_contact_per_day": 10},
    )
    herald.load_kb(tenant)
    run = secrets.token_hex(3)
    addresses = [f"t-{run}-{n}@buyer{n}.example" for n in range(LEADS)]

    def created(n: int) -> tuple[bytes, Envelope, ContactCreated]:
        contact = ContactFacts(
            contact_id=f"{run}{n:03d}", email=addresses[n], first_name="Sam", industry="logistics", timezone="UTC"
        )
        body = ContactCreated(
            contact=contact, upstream_source="test", upstream_event_id=f"{run}-{n}", occurred_at=datetime.now(UTC)
        )
        return contact_key(tenant, contact.contact_id), envelope(tenant, body, source="test/ingest"), body

    services = herald.services
    second = services.add("planner", "1")
    services.start(second.name)
    planners = ["planner-0", second.name]
    try:
        await publish_many(herald.bootstrap, herald.topic(EVENTS), (created(n) for n in range(LEADS)))
        await eventually(
            lambda: min(_counts(herald, addresses).values()) >= 1, timeout=180, what="touch 1 to every lead"
        )
        for name in planners:
            services.stop(name)
        for name in planners:  # past one business day, whatever the weekday: the timers come due at once
            services.replicas[name].env[OFFSET] = str(4 * DAY)
            services.start(name, wait=False)
        for name in planners:
            services.wait_ready(name)
        await eventually(
            lambda: sum(_counts(herald, addresses).values()) >= LEADS + 5, timeout=120, interval=0.05, what="touch 2s"
        )
        services.kill("planner-0")  # mid-firing
        services.start("planner-0")
        await eventually(
            lambda: min(_counts(herald, addresses).values()) >= 2, timeout=240, what="touch 2 to every lead"
        )
        await asyncio.sleep(5)  # a touch sent twice would have arrived by now
        counts = _counts(herald, addresses)
        assert set(counts.values()) == {2}, {a: n for a, n in counts.items() if n != 2}
        states, fired_steps = await _steps(herald.pg_dsn, tenant)
        assert Counter(states) == Counter({"fired": LEADS}), Counter(states)
        assert len(fired_steps) == LEADS and set(fired_steps.values()) == {1}
    finally:
        services.stop(second.name)
        services.replicas.pop(second.name)
        services.stop("planner-0")
        services.replicas["planner-0"].env.pop(OFFSET, None)
        services.start("planner-0")
