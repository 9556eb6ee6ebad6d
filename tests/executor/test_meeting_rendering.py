"""The meeting schedule_meeting stores and the invite it emails: one VEVENT in UTC under a UID from the action id,
organizer and attendee as mailto addresses; the invite (RFC 6047) is a plain-text part and a `text/calendar;
method=REQUEST` part carrying exactly the stored event; and how a free/busy answer is read."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component

from herald_core.contracts import ActionProposed
from herald_executor.logic import message_id
from herald_executor.meetings import (
    blocking,
    calendar_data,
    event_ics,
    imip_request,
    invite_email,
    invite_mark,
    meeting_of,
    time_range_query,
    with_invite_mark,
)
from support import acme_tenant, email_action

TENANT = acme_tenant("acme")
STAMP = datetime(2031, 2, 1, 9, 0, tzinfo=UTC)


def meeting_action(**overrides: object) -> ActionProposed:
    base = email_action("acme", contact_id="5100001", email="jordan@northwind.example")
    spec = {
        "contact_id": "5100001",
        "attendee_email": "jordan@northwind.example",
        "attendee_name": "Jordan Reyes",
        "title": "Carrier exceptions: 30 minutes",
        "starts_at": "2031-03-04T10:00:00-05:00",
        "duration_minutes": 30,
        "description": "We'll look at your exception queue — bring a week of it.",
        **overrides,
    }
    return ActionProposed.model_validate({**base.model_dump(mode="json"), "tool": "schedule_meeting", "input": spec})


def only_event(ics: bytes) -> Component:
    (event,) = Calendar.from_ical(ics).walk("VEVENT")
    return event


def test_the_stored_event_is_in_utc_under_the_actions_uid_with_organizer_and_attendee() -> None:
    action = meeting_action()
    meeting = meeting_of(action, "acmerelay.example")
    calendar = Calendar.from_ical(event_ics(meeting, TENANT, stamp=STAMP))
    event = only_event(calendar.to_ical())
    assert "METHOD" not in calendar  # a stored calendar object never carries an iTIP method
    assert str(event["UID"]) == f"{action.action_id.lower()}@acmerelay.example" == meeting.uid
    assert event.decoded("DTSTART") == datetime(2031, 3, 4, 15, 0, tzinfo=ZoneInfo("UTC"))
    assert event.decoded("DTEND") == datetime(2031, 3, 4, 15, 30, tzinfo=ZoneInfo("UTC"))
    assert b"DTSTART:20310304T150000Z" in event.to_ical()
    assert str(event["SUMMARY"]) == "Carrier exceptions: 30 minutes"
    assert str(event["ORGANIZER"]) == "mailto:maya@acmerelay.example"
    assert event["ORGANIZER"].params["CN"] == "Maya from Acme Relay"
    attendee = event["ATTENDEE"]
    assert str(attendee) == "mailto:jordan@northwind.example"
    assert attendee.params["RSVP"] == "TRUE" and attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert event["SEQUENCE"] == 0 and str(event["STATUS"]) == "CONFIRMED"


def test_the_invite_is_plain_text_and_an_imip_request_of_exactly_the_stored_event() -> None:
    action = meeting_action()
    meeting = meeting_of(action, "acmerelay.example")
    stored = event_ics(meeting, TENANT, stamp=STAMP)
    message = invite_email(meeting, TENANT, stored, now=datetime(2031, 2, 1, 9, 0, 5, tzinfo=UTC))
    parsed = message_from_bytes(message.as_bytes(), policy=default)
    assert isinstance(parsed, EmailMessage)
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["To"] == "Jordan Reyes <jordan@northwind.example>"
    assert parsed["From"] == "Maya from Acme Relay <maya@acmerelay.example>"
    # derived from the action id, and not the Message-ID a send_email of the same action would have
    assert parsed["Message-ID"] == meeting.invite_message_id == f"<{action.action_id.lower()}-invite@acmerelay.example>"
    assert parsed["Message-ID"] != message_id(action.action_id, "acmerelay.example")
    plain = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Tuesday 04 March 2031, 10:00–10:30 (America/New_York)" in plain and "15:00–15:30 UTC" in plain
    part = parsed.get_body(("calendar",))
    assert part is not None and part.get_content_type() == "text/calendar"
    assert part.get_param("method") == "REQUEST"
    request = Calendar.from_ical(part.get_content())
    assert str(request["METHOD"]) == "REQUEST"
    assert only_event(request.to_ical()).to_ical() == only_event(stored).to_ical()


def test_the_invite_mark_is_kept_on_the_stored_event_and_never_sent() -> None:
    meeting = meeting_of(meeting_action(), "acmerelay.example")
    stored = event_ics(meeting, TENANT, stamp=STAMP)
    assert invite_mark(stored) is None
    marked = with_invite_mark(stored, meeting.invite_message_id)
    assert invite_mark(marked) == meeting.invite_message_id
    assert invite_mark(with_invite_mark(marked, meeting.invite_message_id)) == meeting.invite_message_id
    assert b"X-HERALD" not in imip_request(marked)
    assert only_event(marked)["SEQUENCE"] == 0  # not a significant change (RFC 5546): attendees see no update


def test_free_busy_counts_every_other_event_in_the_window_but_cancelled_or_transparent_ones() -> None:
    query = time_range_query(datetime(2031, 3, 4, 10, 0, tzinfo=ZoneInfo("America/New_York")), STAMP)
    assert 'start="20310304T150000Z"' in query and 'end="20310201T090000Z"' in query

    def event(uid: str, extra: str = "") -> str:
        return (
            "BEGIN:VCALENDAR&#13;\nVERSION:2.0&#13;\nPRODID:-//t//EN&#13;\nBEGIN:VEVENT&#13;\n"
            f"UID:{uid}&#13;\nDTSTAMP:20310101T000000Z&#13;\nDTSTART:20310304T150000Z&#13;\n"
            f"DTEND:20310304T153000Z&#13;\n{extra}END:VEVENT&#13;\nEND:VCALENDAR&#13;\n"
        )

    responses = "".join(
        f'<response><href>/herald/acme-meetings/{n}.ics</href><propstat><prop><getetag>"{n}"</getetag>'
        f"<C:calendar-data>{data}</C:calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response>"
        for n, data in enumerate(
            [
                event("ours@acmerelay.example"),
                event("theirs@elsewhere.example"),
                event("cancelled@elsewhere.example", "STATUS:CANCELLED&#13;\n"),
                event("free@elsewhere.example", "TRANSP:TRANSPARENT&#13;\n"),
            ]
        )
    )
    answer = (
        "<?xml version='1.0' encoding='utf-8'?>"
        f'<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">{responses}</multistatus>'
    ).encode()
    objects = calendar_data(answer)
    assert len(objects) == 4
    assert blocking(objects, "ours@acmerelay.example") == ["theirs@elsewhere.example"]
    assert blocking(calendar_data(b'<multistatus xmlns="DAV:"/>'), "ours@acmerelay.example") == []
