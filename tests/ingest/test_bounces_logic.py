"""Reading bounce and complaint reports, no servers: the sample reports in `samples/` (as Postfix, Exim and a
mailbox provider's feedback loop write them) read as hard and soft bounces and complaints, what is not one is
left aside with its reason, what claims to be a report but cannot be read is refused; and the facts each means."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from herald_core.consent import address_hash
from herald_core.contracts import (
    ConsentChannel,
    ConsentReason,
    ConsentWithdrawn,
    ContactFacts,
    EmailEngagement,
    EngagementKind,
)
from herald_ingest.bounces import BOUNCES, MalformedReport, Outcome, read_report, report_facts

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_a_postfix_bounce_for_an_unknown_user_is_a_hard_bounce_of_heralds_email() -> None:
    report = read_report(sample("postfix_5.1.1_unknown_user.eml"), NOW)
    [problem] = report.problems
    assert problem.recipient == "jordan.reyes@northwind.example"
    assert problem.outcome is Outcome.HARD_BOUNCE
    assert problem.status == "5.1.1"
    assert problem.occurred_at == datetime(2026, 11, 24, 10, 15, 2, tzinfo=UTC)  # the report's Date
    assert report.ignored == ()
    assert report.report_id == "<20261124101502.4F1C21A2B3@mail.acmerelay.example>"
    # from the returned message, not the report's own headers
    assert report.original_message_id == "<01jdq3x8k2m9v4r7t5w6y8z0ab@herald.acmerelay.example>"
    assert report.original_action_id == "01JDQ3X8K2M9V4R7T5W6Y8Z0AB"


def test_an_exim_bounce_returning_only_the_headers_still_names_the_email_and_the_address_lower_cased() -> None:
    report = read_report(sample("exim_5.1.1_rfc822_headers.eml"), NOW)
    [problem] = report.problems
    assert (problem.recipient, problem.outcome, problem.status) == (
        "dana.okafor@globex.example",
        Outcome.HARD_BOUNCE,
        "5.0.0",
    )
    assert report.original_message_id == "<01jdt7c2w4e6r8t0y2u4i6o8pa@herald.acmerelay.example>"
    assert report.original_action_id == "01JDT7C2W4E6R8T0Y2U4I6O8PA"


def test_a_failure_with_a_4xx_status_after_the_retries_is_a_soft_bounce() -> None:
    report = read_report(sample("postfix_4.2.2_failed_after_retries.eml"), NOW)
    [problem] = report.problems
    assert (problem.recipient, problem.outcome, problem.status) == (
        "sam.lee@umbrella.example",
        Outcome.SOFT_BOUNCE,
        "4.2.2",
    )
    assert report.original_message_id == "<01jdt9m3n5p7q9r1s3t5v7w9xa@herald.acmerelay.example>"


def test_a_delay_warning_is_not_a_bounce() -> None:
    report = read_report(sample("postfix_4.4.1_delayed.eml"), NOW)
    assert report.problems == ()
    [ignored] = report.ignored
    assert (ignored.recipient, ignored.code) == ("priya.shah@initech.example", "delayed")
    assert "still retrying" in ignored.reason


def test_an_abuse_report_is_a_complaint_about_heralds_email() -> None:
    report = read_report(sample("arf_abuse.eml"), NOW)
    [problem] = report.problems
    assert (problem.recipient, problem.outcome, problem.status) == ("alex.kim@hooli.example", Outcome.COMPLAINT, None)
    assert problem.occurred_at == datetime(2026, 11, 21, 16, 5, 31, tzinfo=UTC)
    assert report.original_message_id == "<01jdz4f6h8j0k2m4n6p8r0s2tb@herald.acmerelay.example>"


def test_an_abuse_report_without_original_rcpt_to_names_the_original_emails_recipient() -> None:
    raw = sample("arf_abuse.eml").replace(b"Original-Rcpt-To: <alex.kim@hooli.example>\n", b"")
    [problem] = read_report(raw, NOW).problems
    assert problem.recipient == "alex.kim@hooli.example"


def test_feedback_that_is_not_abuse_is_not_a_complaint() -> None:
    report = read_report(sample("arf_abuse.eml").replace(b"Feedback-Type: abuse", b"Feedback-Type: not-spam"), NOW)
    assert report.problems == ()
    assert [(i.code, i.reason) for i in report.ignored] == [
        ("not_a_complaint", "feedback type 'not-spam', not a complaint (abuse)")
    ]


def test_an_out_of_office_reply_is_not_a_report() -> None:
    report = read_report(sample("autoreply_out_of_office.eml"), NOW)
    assert report.problems == ()
    [ignored] = report.ignored
    assert (ignored.recipient, ignored.code) == (None, "not_a_report")
    assert "Auto-Submitted: auto-replied" in ignored.reason


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("malformed_report_without_status.eml", "a delivery-status report without its message/delivery-status part"),
        ("malformed_report_without_recipient.eml", "the delivery status names no recipient"),
    ],
)
def test_a_report_that_cannot_be_read_as_one_is_malformed(name: str, reason: str) -> None:
    with pytest.raises(MalformedReport) as raised:
        read_report(sample(name), NOW)
    assert str(raised.value) == reason
    assert raised.value.report_id and raised.value.report_id.startswith("<2026112411")


def test_a_failed_recipient_without_a_status_is_malformed_and_the_reason_names_no_address() -> None:
    raw = sample("postfix_5.1.1_unknown_user.eml")
    raw = raw.replace(b"Status: 5.1.1\n", b"").replace(
        b"Diagnostic-Code: smtp; 550 5.1.1", b"Diagnostic-Code: smtp; 550"
    )
    with pytest.raises(
        MalformedReport, match="recipient 1 of the delivery status: Action failed without a Status"
    ) as e:
        read_report(raw, NOW)
    assert "@" not in str(e.value)


def test_the_status_comes_from_the_diagnostic_when_the_status_field_is_missing() -> None:
    raw = sample("postfix_5.1.1_unknown_user.eml").replace(b"Status: 5.1.1\n", b"")
    [problem] = read_report(raw, NOW).problems
    assert (problem.outcome, problem.status) == (Outcome.HARD_BOUNCE, "5.1.1")


def test_every_recipient_of_a_report_is_read_on_its_own() -> None:
    raw = b"""\
From: MAILER-DAEMON@mx.example
To: bounces@acmerelay.example
Date: Tue, 24 Nov 2026 10:00:00 +0000
Message-Id: <mixed-1@mx.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary=b

--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example

Final-Recipient: rfc822; gone@northwind.example
Action: failed
Status: 5.1.1
Last-Attempt-Date: Tue, 24 Nov 2026 09:59:58 +0000

Final-Recipient: rfc822; slow@northwind.example
Action: delayed
Status: 4.4.1

Final-Recipient: rfc822; fine@northwind.example
Action: relayed
Status: 2.0.0

Final-Recipient: x400; c=US;a=;p=Acme;o=Relay;s=Reyes
Original-Recipient: rfc822; <Full@Northwind.example>
Action: failed
Status: 4.4.7

--b--
"""
    report = read_report(raw, NOW)
    assert [(p.recipient, p.outcome) for p in report.problems] == [
        ("gone@northwind.example", Outcome.HARD_BOUNCE),
        ("full@northwind.example", Outcome.SOFT_BOUNCE),
    ]
    assert report.problems[0].occurred_at == datetime(2026, 11, 24, 9, 59, 58, tzinfo=UTC)  # the last attempt
    assert [(i.recipient, i.code) for i in report.ignored] == [
        ("slow@northwind.example", "delayed"),
        ("fine@northwind.example", "delivered"),
    ]
    assert report.original_message_id is None


def test_a_report_without_a_message_id_is_known_by_its_bytes() -> None:
    raw = re.sub(rb"(?m)^Message-Id: .*\n", b"", sample("postfix_5.1.1_unknown_user.eml"), count=1)
    first, again = read_report(raw, NOW), read_report(raw, NOW)
    assert first.report_id.startswith("sha256:")
    assert first.report_id == again.report_id
    assert first.original_message_id == "<01jdq3x8k2m9v4r7t5w6y8z0ab@herald.acmerelay.example>"


def test_an_unreadable_original_message_id_leaves_only_the_bounce() -> None:
    raw = sample("exim_5.1.1_rfc822_headers.eml").replace(
        b"Message-ID: <01jdt7c2w4e6r8t0y2u4i6o8pa@herald.acmerelay.example>", b"Message-ID: <<nested>> junk"
    )
    report = read_report(raw, NOW)  # the email package's header parser raises on this one; the reader does not
    assert report.original_message_id is None
    assert [p.outcome for p in report.problems] == [Outcome.HARD_BOUNCE]


def test_a_date_in_the_future_is_taken_as_now() -> None:
    [problem] = read_report(sample("arf_abuse.eml"), datetime(2026, 11, 21, 12, 0, tzinfo=UTC)).problems
    assert problem.occurred_at == datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


# ---------------------------------------------------------------- the facts


JORDAN_EMAIL = "jordan.reyes@northwind.example"
JORDAN = ContactFacts(contact_id="5000000101", email=JORDAN_EMAIL)


def without_returned_message(raw: bytes) -> bytes:
    """The report cut before its last part (the returned message or its headers), closed again."""
    boundary = re.search(rb'boundary="([^"]+)"', raw)
    assert boundary is not None
    delimiter = b"--" + boundary.group(1)
    return raw[: raw.rindex(delimiter + b"\n")] + delimiter + b"--\n"


def test_a_hard_bounce_withdraws_email_consent_and_records_a_permanent_bounce() -> None:
    report = read_report(sample("postfix_5.1.1_unknown_user.eml"), NOW)
    items, ignored = report_facts(report, {JORDAN_EMAIL: [JORDAN]})
    assert ignored == []
    [(consent_key, withdrawn), (engagement_key, engagement)] = items
    upstream_id = f"{report.report_id}/{address_hash(JORDAN_EMAIL)[:16]}"
    assert withdrawn == ConsentWithdrawn(
        contact_id=JORDAN.contact_id,
        email=JORDAN_EMAIL,
        channel=ConsentChannel.EMAIL,
        reason=ConsentReason.HARD_BOUNCE,
        upstream_source=BOUNCES,
        upstream_event_id=upstream_id,
        occurred_at=datetime(2026, 11, 24, 10, 15, 2, tzinfo=UTC),
    )
    assert isinstance(engagement, EmailEngagement)
    assert (engagement.kind, engagement.permanent, engagement.message_id) == (
        EngagementKind.BOUNCED,
        True,
        "<01jdq3x8k2m9v4r7t5w6y8z0ab@herald.acmerelay.example>",
    )
    assert engagement.upstream_event_id == upstream_id
    # one de-duplication key per fact, stable across readings, and no address in any of them
    assert consent_key != engagement_key
    again, _ = report_facts(read_report(sample("postfix_5.1.1_unknown_user.eml"), NOW), {JORDAN_EMAIL: [JORDAN]})
    assert [key for key, _ in again] == [consent_key, engagement_key]
    assert all(key[0] == BOUNCES and "@northwind" not in key[1] for key in (consent_key, engagement_key))


def test_a_soft_bounce_records_the_bounce_and_leaves_consent_alone() -> None:
    report = read_report(sample("postfix_4.2.2_failed_after_retries.eml"), NOW)
    sam = ContactFacts(contact_id="77", email="sam.lee@umbrella.example")
    items, _ = report_facts(report, {"sam.lee@umbrella.example": [sam]})
    assert [type(fact) for _, fact in items] == [EmailEngagement]
    engagement = items[0][1]
    assert isinstance(engagement, EmailEngagement)
    assert (engagement.kind, engagement.permanent) == (EngagementKind.BOUNCED, False)


def test_a_complaint_withdraws_consent_and_records_the_complaint() -> None:
    report = read_report(sample("arf_abuse.eml"), NOW)
    alex = ContactFacts(contact_id="78", email="Alex.Kim@hooli.example")
    items, _ = report_facts(report, {"alex.kim@hooli.example": [alex]})
    [withdrawn, engagement] = [fact for _, fact in items]
    assert isinstance(withdrawn, ConsentWithdrawn) and withdrawn.reason is ConsentReason.COMPLAINT
    assert withdrawn.email == "Alex.Kim@hooli.example"  # the contact's own address, as the store holds it
    assert isinstance(engagement, EmailEngagement)
    assert (engagement.kind, engagement.permanent) == (EngagementKind.COMPLAINED, None)


def test_every_contact_holding_a_bounced_address_is_withdrawn() -> None:
    report = read_report(sample("postfix_5.1.1_unknown_user.eml"), NOW)
    twin = ContactFacts(contact_id="5000000999", email=JORDAN_EMAIL)
    items, _ = report_facts(report, {JORDAN_EMAIL: [JORDAN, twin]})
    withdrawn = [fact.contact_id for _, fact in items if isinstance(fact, ConsentWithdrawn)]
    assert withdrawn == [JORDAN.contact_id, twin.contact_id]
    assert len({key for key, _ in items}) == 4


def test_an_address_no_contact_holds_is_an_unknown_recipient() -> None:
    report = read_report(sample("postfix_5.1.1_unknown_user.eml"), NOW)
    items, ignored = report_facts(report, {})
    assert items == []
    assert [(i.recipient, i.code, i.reason) for i in ignored] == [
        ("jordan.reyes@northwind.example", "unknown_recipient", "unknown recipient")
    ]


def test_without_the_original_message_id_a_hard_bounce_is_only_a_consent_record_and_a_soft_one_nothing() -> None:
    headless = without_returned_message(sample("postfix_5.1.1_unknown_user.eml"))
    report = read_report(headless, NOW)
    assert report.original_message_id is None
    items, _ = report_facts(report, {JORDAN_EMAIL: [JORDAN]})
    assert [type(fact) for _, fact in items] == [ConsentWithdrawn]

    soft = without_returned_message(sample("postfix_4.2.2_failed_after_retries.eml"))
    sam = ContactFacts(contact_id="77", email="sam.lee@umbrella.example")
    items, ignored = report_facts(read_report(soft, NOW), {"sam.lee@umbrella.example": [sam]})
    assert items == []
    assert [i.code for i in ignored] == ["no_message_id"]
