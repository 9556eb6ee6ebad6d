"""The executor's decisions before a side effect, as pure functions, and the port every tool adapter fulfils.

What the ledger row for an action id says about a newly read approval:
- no row: first sight, claim it and act;
- same nonce, same Kafka position: the same record read again after a crash — never act blindly again:
  re-report what the ledger holds (`sent`, `failed`, `in_doubt`), or, found `claimed` (the crash cut a
  call off), resume it: the tool's downstream is asked first (`ToolAdapter.reconcile`);
- anything else: a replay of an approval (same or copied), refused.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from enum import StrEnum
from typing import Literal, Protocol
from urllib.parse import urlencode

from pydantic import BaseModel

from herald_core.contracts import ActionProposed, FailureKind, SendEmailInput, ToolFailure
from herald_core.tenants import TenantConfig

LedgerVerdict = Literal["act", "report_sent", "report_failed", "report_in_doubt", "resume", "replayed"]


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
    if row.state == "in_doubt":
        return "report_in_doubt"
    return "resume"


class Reconciled(StrEnum):
    """What a downstream says about an action whose call was cut off (a crash, a timeout)."""

    DONE = "done"  # the side effect is there: report it, never repeat it
    SAFE_TO_RUN = "safe_to_run"  # it is not there, or doing it again changes nothing: run it
    UNKNOWN = "unknown"  # the downstream cannot tell: in doubt, surfaced to a human


class ToolError(Exception):
    """A tool's failure, typed. `may_have_applied` says whether the downstream may have acted: a retryable
    failure is only retried when it certainly changed nothing (or repeating it changes nothing)."""

    def __init__(
        self,
        kind: FailureKind,
        code: str,
        message: str,
        *,
        may_have_applied: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.may_have_applied = may_have_applied
        self.retry_after = retry_after  # seconds the downstream asked us to wait (e.g. a 429's headers)

    @property
    def failure(self) -> ToolFailure:
        return ToolFailure(kind=self.kind, code=self.code, message=str(self)[:2000])


class ToolAdapter(Protocol):
    """One tool's side effect. `run` does it once for the action (keyed by its action id wherever the
    downstream allows), `reconcile` asks the downstream whether an interrupted call left it done."""

    tool: str

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> BaseModel: ...

    async def reconcile(self, action: ActionProposed, tenant: TenantConfig) -> tuple[Reconciled, BaseModel | None]: ...


def message_id(action_id: str, domain: str) -> str:
    """Derived from the action id: a downstream can tell a repeat, and the audit can find the email."""
    return f"<{action_id.lower()}@{domain}>"


def render_email(
    action: ActionProposed, *, sender_name: str, sender_address: str, unsubscribe_url: str, domain: str
) -> EmailMessage:
    email = action.input
    assert isinstance(email, SendEmailInput)
    message = EmailMessage()
    message["From"] = formataddr((sender_name, sender_address))
    message["To"] = formataddr((email.to_name or "", email.to))
    message["Subject"] = email.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = message_id(action.action_id, domain)
    if email.in_reply_to is not None:  # a follow-up in its thread (the ids are Herald's own, set by the planner)
        message["In-Reply-To"] = email.in_reply_to
        message["References"] = " ".join(dict.fromkeys([*email.references, email.in_reply_to]))
    link = f"{unsubscribe_url}?{urlencode({'t': action.tenant, 'c': action.contact.contact_id})}"
    message["List-Unsubscribe"] = f"<{link}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["X-Herald-Action-Id"] = action.action_id
    message.set_content(f"{email.body_text}\n\n--\nUnsubscribe: {link}\n")
    message.add_alternative(html_body(email.body_text, link), subtype="html")
    return message


def html_body(text: str, unsubscribe_link: str) -> str:
    """The approved plain text as HTML, nothing added but structure: paragraphs, line breaks, `- ` lists, and the
    unsubscribe link. Everything from the draft is escaped (a draft cannot inject markup or links)."""
    blocks: list[str] = []
    for paragraph in (p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()):
        run: list[str] = []  # consecutive lines of one kind: list items or text
        for line in [*paragraph.strip("\n").split("\n"), None]:
            kind = None if line is None else line.startswith("- ")
            if run and (line is None or kind != run[0].startswith("- ")):
                if run[0].startswith("- "):
                    blocks.append("<ul>" + "".join(f"<li>{html.escape(item[2:])}</li>" for item in run) + "</ul>")
                else:
                    blocks.append("<p>" + "<br>".join(html.escape(item) for item in run) + "</p>")
                run = []
            if line is not None:
                run.append(line)
    footer = f'<p style="color:#666;font-size:12px">--<br><a href="{html.escape(unsubscribe_link)}">Unsubscribe</a></p>'
    return f"<!doctype html><html><body>{''.join(blocks)}{footer}</body></html>\n"
