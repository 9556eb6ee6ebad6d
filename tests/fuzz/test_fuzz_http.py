"""Mutated requests at the three ingest edges never get a 5xx: HubSpot webhooks (validly signed, since a CRM field
can hold anything, and badly signed), CloudEvents (structured and binary) and raw bounce and complaint reports.
Every refusal is a 4xx with JSON `{"error", "detail"}`; every acceptance accounts for each event sent, and a
delivery sent again is never accepted twice."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from fuzzing import HTTP_CASES, Summary, changed_json, dumps, generate, mutated_bytes, not_ready
from support import contact_record, hubspot_signature

pytestmark = [pytest.mark.fuzz, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

SECRET = "e2e-hubspot-secret"  # the session's tenants sign with it (tests/conftest.py)
PORTAL = 62515
SAMPLES = Path(__file__).parent.parent / "ingest" / "samples"
#: the address each sample report is about, replaced by a seeded contact's
SAMPLED_ADDRESSES = {
    "postfix_5.1.1_unknown_user.eml": "jordan.reyes@northwind.example",
    "exim_5.1.1_rfc822_headers.eml": "Dana.Okafor@Globex.example",
    "arf_abuse.eml": "alex.kim@hooli.example",
    "postfix_4.2.2_failed_after_retries.eml": "sam.lee@umbrella.example",
    "postfix_4.4.1_delayed.eml": "priya.shah@initech.example",
    "autoreply_out_of_office.eml": "jordan.reyes@northwind.example",
    "reply_gmail_question.eml": "jordan.reyes@northwind.example",
    "malformed_report_without_recipient.eml": "",
    "malformed_report_without_status.eml": "someone@contoso.example",
}
CONCURRENCY = 4
#: the share of HTTP_CASES each edge gets
SHARES = {"hubspot": 0.37, "cloudevents": 0.3, "email": 0.25, "segments": 0.08}


def cases_for(edge: str) -> int:
    return max(10, round(HTTP_CASES * SHARES[edge]))


@dataclass
class Case:
    """One request (sent `times` times, the same body each time) and what was done to it."""

    path: str
    body: bytes
    headers: dict[str, Any]
    what: list[str] = field(default_factory=list)
    times: int = 1
    signing: str | None = None  # HubSpot: how the request is signed, at send time

    def describe(self) -> str:
        shown = self.body[:400]
        more = f" … ({len(self.body)} bytes)" if len(self.body) > 400 else ""
        return (
            f"POST {self.path} headers={self.headers} signing={self.signing} [{'; '.join(self.what)}] {shown!r}{more}"
        )


# ---------------------------------------------------------------- sending and judging


def _refusal_problem(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return "a 4xx whose body is not JSON"
    if not isinstance(body, dict) or "error" not in body or "detail" not in body:
        return "a 4xx without error and detail"
    return None


#: what a 2xx answer to a case must say, else why it does not
Acceptance = Callable[[Case, dict[str, Any]], str | None]


async def run_edge(
    herald,  # type: ignore[no-untyped-def]
    edge: str,
    cases: list[Case],
    summary: Summary,
    accepted_well: Acceptance,
    sign: Callable[[Case], dict[str, str]] | None = None,
) -> None:
    """Send every case (a few at a time) and judge each answer; fail with every bad one, each with its request."""
    summary.http_cases[edge] += len(cases)
    server_errors: list[str] = []
    broken: list[str] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def send(client: httpx.AsyncClient, case: Case) -> None:
        async with gate:
            previous: dict[str, Any] | None = None
            for _ in range(case.times):
                headers = {**case.headers, **(sign(case) if sign else {})}
                headers = {k: v for k, v in headers.items() if v is not None}
                try:
                    response = await client.post(
                        f"{herald.services.ingest_url}{case.path}", content=case.body, headers=headers
                    )
                except httpx.LocalProtocolError:
                    summary.http_requests[f"{edge} (not sendable)"] += 1
                    return
                summary.answered(edge, response.status_code)
                status = response.status_code
                if status >= 500:
                    server_errors.append(f"{edge}: {status} {response.text[:300]} ← {case.describe()}")
                    return
                if status >= 400:
                    if problem := _refusal_problem(response):
                        broken.append(f"{edge}: {status} {problem}: {response.text[:200]} ← {case.describe()}")
                    return
                try:
                    answer = response.json()
                except ValueError:
                    broken.append(f"{edge}: {status} with a body that is not JSON ← {case.describe()}")
                    return
                problem = accepted_well(case, answer)
                if problem is None and previous is not None and answer.get("accepted"):
                    problem = f"accepted again when sent again (first answer {previous})"
                if problem:
                    broken.append(f"{edge}: {status} {problem}: {answer} ← {case.describe()}")
                    return
                previous = answer

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(send(client, case) for case in cases))
    summary.server_errors += server_errors
    summary.broken_answers += broken
    assert not server_errors, f"{len(server_errors)} answer(s) of 5xx, e.g.:\n" + "\n".join(
        sorted(server_errors, key=len)[:10]
    )
    assert not broken, f"{len(broken)} answer(s) out of contract, e.g.:\n" + "\n".join(sorted(broken, key=len)[:10])
    failing = {name: why for name, why in (await not_ready(herald)).items() if name.startswith("ingest")}
    summary.not_ready.update(failing)
    assert not failing, failing


async def known(herald, tenant: str) -> None:  # type: ignore[no-untyped-def]
    """Wait until ingest has read the new tenant's file (it re-reads the directory at most once a second)."""
    url = f"{herald.services.ingest_url}/v1/webhooks/hubspot/{tenant}"
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(timeout=10) as client:
        while time.monotonic() < deadline:
            ts = int(time.time() * 1000)
            response = await client.post(
                url,
                content=b"[]",
                headers={
                    "X-HubSpot-Request-Timestamp": str(ts),
                    "X-HubSpot-Signature-v3": hubspot_signature(SECRET, "POST", url, b"[]", ts),
                },
            )
            if response.status_code == 200:
                return
            await asyncio.sleep(0.3)
    raise AssertionError(f"ingest never learned of tenant {tenant}")


def seeded(herald, name: str, directory: Path, count: int = 6) -> tuple[str, list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """A fresh tenant with `count` contacts in its store."""
    tenant = herald.add_tenant(f"{name}{secrets.token_hex(3)}")
    base = int(time.time()) % 10**6
    contacts = [
        contact_record(int(f"9{base:06d}{n:03d}"), email=f"fz-{tenant}-{n}@northwind.example") for n in range(count)
    ]
    herald.seed_contacts(tenant, contacts, directory)
    return tenant, contacts


TENANT_PATHS = [
    "nosuchtenant",
    "%00",
    "%ff%fe",
    "%ED%A0%80",
    "t" * 1000,
    "%F0%9F%92%A5",
    "ACME",
]


@st.composite
def tenant_path(draw: st.DrawFn, tenant: str) -> tuple[str, str | None]:
    """The tenant's own path segment, mostly; else one that names no tenant, what it was in words."""
    if draw(st.integers(0, 9)):
        return tenant, None
    other = draw(st.sampled_from(TENANT_PATHS))
    return other, f"tenant path {other[:20]!r}"


# ---------------------------------------------------------------- HubSpot webhooks

SIGNINGS = ["valid"] * 12 + [
    "wrong_secret",
    "stale",
    "future",
    "garbage_timestamp",
    "huge_timestamp",
    "missing_signature",
    "missing_timestamp",
    "malformed_signature",
    "other_body",
]
PROPERTIES = ["jobtitle", "firstname", "lastname", "company", "industry", "email", "lifecyclestage", "country"]
PROPERTY_VALUES = ["VP Operations", "Northwind", "logistics", "lead", "someone@northwind.example", "US", ""]


@st.composite
def hubspot_event(draw: st.DrawFn, contacts: list[dict[str, Any]], ids: Any) -> dict[str, Any]:
    contact = draw(st.sampled_from(contacts))
    kind = draw(st.sampled_from(["creation", "creation", "property", "property", "optout", "erasure", "unsupported"]))
    event: dict[str, Any] = {
        "eventId": next(ids),
        "subscriptionId": 101,
        "portalId": PORTAL,
        "appId": 9001,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.creation",
        "attemptNumber": 0,
        "objectId": contact["contact_id"],
        "changeFlag": "NEW",
        "changeSource": "CRM",
    }
    if kind == "property":
        event.update(
            subscriptionType="contact.propertyChange",
            propertyName=draw(st.sampled_from(PROPERTIES)),
            propertyValue=draw(st.sampled_from(PROPERTY_VALUES)),
        )
    elif kind == "optout":
        event.update(subscriptionType="contact.propertyChange", propertyName="hs_email_optout", propertyValue="true")
    elif kind == "erasure":
        # mostly a contact this store never held, so the seeded ones stay for the other cases
        object_id = contact["contact_id"] if not draw(st.integers(0, 4)) else 10**12 + next(ids)
        event.update(subscriptionType="contact.privacyDeletion", objectId=object_id)
    elif kind == "unsupported":
        event.update(subscriptionType="deal.creation")
    return event


CONTENT_TYPES_JSON = ["application/json"] * 6 + [
    None,
    "text/plain",
    "application/xml",
    "multipart/form-data; boundary=x",
]


@st.composite
def hubspot_case(draw: st.DrawFn, tenant: str, contacts: list[dict[str, Any]], ids: Any) -> Case:
    batch = [draw(hubspot_event(contacts, ids)) for _ in range(draw(st.integers(0, 5)))]
    what: list[str] = []
    if batch and draw(st.integers(0, 5)) == 0:
        batch.append(dict(batch[0]))
        what.append("an event twice in the batch")
    value: Any = batch
    if draw(st.integers(0, 4)):  # most cases are mutated; some go as they are
        value, done = draw(changed_json(batch))
        what += done
    body = dumps(value)
    if draw(st.integers(0, 7)) == 0:
        body, done_bytes = draw(mutated_bytes(body))
        what.append(done_bytes)
    segment, moved = draw(tenant_path(tenant))
    if moved:
        what.append(moved)
    return Case(
        path=f"/v1/webhooks/hubspot/{segment}",
        body=body,
        headers={"Content-Type": draw(st.sampled_from(CONTENT_TYPES_JSON))},
        what=what,
        times=2 if draw(st.integers(0, 6)) == 0 else 1,
        signing=draw(st.sampled_from(SIGNINGS)),
    )


def v3_signature(secret: str, url: str, body: bytes, timestamp: str) -> str:
    """HubSpot's v3 signature over the timestamp exactly as sent (`support.hubspot_signature` takes a number)."""
    message = b"POST" + url.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hubspot_signing(base_url: str) -> Callable[[Case], dict[str, str]]:
    """Signs a case as it is sent (the timestamp must be fresh), rightly or in the way the case says."""

    def sign(case: Case) -> dict[str, str]:
        now = int(time.time() * 1000)
        timestamp = {
            "stale": str(now - 600_000),
            "future": str(now + 600_000),
            "garbage_timestamp": "soon",
            "huge_timestamp": "9" * 30,
        }.get(case.signing or "", str(now))
        secret = "not-the-secret" if case.signing == "wrong_secret" else SECRET
        body = case.body + b" " if case.signing == "other_body" else case.body
        headers = {
            "X-HubSpot-Request-Timestamp": timestamp,
            "X-HubSpot-Signature-v3": v3_signature(secret, f"{base_url}{case.path}", body, timestamp),
        }
        if case.signing == "missing_signature":
            del headers["X-HubSpot-Signature-v3"]
        if case.signing == "missing_timestamp":
            del headers["X-HubSpot-Request-Timestamp"]
        if case.signing == "malformed_signature":
            headers["X-HubSpot-Signature-v3"] = "%%%not base64%%%" * 20
        return headers

    return sign


def events_sent(body: bytes) -> int | None:
    """How many events the body holds, read as JSON, if it is a list."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return len(value) if isinstance(value, list) else None


def hubspot_accounted(case: Case, answer: dict[str, Any]) -> str | None:
    try:
        counted = int(answer["accepted"]) + int(answer["duplicates"]) + len(answer["rejected"])
    except (KeyError, TypeError, ValueError):
        return "an answer without accepted, duplicates and rejected"
    sent = events_sent(case.body)
    if sent is None:
        return "accepted a body that is no list of events"
    if counted != sent:
        return f"accounts for {counted} of {sent} events"
    return None


async def test_mutated_hubspot_webhooks_never_get_a_5xx(herald, summary, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant, contacts = seeded(herald, "fzhubspot", tmp_path)
    await known(herald, tenant)
    ids = iter(range(10**8, 10**9))
    cases = generate(hubspot_case(tenant, contacts, ids), cases_for("hubspot"), "hubspot")
    await run_edge(
        herald, "hubspot", cases, summary, hubspot_accounted, sign=hubspot_signing(herald.services.ingest_url)
    )


# ---------------------------------------------------------------- CloudEvents


def _iso(seconds: float = 0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def cloudevent_data(kind: str, contact_id: str, n: int) -> dict[str, Any]:
    upstream = {"upstream_source": "fuzz", "upstream_event_id": f"up-{n:09d}", "occurred_at": _iso()}
    email = f"{contact_id}@buyers.example"
    facts = {
        "contact_id": contact_id,
        "email": email,
        "first_name": "Ann",
        "company": "Northwind Freight",
        "job_title": "Head of Operations",
        "industry": "logistics",
    }
    match kind:
        case "herald.contact.created.v1":
            return {"contact": facts, **upstream}
        case "herald.contact.updated.v1":
            return {"contact": facts, "changed_property": "job_title", "new_value": "VP", **upstream}
        case "herald.consent.withdrawn.v1":
            return {"contact_id": contact_id, "email": email, "reason": "complaint", **upstream}
        case "herald.contact.erased.v1":
            return {"contact_id": contact_id, "email_sha256": hashlib.sha256(email.encode()).hexdigest(), **upstream}
        case "herald.message.replied.v1":
            return {
                "contact_id": contact_id,
                "subject": "Re: hello",
                "snippet": "Thanks!",
                "in_reply_to": "<a@b.example>",
                **upstream,
            }
        case "herald.message.engagement.v1":
            return {
                "contact_id": contact_id,
                "kind": "opened",
                "message_id": f"<{n:09d}@herald.example>",
                "campaign_id": "spring",
                **upstream,
            }
    return {"contact_id": contact_id, "title": "Intro call", "starts_at": _iso(86_400), **upstream}


CLOUDEVENT_KINDS = [
    "herald.contact.created.v1",
    "herald.contact.updated.v1",
    "herald.consent.withdrawn.v1",
    "herald.contact.erased.v1",
    "herald.message.replied.v1",
    "herald.message.engagement.v1",
    "herald.meeting.booked.v1",
]
STRUCTURED_TYPES = ["application/cloudevents+json"] * 6 + [
    "application/cloudevents+json; charset=utf-8",
    "application/json",
    "application/cloudevents-batch+json",
    None,
    "text/plain",
    "application/xml",
]
#: header values as bytes: not UTF-8, UTF-8 beyond ASCII, too long, empty
CE_HEADER_VALUES = [b"", b"1.0 ", b"0.3", b"x" * 600, b"\xff\xfe", "é".encode(), b"=?utf-8?b?////?=", b"null", b"[]"]


@st.composite
def cloudevent_case(draw: st.DrawFn, tenant: str, ids: Any) -> Case:
    n = next(ids)
    kind = draw(st.sampled_from(CLOUDEVENT_KINDS))
    contact_id = f"fz-{draw(st.integers(0, 7))}"
    data = cloudevent_data(kind, contact_id, n)
    attributes = {"specversion": "1.0", "id": f"ce-{n:09d}", "source": "fuzz/upstream", "type": kind, "tenant": tenant}
    what: list[str] = [kind]
    mutate = draw(st.integers(0, 4)) > 0
    if draw(st.booleans()):  # structured: the whole event is the body
        event: Any = {**attributes, "datacontenttype": "application/json", "data": data}
        if mutate:
            event, done = draw(changed_json(event))
            what += done
        body = dumps(event)
        headers: dict[str, Any] = {"Content-Type": draw(st.sampled_from(STRUCTURED_TYPES))}
        what.append("structured")
    else:  # binary: the data is the body, the attributes are ce- headers
        value: Any = data
        if mutate:
            value, done = draw(changed_json(data))
            what += done
        body = dumps(value)
        headers = {f"ce-{k}": v for k, v in attributes.items()}
        headers["Content-Type"] = draw(
            st.sampled_from(["application/json"] * 5 + [None, "text/plain", "application/cloudevents+json"])
        )
        if draw(st.integers(0, 2)) == 0:
            name = draw(
                st.sampled_from([*(f"ce-{k}" for k in attributes), "ce-time", "ce-datacontenttype", "ce-dataschema"])
            )
            if draw(st.booleans()) and name in headers:
                del headers[name]
                what.append(f"{name} left out")
            else:
                header_value = draw(st.sampled_from(CE_HEADER_VALUES))
                headers[name] = header_value
                what.append(f"{name}: {header_value[:20]!r}")
        what.append("binary")
    if draw(st.integers(0, 7)) == 0:
        body, done_bytes = draw(mutated_bytes(body))
        what.append(done_bytes)
    return Case(
        path="/v1/events", body=body, headers=headers, what=what, times=2 if draw(st.integers(0, 5)) == 0 else 1
    )


def cloudevent_accounted(case: Case, answer: dict[str, Any]) -> str | None:
    try:
        counted = int(answer["accepted"]) + int(answer["duplicates"])
    except (KeyError, TypeError, ValueError):
        return "an answer without accepted and duplicates"
    if counted != 1:
        return f"accounts for {counted} events of 1"
    return None


async def test_mutated_cloudevents_never_get_a_5xx(herald, summary) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"fzevents{secrets.token_hex(3)}")
    await known(herald, tenant)
    ids = iter(range(10**8, 10**9))
    cases = generate(cloudevent_case(tenant, ids), cases_for("cloudevents"), "cloudevents")
    await run_edge(herald, "cloudevents", cases, summary, cloudevent_accounted)


# ---------------------------------------------------------------- bounce and complaint reports

MIME_VALUES: list[bytes] = [
    b"",
    b"\x00",
    b"\xff\xfe\xfd",
    b"x" * 100_000,
    b"=?utf-8?b?////?=",
    b"=?x-no-such-charset?q?=FF=FE?=",
    b"5.1.1.1.1",
    b"9.9.9",
    b"rfc822; not-an-address",
    b"rfc822; <\x00@northwind.example>",
    b"x400; /c=US/a=;",
    b"Tue, 24 Nov 99999 10:15:02 +0000",
    b"Mon, 32 Foo 2026 99:99:99 +9999",
    b"multipart/report; boundary=",
    b"multipart/report; report-type=delivery-status; boundary*0*=''%ff%fe",
    b"text/plain; charset=x-no-such",
    b"\xe2\x80\xae\xf0\x9f\x92\xa5",
    b"failed; delayed; delivered",
    b"base64",
    b"quoted-printable",
]
_HEADER_LINE = re.compile(rb"(?m)^([A-Za-z][A-Za-z0-9-]*):[^\r\n]*$")


@st.composite
def mime_mutation(draw: st.DrawFn, raw: bytes) -> tuple[bytes, str]:
    kind = draw(
        st.sampled_from(
            ["header", "header", "header", "drop", "duplicate", "deep", "bytes", "crlf", "long_line", "payload"]
        )
    )
    lines = list(_HEADER_LINE.finditer(raw))
    if kind in ("header", "drop", "duplicate") and lines:
        line = draw(st.sampled_from(lines))
        name = line.group(1)
        if kind == "header":
            value = draw(st.sampled_from(MIME_VALUES))
            return raw[: line.start()] + name + b": " + value + raw[line.end() :], f"{name.decode()}: {value[:30]!r}"
        if kind == "drop":
            return raw[: line.start()] + raw[line.end() + 1 :], f"{name.decode()} left out"
        return raw[: line.end()] + b"\n" + line.group(0) + raw[line.end() :], f"{name.decode()} twice"
    if kind == "deep":
        depth = draw(st.sampled_from([8, 33, 100, 400]))
        closed = draw(st.booleans())
        opening = b"".join(f"Content-Type: multipart/mixed; boundary=b{i}\n\n--b{i}\n".encode() for i in range(depth))
        closing = b"".join(f"\n--b{i}--\n".encode() for i in reversed(range(depth))) if closed else b""
        outer = b"From: postmaster@mx.test\nTo: bounces@acmerelay.example\nMIME-Version: 1.0\n"
        return outer + opening + raw + closing, f"inside {depth} multiparts{'' if closed else ', never closed'}"
    if kind == "crlf":
        return (
            (raw.replace(b"\n", b"\r\n"), "CRLF lines")
            if draw(st.booleans())
            else (raw.replace(b"\n", b"\r"), "CR lines")
        )
    if kind == "long_line":
        at = draw(st.integers(0, len(raw)))
        return raw[:at] + b"\n" + b"y" * 200_000 + b"\n" + raw[at:], "a line of 200000 bytes"
    if kind == "payload":
        encoded = draw(
            st.sampled_from(
                [
                    b"Content-Transfer-Encoding: base64\n\n@@@@not base64===\n",
                    b"Content-Transfer-Encoding: quoted-printable\n\n=ZZ=\xff=\n",
                ]
            )
        )
        return raw.replace(
            b"Content-Type: message/delivery-status\n", b"Content-Type: message/delivery-status\n" + encoded, 1
        ), "a part badly encoded"
    body, what = draw(mutated_bytes(raw))
    return body, what


@st.composite
def email_case(draw: st.DrawFn, tenant: str, contacts: list[dict[str, Any]], ids: Any) -> Case:
    sample = draw(st.sampled_from(sorted(SAMPLED_ADDRESSES)))
    raw = (SAMPLES / sample).read_bytes()
    if SAMPLED_ADDRESSES[sample]:
        address = draw(st.sampled_from(contacts))["email"]
        raw = re.sub(re.escape(SAMPLED_ADDRESSES[sample]).encode(), address.encode(), raw, flags=re.IGNORECASE)
    raw = re.sub(rb"(?mi)^Message-Id: <[^>]+>", f"Message-Id: <fz{next(ids):09d}@mx.test>".encode(), raw, count=1)
    what = [sample]
    for _ in range(draw(st.integers(0, 3))):
        raw, done = draw(mime_mutation(raw))
        what.append(done)
    segment, moved = draw(tenant_path(tenant))
    if moved:
        what.append(moved)
    content_type = draw(
        st.sampled_from(
            ["message/rfc822"] * 8
            + ["message/rfc822; charset=utf-8", "MESSAGE/RFC822", "text/plain", None, "multipart/report"]
        )
    )
    return Case(
        path=f"/v1/inbound/{segment}/email",
        body=raw,
        headers={"Content-Type": content_type},
        what=what,
        times=2 if draw(st.integers(0, 6)) == 0 else 1,
    )


def report_accounted(case: Case, answer: dict[str, Any]) -> str | None:
    if not {"accepted", "duplicates", "ignored"} <= set(answer):
        return "an answer without accepted, duplicates and ignored"
    if not isinstance(answer["ignored"], list):
        return "ignored is no list"
    return None


async def test_mutated_bounce_reports_never_get_a_5xx(herald, summary, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant, contacts = seeded(herald, "fzbounce", tmp_path)
    await known(herald, tenant)
    ids = iter(range(10**8, 10**9))
    cases = generate(email_case(tenant, contacts, ids), cases_for("email"), "email")
    await run_edge(herald, "email", cases, summary, report_accounted)


SEGMENT: dict[str, Any] = {
    "industries": ["logistics"],
    "lifecycle_stages": ["lead"],
    "title_contains": ["operations"],
    "company_size": {"min": 10, "max": 5000},
    "countries": ["US"],
    "limit": 50,
}


@st.composite
def segment_case(draw: st.DrawFn, tenant: str) -> Case:
    """A segment question for the planner's campaign tasks: valid, mutated as JSON, or damaged on the wire."""
    what: list[str] = []
    value: Any = {k: v for k, v in SEGMENT.items() if draw(st.booleans())}
    if draw(st.integers(0, 3)) > 0:
        value, done = draw(changed_json(value))
        what += done
    body = dumps(value)
    if draw(st.integers(0, 7)) == 0:
        body, done_bytes = draw(mutated_bytes(body))
        what.append(done_bytes)
    segment, moved = draw(tenant_path(tenant))
    if moved:
        what.append(moved)
    content_type = draw(st.sampled_from(["application/json"] * 6 + [None, "text/plain"]))
    return Case(path=f"/v1/segments/{segment}", body=body, headers={"Content-Type": content_type}, what=what)


def segment_accounted(case: Case, answer: dict[str, Any]) -> str | None:
    if not {"matched", "contacts", "truncated"} <= set(answer):
        return "an answer without matched, contacts and truncated"
    if not isinstance(answer["contacts"], list) or len(answer["contacts"]) > int(answer["matched"]):
        return "more contacts than matched"
    if any(c.get("email") is None for c in answer["contacts"]):
        return "a contact without an address in a segment"
    return None


async def test_mutated_segment_questions_never_get_a_5xx(herald, summary, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant, _ = seeded(herald, "fzsegment", tmp_path)
    await known(herald, tenant)
    cases = generate(segment_case(tenant), cases_for("segments"), "segments")
    planner = herald.service_headers("ingest", "planner")  # segments are answered to the planner only
    await run_edge(herald, "segments", cases, summary, segment_accounted, sign=lambda case: planner)


async def test_the_edges_fuzzed_are_every_edge_ingest_serves(herald) -> None:  # type: ignore[no-untyped-def]
    """A new edge in ingest's API is a new edge to fuzz here (read from the API description it serves)."""
    async with httpx.AsyncClient(timeout=10) as client:
        described = (await client.get(f"{herald.services.ingest_url}/openapi.json")).json()
    served = {path for path, methods in described["paths"].items() if "post" in methods}
    assert served == {
        "/v1/webhooks/hubspot/{tenant}",
        "/v1/events",
        "/v1/inbound/{tenant}/email",
        "/v1/segments/{tenant}",
    }, served
