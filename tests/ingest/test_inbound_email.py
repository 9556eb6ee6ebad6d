"""`POST /v1/inbound/{tenant}/email`: what arrives at a tenant's bounce address, posted raw. A hard bounce or a
complaint withdraws the contact's email consent (herald.consent.v1) and records the bounce or complaint
(herald.events.v1), once however often the report is delivered; a soft bounce is recorded and consent left
alone; what is not a bounce is accepted and left aside with its reason; bad input gets its 4xx. Every refusal
and every left-aside report is on the audit. Read back from Kafka, and through the consent view the guard and
the executor decide with."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest

from herald_core.consent import CONSENT_MIGRATIONS, ConsentFeed
from herald_core.contracts import (
    ConsentReason,
    ConsentWithdrawn,
    EmailEngagement,
    EngagementKind,
    EventRejected,
)
from herald_core.db import migrate
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, CONSENT, EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SAMPLES = Path(__file__).parent / "samples"
ADDRESSES = {
    "jordan": "jordan.reyes@northwind.example",  # postfix_5.1.1_unknown_user
    "dana": "dana.okafor@globex.example",  # exim_5.1.1_rfc822_headers (reported as Dana.Okafor@Globex.example)
    "priya": "priya.shah@initech.example",  # postfix_4.4.1_delayed
    "sam": "sam.lee@umbrella.example",  # postfix_4.2.2_failed_after_retries
    "alex": "alex.kim@hooli.example",  # arf_abuse
}


@pytest.fixture(scope="module")
async def people(ingest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The samples' recipients as contacts of the session's tenant (seeded with the real command): name → id."""
    contacts = {name: ingest.contact(email=address) for name, address in ADDRESSES.items()}
    await ingest.seeded(ingest.tenant, list(contacts.values()), tmp_path_factory.mktemp("bounced"))
    return {name: str(contact["contact_id"]) for name, contact in contacts.items()}


def report(name: str, **replace: str) -> tuple[bytes, str]:
    """A sample report as its server would send a new one: a Message-ID of its own (the session de-duplicates
    by it, and every test posts its own report), and `replace`d text. Returns (bytes, its Message-ID)."""
    raw = (SAMPLES / name).read_bytes()
    report_id = f"<{secrets.token_hex(8)}.test@mail.acmerelay.example>"
    # the first Message-ID is the report's own; the returned email's comes later
    raw = re.sub(rb"(?mi)^Message-Id: <[^>]+>", f"Message-Id: {report_id}".encode(), raw, count=1)
    for old, new in replace.items():
        raw = raw.replace(old.encode(), new.encode())
    return raw, report_id


async def post(ingest, tenant: str, raw: bytes, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    sent = {"Content-Type": "message/rfc822", **(headers or {})}
    return await ingest.client.post(f"/v1/inbound/{tenant}/email", content=raw, headers=sent)


def about(records: list[Any], report_id: str) -> list[Any]:
    """The records published for one report (their upstream id starts with the report's Message-ID)."""
    bodies = [r for r in records if r.value is not None]  # not an erasure's tombstones on the consent topic
    return [r for r in bodies if str(r.json().get("upstream_event_id", "")).startswith(f"{report_id}/")]


async def test_a_hard_bounce_withdraws_email_consent_and_records_the_bounce(ingest, people) -> None:  # type: ignore[no-untyped-def]
    raw, report_id = report("postfix_5.1.1_unknown_user.eml")
    response = await post(ingest, ingest.tenant, raw)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0, "ignored": []}

    contact_id = people["jordan"]
    [on_consent] = about(await ingest.read(CONSENT), report_id)
    assert on_consent.key == f"{ingest.tenant}:{contact_id}:email".encode()
    withdrawn = on_consent.body(ConsentWithdrawn)
    assert (withdrawn.contact_id, withdrawn.email, withdrawn.reason) == (
        contact_id,
        ADDRESSES["jordan"],
        ConsentReason.HARD_BOUNCE,
    )
    assert withdrawn.upstream_source == "herald-bounces"

    events = about(await ingest.read(EVENTS), report_id)
    assert sorted(r.type for r in events) == [ConsentWithdrawn.TYPE, EmailEngagement.TYPE]
    assert all(r.key == f"{ingest.tenant}:{contact_id}".encode() and r.tenant == ingest.tenant for r in events)
    [engagement] = [r.body(EmailEngagement) for r in events if r.type == EmailEngagement.TYPE]
    assert (engagement.contact_id, engagement.kind, engagement.permanent) == (contact_id, EngagementKind.BOUNCED, True)
    assert engagement.message_id == "<01jdq3x8k2m9v4r7t5w6y8z0ab@herald.acmerelay.example>"
    # each with its audit copy, written in the same transaction
    audited = {r.value for r in await ingest.read(AUDIT)}
    assert all(r.value in audited for r in events)


async def test_the_same_report_delivered_twice_is_published_once(ingest, people) -> None:  # type: ignore[no-untyped-def]
    raw, report_id = report("exim_5.1.1_rfc822_headers.eml")
    first = await post(ingest, ingest.tenant, raw)
    assert first.status_code == 202, first.text
    assert first.json()["accepted"] == 2
    again = await post(ingest, ingest.tenant, raw)
    assert again.status_code == 200, again.text
    assert again.json() == {"accepted": 0, "duplicates": 2, "ignored": []}

    [on_consent] = about(await ingest.read(CONSENT), report_id)
    # the report names Dana.Okafor@Globex.example; the contact store holds it in lower case
    assert on_consent.body(ConsentWithdrawn).contact_id == people["dana"]
    events = about(await ingest.read(EVENTS), report_id)
    assert sorted(r.type for r in events) == [ConsentWithdrawn.TYPE, EmailEngagement.TYPE]
    [engagement] = [r.body(EmailEngagement) for r in events if r.type == EmailEngagement.TYPE]
    # found in the returned headers (text/rfc822-headers), not a returned message
    assert engagement.message_id == "<01jdt7c2w4e6r8t0y2u4i6o8pa@herald.acmerelay.example>"


async def test_a_soft_bounce_is_recorded_and_leaves_consent_alone(ingest, people) -> None:  # type: ignore[no-untyped-def]
    raw, report_id = report("postfix_4.2.2_failed_after_retries.eml")
    response = await post(ingest, ingest.tenant, raw)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "ignored": []}

    [record] = about(await ingest.read(EVENTS), report_id)
    engagement = record.body(EmailEngagement)
    assert (engagement.contact_id, engagement.kind, engagement.permanent) == (
        people["sam"],
        EngagementKind.BOUNCED,
        False,
    )
    assert about(await ingest.read(CONSENT), report_id) == []


async def test_an_abuse_report_withdraws_consent_as_a_complaint(ingest, people) -> None:  # type: ignore[no-untyped-def]
    raw, report_id = report("arf_abuse.eml")
    response = await post(ingest, ingest.tenant, raw)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2

    [on_consent] = about(await ingest.read(CONSENT), report_id)
    withdrawn = on_consent.body(ConsentWithdrawn)
    assert (withdrawn.contact_id, withdrawn.reason) == (people["alex"], ConsentReason.COMPLAINT)
    [engagement] = [
        r.body(EmailEngagement) for r in about(await ingest.read(EVENTS), report_id) if r.type == EmailEngagement.TYPE
    ]
    assert (engagement.kind, engagement.message_id) == (
        EngagementKind.COMPLAINED,
        "<01jdz4f6h8j0k2m4n6p8r0s2tb@herald.acmerelay.example>",
    )


# name → (sample, replacements, what the response says of it, the audited reason's start)
LEFT_ASIDE: dict[str, tuple[str, dict[str, str], dict[str, Any], str]] = {
    "delay_warning": (
        "postfix_4.4.1_delayed.eml",
        {},
        {
            "recipient": ADDRESSES["priya"],
            "reason": "delivery delayed (4.4.1), not failed: the sending server is still retrying",
        },
        "delayed: ",
    ),
    "unknown_recipient": (
        "postfix_5.1.1_unknown_user.eml",
        {ADDRESSES["jordan"]: "nobody-we-know@northwind.example"},
        {"recipient": "nobody-we-know@northwind.example", "reason": "unknown recipient"},
        "unknown_recipient: unknown recipient",
    ),
}


@pytest.mark.parametrize("case", list(LEFT_ASIDE))
async def test_what_is_not_a_bounce_of_a_known_contact_is_accepted_and_left_aside_on_the_audit(
    ingest,  # type: ignore[no-untyped-def]
    people,
    case: str,
) -> None:
    name, replace, said, audited_reason = LEFT_ASIDE[case]
    raw, report_id = report(name, **replace)
    traceparent, trace = ingest.new_traceparent()
    response = await post(ingest, ingest.tenant, raw, {"traceparent": traceparent})
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 0, "duplicates": 0, "ignored": [said]}

    assert about(await ingest.read(EVENTS), report_id) == []
    assert about(await ingest.read(CONSENT), report_id) == []
    [audited] = [r for r in await ingest.read(AUDIT) if ingest.trace_of(r) == trace]
    left_aside = audited.body(EventRejected)
    assert audited.tenant == ingest.tenant
    assert (left_aside.status_code, left_aside.endpoint, left_aside.upstream_event_id) == (
        202,
        f"/v1/inbound/{ingest.tenant}/email",
        report_id,
    )
    assert left_aside.reason.startswith(audited_reason)
    assert "@" not in left_aside.reason  # the audit keeps no address of a stranger


def _bad_requests(tenant: str) -> dict[str, tuple[str, bytes, dict[str, str], int, str, str]]:
    """name → (tenant in the path, body, headers, status, error, audited tenant)."""
    bounce, _ = report("postfix_5.1.1_unknown_user.eml")
    return {
        "unknown_tenant": ("nosuchtenant", bounce, {}, 404, "unknown_tenant", "unknown"),
        "not_message_rfc822": (
            tenant,
            bounce,
            {"Content-Type": "application/json"},
            415,
            "unsupported_media_type",
            tenant,
        ),
        "too_large": (tenant, bounce + b"x" * 1_000_000, {}, 413, "payload_too_large", tenant),
        "empty": (tenant, b"\r\n", {}, 400, "empty_message", tenant),
        "report_without_status_part": (
            tenant,
            report("malformed_report_without_status.eml")[0],
            {},
            422,
            "malformed_report",
            tenant,
        ),
        "report_without_recipient": (
            tenant,
            report("malformed_report_without_recipient.eml")[0],
            {},
            422,
            "malformed_report",
            tenant,
        ),
    }


@pytest.mark.parametrize("case", list(_bad_requests("t")))
async def test_bad_input_gets_its_4xx_and_reason_is_audited_and_the_service_carries_on(
    ingest, people, case: str
) -> None:  # type: ignore[no-untyped-def]
    path_tenant, body, headers, status, error, audited_tenant = _bad_requests(ingest.tenant)[case]
    traceparent, trace = ingest.new_traceparent()
    response = await post(ingest, path_tenant, body, {**headers, "traceparent": traceparent})
    endpoint = f"/v1/inbound/{path_tenant}/email"
    await ingest.assert_refused(response, trace, status=status, error=error, tenant=audited_tenant, endpoint=endpoint)

    raw, _ = report("postfix_4.2.2_failed_after_retries.eml")
    assert (await post(ingest, ingest.tenant, raw)).status_code == 202


async def test_after_a_hard_bounce_the_consent_view_the_guard_and_executor_use_suppresses_the_address(
    ingest,  # type: ignore[no-untyped-def]
    people,
) -> None:
    """The guard and the executor each follow herald.consent.v1 with `ConsentFeed` into a suppression table and
    ask it before every decision and send; one here, in a schema of its own, reads what the bounce published."""
    for name in ("postfix_5.1.1_unknown_user.eml", "postfix_4.2.2_failed_after_retries.eml"):
        assert (await post(ingest, ingest.tenant, report(name)[0])).status_code == 202

    pool = await ingest.db()
    await migrate(pool, "bounce_view", CONSENT_MIGRATIONS)
    common = CommonSettings(kafka_bootstrap=ingest.bootstrap, topic_prefix=ingest.prefix, pg_dsn=ingest.pg_dsn)
    feed = ConsentFeed(common, pool, "bounce_view")
    await feed.start()
    try:
        await feed.caught_up()
        tenant, address = ingest.tenant, ADDRESSES["jordan"]
        assert await feed.suppression(tenant, people["jordan"], address) == "hard_bounce"
        # the address is suppressed under any contact id, and for email only
        assert await feed.suppression(tenant, "some-other-contact", address.upper()) == "hard_bounce"
        assert await feed.suppression(tenant, people["jordan"], address, channel="sms") is None
        # a soft bounce withdrew nothing
        assert await feed.suppression(tenant, people["sam"], ADDRESSES["sam"]) is None
    finally:
        await feed.stop()
