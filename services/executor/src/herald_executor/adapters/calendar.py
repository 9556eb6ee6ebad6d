"""schedule_meeting's adapter: the meeting written into the tenant's CalDAV calendar, then the invite emailed (iMIP).

Each tenant has one calendar, `<caldav_url><user>/<tenant>-meetings/`, made with MKCALENDAR on first use. A call:

1. reads the event at its UID's URL (the UID comes from the action id): already there and marked as invited → done,
   nothing repeated;
2. asks for free/busy (a calendar-query REPORT over [start, end)): any other event there → `slot_busy`, nothing
   written or sent;
3. writes the event with `If-None-Match: *` (a repeat cannot write it twice), then looks again: another executor
   may have written into the same slot meanwhile (within one process a lock per tenant already orders them); if so
   ours is withdrawn and the call retried (`slot_contended`), so a slot never holds two meetings;
4. emails the invite through the executor's `SmtpSender`, then marks the stored event with the invite's
   Message-ID (`X-HERALD-INVITE-MESSAGE-ID`).

Everything before the invite is safe to repeat (reads, a conditional PUT, deleting our own unsent event), so
CalDAV being unreachable or answering 5xx/429 is RETRYABLE and certainly not applied; 401/403 and other 4xx are
PERMANENT. SMTP failures map as send_email's do (an invite refused for good also withdraws the event: a meeting
nobody was told of should not hold the slot); a send cut off mid-transaction is left to `reconcile`.

`reconcile` reads the event at its UID's URL: absent → SAFE_TO_RUN (the invite is only sent after the event is
written, so nothing was done); present and marked → DONE; present without the mark → UNKNOWN: the invite may or
may not have left (the cut came between the write and the mark), which a human decides, as for send_email.
The calendar is the only record: an event deleted by hand after its invite went out reconciles as SAFE_TO_RUN.

`find_free_slots` (a read tool) asks the same calendar for free/busy (a free-busy-query REPORT, RFC 4791 §7.10)
over the business days searched and offers the free times within the tenant's meeting hours; a calendar not made
yet is all free. A time it offers is checked again when `schedule_meeting` books it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import structlog

from herald_core.bus import http_status_is_transient, retry_after_seconds
from herald_core.contracts import ActionProposed, FailureKind, FindFreeSlotsInput
from herald_core.tenants import TenantConfig, zone_named
from herald_core.tools import FindFreeSlotsOutput, FreeSlot, ScheduleMeetingOutput
from herald_executor.adapters.smtp import SmtpSender
from herald_executor.logic import Reconciled, ToolError
from herald_executor.meetings import (
    Meeting,
    blocking,
    busy_periods,
    calendar_data,
    event_ics,
    free_busy_query,
    free_slots,
    invite_email,
    invite_mark,
    meeting_of,
    mkcalendar_body,
    search_window,
    time_range_query,
    with_invite_mark,
)
from herald_executor.settings import Settings

log = structlog.get_logger("herald.executor.calendar")
XML = {"Content-Type": "application/xml; charset=utf-8"}
ICS = {"Content-Type": "text/calendar; charset=utf-8"}


@dataclass(frozen=True)
class Stored:
    """An event as the server holds it, with the ETag that makes our later changes to it conditional."""

    ics: bytes
    etag: str | None


def _refused(response: httpx.Response, doing: str) -> ToolError:
    status = response.status_code
    message = f"CalDAV {doing}: {status} {response.reason_phrase}"
    if http_status_is_transient(status):
        wait = retry_after_seconds(response.headers)
        return ToolError(FailureKind.RETRYABLE, "caldav_unavailable", message, retry_after=wait)
    if status in (401, 403):
        return ToolError(FailureKind.PERMANENT, "caldav_unauthorized", message)
    return ToolError(FailureKind.PERMANENT, "caldav_rejected", message)


class MeetingTool:
    """schedule_meeting: free/busy, the event, the invite — each once per action."""

    tool = "schedule_meeting"

    def __init__(self, settings: Settings, sender: SmtpSender) -> None:
        self.settings = settings
        self.sender = sender
        auth = (settings.caldav_username, settings.caldav_password or "") if settings.caldav_username else None
        self.http = httpx.AsyncClient(auth=auth, timeout=settings.caldav_timeout_seconds)
        self._user = settings.caldav_username or "herald"
        self._calendars: set[str] = set()  # made (or found) by this process
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    def calendar_url(self, tenant: str) -> str:
        return f"{self.settings.caldav_url.rstrip('/')}/{quote(self._user)}/{tenant}-meetings/"

    def event_url(self, tenant: str, meeting: Meeting) -> str:
        return self.calendar_url(tenant) + quote(meeting.resource, safe="")

    async def close(self) -> None:
        await self.http.aclose()

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> ScheduleMeetingOutput:
        meeting = meeting_of(action, self.settings.message_id_domain)
        url = self.event_url(action.tenant, meeting)
        async with self._locks[action.tenant]:
            try:
                stored = await self._booked(action.tenant, tenant, meeting, url)
            except httpx.TransportError as exc:
                raise ToolError(FailureKind.RETRYABLE, "caldav_unavailable", f"CalDAV unreachable: {exc!r}") from exc
        if invite_mark(stored.ics) is None:
            await self._invite(meeting, tenant, stored, url)
        return self._output(meeting, url)

    async def reconcile(
        self, action: ActionProposed, tenant: TenantConfig
    ) -> tuple[Reconciled, ScheduleMeetingOutput | None]:
        meeting = meeting_of(action, self.settings.message_id_domain)
        url = self.event_url(action.tenant, meeting)
        stored = await self._get(url)
        if stored is None:
            return Reconciled.SAFE_TO_RUN, None
        if invite_mark(stored.ics) is None:
            return Reconciled.UNKNOWN, None
        return Reconciled.DONE, self._output(meeting, url)

    async def find_free_slots(
        self, tenant_id: str, tenant: TenantConfig, query: FindFreeSlotsInput, now: datetime
    ) -> FindFreeSlotsOutput:
        """Free times of the tenant's calendar within its meeting hours (a `ToolError` when CalDAV cannot say)."""
        zone = zone_named(tenant.timezone) or zone_named("UTC")
        assert zone is not None
        hours = tenant.meeting_hours
        after = max(query.after or now, now)
        start, until = search_window(after, query.business_days, zone, hours.closes)
        try:
            response = await self.http.request(
                "REPORT",
                self.calendar_url(tenant_id),
                content=free_busy_query(start, until),
                headers={**XML, "Depth": "1"},
            )
        except httpx.TransportError as exc:
            raise ToolError(FailureKind.RETRYABLE, "caldav_unavailable", f"CalDAV unreachable: {exc!r}") from exc
        if response.status_code == 404:
            busy: list[tuple[datetime, datetime]] = []  # no meeting booked yet: the calendar is made on the first
        elif response.status_code == 200:
            busy = busy_periods(response.content)
        else:
            raise _refused(response, "free-busy REPORT")
        slots = free_slots(
            busy,
            after=start,
            until=until,
            zone=zone,
            opens=hours.opens,
            closes=hours.closes,
            minutes=query.duration_minutes,
            count=query.count,
        )
        return FindFreeSlotsOutput(
            zone=str(zone),
            hours=f"{hours.opens:%H:%M}–{hours.closes:%H:%M}, Monday to Friday",
            searched_from=start,
            searched_until=until,
            slots=tuple(FreeSlot(starts_at=b, ends_at=e) for b, e in slots),
        )

    def _output(self, meeting: Meeting, url: str) -> ScheduleMeetingOutput:
        return ScheduleMeetingOutput(
            uid=meeting.uid,
            starts_at=meeting.starts_at,
            ends_at=meeting.ends_at,
            calendar_url=url,
            invite_message_id=meeting.invite_message_id,
        )

    async def _booked(self, tenant_id: str, tenant: TenantConfig, meeting: Meeting, url: str) -> Stored:
        """The event in the calendar (written now or earlier by this action), the slot checked free of others."""
        calendar = self.calendar_url(tenant_id)
        await self._ensure_calendar(calendar, f"{tenant.name} meetings")
        stored = await self._get(url)
        if stored is not None and invite_mark(stored.ics) is not None:
            return stored  # booked and invited earlier: nothing to check or write
        others = await self._others_in_slot(calendar, meeting)
        if others:
            if stored is not None:  # our own unsent event from an interrupted attempt: the slot is not ours
                await self._withdraw(url, stored)
            raise ToolError(
                FailureKind.PERMANENT,
                "slot_busy",
                f"{meeting.starts_at:%Y-%m-%d %H:%M}–{meeting.ends_at:%H:%M} UTC overlaps {', '.join(others)}; "
                "nothing was written or sent",
            )
        if stored is not None:
            return stored  # written by an earlier attempt whose invite did not leave; the look above was the second
        stored = await self._put_new(url, event_ics(meeting, tenant, stamp=datetime.now(UTC)))
        others = await self._others_in_slot(calendar, meeting)
        if others:  # another writer got into the slot between our two looks
            await self._withdraw(url, stored)
            raise ToolError(
                FailureKind.RETRYABLE,
                "slot_contended",
                f"another event ({', '.join(others)}) was written into the slot at the same time; ours was withdrawn",
            )
        return stored

    async def _ensure_calendar(self, calendar: str, display_name: str) -> None:
        if calendar in self._calendars:
            return
        response = await self.http.request("MKCALENDAR", calendar, content=mkcalendar_body(display_name), headers=XML)
        exists = response.status_code == 405 or (
            response.status_code in (403, 409) and b"resource-must-be-null" in response.content
        )
        if response.status_code != 201 and not exists:
            raise _refused(response, "MKCALENDAR")
        self._calendars.add(calendar)

    async def _others_in_slot(self, calendar: str, meeting: Meeting) -> list[str]:
        response = await self.http.request(
            "REPORT",
            calendar,
            content=time_range_query(meeting.starts_at, meeting.ends_at),
            headers={**XML, "Depth": "1"},
        )
        if response.status_code == 404:  # the calendar went away since this process made it: make it again
            self._calendars.discard(calendar)
            raise ToolError(FailureKind.RETRYABLE, "caldav_unavailable", f"calendar {calendar} is missing")
        if response.status_code != 207:
            raise _refused(response, "free/busy REPORT")
        return blocking(calendar_data(response.content), meeting.uid)

    async def _get(self, url: str) -> Stored | None:
        response = await self.http.get(url)
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _refused(response, "GET")
        return Stored(response.content, response.headers.get("ETag"))

    async def _put_new(self, url: str, ics: bytes) -> Stored:
        response = await self.http.put(url, content=ics, headers={**ICS, "If-None-Match": "*"})
        if response.status_code == 412:  # written already under this UID: keep what is there
            stored = await self._get(url)
            if stored is not None:
                return stored
            raise ToolError(FailureKind.RETRYABLE, "caldav_unavailable", f"{url} answered 412 but is not there")
        if response.status_code not in (201, 204):
            raise _refused(response, "PUT")
        return Stored(ics, response.headers.get("ETag"))

    async def _withdraw(self, url: str, stored: Stored) -> None:
        headers = {"If-Match": stored.etag} if stored.etag else {}
        response = await self.http.delete(url, headers=headers)
        if response.status_code not in (200, 204, 404):
            raise _refused(response, "DELETE")

    async def _invite(self, meeting: Meeting, tenant: TenantConfig, stored: Stored, url: str) -> None:
        email = invite_email(meeting, tenant, stored.ics, now=datetime.now(UTC))
        try:
            await self.sender.deliver(email)
        except ToolError as exc:
            # not taken: the event stays, and a retry finds it (ours, unmarked) and invites without writing again;
            # refused for good: a meeting nobody was told of should not hold the slot
            if exc.kind is FailureKind.PERMANENT:
                with contextlib.suppress(httpx.HTTPError, ToolError):
                    await self._withdraw(url, stored)
            raise
        await self._mark_invited(meeting, stored, url)

    async def _mark_invited(self, meeting: Meeting, stored: Stored, url: str) -> None:
        """Best effort: the invite has left, so the action has succeeded whatever happens here; without the mark a
        later reconcile can only say UNKNOWN."""
        headers = {**ICS, **({"If-Match": stored.etag} if stored.etag else {})}
        try:
            response = await self.http.put(
                url, content=with_invite_mark(stored.ics, meeting.invite_message_id), headers=headers
            )
        except httpx.HTTPError as exc:
            log.warning("could not mark the meeting as invited", uid=meeting.uid, error=repr(exc))
            return
        if response.status_code not in (201, 204):
            log.warning("could not mark the meeting as invited", uid=meeting.uid, status=response.status_code)
