"""Replies end to end: a lead's touch 1 goes out through the SMTP server; the lead's answer, written as a mail client
writes it (in the thread of the delivered email, quoting it, signed), is posted raw to ingest's inbound edge. It is
read once as `ReplyReceived` with only the new text and its thread, and it ends the lead's sequence. Another lead's
out-of-office reply does not: its next touch waits until the day the reply says the lead is back. Read back from
the mailbox, the events topic and the planner's runs and timers."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, date, timedelta

import pytest
from sequence_support import answer, lead, mails, new_lead, post_reply, runs_of, timers_of

from herald_core.contracts import ReplyMatch, ReplyReceived
from herald_core.topics import EVENTS
from support import bodies, eventually, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]


async def received(herald, tenant: str, contact_id: str) -> ReplyReceived:  # type: ignore[no-untyped-def]
    async def look() -> ReplyReceived | None:
        records = await read_topic(herald.bootstrap, EVENTS.full_name(herald.prefix))
        found = [r for r in bodies(records, ReplyReceived, contact_id) if r.contact.contact_id == contact_id]
        return found[0] if found else None

    reply: ReplyReceived = await eventually(look, timeout=60, what=f"the reply of {contact_id} on the events topic")
    return reply


async def test_a_reply_in_the_thread_ends_the_sequence_and_an_out_of_office_only_moves_it(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"rep{secrets.token_hex(3)}",
        workflows={"new_lead_sequence": {"waits_business_days": [3, 4]}},
        limits={"emails_per_hour": 1000, "emails_per_contact_per_day": 10},
    )
    herald.load_kb(tenant)
    run = secrets.token_hex(3)
    ana, ben = lead(run, "ana"), lead(run, "ben")
    for contact in (ana, ben):
        await new_lead(herald, tenant, contact)
    touch_ana = (await mails(herald, ana["email"], 1, "touch 1 to ana"))[0]
    touch_ben = (await mails(herald, ben["email"], 1, "touch 1 to ben"))[0]
    await eventually(
        lambda: _all_waiting(herald, tenant, ana["contact_id"], ben["contact_id"]), timeout=60, what="both waiting"
    )

    await post_reply(herald, tenant, answer(touch_ana, "Interesting. Does it work with our WMS?"))
    reply = await received(herald, tenant, ana["contact_id"])
    assert reply.text == "Interesting. Does it work with our WMS?"
    assert (reply.matched_by, reply.in_reply_to) == (ReplyMatch.IN_REPLY_TO, touch_ana["Message-ID"])
    assert reply.answers_workflow_id is not None and not reply.out_of_office

    back = date.today() + timedelta(days=20)
    away = f"I am out of the office until {back:%A, %B} {back.day}, {back.year}, with limited access to email."
    await post_reply(herald, tenant, answer(touch_ben, away, Auto_Submitted="auto-replied"))
    assert (await received(herald, tenant, ben["contact_id"])).returns_on == back

    async def settled() -> dict[str, dict[str, object]] | None:
        runs = await runs_of(herald, tenant)
        ben_data = json.loads(str(runs[ben["contact_id"]]["data"]))
        return runs if runs[ana["contact_id"]]["state"] == "exited" and "back_at" in ben_data else None

    runs = await eventually(settled, timeout=60, what="ana's run ended and ben's moved")
    assert json.loads(str(runs[ana["contact_id"]]["data"]))["exit"] == "replied"
    assert runs[ben["contact_id"]]["state"] == "waiting"
    pending = [t for t in await timers_of(herald, tenant) if t["state"] == "pending"]
    [(contact_id, due_at)] = [(t["contact_id"], t["due_at"]) for t in pending]  # ana's timer was cancelled
    assert contact_id == ben["contact_id"]
    assert due_at.astimezone(UTC).date() >= back  # no touch before ben is back (09:00 in ben's zone that day)


async def _all_waiting(herald, tenant: str, *contact_ids: str) -> bool:  # type: ignore[no-untyped-def]
    runs = await runs_of(herald, tenant)
    return all(runs.get(c, {}).get("state") == "waiting" for c in contact_ids)
