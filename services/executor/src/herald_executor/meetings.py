"""schedule_meeting's pure parts: the event a meeting becomes (RFC 5545), its emailed invite (iMIP, RFC 6047),
the CalDAV request bodies, and what a calendar-query answer says about the slot. No I/O: `adapters/calendar.py`
does the talking."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event, vCalAddress, vText

from herald_core.contracts import ActionProposed, ScheduleMeetingInput
from herald_core.tenants import TenantConfig, zone_named
from herald_executor.logic import message_id

PRODID = "-//Herald//schedule_meeting//EN"
# set on the stored event once its invite has left: the only way `reconcile` can tell "invited" from "maybe"
INVITE_MARK = "X-HERALD-INVITE-MESSAGE-ID"
DAV, CALDAV = "DAV:", "urn:ietf:params:xml:ns:caldav"


@dataclass(frozen=True)
class Meeting:
    """Who, when and under which names: everything about one action's meeting that is derived, not chosen."""

    spec: ScheduleMeetingInput
    uid: str
    starts_at: datetime  # UTC
    ends_at: datetime  # UTC, exclusive
    invite_message_id: str

    @property
    def resource(self) -> str:
        """The event's file name in the calendar collection (the UID, as RFC 4791 clients usually name it)."""
        return f"{self.uid}.ics"


def meeting_of(action: ActionProposed, domain: str) -> Meeting:
    spec = action.input
    assert isinstance(spec, ScheduleMeetingInput)
    starts_at = spec.starts_at.astimezone(UTC)
    return Meeting(
        spec=spec,
        uid=f"{action.action_id.lower()}@{domain}",
        starts_at=starts_at,
        ends_at=starts_at + timedelta(minutes=spec.duration_minutes),
        # distinct from a send_email of the same action id, still derived from it
        invite_message_id=message_id(f"{action.action_id}-invite", domain),
    )


def event_ics(meeting: Meeting, tenant: TenantConfig, *, stamp: datetime) -> bytes:
    """The calendar object stored over CalDAV: one VEVENT, no METHOD (RFC 4791 §4.1 forbids it there)."""
    spec = meeting.spec
    event = Event()
    event.add("uid", meeting.uid)
    event.add("dtstamp", stamp.astimezone(UTC))
    event.add("dtstart", meeting.starts_at)
    event.add("dtend", meeting.ends_at)
    event.add("summary", spec.title)
    if spec.description:
        event.add("description", spec.description)
    organizer = vCalAddress(f"mailto:{tenant.sender.address}")
    organizer.params["CN"] = vText(tenant.sender.name)
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{spec.attendee_email}")
    if spec.attendee_name:
        attendee.params["CN"] = vText(spec.attendee_name)
    attendee.params.update({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "NEEDS-ACTION", "RSVP": "TRUE"})
    event.add("attendee", attendee)
    event.add("sequence", 0)
    event.add("status", "CONFIRMED")
    event.add("transp", "OPAQUE")
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add_component(event)
    return bytes(calendar.to_ical())


def imip_request(stored: bytes) -> bytes:
    """The iTIP REQUEST for a stored event: the same VEVENT (UID, SEQUENCE, DTSTAMP), with METHOD:REQUEST."""
    calendar = Calendar.from_ical(stored)
    request = Calendar()
    request.add("prodid", PRODID)
    request.add("version", "2.0")
    request.add("method", "REQUEST")
    for event in calendar.walk("VEVENT"):
        event.pop(INVITE_MARK, None)  # ours, not the attendee's business
        request.add_component(event)
    return bytes(request.to_ical())


def with_invite_mark(stored: bytes, invite_message_id: str) -> bytes:
    """The stored event, marked as invited (an X- property: clients keep it and ignore it; SEQUENCE unchanged)."""
    calendar = Calendar.from_ical(stored)
    for event in calendar.walk("VEVENT"):
        event.pop(INVITE_MARK, None)
        event.add(INVITE_MARK, invite_message_id)
    return bytes(calendar.to_ical())


def invite_mark(stored: bytes) -> str | None:
    """The Message-ID of the invite already sent for this stored event, if one was."""
    for event in Calendar.from_ical(stored).walk("VEVENT"):
        if INVITE_MARK in event:
            return str(event[INVITE_MARK])
    return None


def invite_email(meeting: Meeting, tenant: TenantConfig, stored: bytes, *, now: datetime) -> EmailMessage:
    """The invite as mail clients expect it (RFC 6047): a short plain-text part and the `text/calendar;
    method=REQUEST` alternative built from exactly what the calendar holds."""
    spec = meeting.spec
    zone = zone_named(tenant.timezone) or ZoneInfo("UTC")
    start, end = meeting.starts_at.astimezone(zone), meeting.ends_at.astimezone(zone)
    when = f"{start:%A %d %B %Y, %H:%M}–{end:%H:%M} ({tenant.timezone})"
    message = EmailMessage()
    message["From"] = formataddr((tenant.sender.name, str(tenant.sender.address)))
    message["To"] = formataddr((spec.attendee_name or "", str(spec.attendee_email)))
    message["Subject"] = f"Invitation: {spec.title} @ {start:%a %d %b %Y %H:%M} ({tenant.timezone})"
    message["Date"] = format_datetime(now.astimezone(UTC))
    message["Message-ID"] = meeting.invite_message_id
    message["X-Herald-Meeting-UID"] = meeting.uid
    lines = [
        f"{tenant.sender.name} invites you to “{spec.title}”.",
        "",
        f"When: {when}",
        f"      {meeting.starts_at:%H:%M}–{meeting.ends_at:%H:%M} UTC",
        f"Organizer: {tenant.sender.name} <{tenant.sender.address}>",
    ]
    if spec.description:
        lines += ["", spec.description]
    message.set_content("\n".join(lines) + "\n")
    # quoted-printable keeps the calendar's lines as lines (mail clients parse it as text) and survives any relay
    message.add_alternative(
        imip_request(stored).decode(), subtype="calendar", params={"method": "REQUEST"}, cte="quoted-printable"
    )
    return message


# ---- CalDAV bodies and answers


def mkcalendar_body(display_name: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<C:mkcalendar xmlns:D="{DAV}" xmlns:C="{CALDAV}"><D:set><D:prop>'
        f"<D:displayname>{escape(display_name)}</D:displayname>"
        '<C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>'
        "</D:prop></D:set></C:mkcalendar>"
    )


def time_range_query(start: datetime, end: datetime) -> str:
    """A calendar-query for the VEVENTs overlapping [start, end) (RFC 4791 §9.9: back-to-back does not overlap)."""

    def utc(moment: datetime) -> str:
        return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<C:calendar-query xmlns:D="{DAV}" xmlns:C="{CALDAV}">'
        "<D:prop><D:getetag/><C:calendar-data/></D:prop>"
        '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
        f'<C:time-range start="{utc(start)}" end="{utc(end)}"/>'
        "</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"
    )


def calendar_data(multistatus: bytes) -> list[bytes]:
    """The calendar objects in a REPORT's 207 answer."""
    # the configured server's answer; expat never fetches external entities and refuses entity-expansion bombs
    root = ET.fromstring(multistatus)  # noqa: S314
    return [
        (node.text or "").encode()
        for node in root.iter(f"{{{CALDAV}}}calendar-data")
        if node.text and node.text.strip()
    ]


def blocking(objects: list[bytes], own_uid: str) -> list[str]:
    """UIDs of the events that make a slot busy: any found there but our own, unless cancelled or transparent
    (free/busy time, RFC 5545 §3.8.2.7). The server's time-range filter already decided the overlap, recurrences
    included."""
    busy: set[str] = set()
    for data in objects:
        for event in Calendar.from_ical(data).walk("VEVENT"):
            uid = str(event.get("UID", ""))
            status = str(event.get("STATUS", "CONFIRMED")).upper()
            transparency = str(event.get("TRANSP", "OPAQUE")).upper()
            if uid != own_uid and status != "CANCELLED" and transparency != "TRANSPARENT":
                busy.add(uid)
    return sorted(busy)


# ---------------------------------------------------------------- free/busy (find_free_slots)


def free_busy_query(start: datetime, end: datetime) -> str:
    """A free-busy-query REPORT for [start, end) (RFC 4791 §7.10): the server answers one VFREEBUSY, leaving out
    cancelled and transparent events and expanding recurring ones."""

    def utc(moment: datetime) -> str:
        return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"

    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        f'<C:free-busy-query xmlns:C="{CALDAV}"><C:time-range start="{utc(start)}" end="{utc(end)}"/>'
        "</C:free-busy-query>"
    )


def busy_periods(answer: bytes) -> list[tuple[datetime, datetime]]:
    """The busy periods (UTC) of a free-busy-query's VFREEBUSY; a `FBTYPE=FREE` period is not busy."""
    periods: list[tuple[datetime, datetime]] = []
    for component in Calendar.from_ical(answer).walk("VFREEBUSY"):
        values = component.get("FREEBUSY", [])
        for value in values if isinstance(values, list) else [values]:
            if str(value.params.get("FBTYPE", "BUSY")).upper() == "FREE":
                continue
            start, end_or_length = value.dt
            end = start + end_or_length if isinstance(end_or_length, timedelta) else end_or_length
            periods.append((start.astimezone(UTC), end.astimezone(UTC)))
    return sorted(periods)


def search_window(after: datetime, business_days: int, zone: ZoneInfo, closes: time) -> tuple[datetime, datetime]:
    """From `after` to the close of the `business_days`-th business day counted from `after`'s (its own day
    counts when it is one), in `zone`."""
    day = after.astimezone(zone).date()
    seen = 0
    while True:
        if day.weekday() < 5:
            seen += 1
            if seen == business_days:
                break
        day += timedelta(days=1)
    return after.astimezone(UTC), datetime.combine(day, closes, tzinfo=zone).astimezone(UTC)


def free_slots(
    busy: list[tuple[datetime, datetime]],
    *,
    after: datetime,
    until: datetime,
    zone: ZoneInfo,
    opens: time,
    closes: time,
    minutes: int,
    count: int,
    step_minutes: int = 30,
) -> list[tuple[datetime, datetime]]:
    """Up to `count` slots of `minutes`, earliest first, starting on the `step_minutes` grid from `opens` on
    weekdays in `zone`, ending by `closes`, at or after `after`, by `until`, and overlapping no busy period
    (back to back is not an overlap)."""
    length = timedelta(minutes=minutes)
    found: list[tuple[datetime, datetime]] = []
    day = after.astimezone(zone).date()
    while len(found) < count:
        day_opens = datetime.combine(day, opens, tzinfo=zone)
        if day_opens.astimezone(UTC) >= until:
            break
        if day.weekday() < 5:
            start = day_opens
            day_closes = datetime.combine(day, closes, tzinfo=zone)
            while start + length <= day_closes and len(found) < count:
                begins, ends = start.astimezone(UTC), (start + length).astimezone(UTC)
                if begins >= after and ends <= until and not any(b < ends and begins < e for b, e in busy):
                    found.append((begins, ends))
                start += timedelta(minutes=step_minutes)
        day += timedelta(days=1)
    return found
