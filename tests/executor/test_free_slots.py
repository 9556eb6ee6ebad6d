"""find_free_slots: free times within the tenant's meeting hours, from the real Radicale's free/busy — a booked
meeting, a daily recurring stand-up and an all-morning block are busy; a cancelled and a transparent event are not;
a tenant with no calendar yet is all free. The slot grid itself is pure: weekdays only, on the half hour, ending by
closing time, never overlapping a busy period (back to back is fine)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from test_meeting_tool import make, meeting

from herald_core.contracts import FindFreeSlotsInput
from herald_executor.meetings import busy_periods, free_slots, search_window
from support import acme_tenant

NEW_YORK = ZoneInfo("America/New_York")
MONDAY = datetime(2031, 3, 3, 8, 0, tzinfo=NEW_YORK)  # 2031-03-03 is a Monday


def _local(slots: list[tuple[datetime, datetime]]) -> list[str]:
    return [f"{b.astimezone(NEW_YORK):%a %H:%M}–{e.astimezone(NEW_YORK):%H:%M}" for b, e in slots]


def _slots(busy: list[tuple[datetime, datetime]], after: datetime = MONDAY, **kw: object) -> list[str]:
    start, until = search_window(after, int(kw.pop("days", 2)), NEW_YORK, time(17, 0))  # type: ignore[call-overload]
    options: dict[str, object] = {"opens": time(9, 0), "closes": time(17, 0), "minutes": 30, "count": 3, **kw}
    return _local(free_slots(busy, after=start, until=until, zone=NEW_YORK, **options))  # type: ignore[arg-type]


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2031, 3, day, hour, minute, tzinfo=NEW_YORK).astimezone(UTC)


def test_slots_start_on_the_half_hour_from_opening_and_skip_what_is_busy() -> None:
    assert _slots([]) == ["Mon 09:00–09:30", "Mon 09:30–10:00", "Mon 10:00–10:30"]
    busy = [(at(3, 9), at(3, 10)), (at(3, 10, 30), at(3, 11))]
    assert _slots(busy) == ["Mon 10:00–10:30", "Mon 11:00–11:30", "Mon 11:30–12:00"]  # back to back is free


def test_a_long_meeting_ends_by_closing_and_a_full_day_moves_to_the_next() -> None:
    assert _slots([(at(3, 9), at(3, 15, 30))], minutes=90, count=2) == ["Mon 15:30–17:00", "Tue 09:00–10:30"]


def test_weekends_are_skipped_and_the_window_counts_business_days() -> None:
    friday_evening = datetime(2031, 3, 7, 18, 0, tzinfo=NEW_YORK)
    assert _slots([], after=friday_evening, count=1) == ["Mon 09:00–09:30"]
    _, until = search_window(friday_evening, 2, NEW_YORK, time(17, 0))
    assert until.astimezone(NEW_YORK) == datetime(2031, 3, 10, 17, 0, tzinfo=NEW_YORK)  # Friday (its own), Monday
    assert _slots([(at(3, 9), at(4, 17))], days=2) == []  # both days busy: nothing within the window


def test_a_slot_after_the_search_starts_only() -> None:
    assert _slots([], after=datetime(2031, 3, 3, 9, 10, tzinfo=NEW_YORK), count=1) == ["Mon 09:30–10:00"]


def test_free_busy_periods_are_read_with_their_types() -> None:
    answer = (
        b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VFREEBUSY\r\n"
        b"DTSTAMP:20310301T000000Z\r\nDTSTART:20310303T000000Z\r\nDTEND:20310305T000000Z\r\n"
        b"FREEBUSY;FBTYPE=BUSY:20310303T150000Z/20310303T160000Z\r\n"
        b"FREEBUSY;FBTYPE=BUSY-TENTATIVE:20310303T170000Z/PT30M\r\n"
        b"FREEBUSY;FBTYPE=FREE:20310303T180000Z/20310303T190000Z\r\n"
        b"END:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    )
    assert busy_periods(answer) == [
        (datetime(2031, 3, 3, 15, tzinfo=UTC), datetime(2031, 3, 3, 16, tzinfo=UTC)),
        (datetime(2031, 3, 3, 17, tzinfo=UTC), datetime(2031, 3, 3, 17, 30, tzinfo=UTC)),
    ]


def _event(uid: str, start: datetime, end: datetime, *extra: str) -> bytes:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//test//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20310301T000000Z",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{end:%Y%m%dT%H%M%SZ}",
        "SUMMARY:busy",
        *extra,
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines).encode()


@pytest.mark.smtp
async def test_the_calendars_free_busy_decides_the_slots(stack, tools) -> None:  # type: ignore[no-untyped-def]
    tool = make(tools, stack.config)
    tenant = acme_tenant(f"fs{secrets.token_hex(4)}")
    query = FindFreeSlotsInput(duration_minutes=30, after=MONDAY, business_days=1, count=4)
    empty = await tool.find_free_slots(tenant.tenant_id, tenant, query, MONDAY - timedelta(days=1))
    assert _local([(s.starts_at, s.ends_at) for s in empty.slots])[0] == "Mon 09:00–09:30"  # no calendar yet
    assert empty.zone == "America/New_York" and empty.hours == "09:00–17:00, Monday to Friday"

    await tool.run(meeting(tenant, datetime(2031, 3, 3, 9, 30, tzinfo=NEW_YORK)), tenant)  # booked by Herald
    calendar = tool.calendar_url(tenant.tenant_id)
    auth = (stack.config.caldav_user, stack.config.caldav_password)
    others = {
        "standup": _event("standup", at(2, 9), at(2, 9, 30), "RRULE:FREQ=DAILY;COUNT=10"),  # from Sunday, daily
        "block": _event("block", at(3, 10, 30), at(3, 11, 30)),
        "cancelled": _event("cancelled", at(3, 11, 30), at(3, 12), "STATUS:CANCELLED"),
        "transparent": _event("transparent", at(3, 12), at(3, 13), "TRANSP:TRANSPARENT"),
    }
    async with httpx.AsyncClient(auth=auth, timeout=10) as client:
        for name, ics in others.items():
            put = await client.put(f"{calendar}{name}.ics", content=ics, headers={"Content-Type": "text/calendar"})
            assert put.status_code in (201, 204), put.text
    found = await tool.find_free_slots(tenant.tenant_id, tenant, query, MONDAY - timedelta(days=1))
    # 09:00 stand-up, 09:30 Herald's meeting, 10:30 to 11:30 blocked; the cancelled and the transparent ones are free
    assert _local([(s.starts_at, s.ends_at) for s in found.slots]) == [
        "Mon 10:00–10:30",
        "Mon 11:30–12:00",
        "Mon 12:00–12:30",
        "Mon 12:30–13:00",
    ]
