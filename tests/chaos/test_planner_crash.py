"""SIGKILL the planner while it works through new leads and start it again: every lead ends up with
exactly one committed proposal — a run whose transaction was aborted publishes its stored result again,
and a run that was committed is never planned twice."""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import UTC, datetime

import pytest

from herald_core.contracts import ActionProposed, ContactCreated, ContactFacts
from herald_core.envelope import Envelope
from herald_core.topics import EVENTS, PROPOSED_ACTION, contact_key
from support import envelope, eventually, publish_many, read_topic

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate]

LEADS = 600


async def test_planner_killed_mid_stream_proposes_once_per_lead(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"pcrash{secrets.token_hex(3)}", escalation={"vip": False})
    herald.load_kb(tenant)
    run = secrets.token_hex(3)

    def created(n: int) -> tuple[bytes, Envelope, ContactCreated]:
        contact = ContactFacts(
            contact_id=f"{run}{n:04d}",
            email=f"p-{run}-{n}@buyers.example",
            first_name="Sam",
            industry="logistics",
            job_title="Head of Operations",
        )
        body = ContactCreated(
            contact=contact, upstream_source="test", upstream_event_id=f"{run}-{n}", occurred_at=datetime.now(UTC)
        )
        return contact_key(tenant, contact.contact_id), envelope(tenant, body, source="test/ingest"), body

    await publish_many(herald.bootstrap, herald.topic(EVENTS), (created(n) for n in range(LEADS)))

    def proposals(records):  # type: ignore[no-untyped-def]
        return [
            ActionProposed.model_validate_json(r.value)
            for r in records
            if r.headers.get("ce_tenant") == tenant and r.type == ActionProposed.TYPE
        ]

    async def some_proposed() -> bool:
        records = await read_topic(
            herald.bootstrap, herald.topic(PROPOSED_ACTION), timeout=2, until=lambda rs: len(proposals(rs)) >= 20
        )
        return len(proposals(records)) >= 20

    await eventually(some_proposed, timeout=90, interval=0.1, what="the first proposals")
    herald.services.kill("planner-0")
    herald.services.start("planner-0")

    records = await read_topic(
        herald.bootstrap,
        herald.topic(PROPOSED_ACTION),
        timeout=180,
        until=lambda rs: len({p.contact.contact_id for p in proposals(rs)}) >= LEADS,
    )
    per_contact = Counter(p.contact.contact_id for p in proposals(records))
    assert len(per_contact) == LEADS, f"{LEADS - len(per_contact)} lead(s) never got a proposal"
    assert max(per_contact.values()) == 1, [c for c, n in per_contact.items() if n > 1][:5]
