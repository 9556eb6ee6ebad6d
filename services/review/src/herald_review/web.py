"""The reviewers' web UI, served by the review service beside its JSON API and deciding through the same methods.

    GET  /ui                                  the queue: tenant, kind and status filters, oldest first
    GET  /ui/reviews/{review_id}              one item: the proposed action, or what the executor said
    POST /ui/reviews/{review_id}/approve      reviewer, reason?            → 303 to the queue
    POST /ui/reviews/{review_id}/reject       reviewer, reason             → 303 to the queue
    POST /ui/reviews/{review_id}/resolve      reviewer, outcome, reason    → 303 to the queue (in doubt)
    GET  /ui/explain/{action_id}              "why did it do that?": the action's story from the audit
    GET  /ui/audit                            the audit, newest first: tenant, contact, action, rule, since, until
    GET  /ui/static/review.css                the stylesheet, shipped in the package

Everything shown was written by someone Herald does not trust — a draft is LLM output, names and notes come
from upstream systems — so templates autoescape every value and the Content-Security-Policy allows no script
at all: a missed escape still could not run. The UI does not sign people in itself: an authenticating proxy in
front of it (oauth2-proxy or the like) names the person in a header, believed only from the proxy's addresses
(`HERALD_AUTH_TRUSTED_PROXIES`), or a client sends an identity provider's bearer token. Who decides is that
person, never a typed name; what they see and may decide follows their roles per tenant (401 and 403 pages
otherwise). Forms carry a per-session CSRF token (a cookie and a hidden field, compared in constant time); a POST
without it changes nothing.
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import jinja2
import structlog
from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import Counter
from pydantic import ValidationError
from starlette.datastructures import FormData

from herald_core.auth.access import AccessDenied, Caller, Permission
from herald_core.auth.callers import Authenticated
from herald_core.contracts import ActionExecuted, ActionProposed, DraftEdit, ReviewDecision, SendEmailInput
from herald_core.observability import get_logger
from herald_review.adapters.audit_index import AuditIndex
from herald_review.decisions import Review, readable_story
from herald_review.errors import ReviewError
from herald_review.logic import Approve, Reject, Resolve

CSRF_COOKIE = "herald_csrf"
CSRF_FIELD = "csrf_token"
FLASH_COOKIE = "herald_flash"
COOKIE_PATH = "/ui"
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{32,128}$")
STATUSES = ("pending", "approved", "rejected", "happened", "did_not_happen")
KINDS = ("approval", "in_doubt")

SECURITY_HEADERS = {
    # no inline script, no inline style, nothing from elsewhere; forms post back here only
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

UI_SUBMISSIONS = Counter(
    "herald_review_ui_submissions_total",
    "Decision forms submitted in the web UI, by form and result (decided, invalid, conflict, not_found, forbidden).",
    ["form", "result"],
)
UI_PAGES = Counter("herald_review_ui_pages_total", "Web UI pages served, by page and status code.", ["page", "status"])
log = get_logger("herald.review.web")

FIELD_REQUIRED = {
    "reason": "Say why: the reason goes to the guard, the audit and the planner's memory.",
    "outcome": "Choose what the check found.",
}
# each form read as the JSON API's body of the same decision, from its own fields only
FORMS: dict[str, tuple[type[Approve] | type[Reject] | type[Resolve], tuple[str, ...]]] = {
    "approve": (Approve, ("reason",)),
    "reject": (Reject, ("reason",)),
    "resolve": (Resolve, ("outcome", "reason")),
}
RESOLVE_REASON_REQUIRED = "Say how it was checked (the mailbox, the CRM, the calendar …): it goes into the audit."

AUDIT_FILTERS = ("tenant", "contact_id", "action_id", "rule", "since", "until")
MOMENT_PROBLEM = "Not a date or time: write a date, 2026-11-27, or a time in UTC, 2026-11-27T14:30."
# an audit record's type as a marketer or a compliance officer says it; some are refined from the body
AUDIT_TYPES = {
    "herald.contact.created.v1": "contact created",
    "herald.contact.updated.v1": "contact updated",
    "herald.contact.erased.v1": "contact erased",
    "herald.consent.withdrawn.v1": "consent withdrawn",
    "herald.consent.granted.v1": "consent granted",
    "herald.message.replied.v1": "reply received",
    "herald.message.engagement.v1": "email engagement",
    "herald.meeting.booked.v1": "meeting booked",
    "herald.plan.created.v1": "plan made",
    "herald.action.proposed.v1": "action proposed",
    "herald.action.approved.v1": "approved by guard",
    "herald.action.blocked.v1": "blocked by guard",
    "herald.action.escalated.v1": "sent to review",
    "herald.action.deferred.v1": "deferred by guard",
    "herald.review.requested.v1": "review requested",
    "herald.review.decided.v1": "decided by reviewer",
    "herald.action.executed.v1": "executed",
    "herald.action.refused.v1": "refused by executor",
    "herald.execution.resolved.v1": "resolved",
    "herald.policy.published.v1": "policy published",
    "herald.control.kill-switch.v1": "kill switch changed",
    "herald.control.llm-budget.v1": "LLM budget spent",
    "herald.llm.usage.v1": "LLM tokens used",
    "herald.document.submitted.v1": "document submitted",
    "herald.document.indexed.v1": "document indexed",
    "herald.document.deleted.v1": "document deleted",
    "herald.document.refused.v1": "document refused",
    "herald.event.rejected.v1": "event refused at the edge",
    "herald.dead-lettered.v1": "dead-lettered",
}
TOOL_NOUNS = {
    "send_email": "email",
    "update_crm_record": "CRM update",
    "create_contact": "new contact",
    "schedule_meeting": "meeting",
    "generate_image": "image",
    "fetch_campaign_stats": "campaign stats request",
    "find_free_slots": "free slots request",
}
TOOL_DONE = {
    "send_email": "sent",
    "update_crm_record": "CRM updated",
    "create_contact": "contact created",
    "schedule_meeting": "meeting scheduled",
    "generate_image": "image made",
    "fetch_campaign_stats": "campaign stats read",
    "find_free_slots": "free slots read",
}
SUMMARY_CHARS = 200
NO_BODY = "no body kept: an erased contact's records keep only their ids, type and time"


# ---------------------------------------------------------------- pure views (no I/O)


def age(created_at: str, now: datetime) -> str:
    """How long an item has waited, in the largest unit that says it."""
    seconds = max(0, int((now - datetime.fromisoformat(created_at)).total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86_400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86_400} d {seconds % 86_400 // 3600} h"


def _proposed(item: Mapping[str, Any]) -> ActionProposed | None:
    try:
        return ActionProposed.model_validate(item["action"])
    except ValidationError:
        return None  # a row written under an older contract: the raw fields still show


def _executed(item: Mapping[str, Any]) -> ActionExecuted | None:
    try:
        return ActionExecuted.model_validate(item["action"])
    except ValidationError:
        return None


def _contact_line(item: Mapping[str, Any]) -> str:
    contact = item["action"].get("contact") if item["kind"] == "approval" else None
    if not isinstance(contact, dict):
        return str(item["contact_id"])
    return _who(contact) or str(item["contact_id"])


def _who(contact: Mapping[str, Any]) -> str:
    name = " ".join(str(part) for part in (contact.get("first_name"), contact.get("last_name")) if part)
    return " · ".join(str(part) for part in (name, contact.get("email"), contact.get("company")) if part)


def queue_row(item: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """One line of the queue: what it is, for whom, and why a person has to look at it."""
    return {
        "review_id": item["review_id"],
        "kind": item["kind"],
        "tenant": item["tenant"],
        "contact": _contact_line(item),
        "tool": item["action"].get("tool", ""),
        "reason": item["reason"],
        "rules": [r["rule"] for r in item["rules"] if r.get("outcome") != "pass"],
        "status": item["status"],
        "age": age(item["created_at"], now),
        "created_at": item["created_at"],
    }


def _facts(contact: Mapping[str, Any]) -> list[tuple[str, str]]:
    labels = {
        "contact_id": "contact id",
        "first_name": "first name",
        "last_name": "last name",
        "email": "email",
        "company": "company",
        "job_title": "job title",
        "industry": "industry",
        "lifecycle_stage": "lifecycle stage",
        "timezone": "time zone",
        "vip": "VIP",
        "deal_value_minor": "open deal (minor units)",
    }
    facts = []
    for key, label in labels.items():
        value = contact.get(key)
        if value in (None, "", False, 0) and key not in ("vip",):
            continue
        facts.append((label, "yes" if value is True else "no" if value is False else str(value)))
    return facts


def _fields(values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A tool input that is not an email, as name/value lines."""
    lines = []
    for key, value in values.items():
        if isinstance(value, dict):
            lines += [(f"{key}.{k}", "" if v is None else str(v)) for k, v in value.items()]
        elif value not in (None, ""):
            lines.append((key, str(value)))
    return lines


def item_view(item: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """What the item page shows: the action as a reviewer reads it, or what the executor said about it."""
    view: dict[str, Any] = {
        "age": age(item["created_at"], now),
        "review_id": item["review_id"],
        "kind": item["kind"],
        "tenant": item["tenant"],
        "action_id": item["action_id"],
        "contact_id": item["contact_id"],
        "status": item["status"],
        "pending": item["status"] == "pending",
        "reason": item["reason"],
        "rules": item["rules"],
        "reviewer": item["reviewer"],
        "decision_reason": item["decision_reason"],
        "edit": item.get("edit"),
        "approvals_needed": item.get("approvals_needed", 1),
        "approvals": item.get("approvals", []),
        "created_at": item["created_at"],
        "decided_at": item["decided_at"],
        "tool": item["action"].get("tool", ""),
    }
    if item["kind"] == "in_doubt":
        executed = _executed(item)
        raw = item["action"]
        view |= {
            "summary": raw.get("summary") or "",
            "workflow_id": raw.get("workflow_id") or "",
            "failure": raw.get("failure"),
            "error": raw.get("error") or "",
            "result": _fields(raw.get("result") or {}),
            "described": (executed.summary if executed else None) or raw.get("tool", ""),
        }
        return view
    action = _proposed(item)
    raw = item["action"]
    email = action.input if action is not None and isinstance(action.input, SendEmailInput) else None
    view |= {
        "email": None
        if email is None
        else {"to": email.to, "to_name": email.to_name, "subject": email.subject, "body": email.body_text},
        "input": [] if email is not None else _fields(raw.get("input") or {}),
        "described": action.describe() if action is not None else raw.get("tool", ""),
        "rationale": raw.get("rationale") or "",
        "confidence": raw.get("confidence"),
        "drafted_by": raw.get("drafted_by"),
        "campaign_id": raw.get("campaign_id"),
        "variant": raw.get("variant"),
        "workflow_id": raw.get("workflow_id") or "",
        "evidence": raw.get("evidence") or [],
        "contact": _facts(raw.get("contact") or {}),
    }
    return view


def field_errors(error: ValidationError, *, resolving: bool = False) -> dict[str, str]:
    """A form's validation problems by field, in words a reviewer can act on."""
    errors: dict[str, str] = {}
    for problem in error.errors():
        field = str(problem["loc"][0]) if problem["loc"] else "form"
        if problem["type"] in ("missing", "string_too_short"):
            message = RESOLVE_REASON_REQUIRED if resolving and field == "reason" else FIELD_REQUIRED.get(field)
        else:
            message = None
        errors.setdefault(field, message or str(problem["msg"]))
    return errors


def edit_of(form: FormData) -> DraftEdit | None:
    """The email as the reviewer left it in the approve form, as an edit (None when the form has no email).
    Browsers send a textarea's line breaks as CRLF: read back as LF, an untouched body is the draft itself, and
    the review turns an edit that changes nothing into none."""
    subject, body = form.get("subject"), form.get("body_text")
    typed = {k: v for k, v in (("subject", subject), ("body_text", body)) if isinstance(v, str)}
    if not typed:
        return None
    return DraftEdit.model_validate({k: v.replace("\r\n", "\n") for k, v in typed.items()})


def _text(body: Mapping[str, Any], *path: str) -> str:
    """A value deep in a record's body, as text ("" when absent): bodies come from every contract version."""
    value: Any = body
    for key in path:
        value = value.get(key) if isinstance(value, Mapping) else None
    return "" if value is None or isinstance(value, Mapping | list) else str(value)


def _joined(*parts: str, sep: str = " — ") -> str:
    return sep.join(part for part in parts if part)


def _one_line(text: str) -> str:
    words = " ".join(text.split())
    return words if len(words) <= SUMMARY_CHARS else words[: SUMMARY_CHARS - 1] + "…"


def _action_words(action: Any) -> tuple[str, str]:
    """A proposed action in a few words, and the words it puts in front of someone (an email's body)."""
    try:
        proposed = ActionProposed.model_validate(action)
    except ValidationError:
        raw = action if isinstance(action, Mapping) else {}
        return _joined(_text(raw, "tool"), _text(raw, "input", "subject"), sep=" "), _text(raw, "input", "body_text")
    return proposed.describe(), proposed.text[1]


def type_in_words(record_type: str, body: Mapping[str, Any] | None) -> str:
    """What kind of record it is, in the words of the people reading the audit (the type itself if unknown)."""
    found = body if isinstance(body, Mapping) else {}
    tool = _text(found, "tool") or _text(found, "action", "tool")
    match record_type:
        case "herald.action.proposed.v1" if tool:
            return f"{TOOL_NOUNS.get(tool, tool)} proposed"
        case "herald.action.approved.v1" if found.get("stage") in ("review", "release"):
            return f"approved by guard {'after review' if found['stage'] == 'review' else 'on release'}"
        case "herald.review.decided.v1" if found.get("decision") in ("approved", "rejected"):
            return f"{found['decision']} by reviewer"
        case "herald.action.executed.v1" if found.get("status") == "succeeded":
            return TOOL_DONE.get(tool, "done")
        case "herald.action.executed.v1" if found.get("status") in ("failed", "in_doubt"):
            return str(found["status"]).replace("_", " ")
        case "herald.control.kill-switch.v1" if "engaged" in found:
            return f"kill switch {'engaged' if found['engaged'] else 'released'}"
        case "herald.message.engagement.v1" if found.get("kind"):
            return f"email {found['kind']}"
    return AUDIT_TYPES.get(record_type, record_type)


def audit_summary(record_type: str, body: Mapping[str, Any] | None) -> str:
    """One line on what the record says, drawn from its body. The words are the record's own — a draft, a
    reviewer's reason, an upstream note — so the page escapes them; here they are only cut to one line."""
    if not isinstance(body, Mapping):
        return NO_BODY
    match record_type:
        case "herald.action.proposed.v1":
            text = _joined(*_action_words(body))
        case "herald.action.approved.v1":
            text = _joined(_action_words(body.get("action"))[0], _text(body, "approval", "approved_by"))
        case "herald.action.deferred.v1":
            text = _joined(_text(body, "reason"), _joined("until", _text(body, "release_at"), sep=" "))
        case "herald.review.decided.v1":
            edited = "approved with the reviewer's wording" if body.get("edit") else ""
            text = _joined(_text(body, "reviewer"), _text(body, "reason"), edited, sep=": ")
        case "herald.action.executed.v1":
            text = _joined(_text(body, "summary") or _text(body, "tool"), _text(body, "error"))
        case "herald.action.refused.v1":
            text = _joined(_text(body, "reason").replace("_", " "), _text(body, "detail"), sep=": ")
        case "herald.execution.resolved.v1":
            outcome = _text(body, "outcome").replace("_", " ")
            text = _joined(f"{outcome} (checked by {_text(body, 'reviewer')})", _text(body, "reason"), sep=": ")
        case "herald.consent.withdrawn.v1" | "herald.consent.granted.v1":
            source = _text(body, "upstream_source")
            text = _joined(_text(body, "channel"), _text(body, "reason").replace("_", " "), sep=": ")
            text = _joined(text, f"(from {source})" if source else "", sep=" ")
        case "herald.contact.created.v1":
            text = _who(body.get("contact") or {})
        case "herald.contact.updated.v1":
            changed = _joined(_text(body, "changed_property"), _text(body, "new_value"), sep=" = ")
            text = changed or _who(body.get("contact") or {})
        case "herald.contact.erased.v1":
            text = _joined("personal data erased", f"(asked through {_text(body, 'upstream_source')})", sep=" ")
        case "herald.message.replied.v1":
            text = _joined(_text(body, "subject"), _text(body, "snippet"))
        case "herald.message.engagement.v1":
            text = _joined(_text(body, "message_id"), _text(body, "url"))
        case "herald.meeting.booked.v1":
            text = _joined(_text(body, "title"), _text(body, "starts_at"), sep=" at ")
        case "herald.plan.created.v1":
            text = _joined(
                _joined(_text(body, "workflow"), _text(body, "planner"), sep=" by the "), _text(body, "query")
            )
        case "herald.policy.published.v1":
            version = (
                f"version {_text(body, 'version')} ({_text(body, 'mode') or 'live'}) by {_text(body, 'published_by')}"
            )
            text = _joined(version, _text(body, "note"), sep=": ")
        case "herald.control.kill-switch.v1":
            scope = _text(body, "tenant") or "every tenant"
            text = _joined(f"{scope}, set by {_text(body, 'set_by')}", _text(body, "reason"), sep=": ")
        case "herald.control.llm-budget.v1":
            text = f"{_text(body, 'used_tokens')} of {_text(body, 'budget_tokens')} tokens on {_text(body, 'day')}"
        case "herald.llm.usage.v1":
            tokens = f"{_text(body, 'input_tokens')} tokens in, {_text(body, 'output_tokens')} out"
            text = _joined(_text(body, "model"), _text(body, "purpose"), tokens, sep=", ")
        case "herald.document.submitted.v1" | "herald.document.deleted.v1" | "herald.document.refused.v1":
            collection = _text(body, "collection")
            document = _joined(_text(body, "doc_id"), f"({collection})" if collection else "", sep=" ")
            text = _joined(document, _text(body, "reason"), sep=": ")
        case "herald.document.indexed.v1":
            text = _joined(_text(body, "doc_id"), _text(body, "status"), f"{_text(body, 'chunks')} chunks", sep=", ")
        case "herald.event.rejected.v1":
            text = _joined(
                f"{_text(body, 'status_code')} at {_text(body, 'endpoint')}", _text(body, "reason"), sep=": "
            )
        case "herald.dead-lettered.v1":
            text = _joined(
                f"{_text(body, 'consumer')} could not take a record of {_text(body, 'original_topic')}",
                _text(body, "reason"),
                sep=": ",
            )
        case _:  # blocked, escalated, review requested, and types added later
            found = (_text(body, key) for key in ("reason", "detail", "summary", "title", "subject", "doc_id"))
            text = next((value for value in found if value), "")
    return _one_line(text)


def audit_rules(record: Mapping[str, Any]) -> list[str]:
    """The rule a record names (a block's), else those of its rule hits that did not pass (an escalation's)."""
    if record.get("rule"):
        return [str(record["rule"])]
    body = record.get("body")
    hits = body.get("rules") if isinstance(body, Mapping) else None
    return [
        str(hit["rule"])
        for hit in hits or []
        if isinstance(hit, Mapping) and hit.get("rule") and hit.get("outcome") not in (None, "pass")
    ]


def audit_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """One line of the audit page: when, what, for whom, which action and rule, and what it says."""
    at = datetime.fromisoformat(record["occurred_at"]).astimezone(UTC)
    return {
        "key": f"{record['partition']}-{record['offset']}",
        "type": record["type"],
        "what": type_in_words(record["type"], record["body"]),
        "tenant": record["tenant"],
        "at": f"{at:%Y-%m-%d %H:%M:%S} UTC",
        "occurred_at": record["occurred_at"],
        "contact_id": record["contact_id"],
        "action_id": record["action_id"],
        "rules": audit_rules(record),
        "summary": audit_summary(record["type"], record["body"]),
        # the record held what the index could not keep as it was (a NUL, a body that is not JSON …)
        "note": record.get("body_note"),
    }


def moment(text: str, *, end_of_day: bool = False) -> datetime:
    """A date or a time typed in the audit search, in UTC. A date alone is its day's start — or, for `until`
    (`end_of_day`), the next day's start, so that "until 27 November" includes the 27th. ValueError if neither."""
    try:
        day = date.fromisoformat(text)
    except ValueError:
        at = datetime.fromisoformat(text)
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return start + timedelta(days=1) if end_of_day else start


def audit_criteria(values: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The audit form's filters as `AuditIndex.search`'s arguments, and its problems by field (search only when
    there are none). Without a tenant nothing is searched: each tenant's audit is read on its own."""
    filled = {name: values.get(name, "").strip() for name in AUDIT_FILTERS}
    criteria: dict[str, Any] = {name: filled[name] or None for name in ("tenant", "contact_id", "action_id", "rule")}
    errors: dict[str, str] = {}
    for name in ("since", "until"):
        try:
            criteria[name] = moment(filled[name], end_of_day=name == "until") if filled[name] else None
        except (ValueError, OverflowError):  # not a date, or a day past the calendar's end
            errors[name] = MOMENT_PROBLEM
    if criteria.get("since") and criteria.get("until") and criteria["until"] <= criteria["since"]:
        errors["until"] = "Until must come after since: nothing happened between them."
    if not filled["tenant"] and any(filled.values()):
        errors["tenant"] = "Name the tenant: each tenant's audit is searched on its own."
    return criteria, errors


def _filled(form: FormData, *names: str) -> dict[str, str]:
    """The named fields that were filled in, trimmed: a reason of spaces is no reason."""
    values = {}
    for name in names:
        value = form.get(name)
        if isinstance(value, str) and value.strip():
            values[name] = value.strip()
    return values


# ---------------------------------------------------------------- wiring


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("herald_review", "templates"),
        autoescape=True,  # every value, whatever the file name: drafts and names are untrusted
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return Jinja2Templates(env=env)


class _CsrfRefused(Exception):
    pass


TEMPLATES = _templates()


def page_for_denied(request: Request, error: AccessDenied) -> Response:
    """The 401 / 403 page: who the UI could not recognise, or what the signed-in person may not see or do."""
    if error.status == 401:
        title = "Sign in first"
        message = (
            "This review UI knows nobody on this request, so it shows nothing. Open it through your organisation's "
            f"sign-in (the authenticating proxy in front of it). ({error.detail})"
        )
    else:
        title = "Not yours to see"
        message = f"You are signed in, but {error.detail}. Ask the tenant's admin for the role."
    context = {"base": request.scope.get("root_path", ""), "signed_in": None, "flash": None, "title": title}
    response = TEMPLATES.TemplateResponse(request, "error.html", context | {"message": message}, error.status)
    UI_PAGES.labels("error", str(error.status)).inc()
    return response


def add_web_ui(http: FastAPI, review: Review, index: AuditIndex, page_size: int = 100) -> None:
    """Serve the reviewers' web UI under /ui on the service's HTTP app (`page_size` rows a page of the queue
    and of the audit); every page knows its caller (`Authenticated`)."""
    templates = TEMPLATES
    http.mount("/ui/static", StaticFiles(packages=[("herald_review", "static")]), name="ui-static")

    @http.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        if request.url.path == "/ui" or request.url.path.startswith("/ui/"):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            if not request.url.path.startswith("/ui/static/"):
                response.headers["Cache-Control"] = "no-store"  # pages hold drafts and contacts' data
        return response

    def secure(request: Request) -> bool:
        return request.url.scheme == "https" or request.headers.get("x-forwarded-proto", "").lower() == "https"

    def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=secure(request),
        )

    def page(
        request: Request,
        caller: Caller,
        name: str,
        context: dict[str, Any],
        status_code: int = 200,
        *,
        flash: str | None = None,
    ) -> Response:
        """Render a page with what every page needs: the session's CSRF token, who is signed in, a flash."""
        token = request.cookies.get(CSRF_COOKIE, "")
        fresh = not _TOKEN.match(token)
        if fresh:
            token = secrets.token_urlsafe(32)
        context = {
            "base": request.scope.get("root_path", ""),
            "csrf_token": token,
            "signed_in": caller,  # not `caller`: Jinja reserves that name inside macros
            "flash": flash,
            **context,
        }
        response = templates.TemplateResponse(request, name, context, status_code=status_code)
        if fresh:
            set_cookie(request, response, CSRF_COOKIE, token, None)
        UI_PAGES.labels(name.removesuffix(".html"), str(status_code)).inc()
        return response

    async def checked_form(request: Request, form_name: str) -> FormData:
        """The posted form, once its CSRF token matches the session's cookie."""
        form = await request.form()
        sent = form.get(CSRF_FIELD)
        cookie = request.cookies.get(CSRF_COOKIE, "")
        if not (isinstance(sent, str) and cookie and hmac.compare_digest(sent.encode(), cookie.encode())):
            UI_SUBMISSIONS.labels(form_name, "forbidden").inc()
            log.warning("web ui form refused: csrf token missing or wrong", form=form_name, path=request.url.path)
            raise _CsrfRefused
        return form

    def forbidden(request: Request, caller: Caller) -> Response:
        return page(
            request,
            caller,
            "error.html",
            {
                "title": "Form refused",
                "message": "This form did not come from a page of this review UI in your session, so nothing was "
                "changed. Open the item again and decide from there.",
            },
            403,
        )

    def not_found(request: Request, caller: Caller, what: str) -> Response:
        return page(request, caller, "error.html", {"title": "Not found", "message": what}, 404)

    async def item_page(
        request: Request,
        caller: Caller,
        review_id: str,
        *,
        status_code: int = 200,
        values: Mapping[str, str] | None = None,
        errors: Mapping[str, str] | None = None,
        conflict: str | None = None,
    ) -> Response:
        try:
            item = await review.readable_item(caller, review_id)
        except ReviewError:
            return not_found(request, caller, f"There is no review item {review_id}.")
        context = {
            "item": item_view(item, datetime.now(UTC)),
            "values": dict(values or {}),
            "errors": dict(errors or {}),
            "conflict": conflict,
        }
        return page(request, caller, "item.html", context, status_code)

    def decided(request: Request, message: str) -> Response:
        """Back to the queue (Post/Redirect/Get), with what was done said once."""
        response = RedirectResponse(f"{request.scope.get('root_path', '')}/ui", status_code=303)
        set_cookie(request, response, FLASH_COOKIE, quote(message), 60)
        return response

    async def submit(request: Request, caller: Caller, review_id: str, form_name: str) -> Response:
        try:
            form = await checked_form(request, form_name)
        except _CsrfRefused:
            return forbidden(request, caller)
        model, fields = FORMS[form_name]
        values = _filled(form, *fields)
        try:
            body = model.model_validate(values)
        except ValidationError as error:
            UI_SUBMISSIONS.labels(form_name, "invalid").inc()
            problems = field_errors(error, resolving=form_name == "resolve")
            log.info("web ui form invalid", review_id=review_id, form=form_name, fields=sorted(problems))
            return await item_page(request, caller, review_id, status_code=422, values=values, errors=problems)
        edit = None
        if isinstance(body, Approve):
            try:
                edit = edit_of(form)
            except ValidationError as error:
                UI_SUBMISSIONS.labels(form_name, "invalid").inc()
                typed = {k: str(form.get(k) or "") for k in ("subject", "body_text")}
                problems = field_errors(error)
                return await item_page(
                    request, caller, review_id, status_code=422, values={**values, **typed}, errors=problems
                )
        with structlog.contextvars.bound_contextvars(via="web_ui"):
            try:
                if isinstance(body, Resolve):
                    item = await review.resolve(review_id, caller, body)
                else:
                    assert isinstance(body, Approve | Reject)
                    decision = ReviewDecision.APPROVED if isinstance(body, Approve) else ReviewDecision.REJECTED
                    item = await review.decide(review_id, decision, caller, body.reason, edit)
            except ReviewError as error:
                if error.status == 404:
                    UI_SUBMISSIONS.labels(form_name, "not_found").inc()
                    return not_found(request, caller, f"There is no review item {review_id}.")
                UI_SUBMISSIONS.labels(form_name, "conflict").inc()
                log.info("web ui decision refused", review_id=review_id, form=form_name, error=error.error)
                return await item_page(
                    request,
                    caller,
                    review_id,
                    status_code=error.status,
                    conflict=_conflict_message(error.as_detail(), form_name),
                )
        UI_SUBMISSIONS.labels(form_name, "decided").inc()
        view = item_view(item, datetime.now(UTC))
        if item["status"] == "pending":  # a high-risk item's first approval
            message = f"Approved once: {view['described']} (review {review_id}) — a second approver must approve it too"
            return decided(request, message)
        verb = {"approved": "Approved", "rejected": "Rejected", "happened": "Resolved as happened"}.get(
            item["status"], "Resolved as did not happen"
        )
        return decided(request, f"{verb}: {view['described']} (review {review_id})")

    async def one_page(
        fetch: Callable[[int, int], Awaitable[list[dict[str, Any]]]], page_no: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """Page `page_no` (1-based) of what `fetch(limit, offset)` lists, and what the pager needs; one row more
        than a page is asked for, to know whether there is a next one."""
        page_no = max(page_no, 1)
        rows = await fetch(page_size + 1, (page_no - 1) * page_size)
        paging = {"page": page_no, "more": len(rows) > page_size, "first": (page_no - 1) * page_size + 1}
        return rows[:page_size], paging

    @http.get("/ui", include_in_schema=False, name="ui-queue")
    async def queue_page(
        request: Request,
        caller: Authenticated,
        tenant: str = "",
        kind: str = "",
        status: str = "pending",
        page_no: int = Query(1, alias="page"),
    ) -> Response:
        tenant, kind = tenant.strip(), kind if kind in KINDS else ""
        status = status if status in (*STATUSES, "any") else "pending"
        wanted = None if status == "any" else status
        if tenant:
            review.require(caller, tenant, Permission.READ)
        scope = [tenant] if tenant else review.readable_tenants(caller)
        items, paging = await one_page(
            lambda limit, offset: review.queue.list(scope, wanted, limit, kind or None, offset), page_no
        )
        now = datetime.now(UTC)
        flash = request.cookies.get(FLASH_COOKIE)
        response = page(
            request,
            caller,
            "queue.html",
            {
                "rows": [queue_row(i, now) for i in items],
                **paging,
                "filters": {"tenant": tenant, "kind": kind, "status": status},
                "kinds": KINDS,
                "statuses": STATUSES,
            },
            flash=unquote(flash) if flash else None,
        )
        if flash:
            response.delete_cookie(FLASH_COOKIE, path=COOKIE_PATH)
        return response

    @http.get("/ui/reviews/{review_id}", include_in_schema=False, name="ui-item")
    async def review_page(request: Request, caller: Authenticated, review_id: str) -> Response:
        return await item_page(request, caller, review_id)

    @http.post("/ui/reviews/{review_id}/approve", include_in_schema=False)
    async def approve_form(request: Request, caller: Authenticated, review_id: str) -> Response:
        return await submit(request, caller, review_id, "approve")

    @http.post("/ui/reviews/{review_id}/reject", include_in_schema=False)
    async def reject_form(request: Request, caller: Authenticated, review_id: str) -> Response:
        return await submit(request, caller, review_id, "reject")

    @http.post("/ui/reviews/{review_id}/resolve", include_in_schema=False)
    async def resolve_form(request: Request, caller: Authenticated, review_id: str) -> Response:
        return await submit(request, caller, review_id, "resolve")

    @http.get("/ui/explain/{action_id}", include_in_schema=False, name="ui-explain")
    async def explain_page(request: Request, caller: Authenticated, action_id: str) -> Response:
        story = await readable_story(review, index, caller, action_id)
        if story is None:
            what = f"No action {action_id} in the audit (yet: records are indexed within seconds)."
            return not_found(request, caller, what)
        return page(request, caller, "explain.html", {"story": story})

    @http.get("/ui/audit", include_in_schema=False, name="ui-audit")
    async def audit_page(
        request: Request,
        caller: Authenticated,
        tenant: str = "",
        contact_id: str = "",
        action_id: str = "",
        rule: str = "",
        since: str = "",
        until: str = "",
        page_no: int = Query(1, alias="page"),
    ) -> Response:
        typed = dict(zip(AUDIT_FILTERS, (tenant, contact_id, action_id, rule, since, until), strict=True))
        criteria, errors = audit_criteria(typed)
        filters = {name: value.strip() for name, value in typed.items() if value.strip()}
        page_no = max(page_no, 1)
        context: dict[str, Any] = {"filters": filters, "errors": errors, "rows": None, "page": page_no, "more": False}
        if errors:
            log.info("web ui audit search invalid", fields=sorted(errors))
            return page(request, caller, "audit.html", context, 422)
        if criteria["tenant"] is None:
            return page(request, caller, "audit.html", context)
        review.require(caller, criteria["tenant"], Permission.READ)
        # the JSON API's search, newest first
        records, paging = await one_page(
            lambda limit, offset: index.search(**criteria, limit=limit, offset=offset, newest_first=True), page_no
        )
        context |= {"rows": [audit_row(r) for r in records], **paging}
        return page(request, caller, "audit.html", context)


def _conflict_message(detail: Mapping[str, Any], form_name: str) -> str:
    """Why a decision could not be recorded (HTTP 409 from the Review methods), for the item page."""
    if detail.get("error") == "resolve_instead":
        return "An execution in doubt is not approved or rejected: check the downstream, then resolve it."
    if detail.get("error") == "not_resolvable":
        return "Only a pending execution in doubt can be resolved; this item is not one (see its state below)."
    if detail.get("error") == "second_approver_needed":
        return "You approved this high-risk item already: it needs a second approver, someone other than you."
    if detail.get("error") == "edit_differs":
        return "The first approver approved other wording: approve it as it stands, or reject it."
    return f"Nothing was changed: this item was already decided before your {form_name} arrived (see below)."
