"""What the sequence tests share: leads posted as CloudEvents, the planner's clock moved (a restart with an
offset), the mailbox read per lead, and the planner's timers read back from Postgres."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage, Message
from typing import Any

import asyncpg
import httpx

from support import eventually, mails_to, part_of, post_event

DAY = 86_400.0


def lead(run: str, name: str, **facts: Any) -> dict[str, Any]:
    """A new lead's facts, at a domain of its own (so one lead's colleague is no one else's)."""
    contact_id = f"{name}-{run}"
    return {
        "contact_id": contact_id,
        "email": f"{name}@{name}-{run}.example",
        "first_name": name.capitalize(),
        "last_name": "Reyes",
        "company": "Northwind Freight",
        "job_title": "Head of Operations",
        "industry": "logistics",
        "lifecycle_stage": "lead",
        "timezone": "America/Chicago",
        **facts,
    }


def upstream(**fields: Any) -> dict[str, Any]:
    return {
        "upstream_source": "test",
        "upstream_event_id": f"u-{secrets.token_hex(5)}",
        "occurred_at": datetime.now(UTC).isoformat(),
        **fields,
    }


async def new_lead(herald, tenant: str, contact: dict[str, Any]) -> None:  # type: ignore[no-untyped-def]
    created = await post_event(herald, tenant, "herald.contact.created.v1", upstream(contact=contact))
    assert created.status_code == 202, created.text


async def reply_from(herald, tenant: str, contact_id: str, address: str | None = None) -> None:  # type: ignore[no-untyped-def]
    body = upstream(contact_id=contact_id, subject="Re: your note", snippet="Sounds interesting, call me.")
    if address is not None:
        body["from_address"] = address
    replied = await post_event(herald, tenant, "herald.message.replied.v1", body)
    assert replied.status_code == 202, replied.text


async def pending_review(herald, tenant: str, contact_id: str, what: str, timeout: float = 90) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The contact's first pending item in the review queue (the review API), once there is one."""
    async with herald.review_client() as client:

        async def item() -> dict[str, Any] | None:
            items = (await client.get("/v1/reviews", params={"tenant": tenant, "status": "pending"})).json()
            mine = [i for i in items if i["contact_id"] == contact_id]
            return mine[0] if mine else None

        found: dict[str, Any] = await eventually(item, timeout=timeout, what=what)
    return found


async def approve_review(herald, review_id: str, reviewer: str = "dana@acme.example") -> None:  # type: ignore[no-untyped-def]
    """A reviewer approves the item through the review API."""
    async with herald.review_client(reviewer) as client:
        approved = await client.post(f"/v1/reviews/{review_id}/approve", json={})
    assert approved.status_code == 200, approved.text


async def mails(herald, address: str, count: int, what: str, timeout: float = 90) -> list[Message]:  # type: ignore[no-untyped-def]
    """The emails to `address`, once there are `count` of them (oldest first)."""
    found: list[Message] = await eventually(
        lambda: m if len(m := mails_to(herald.maildir, address)) >= count else None, timeout=timeout, what=what
    )
    return found


@contextlib.contextmanager
def planner_clock(herald) -> Iterator[Callable[[float], None]]:  # type: ignore[no-untyped-def]
    """`move(days)`: the planner restarted with its clock that many days ahead; put back at the end."""
    name = "planner-0"
    replica = herald.services.replicas[name]

    def move(days: float) -> None:
        herald.services.stop(name)
        replica.env["HERALD_PLANNER_CLOCK_OFFSET_SECONDS"] = str(days * DAY)
        herald.services.start(name)

    try:
        yield move
    finally:
        if "HERALD_PLANNER_CLOCK_OFFSET_SECONDS" in replica.env:
            herald.services.stop(name)
            replica.env.pop("HERALD_PLANNER_CLOCK_OFFSET_SECONDS")
            herald.services.start(name)


async def timers_of(herald, tenant: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT contact_id, name, state, leases, due_at FROM planner.timers WHERE tenant = $1 "
            "ORDER BY contact_id, name",
            tenant,
        )
    finally:
        await conn.close()
    return [dict(r) for r in rows]


async def _run_rows(herald, tenant: str) -> list[asyncpg.Record]:  # type: ignore[no-untyped-def]
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        return await conn.fetch(
            "SELECT contact_id, workflow, state, data::text AS data FROM planner.workflow_runs WHERE tenant = $1",
            tenant,
        )
    finally:
        await conn.close()


async def runs_of(herald, tenant: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    return {r["contact_id"]: dict(r) for r in await _run_rows(herald, tenant)}


async def runs_by_workflow(herald, tenant: str) -> dict[tuple[str, str], dict[str, object]]:  # type: ignore[no-untyped-def]
    """Every run of the tenant by (contact, workflow): its state and its data."""
    rows = await _run_rows(herald, tenant)
    return {(r["contact_id"], r["workflow"]): {"state": r["state"], **json.loads(r["data"])} for r in rows}


def answer(to: Message, text: str, **headers: str) -> bytes:
    """A reply to a delivered email as a mail client writes it: in its thread, quoting it, with a signature."""
    reply = EmailMessage()
    reply["From"] = str(to["To"])
    reply["To"] = str(to["From"])
    reply["Subject"] = f"Re: {to['Subject']}"
    reply["Date"] = datetime.now(UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")
    reply["Message-ID"] = f"<{secrets.token_hex(8)}@mail.client.example>"
    reply["In-Reply-To"] = str(to["Message-ID"])
    reply["References"] = str(to["Message-ID"])
    for name, value in headers.items():
        del reply[name.replace("_", "-")]  # a header given replaces the default (Subject)
        reply[name.replace("_", "-")] = value
    quoted = "\n".join(f"> {line}" for line in part_of(to, "plain").splitlines())
    reply.set_content(f"{text}\n\n-- \nSent from my phone\n\nOn Monday, {to['From']} wrote:\n{quoted}\n")
    return reply.as_bytes()


async def post_reply(herald, tenant: str, raw: bytes) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(timeout=30) as client:
        posted = await client.post(
            f"{herald.services.ingest_url}/v1/inbound/{tenant}/email",
            content=raw,
            headers={"Content-Type": "message/rfc822"},
        )
    assert posted.status_code == 202 and posted.json()["accepted"] == 1, posted.text
