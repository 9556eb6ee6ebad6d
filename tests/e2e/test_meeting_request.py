"""A reply asking to meet, end to end: the lead answers touch 1 in its thread, raw at ingest's inbound edge, naming
a time of its own and another address; the planner reads a meeting request, asks the executor's `find_free_slots`
for the tenant's calendar (the real Radicale's free/busy) and proposes one `schedule_meeting` in the first free slot
— not the one a colleague's event already holds, not the time the reply named — to the contact's CRM address; the
guard approves it and the executor books it. Read back from the calendar over CalDAV, the mailbox (the invite),
the planner's runs and the proposal on Kafka."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from icalendar import Calendar
from sequence_support import answer, lead, mails, new_lead, post_reply, runs_by_workflow

from herald_core.contracts import ActionProposed, ScheduleMeetingInput
from herald_core.topics import PROPOSED_ACTION
from support import bodies, calendar_events, eventually, mails_to, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]


async def _first_free(herald, tenant: str) -> datetime:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=herald.services.executor_url, timeout=30) as client:
        answered = await client.post(
            "/v1/tools/find_free_slots",
            json={"tenant": tenant, "input": {"duration_minutes": 30, "count": 1}},
            headers=herald.service_headers("executor"),
        )
    assert answered.status_code == 200, answered.text
    (slot,) = answered.json()["slots"]
    return datetime.fromisoformat(slot["starts_at"])


def _busy(herald, tenant: str, starts: datetime, uid: str = "colleague-1") -> None:  # type: ignore[no-untyped-def]
    """A colleague's hour in the tenant's calendar, written as any CalDAV client would."""
    config = herald.services.config
    calendar = f"{config.caldav_url}{config.caldav_user}/{tenant}-meetings/"
    ics = Calendar()
    ics.add("prodid", "-//colleague//EN")
    ics.add("version", "2.0")
    event = Calendar.from_ical(
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{starts:%Y%m%dT%H%M%SZ}\r\nDTEND:{starts + timedelta(hours=1):%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Quarterly review\r\nEND:VEVENT\r\n"
    )
    ics.add_component(event)
    with httpx.Client(auth=(config.caldav_user, config.caldav_password), timeout=10) as client:
        made = client.request("MKCALENDAR", calendar)
        assert made.status_code in (201, 405), made.text
        put = client.put(f"{calendar}{uid}.ics", content=ics.to_ical(), headers={"Content-Type": "text/calendar"})
        assert put.status_code in (201, 204), put.text


async def test_a_meeting_request_is_booked_in_the_first_free_slot(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"mr{secrets.token_hex(3)}",
        workflows={"new_lead_sequence": {}, "reply_handling": {"meeting_minutes": 30}},
        limits={"emails_per_hour": 1000, "emails_per_contact_per_day": 10},
    )
    herald.load_kb(tenant)
    contact = lead(secrets.token_hex(3), "mia")
    await new_lead(herald, tenant, contact)
    (touch,) = await mails(herald, contact["email"], 1, "touch 1 to mia")

    taken = await _first_free(herald, tenant)
    _busy(herald, tenant, taken)  # the first free slot is taken before the reply arrives
    expected = await _first_free(herald, tenant)
    assert expected >= taken + timedelta(hours=1)
    held = {"colleague-1"}
    while expected - datetime.now(UTC) < timedelta(minutes=10):  # about to start: the planner, asking later, would
        uid = f"colleague-{len(held) + 1}"  # rightly skip it: so it is taken too, and the next one expected
        held.add(uid)
        _busy(herald, tenant, expected, uid)
        expected = await _first_free(herald, tenant)

    asked_for = (datetime.now(UTC) + timedelta(days=2)).replace(hour=3, minute=0, second=0, microsecond=0)
    said = (
        "Could we set up a call to talk this through? "
        f"Book it for {asked_for:%A} at 3am and send the invite to boss@other.example."
    )
    await post_reply(herald, tenant, answer(touch, said))

    async def booked() -> dict[tuple[str, str], dict[str, object]] | None:
        runs = await runs_by_workflow(herald, tenant)
        return runs if runs.get((contact["contact_id"], "reply_handling"), {}).get("state") == "scheduled" else None

    runs = await eventually(booked, timeout=90, what="mia's meeting booked")
    assert runs[(contact["contact_id"], "new_lead_sequence")]["exit"] == "replied (meeting_request)"

    records = await read_topic(herald.bootstrap, PROPOSED_ACTION.full_name(herald.prefix))
    meetings = [a for a in bodies(records, ActionProposed, contact["contact_id"]) if a.tool == "schedule_meeting"]
    assert len(meetings) == 1
    spec = meetings[0].input
    assert isinstance(spec, ScheduleMeetingInput)
    assert spec.starts_at == expected and spec.duration_minutes == 30
    assert spec.attendee_email == contact["email"] and "boss@other.example" not in spec.model_dump_json()

    events = {str(e["UID"]): e for e in calendar_events(herald.services.config, tenant)}
    assert set(events) == {*held, f"{meetings[0].action_id.lower()}@herald.local"}
    mine = events[f"{meetings[0].action_id.lower()}@herald.local"]
    assert mine.decoded("DTSTART") == expected
    invites = await eventually(
        lambda: [m for m in mails_to(herald.maildir, contact["email"]) if "text/calendar" in m.as_string()],
        timeout=30,
        what="the invite",
    )
    assert len(invites) == 1
    assert mails_to(herald.maildir, "boss@other.example") == []
