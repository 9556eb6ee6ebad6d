"""Reading a person's reply to one of Herald's emails, raw (RFC 5322): who sent it, which thread it is in, and only
what it says that is new. Pure: stdlib `email`, `mailparser_reply` for quoted history and signatures, no I/O.

What is read:
- the text: the first `text/plain` part that is not an attachment, else the first `text/html` one made text
  (block elements break lines, a `<blockquote>` is quoted history); decoded by its declared charset, strictly
  (no charset: ASCII, or UTF-8 that many senders leave undeclared). Then the quoted history ("On … wrote:",
  "-----Original Message-----", Outlook's From/Sent block, `>` lines) and the signature are removed by
  `mailparser_reply`, in every language it knows;
- the thread: `In-Reply-To` and `References` (the sender's client copies Herald's Message-IDs there);
- whether a person wrote it: RFC 3834 `Auto-Submitted: auto-replied`, the usual autoresponder headers
  (`X-Autoreply`, `X-Autorespond`, `Precedence: auto_reply`) or an out-of-office subject mark it out of office,
  with the day the text says the person is back; any other automatic message (`Auto-Submitted: auto-generated`,
  a bulk or list message) is not a reply and is set aside.

Refusals (`UnreadableReply`, a 4xx with the reason): no readable From, no text at all, a charset that cannot be
read or bytes that are not in it, text too large to be a reply, parts nested deeper than `MAX_DEPTH`.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses
from html.parser import HTMLParser

from dateutil import parser as dateparser
from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES
from pydantic import ValidationError

from herald_core.contracts import ActionExecuted, ExecutionStatus
from herald_core.text import MAX_DEPTH, text_problem
from herald_core.tools import CreateContactOutput
from herald_ingest.mail import header_date, nesting

#: `upstream_source` of the replies this edge publishes, and their de-duplication source
INBOUND = "herald-inbound"
#: the longest text a message may hold and still be a reply (decoded characters, quoted history included)
MAX_REPLY_CHARS = 200_000
#: the most of the new text a `ReplyReceived` carries
MAX_NEW_TEXT = 10_000

_MESSAGE_ID = re.compile(r"<[^<>\s]{1,498}>")
_ADDRESS = re.compile(r"[^@\s<>,;:\"()\[\]\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
_PARSER = EmailReplyParser(languages=[language for language in MAIL_LANGUAGES if language != "david"])


@dataclass(frozen=True)
class Reply:
    message_id: str  # its own Message-ID, else `sha256:` of its bytes: a redelivery has the same
    from_address: str  # lower-cased
    subject: str
    text: str  # the new text, at most MAX_NEW_TEXT characters
    clipped: bool  # the new text was longer
    in_reply_to: str | None
    references: tuple[str, ...]  # oldest first, at most 50
    sent_at: datetime  # its Date, never later than arrival
    out_of_office: bool = False
    returns_on: date | None = None
    automatic: str | None = None  # an automatic message that is not an out-of-office reply: why it is not a reply

    @property
    def thread(self) -> tuple[str, ...]:
        """The Message-IDs that may name the email it answers, the most telling first: In-Reply-To, then the
        References from the newest."""
        ids = [*([self.in_reply_to] if self.in_reply_to else []), *reversed(self.references)]
        return tuple(dict.fromkeys(ids))


class UnreadableReply(Exception):
    """A message that cannot be read as a reply: answered with `status` and `code`, the reason in words."""

    def __init__(self, status: int, code: str, reason: str, message_id: str | None = None) -> None:
        super().__init__(reason)
        self.status, self.code, self.reason, self.message_id = status, code, reason, message_id


def read_reply(raw: bytes, now: datetime) -> Reply:
    """The reply `raw` is, or `UnreadableReply`."""
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except RecursionError as exc:
        raise UnreadableReply(422, "too_deep", f"the message's parts nest deeper than {MAX_DEPTH} levels") from exc
    message_id = _first_id(_header(message, "Message-ID")) or "sha256:" + hashlib.sha256(raw).hexdigest()
    try:
        return _read(message, message_id, now)
    except UnreadableReply as exc:
        exc.message_id = message_id
        raise


def _read(message: Message, message_id: str, now: datetime) -> Reply:
    if nesting(message) > MAX_DEPTH:
        raise UnreadableReply(422, "too_deep", f"the message's parts nest deeper than {MAX_DEPTH} levels")
    sender = _sender(message)
    if sender is None:
        raise UnreadableReply(422, "no_sender", "the message has no readable From address")
    subject = (_header(message, "Subject") or "")[:300]
    whole = _text_of(message)
    new = _new_text(whole)
    references = tuple(_MESSAGE_ID.findall(_header(message, "References") or ""))[-50:]
    sent_at = header_date(_header(message, "Date"), now) or now
    out_of_office, automatic = _automatic(message, subject)
    return Reply(
        message_id=message_id,
        from_address=sender,
        subject=subject,
        text=new[:MAX_NEW_TEXT],
        clipped=len(new) > MAX_NEW_TEXT,
        in_reply_to=_first_id(_header(message, "In-Reply-To")),
        references=references,
        sent_at=sent_at,
        out_of_office=out_of_office,
        returns_on=return_date(whole, sent_at.date()) if out_of_office else None,
        automatic=automatic,
    )


# ---------------------------------------------------------------- the thread

_HERALD_LOCAL_PART = re.compile(r"^<([0-9a-z]{26})(?:-invite)?@[^<>@\s]+>$")


@dataclass(frozen=True)
class SentEmail:
    """One email Herald sent, as the executor reported it: what a reply's thread can name."""

    action_id: str
    contact_id: str
    workflow_id: str
    message_id: str | None  # None when the execution was in doubt (its Message-ID follows Herald's scheme)


def sent_email_of(executed: ActionExecuted) -> SentEmail | None:
    """The email an execution sent (or may have: one in doubt), else None (another tool, a failure)."""
    if executed.tool not in ("send_email", "schedule_meeting"):
        return None
    if executed.status is ExecutionStatus.FAILED:
        return None
    key = "message_id" if executed.tool == "send_email" else "invite_message_id"
    value = executed.result.get(key)
    message_id = value if isinstance(value, str) and _MESSAGE_ID.fullmatch(value) else None
    return SentEmail(executed.action_id, executed.contact_id, executed.workflow_id, message_id)


def referral_of(executed: ActionExecuted) -> CreateContactOutput | None:
    """The new contact an approved referral made in Herald's own contact store, else None (another tool, a
    failure, an address already known, or HubSpot's store: its own webhook announces the contact)."""
    if executed.tool != "create_contact" or executed.status is not ExecutionStatus.SUCCEEDED:
        return None
    try:
        made = CreateContactOutput.model_validate(executed.result)
    except ValidationError:
        return None
    return made if made.created and made.crm == "herald" else None


def action_of_message_id(message_id: str) -> str | None:
    """The action a Message-ID of Herald's scheme names (`<action id in lower case@domain>`), else None."""
    match = _HERALD_LOCAL_PART.match(message_id)
    return match.group(1).upper() if match else None


# ---------------------------------------------------------------- the text


def _text_of(message: Message) -> str:
    """The message's text, decoded: its first plain-text part, else its first HTML part as text."""
    plain = html = None
    for part in _parts(message):
        kind = part.get_content_type()
        if kind == "text/plain" and plain is None:
            plain = part
        elif kind == "text/html" and html is None:
            html = part
    chosen = plain or html
    if chosen is None:
        raise UnreadableReply(422, "no_text", "the message holds no text (no text/plain or text/html part)")
    text = _decoded(chosen)
    if chosen is html:
        text = html_text(text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text_problem(text) is not None:
        raise UnreadableReply(422, "undecodable", "the text holds characters no store can keep (a NUL)")
    return text


def _parts(message: Message) -> list[Message]:
    """The message's leaf parts in order, leaving out attachments and forwarded messages (their text is not the
    reply's)."""
    leaves: list[Message] = []
    pending = [message]
    while pending:
        part = pending.pop(0)
        if part.get_content_maintype() == "message":
            continue
        if part.is_multipart():
            payload = part.get_payload()
            pending = [p for p in payload if isinstance(p, Message)] + pending if isinstance(payload, list) else pending
            continue
        if (part.get_content_disposition() or "inline") == "attachment":
            continue
        leaves.append(part)
    return leaves


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    if len(data) > MAX_REPLY_CHARS * 4:
        raise UnreadableReply(413, "reply_too_large", f"the text is larger than a reply ({len(data)} bytes)")
    declared = part.get_content_charset()
    charset = declared or "utf-8"  # undeclared: ASCII, or the UTF-8 many clients leave undeclared
    try:
        codecs.lookup(charset)
    except LookupError as exc:
        raise UnreadableReply(422, "undecodable", f"the text's charset {charset[:60]!r} is unknown") from exc
    try:
        text = data.decode(charset)
    except (UnicodeDecodeError, ValueError) as exc:
        name = charset[:60] if declared else "ASCII or UTF-8 (no charset declared)"
        raise UnreadableReply(422, "undecodable", f"the text is not valid {name}") from exc
    if len(text) > MAX_REPLY_CHARS:
        raise UnreadableReply(413, "reply_too_large", f"the text is longer than a reply ({len(text)} characters)")
    return text


def _new_text(text: str) -> str:
    """What the reply adds: quoted history and signature removed; a message of nothing but quotes has none."""
    try:
        replies = _PARSER.read(text=text).replies
    except (RecursionError, ValueError):  # a pathological text: keep the whole (it is clipped later)
        return text.strip()
    body = replies[0].body if replies else ""
    # quoted lines left in it (a reply answering between the quotes, or a message that is only a quote) are not new
    kept = [line for line in body.split("\n") if not line.lstrip().startswith(">")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()


_BLOCKS = frozenset({"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "hr"})


class _HtmlText(HTMLParser):
    """HTML as the text a person reads: block elements break lines; what a `<blockquote>` (or Gmail's and
    Outlook's quote containers) holds is marked `> `, the way a plain-text client quotes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.quote = 0
        self.skip = 0
        self.stack: list[tuple[str, bool]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = " ".join(value or "" for name, value in attrs if name in ("class", "id")).lower()
        quoting = tag == "blockquote" or "gmail_quote" in classes or "divrplyfwdmsg" in classes
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        if tag in _BLOCKS or quoting:
            self._break()
        if tag not in ("br", "hr", "img", "meta", "link", "input"):
            self.stack.append((tag, quoting))
            self.quote += quoting

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip = max(self.skip - 1, 0)
        while self.stack:
            opened, quoting = self.stack.pop()
            self.quote -= quoting
            if opened == tag:
                break
        if tag in _BLOCKS or tag == "blockquote":
            self._break()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        words = re.sub(r"\s+", " ", data)
        if not self.lines[-1]:
            words = words.lstrip()
            if not words:
                return
            self.lines[-1] = "> " * self.quote
        self.lines[-1] += words

    def _break(self) -> None:
        if self.lines[-1]:
            self.lines.append("")


def html_text(html: str) -> str:
    reader = _HtmlText()
    reader.feed(html)
    reader.close()
    return "\n".join(re.sub(" {2,}", " ", line).rstrip() for line in reader.lines).strip()


# ---------------------------------------------------------------- automatic replies

_OUT_OF_OFFICE_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[- ]?(reply|response)|auto:|out of (the )?office|ooo\b|away from|"
    r"on vacation|abwesen|automatische antwort|réponse automatique|absence|respuesta automática|"
    r"fuera de la oficina|risposta automatica|automatisch antwoord|afwezig)",
    re.IGNORECASE,
)


def _automatic(message: Message, subject: str) -> tuple[bool, str | None]:
    """(out of office, why it is another automatic message): RFC 3834 first, then the usual headers."""
    submitted = (_header(message, "Auto-Submitted") or "no").strip().lower()[:60]
    responder = any(_header(message, name) for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Reply"))
    precedence = (_header(message, "Precedence") or "").strip().lower()[:60]
    if submitted.startswith("auto-replied") or responder or precedence == "auto_reply":
        return True, None
    if _OUT_OF_OFFICE_SUBJECT.match(subject):
        return True, None
    if submitted != "no":
        return False, f"an automatic message (Auto-Submitted: {submitted}), not a person's reply"
    if precedence in ("bulk", "list", "junk"):
        return False, f"a {precedence} message (Precedence: {precedence}), not a person's reply"
    return False, None


# "back on Monday 14 December", "returning 2026-12-14", "out of the office until Dec 14th", "zurück am 14.12.2026"
_RETURN_CUE = re.compile(
    r"\b(?:(?:be |i'?m |will be )?back|return(?:ing|s)?|until|till|through|thru|reachable again|"
    r"in the office|zurück|wieder da|ab dem|de retour|jusqu'au|regreso|hasta el)\b"
    r"(?:\s+(?:on|in the office on|to the office on|in the office|at work on|from|by|the|am|le|el))*\s*[:,]?\s*",
    re.IGNORECASE,
)


def return_date(text: str, today: date) -> date | None:
    """The day an out-of-office text says its writer is back, or None. A day without a year is the next such
    day; a date in the past or more than a year ahead is not believed. Numeric dates are read day first when
    the first number cannot be a month or the date is dotted (04.01.2027 is 4 January), else month first (04/12
    is April 12)."""
    for cue in _RETURN_CUE.finditer(text[:5000]):
        phrase = text[cue.end() : cue.end() + 40].split("\n", 1)[0]
        phrase = re.split(r"[;.!?](?!\d)|\b(?:and|with|but|for|if|please|und|et|y)\b", phrase, maxsplit=1)[0]
        if not re.search(r"\d|monday|tuesday|wednesday|thursday|friday|saturday|sunday", phrase, re.IGNORECASE):
            continue
        dotted = re.search(r"\b\d{1,2}\.\d{1,2}\.", phrase) is not None  # 04.01.2027: always day first
        try:
            default = datetime(today.year, today.month, today.day)
            parsed = dateparser.parse(phrase, fuzzy=True, default=default, dayfirst=dotted)
        except (ValueError, OverflowError, TypeError):
            continue
        day = parsed.date()
        if day < today and not re.search(r"\b\d{4}\b", phrase):
            day = day.replace(year=day.year + 1)
        if today <= day <= today + timedelta(days=366):
            return day
    return None


# ---------------------------------------------------------------- headers


def _header(message: Message, name: str) -> str | None:
    try:
        value = message.get(name)
    except (LookupError, ValueError, TypeError, IndexError):
        return None
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text if text_problem(text) is None else None


def _first_id(value: str | None) -> str | None:
    match = _MESSAGE_ID.search(value or "")
    return match.group(0) if match else None


def _sender(message: Message) -> str | None:
    for _, address in getaddresses([_header(message, "From") or ""]):
        if _ADDRESS.fullmatch(address.strip()):
            return address.strip().lower()
    return None
