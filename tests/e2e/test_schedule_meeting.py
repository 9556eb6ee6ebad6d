"""schedule_meeting end to end, against a real CalDAV server (Radicale): a signed approval becomes one event in the
tenant's calendar — read back over CalDAV — and one iMIP invite in the mailbox, reported with its UID; the same
approval presented again books nothing more; a meeting over a taken slot fails `slot_busy` and writes and sends
nothing, while one starting as the other ends is booked."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from email.message import Message
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from herald_core.contracts import ActionProposed, ActionRefused
from support import (
    approve,
    calendar_events,
    email_action,
    eventually,
    execution_of,
    executor_answers,
    mails_to,
    present,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

NEW_YORK = ZoneInfo("America/New_York")
TEN_AM = datetime(2031, 3, 4, 10, 0, tzinfo=NEW_YORK)  # 15:00 UTC
DOMAIN = "herald.local"  # the executor's message_id_domain


def meeting(tenant: str, starts_at: datetime, minutes: int = 30, title: str = "Carrier exceptions") -> ActionProposed:
    contact_id = f"c{secrets.token_hex(4)}"
    attendee = f"{contact_id}@buyers.example"
    base = email_action(tenant, contact_id=contact_id, email=attendee)
    spec = {
        "contact_id": contact_id,
        "attendee_email": attendee,
        "attendee_name": "Jordan Reyes",
        "title": title,
        "starts_at": starts_at.isoformat(),
        "duration_minutes": minutes,
        "description": "Bring a week of your exception queue.",
    }
    return ActionProposed.model_validate({**base.model_dump(mode="json"), "tool": "schedule_meeting", "input": spec})


def calendar_part(mail: Message) -> Calendar:
    for part in mail.walk():
        if part.get_content_type() == "text/calendar":
            assert part.get_param("method") == "REQUEST"
            return Calendar.from_ical(bytes(part.get_payload(decode=True)))
    raise AssertionError("the invite has no text/calendar part")


async def test_an_approved_meeting_is_booked_over_caldav_and_invited_once(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"cal{secrets.token_hex(3)}")
    config = herald.services.config
    action = meeting(tenant, TEN_AM)
    attendee = action.recipient
    assert attendee is not None
    approved = approve(herald, action)
    await present(herald, approved)

    executed = await execution_of(herald, action.action_id)
    assert executed.status.value == "succeeded", executed
    uid = f"{action.action_id.lower()}@{DOMAIN}"
    assert executed.result["uid"] == uid
    assert datetime.fromisoformat(executed.result["starts_at"]) == datetime(2031, 3, 4, 15, 0, tzinfo=UTC)
    assert datetime.fromisoformat(executed.result["ends_at"]) == datetime(2031, 3, 4, 15, 30, tzinfo=UTC)

    # in the calendar, as a CalDAV client reads it
    (event,) = calendar_events(config, tenant)
    assert str(event["UID"]) == uid
    assert event.decoded("DTSTART") == datetime(2031, 3, 4, 15, 0, tzinfo=UTC)
    assert event.decoded("DTEND") == datetime(2031, 3, 4, 15, 30, tzinfo=UTC)
    assert str(event["SUMMARY"]) == "Carrier exceptions"
    assert str(event["ORGANIZER"]) == "mailto:maya@acmerelay.example"
    assert str(event["ATTENDEE"]) == f"mailto:{attendee}" and event["ATTENDEE"].params["RSVP"] == "TRUE"
    assert executed.result["calendar_url"].startswith(f"{config.caldav_url}{config.caldav_user}/{tenant}-meetings/")

    # the invite, once, carrying the same event
    (mail,) = await eventually(lambda: mails_to(herald.maildir, attendee), what="the invite")
    assert mail["Message-ID"] == executed.result["invite_message_id"]
    request = calendar_part(mail)
    assert str(request["METHOD"]) == "REQUEST"
    (invited,) = request.walk("VEVENT")
    assert str(invited["UID"]) == uid and invited.decoded("DTSTART") == event.decoded("DTSTART")

    # the same approval again: refused as a replay, nothing booked or sent again
    await present(herald, approved)
    _, refused = await executor_answers(herald, action.action_id, count=2)
    assert isinstance(refused, ActionRefused)
    assert refused.reason == "replayed"
    assert len(calendar_events(config, tenant)) == 1
    assert len(mails_to(herald.maildir, attendee)) == 1


async def test_a_meeting_over_a_taken_slot_fails_and_books_nothing_but_back_to_back_is_free(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"busy{secrets.token_hex(3)}")
    config = herald.services.config
    first = meeting(tenant, TEN_AM, title="First")
    await present(herald, approve(herald, first))
    executed = await execution_of(herald, first.action_id)
    assert executed.status.value == "succeeded", executed

    overlapping = meeting(tenant, TEN_AM + timedelta(minutes=15), title="Overlapping")
    await present(herald, approve(herald, overlapping))
    failed = await execution_of(herald, overlapping.action_id)
    assert failed.status.value == "failed", failed
    assert (
        failed.failure is not None and failed.failure.code == "slot_busy" and failed.failure.kind.value == "permanent"
    )
    assert [str(e["UID"]) for e in calendar_events(config, tenant)] == [executed.result["uid"]]
    assert overlapping.recipient is not None and mails_to(herald.maildir, overlapping.recipient) == []

    back_to_back = meeting(tenant, TEN_AM + timedelta(minutes=30), title="Back to back")
    await present(herald, approve(herald, back_to_back))
    booked = await execution_of(herald, back_to_back.action_id)
    assert booked.status.value == "succeeded", booked
    assert sorted(str(e["SUMMARY"]) for e in calendar_events(config, tenant)) == ["Back to back", "First"]
    assert back_to_back.recipient is not None
    await eventually(lambda: len(mails_to(herald.maildir, back_to_back.recipient)) == 1, what="the second invite")
    assert first.recipient is not None and len(mails_to(herald.maildir, first.recipient)) == 1
