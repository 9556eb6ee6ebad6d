"""The opt-out race: proposals for 30 contacts stream in while each contact's opt-out is written to
the consent topic. Every decision and every send whose consent check began after the opt-out was
written is a refusal — the guard blocks it (`consent.opt_out`) and the executor never sends it —
and every email sent arrived exactly once."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from herald_core.contracts import ActionExecuted, ActionRefused, ConsentReason, ConsentWithdrawn
from herald_core.topics import CONSENT, EXECUTED, PROPOSED_ACTION, contact_key
from support import email_action, envelope, eventually, publish_many, read_topic, recipients

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

CONTACTS = 30
ROUNDS = 20  # proposals per contact
OPT_OUT_AFTER = 6  # rounds published before the opt-outs go out


async def _rows(pg_dsn: str, query: str, tenant: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        return list(await conn.fetch(query, tenant))
    finally:
        await conn.close()


async def test_an_opt_out_blocks_every_decision_and_send_checked_after_it(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"race{secrets.token_hex(3)}", limits={"emails_per_hour": 100_000, "emails_per_contact_per_day": 1000}
    )
    run = secrets.token_hex(3)
    contacts = [f"{run}{c:02d}" for c in range(CONTACTS)]
    address = {c: f"optout-{c}@buyers.example" for c in contacts}
    recipients(herald.maildir)  # read the mailbox once now, so counting later is quick

    def round_of(r: int):  # type: ignore[no-untyped-def]
        for contact in contacts:
            action = email_action(tenant, contact_id=contact, email=address[contact], rationale=f"round {r}")
            yield contact_key(tenant, contact), envelope(tenant, action, source="test/planner"), action

    written_at: dict[str, datetime] = {}

    async def opt_out_everyone() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=herald.bootstrap, acks="all")
        await producer.start()
        try:
            for contact in contacts:
                body = ConsentWithdrawn(
                    contact_id=contact,
                    email=address[contact],
                    reason=ConsentReason.UNSUBSCRIBE,
                    upstream_source="esp",
                    upstream_event_id=f"unsub-{contact}",
                    occurred_at=datetime.now(UTC),
                )
                env = envelope(tenant, body, source="test/esp")
                await producer.send_and_wait(
                    herald.topic(CONSENT),
                    body.model_dump_json().encode(),
                    key=contact_key(tenant, contact),
                    headers=env.to_headers(),
                )
                written_at[contact] = datetime.now(UTC)  # acknowledged: on the topic from here on
        finally:
            await producer.stop()

    for r in range(ROUNDS):
        if r == OPT_OUT_AFTER:
            opting_out = asyncio.create_task(opt_out_everyone())
        await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), round_of(r))
        await asyncio.sleep(0.05)
    await opting_out

    decisions_query = (
        "SELECT action_id, contact_id, outcome, rule, consent_checked_at FROM guard.decisions WHERE tenant = $1"
    )

    async def all_decided() -> list[asyncpg.Record] | None:
        rows = await _rows(herald.pg_dsn, decisions_query, tenant)
        return rows if len(rows) >= CONTACTS * ROUNDS else None

    decisions = await eventually(all_decided, timeout=120, what="every proposal decided")
    late = [d for d in decisions if d["consent_checked_at"] > written_at[d["contact_id"]]]
    early = [d for d in decisions if d["consent_checked_at"] < written_at[d["contact_id"]]]
    assert late and early, "the opt-outs did not land inside the stream; the race was not run"
    assert {(d["outcome"], d["rule"]) for d in late} == {("block", "consent.opt_out")}
    approved = {d["action_id"] for d in decisions if d["outcome"] == "approve"}
    assert approved and approved <= {d["action_id"] for d in early}

    # the executor: every approval ends as sent or refused; none sent on a check after the opt-out
    def handled(records) -> set[str]:  # type: ignore[no-untyped-def]
        ids = set()
        for record in records:
            if record.headers.get("ce_tenant") != tenant:
                continue
            if record.type == ActionExecuted.TYPE:
                ids.add(ActionExecuted.model_validate_json(record.value).action_id)
            elif record.type == ActionRefused.TYPE:
                ids.add(ActionRefused.model_validate_json(record.value).action_id or "")
        return ids

    executed = await read_topic(
        herald.bootstrap, herald.topic(EXECUTED), timeout=120, until=lambda rs: handled(rs) >= approved
    )
    assert handled(executed) >= approved
    ledger = await _rows(
        herald.pg_dsn, "SELECT contact_id, state, consent_checked_at FROM executor.ledger WHERE tenant = $1", tenant
    )
    sent = [row for row in ledger if row["state"] == "sent"]
    assert sent
    assert all(row["consent_checked_at"] < written_at[row["contact_id"]] for row in sent)
    refused = [
        ActionRefused.model_validate_json(r.value)
        for r in executed
        if r.headers.get("ce_tenant") == tenant and r.type == ActionRefused.TYPE
    ]
    assert {r.reason for r in refused} <= {"consent_withdrawn"}
    assert len(sent) + len(refused) == len(approved)

    # what the contacts' mailboxes hold: each sent email once, nothing else
    wanted = {address[c]: c for c in contacts}
    expected = Counter(row["contact_id"] for row in sent)

    def delivered() -> Counter[str]:
        return Counter(wanted[r] for r in recipients(herald.maildir) if r in wanted)

    await eventually(lambda: delivered() == expected, timeout=60, what="the sent emails in the mailboxes")
    await asyncio.sleep(1)
    assert delivered() == expected
