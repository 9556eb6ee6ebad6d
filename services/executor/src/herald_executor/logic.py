"""The executor's decisions before a side effect, as pure functions.

What the ledger row for an action id says about a newly read approval:
- no row: first sight, claim it and act;
- same nonce, same Kafka position: the same record read again after a crash — never act again,
  only re-report (`sent`), or surface it as in doubt (`claimed`: the crash may have been mid-send);
- anything else: a replay of an approval (same or copied), refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import Literal
from urllib.parse import urlencode

from herald_core.contracts import ActionProposed

LedgerVerdict = Literal["act", "report_sent", "report_failed", "surface_in_doubt", "replayed"]


@dataclass(frozen=True)
class LedgerRow:
    nonce: str
    source_partition: int
    source_offset: int
    state: str
    nonce_reused: bool = False  # the nonce was first presented by another record


def ledger_verdict(row: LedgerRow | None, *, nonce: str, partition: int, offset: int) -> LedgerVerdict:
    if row is None:
        return "act"
    if row.nonce_reused or row.nonce != nonce or (row.source_partition, row.source_offset) != (partition, offset):
        return "replayed"
    if row.state == "sent":
        return "report_sent"
    if row.state == "failed":
        return "report_failed"
    return "surface_in_doubt"


def message_id(action_id: str, domain: str) -> str:
    """Derived from the action id: a downstream can tell a repeat, and the audit can find the email."""
    return f"<{action_id.lower()}@{domain}>"


def render_email(
    action: ActionProposed, *, sender_name: str, sender_address: str, unsubscribe_url: str, domain: str
) -> EmailMessage:
    email = action.input
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender_address))
    message["To"] = formataddr((email.to_name or "", email.to))
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(action.action_id, domain)
    link = f"{unsubscribe_url}?{urlencode({'t': action.tenant, 'c': action.contact.contact_id})}"
    message["List-Unsubscribe"] = f"<{link}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Herald-Action-Id"] = action.action_id
    message.set_content(f"{email.body_text}\n\n--\nUnsubscribe: {link}\n")
    return message
