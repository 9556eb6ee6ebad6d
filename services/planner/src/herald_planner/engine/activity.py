"""Which contact an event is about, and what the planner keeps of it as the contact's activity."""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from herald_core.contracts import (
    ConsentWithdrawn,
    ContactCreated,
    ContactUpdated,
    Contract,
    EmailEngagement,
    EmailReplied,
    MeetingBooked,
    ReplyReceived,
)
from herald_core.envelope import Envelope
from herald_planner.engine.spec import Activity

#: addresses at these domains belong to people, not companies: a colleague's reply is never read from them
FREE_MAIL = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "icloud.com",
        "me.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.de",
        "web.de",
        "yandex.ru",
        "mail.ru",
        "qq.com",
        "163.com",
    }
)


def company_domain(address: str | None) -> str | None:
    """The company domain of an address (lower case), or None for no address or a free-mail one."""
    if not address or "@" not in address:
        return None
    domain = address.rsplit("@", 1)[1].lower()
    return None if domain in FREE_MAIL else domain


def contact_id_of(event: Contract) -> str | None:
    contact = getattr(event, "contact", None)
    if contact is not None:
        return str(contact.contact_id)
    value = getattr(event, "contact_id", None)
    return None if value is None else str(value)


@singledispatch
def facts_of(event: Contract) -> dict[str, Any]:
    return {}


@facts_of.register
def _(event: EmailReplied) -> dict[str, Any]:
    return {"in_reply_to": event.in_reply_to, "from_domain": company_domain(event.from_address)}


@facts_of.register
def _(event: ReplyReceived) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "in_reply_to": event.in_reply_to,
        "from_domain": company_domain(event.from_address),
        "out_of_office": event.out_of_office,
        "returns_on": event.returns_on.isoformat() if event.returns_on else None,
    }


@facts_of.register
def _(event: ConsentWithdrawn) -> dict[str, Any]:
    return {"reason": event.reason.value, "channel": event.channel.value}


@facts_of.register
def _(event: EmailEngagement) -> dict[str, Any]:
    return {"kind": event.kind.value, "permanent": event.permanent}


@facts_of.register
def _(event: MeetingBooked) -> dict[str, Any]:
    return {"starts_at": event.starts_at.isoformat()}


@facts_of.register
def _(event: ContactUpdated) -> dict[str, Any]:
    return {"lifecycle_stage": event.contact.lifecycle_stage, "changed_property": event.changed_property}


@facts_of.register
def _(event: ContactCreated) -> dict[str, Any]:
    return {"lifecycle_stage": event.contact.lifecycle_stage}


def activity_of(envelope: Envelope, event: Contract) -> Activity | None:
    contact_id = contact_id_of(event)
    if contact_id is None:
        return None
    return Activity(envelope.id, envelope.type, contact_id, envelope.time, facts_of(event))


def domain_of(event: Contract) -> str | None:
    """The company domain an event speaks from: the replying address, else the contact's own."""
    if isinstance(event, EmailReplied | ReplyReceived) and event.from_address:
        return company_domain(event.from_address)
    contact = getattr(event, "contact", None)
    return company_domain(contact.email) if contact is not None else None
