"""Reading what comes back to a tenant's bounce address, and the facts it means. Pure: stdlib `email`, no I/O.

Two kinds of report, each a `multipart/report` (RFC 6522):
- a delivery status notification (RFC 3464, `report-type=delivery-status`): per recipient an `Action` and a
  `Status`;
- an abuse report from a mailbox provider's feedback loop (ARF, RFC 5965, `report-type=feedback-report`).

What each recipient's line means:

    DSN  Action: failed, Status 5.x.x    hard bounce  ConsentWithdrawn(hard_bounce), EmailEngagement(bounced, permanent)
    DSN  Action: failed, Status 4.x.x    soft bounce  EmailEngagement(bounced, not permanent); consent unchanged
    DSN  Action: delayed                 nothing      a warning while the sending server still retries: the email
                                                      may yet arrive, and warnings repeat every few hours
    DSN  delivered / relayed / expanded  nothing
    ARF  Feedback-Type: abuse            complaint    ConsentWithdrawn(complaint), EmailEngagement(complained)

The engagement needs the original email's Message-ID, read from the returned message or its headers; without it
only the consent record is published. Anything that is not a report (a plain message, an autoreply) means nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.message import Message
from email.parser import BytesParser, Parser
from email.utils import collapse_rfc2231_value, getaddresses
from enum import StrEnum

from herald_core.consent import address_hash
from herald_core.contracts import (
    ConsentChannel,
    ConsentReason,
    ConsentWithdrawn,
    ContactFacts,
    Contract,
    EmailEngagement,
    EngagementKind,
)
from herald_core.text import MAX_DEPTH, text_problem
from herald_ingest.mail import header_date, nesting

#: `upstream_source` of everything this module publishes, and the de-duplication source
BOUNCES = "herald-bounces"


class Outcome(StrEnum):
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"


@dataclass(frozen=True)
class Problem:
    """One recipient's failed delivery or complaint, as the report states it."""

    recipient: str  # the address, lower-cased
    outcome: Outcome
    status: str | None  # the DSN's status code (`5.1.1`); None for a complaint
    occurred_at: datetime


@dataclass(frozen=True)
class Ignored:
    """Something in the report that means nothing to Herald, and why."""

    recipient: str | None  # None: the whole message
    code: str  # short and fixed (a metric label)
    reason: str  # in words, without any address (it goes on the audit)


@dataclass(frozen=True)
class Report:
    """What an inbound message says, read: the problems it reports and what it leaves aside."""

    report_id: str  # the report's own Message-ID, else `sha256:` of its bytes: a redelivery has the same
    problems: tuple[Problem, ...]
    ignored: tuple[Ignored, ...]
    original_message_id: str | None = None  # the Message-ID of the email the report is about
    original_action_id: str | None = None  # its X-Herald-Action-Id, when it was one of Herald's


class MalformedReport(Exception):
    """A report that says it is one but cannot be read as one (answered 422)."""

    def __init__(self, reason: str, report_id: str | None = None) -> None:
        super().__init__(reason)
        self.report_id = report_id


# ---------------------------------------------------------------- reading a report

_ORIGINAL_TYPES = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")
# an enhanced status code (RFC 3463), not a piece of an IP address or a version number
_STATUS = re.compile(r"(?<![\d.])([245])\.\d{1,3}\.\d{1,3}(?![\d.])")
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,498}>")
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+")
_ACTION_ID = re.compile(r"[0-9A-Za-z]{26}")  # a ULID


def is_report(raw: bytes) -> bool:
    """Whether `raw` says it is a report (`multipart/report`); anything else is read as a reply."""
    try:
        headers = BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)
        return headers.get_content_type() == "multipart/report"
    except (RecursionError, LookupError, ValueError, TypeError):
        return False


def read_report(raw: bytes, now: datetime) -> Report:
    """The report `raw` (one RFC 5322 message) is; `MalformedReport` if it is a report that cannot be read (also
    one whose parts nest deeper than `MAX_DEPTH`: a report has three levels, a bomb has thousands)."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except RecursionError as exc:
        raise MalformedReport(f"the message's parts nest deeper than {MAX_DEPTH} levels") from exc
    if nesting(message) > MAX_DEPTH:
        raise MalformedReport(f"the message's parts nest deeper than {MAX_DEPTH} levels")
    report_id = _message_id(message) or "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        if message.get_content_type() != "multipart/report":
            return Report(report_id, (), (Ignored(None, "not_a_report", _not_a_report(message)),))
        report_type = collapse_rfc2231_value(message.get_param("report-type") or "").strip().lower()[:60]
        if report_type == "delivery-status":
            problems, ignored = _delivery_status(message, header_date(_field(message, "Date"), now) or now)
        elif report_type == "feedback-report":
            problems, ignored = _feedback_report(message, header_date(_field(message, "Date"), now) or now)
        else:
            reason = f"a report of type {report_type or 'none'!r}, neither a delivery status nor an abuse report"
            return Report(report_id, (), (Ignored(None, "not_a_report", reason),))
    except MalformedReport as exc:
        exc.report_id = report_id
        raise
    original = _original(message)
    return Report(
        report_id,
        problems,
        ignored,
        original_message_id=_message_id(original) if original is not None else None,
        original_action_id=_action_id(original) if original is not None else None,
    )


def _not_a_report(message: Message) -> str:
    auto = (_field(message, "Auto-Submitted") or "").lower()[:60]
    if auto.startswith("auto-"):
        return f"an automatic message (Auto-Submitted: {auto}), not a delivery report"
    return f"a {message.get_content_type()} message, not a delivery report (multipart/report)"


def _delivery_status(message: Message, reported_at: datetime) -> tuple[tuple[Problem, ...], tuple[Ignored, ...]]:
    part = _part(message, "message/delivery-status", "message/global-delivery-status")
    if part is None:
        raise MalformedReport("a delivery-status report without its message/delivery-status part")
    groups = _field_groups(part)
    # RFC 3464 §2.1: the per-message fields come first, then one group per recipient
    recipients = groups[1:] if groups and not _names_recipient(groups[0]) else groups
    if not recipients:
        raise MalformedReport("the delivery status names no recipient")
    problems: list[Problem] = []
    ignored: list[Ignored] = []
    for number, fields in enumerate(recipients, start=1):
        where = f"recipient {number} of the delivery status"
        # Original-Recipient first: the address as Herald sent it, before any forwarding on the way
        recipient = _typed_address(_field(fields, "Original-Recipient")) or _typed_address(
            _field(fields, "Final-Recipient")
        )
        if recipient is None:
            raise MalformedReport(f"{where}: no Final-Recipient with an rfc822 address")
        action = (_field(fields, "Action") or "").lower()[:60]
        status = _status(fields)
        if action == "failed":
            if status is None:
                raise MalformedReport(f"{where}: Action failed without a Status")
            if status[0] == "2":
                raise MalformedReport(f"{where}: Action failed with the success status {status}")
            outcome = Outcome.HARD_BOUNCE if status[0] == "5" else Outcome.SOFT_BOUNCE
            occurred_at = header_date(_field(fields, "Last-Attempt-Date"), reported_at) or reported_at
            problems.append(Problem(recipient, outcome, status, occurred_at))
        elif action == "delayed":
            reason = f"delivery delayed ({status or 'no status'}), not failed: the sending server is still retrying"
            ignored.append(Ignored(recipient, "delayed", reason))
        elif action in ("delivered", "relayed", "expanded"):
            ignored.append(Ignored(recipient, "delivered", f"{action}, not a failure"))
        else:
            raise MalformedReport(f"{where}: Action {action or 'missing'!r} is not failed, delayed or delivered")
    return tuple(problems), tuple(ignored)


def _feedback_report(message: Message, reported_at: datetime) -> tuple[tuple[Problem, ...], tuple[Ignored, ...]]:
    part = _part(message, "message/feedback-report")
    groups = _field_groups(part) if part is not None else []
    if not groups:
        raise MalformedReport("a feedback report without its message/feedback-report part")
    fields = groups[0]
    feedback_type = (_field(fields, "Feedback-Type") or "").lower()[:60]
    if not feedback_type:
        raise MalformedReport("the feedback report has no Feedback-Type")
    if feedback_type != "abuse":
        return (), (Ignored(None, "not_a_complaint", f"feedback type {feedback_type!r}, not a complaint (abuse)"),)
    recipients = [_bare_address(value) for value in _fields(fields, "Original-Rcpt-To")]
    if not any(recipients):
        # Original-Rcpt-To is optional (RFC 5965 §3.2); Herald's emails have one recipient, named in To
        original = _original(message)
        recipients = [_bare_address(a) for _, a in getaddresses(_fields(original, "To"))] if original else []
    found = sorted({r for r in recipients if r})
    if not found:
        raise MalformedReport("the abuse report names no recipient (no Original-Rcpt-To, no original To)")
    return tuple(Problem(r, Outcome.COMPLAINT, None, reported_at) for r in found), ()


# ---------------------------------------------------------------- the facts a report means


def report_facts(
    report: Report, holders: Mapping[str, Sequence[ContactFacts]]
) -> tuple[list[tuple[tuple[str, str], Contract]], list[Ignored]]:
    """The facts to publish, each with its de-duplication key, for every contact holding a reported address
    (`holders`: lower-cased address → contacts); and what is left aside, with the report's own ignored lines.

    An address no contact holds is left aside ("unknown recipient"): a withdrawal needs a contact id, and one
    made up from the address would keep the address on the compacted consent topic under a key that erasing
    the real contact never clears.
    """
    items: list[tuple[tuple[str, str], Contract]] = []
    ignored = list(report.ignored)
    for problem in report.problems:
        contacts = holders.get(problem.recipient, ())
        if not contacts:
            ignored.append(Ignored(problem.recipient, "unknown_recipient", "unknown recipient"))
            continue
        if problem.outcome is Outcome.SOFT_BOUNCE and report.original_message_id is None:
            reason = "a soft bounce of an email the report does not identify (no original Message-ID)"
            ignored.append(Ignored(problem.recipient, "no_message_id", reason))
            continue
        # the address as a hash: the id ends up in the de-duplication table, which an erasure does not clear
        upstream_event_id = f"{report.report_id}/{address_hash(problem.recipient)[:16]}"
        for contact in contacts:
            for fact in _facts(problem, contact, report.original_message_id, upstream_event_id):
                items.append(((BOUNCES, f"{upstream_event_id}/{contact.contact_id}/{fact.TYPE}"), fact))
    return items, ignored


def _facts(problem: Problem, contact: ContactFacts, message_id: str | None, upstream_event_id: str) -> list[Contract]:
    common = {"upstream_source": BOUNCES, "upstream_event_id": upstream_event_id, "occurred_at": problem.occurred_at}
    facts: list[Contract] = []
    if problem.outcome is not Outcome.SOFT_BOUNCE:
        reason = ConsentReason.COMPLAINT if problem.outcome is Outcome.COMPLAINT else ConsentReason.HARD_BOUNCE
        facts.append(
            ConsentWithdrawn(
                contact_id=contact.contact_id,
                email=contact.email,
                channel=ConsentChannel.EMAIL,
                reason=reason,
                **common,
            )
        )
    if message_id is not None:
        complaint = problem.outcome is Outcome.COMPLAINT
        facts.append(
            EmailEngagement(
                contact_id=contact.contact_id,
                kind=EngagementKind.COMPLAINED if complaint else EngagementKind.BOUNCED,
                message_id=message_id,
                permanent=None if complaint else problem.outcome is Outcome.HARD_BOUNCE,
                **common,
            )
        )
    return facts


# ---------------------------------------------------------------- reading fields


def _field(fields: Message, name: str) -> str | None:
    """A header's text, unfolded; None when absent or unreadable (`policy.default` raises on some malformed
    values when a header is read, e.g. a Message-ID with nested brackets)."""
    values = _fields(fields, name)
    return values[0] if values else None


def _fields(fields: Message, name: str) -> list[str]:
    try:
        values = fields.get_all(name) or []
    except (HeaderParseError, LookupError, ValueError, TypeError):
        return []
    # a value no store could hold (a NUL, or a byte that is not text, kept by the parser as a lone surrogate)
    # is as unreadable as a malformed one
    texts = [" ".join(str(v).split()) for v in values]
    return [text for text in texts if text_problem(text) is None]


def _part(message: Message, *content_types: str) -> Message | None:
    """The report's first direct part of one of `content_types` (not one inside the returned message)."""
    parts = message.get_payload() if message.is_multipart() else []
    for part in parts if isinstance(parts, list) else []:
        if isinstance(part, Message) and part.get_content_type() in content_types:
            return part
    return None


def _field_groups(part: Message) -> list[Message]:
    """The part's groups of fields. The email package splits message/delivery-status into one Message per
    group itself; other message/* types (feedback-report, global-delivery-status) come as one Message whose
    body holds any further groups."""
    payload = part.get_payload()
    groups: list[Message] = []
    for group in payload if isinstance(payload, list) else []:
        if not isinstance(group, Message):
            continue
        groups.append(group)
        rest = group.get_payload()
        if isinstance(rest, str) and rest.strip():
            chunks = re.split(r"\r?\n[ \t]*\r?\n", rest)
            groups += [Parser(policy=policy.default).parsestr(c, headersonly=True) for c in chunks if c.strip()]
    return [g for g in groups if len(g)]


def _names_recipient(fields: Message) -> bool:
    return any(_fields(fields, name) for name in ("Final-Recipient", "Original-Recipient"))


def _typed_address(value: str | None) -> str | None:
    """The address of an `address-type; address` field (`rfc822; a@example.com`), lower-cased; None for another
    type (x400) or no address."""
    kind, separator, address = (value or "").partition(";")
    if not separator or kind.strip().lower() not in ("rfc822", "utf-8"):
        return None
    return _bare_address(address)


def _bare_address(value: str) -> str | None:
    address = value.strip().strip("<>").strip()
    return address.lower() if _ADDRESS.fullmatch(address) else None


def _status(fields: Message) -> str | None:
    """The recipient's status code; from the diagnostic when the Status field is missing or unreadable."""
    for name in ("Status", "Diagnostic-Code"):
        match = _STATUS.search(_field(fields, name) or "")
        if match:
            return match.group(0)
    return None


def _original(message: Message) -> Message | None:
    """The returned email (or just its headers), if the report carries it."""
    part = _part(message, *_ORIGINAL_TYPES)
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], Message) else None
    headers = part.get_payload(decode=True)  # text/rfc822-headers, its transfer encoding undone
    return (
        BytesParser(policy=policy.default).parsebytes(headers, headersonly=True) if isinstance(headers, bytes) else None
    )


def _message_id(message: Message) -> str | None:
    match = _MESSAGE_ID.search(_field(message, "Message-ID") or "")
    return match.group(0) if match else None


def _action_id(message: Message) -> str | None:
    value = (_field(message, "X-Herald-Action-Id") or "").strip()
    return value if _ACTION_ID.fullmatch(value) else None
