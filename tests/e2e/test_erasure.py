"""Erasure (GDPR art. 17) through HubSpot's `contact.privacyDeletion` webhook: after a contact was
written to, replied and was remembered, no Postgres table of any service and no memory in Weaviate
holds its address or name any more; what stays is a hashed suppression entry, which still stops an
email to that address, and the erasure itself on the audit."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from test_first_touch import PORTAL, _creation, post_hubspot
from test_memory import recall, reply

from herald_core.consent import address_hash, contact_hash
from herald_core.contracts import ActionBlocked
from herald_core.topics import CONSENT, PROPOSED_ACTION, contact_key
from support import (
    contact_record,
    email_action,
    envelope,
    eventually,
    guard_answer,
    mails_to,
    post_event,
    publish,
    read_topic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

SCHEMAS = ("ingest", "retrieval", "planner", "guard", "executor", "review")


async def _tables_mentioning(pg_dsn: str, needles: list[str]) -> dict[str, int]:
    """Every table of Herald's services with a row whose text holds one of `needles`, and how many."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema = ANY($1::text[]) AND table_type = 'BASE TABLE'",
            list(SCHEMAS),
        )
        found = {}
        for table in tables:
            name = f'"{table["table_schema"]}"."{table["table_name"]}"'
            count = await conn.fetchval(
                f"SELECT count(*) FROM {name} t WHERE t::text ILIKE ANY($1::text[])",
                [f"%{n}%" for n in needles],
            )
            if count:
                found[name] = count
        return found
    finally:
        await conn.close()


def _privacy_deletion(contact_id: int, event_id: int) -> dict[str, Any]:
    return {
        "eventId": event_id,
        "subscriptionId": 104,
        "portalId": PORTAL,
        "appId": 9001,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.privacyDeletion",
        "attemptNumber": 0,
        "objectId": contact_id,
    }


async def test_an_erased_contact_leaves_no_personal_data_and_stays_suppressed(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"erase{secrets.token_hex(3)}")
    herald.load_kb(tenant)
    run = secrets.token_hex(3)
    contact = contact_record(
        int(f"8{int(run, 16) % 100000:05d}"),
        email=f"erase-{run}@northwind.example",
        first_name=f"Zelda{run}",
        last_name=f"Quorn{run}",
    )
    contact_id = str(contact["contact_id"])
    needles = [str(contact["email"]), str(contact["first_name"]), str(contact["last_name"])]
    herald.seed_contacts(tenant, [contact], tmp_path)
    created = await post_hubspot(herald, tenant, [_creation(contact, int(f"8{int(run, 16)}1"))])
    assert created.status_code == 200 and created.json()["accepted"] == 1, created.text
    await eventually(lambda: mails_to(herald.maildir, str(contact["email"])), timeout=90, what="the first email")
    answer = reply(contact_id, f"Re: hello from {contact['first_name']}", datetime.now(UTC))
    assert (await post_event(herald, tenant, "herald.message.replied.v1", answer)).status_code == 202

    async def remembered() -> bool:
        kinds = {m.kind for m in await recall(herald, tenant, contact_id)}
        return {"email_sent", "reply"} <= kinds

    await eventually(remembered, timeout=60, what="the email and the reply in memory")
    before = await _tables_mentioning(herald.pg_dsn, needles)
    assert {'"ingest"."contacts"', '"planner"."workflow_runs"', '"review"."audit_index"'} <= set(before), before

    erased = await post_hubspot(herald, tenant, [_privacy_deletion(int(contact_id), int(f"8{int(run, 16)}2"))])
    assert erased.status_code == 200 and erased.json()["accepted"] == 1, erased.text

    async def nothing_left() -> bool:
        return not await _tables_mentioning(herald.pg_dsn, needles)

    try:
        await eventually(nothing_left, timeout=60, what="no table holding the contact's data")
    except AssertionError as timed_out:
        left = await _tables_mentioning(herald.pg_dsn, needles)
        raise AssertionError(f"still holding the contact: {left}") from timed_out
    assert await recall(herald, tenant, contact_id) == []

    # what stays: a hashed suppression entry (guard and executor), and the erasure on the audit
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        for schema in ("guard", "executor"):
            rows = await conn.fetch(f"SELECT * FROM {schema}.suppression WHERE tenant = $1", tenant)
            assert [(r["contact_id"], r["email"], r["email_sha256"], r["reason"]) for r in rows] == [
                (contact_hash(tenant, contact_id), None, address_hash(str(contact["email"])), "erasure")
            ], schema
        audit_types = await conn.fetch(
            "SELECT type FROM review.audit_index WHERE tenant = $1 AND contact_id = $2",
            tenant,
            contact_hash(tenant, contact_id),
        )
    finally:
        await conn.close()
    assert "herald.contact.erased.v1" in {r["type"] for r in audit_types}
    # the compacted consent topic: the erasure under `all`, and tombstones that clear the other channels' records
    consent = [r for r in await read_topic(herald.bootstrap, herald.topic(CONSENT), timeout=5) if r.key]
    mine = {r.key: r.value for r in consent if r.key.startswith(f"{tenant}:{contact_id}:".encode())}
    assert {k: v is None for k, v in mine.items()} == {
        f"{tenant}:{contact_id}:{channel}".encode(): channel != "all" for channel in ("all", "email", "sms", "phone")
    }

    # the address, even under a new contact id, gets nothing
    action = email_action(tenant, contact_id=f"new-{run}", email=str(contact["email"]))
    env = envelope(tenant, action, source="test/planner")
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, f"new-{run}"), env, action)

    blocked = await guard_answer(herald, tenant, action.action_id)
    assert isinstance(blocked, ActionBlocked) and blocked.rule == "consent.opt_out", blocked
    assert "erasure" in blocked.reason
