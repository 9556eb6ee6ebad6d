"""The web UI's pure views: how long an item waited, a queue row, an item as a reviewer reads it, form
problems in words, and audit records as a person reads them — without a server (the browser test drives the
pages themselves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from herald_core.contracts import RuleHit
from herald_review.logic import Reject, Resolve
from herald_review.web import (
    MOMENT_PROBLEM,
    age,
    audit_criteria,
    audit_row,
    audit_summary,
    field_errors,
    item_view,
    queue_row,
    type_in_words,
)
from support import email_action

NOW = datetime(2031, 3, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("waited", "said"),
    [
        (timedelta(seconds=7), "7 s"),
        (timedelta(minutes=42, seconds=5), "42 min"),
        (timedelta(hours=3, minutes=9), "3 h 9 min"),
        (timedelta(days=2, hours=5, minutes=1), "2 d 5 h"),
        (timedelta(seconds=-3), "0 s"),  # a clock a little ahead of the database's
    ],
)
def test_age_says_how_long_an_item_waited(waited: timedelta, said: str) -> None:
    assert age((NOW - waited).isoformat(), NOW) == said


def _approval_item() -> dict[str, object]:
    action = email_action(
        "acme",
        contact_id="c1",
        email="jordan@northwind.example",
        subject="Quick <b>question</b>",
        body_text="Hi <script>alert(1)</script>",
        first_name="Jordan",
        company="Northwind Freight",
        vip=True,
    )
    rules = [
        RuleHit(rule="consent.opt_out", outcome="pass", detail="no opt-out recorded"),
        RuleHit(rule="escalation.vip", outcome="escalate", detail="contact is marked VIP"),
    ]
    return {
        "review_id": "r1",
        "kind": "approval",
        "tenant": "acme",
        "action_id": action.action_id,
        "contact_id": "c1",
        "status": "pending",
        "reason": "contact is marked VIP",
        "rules": [r.model_dump(mode="json") for r in rules],
        "action": action.model_dump(mode="json"),
        "reviewer": None,
        "decision_reason": None,
        "created_at": (NOW - timedelta(minutes=5)).isoformat(),
        "decided_at": None,
    }


def test_a_queue_row_says_who_what_and_which_rules_sent_it_here() -> None:
    row = queue_row(_approval_item(), NOW)
    assert row["contact"] == "Jordan · jordan@northwind.example · Northwind Freight"
    assert (row["tool"], row["age"], row["rules"]) == ("send_email", "5 min", ["escalation.vip"])


def test_an_email_is_shown_as_its_own_words_and_the_contact_as_facts() -> None:
    view = item_view(_approval_item(), NOW)
    # the words as drafted: escaping is the template's job, so nothing is altered or stripped here
    assert view["email"] == {
        "to": "jordan@northwind.example",
        "to_name": None,
        "subject": "Quick <b>question</b>",
        "body": "Hi <script>alert(1)</script>",
    }
    assert view["described"] == "email “Quick <b>question</b>” to jordan@northwind.example"
    assert ("VIP", "yes") in view["contact"] and ("company", "Northwind Freight") in view["contact"]
    assert view["confidence"] == 0.9 and view["pending"]


def test_form_problems_are_said_per_field_in_words_a_reviewer_can_act_on() -> None:
    with pytest.raises(ValidationError) as rejected:
        Reject.model_validate({})
    problems = field_errors(rejected.value)
    assert list(problems) == ["reason"] and problems["reason"].startswith("Say why")
    with pytest.raises(ValidationError) as named:  # who decides is the signed-in person, never a typed name
        Reject.model_validate({"reviewer": "mallory@attacker.example", "reason": "fine"})
    assert list(field_errors(named.value)) == ["reviewer"]
    with pytest.raises(ValidationError) as resolved:
        Resolve.model_validate({"outcome": "maybe"})
    problems = field_errors(resolved.value, resolving=True)
    assert set(problems) == {"outcome", "reason"}
    assert problems["reason"].startswith("Say how it was checked")
    assert "happened" in problems["outcome"]  # not missing but wrong: pydantic's own words name the choices


def _proposal() -> dict[str, object]:
    return email_action(
        "acme",
        contact_id="c1",
        email="jordan@northwind.example",
        subject="Routes",
        body_text="Hi Jordan,\n\n<script>alert(1)</script>\nWe cut dispatch time.",
    ).model_dump(mode="json")


@pytest.mark.parametrize(
    ("record_type", "body", "words"),
    [
        ("herald.action.proposed.v1", _proposal(), "email proposed"),
        ("herald.action.proposed.v1", {**_proposal(), "tool": "update_crm_record"}, "CRM update proposed"),
        ("herald.action.blocked.v1", {"rule": "consent.opt_out"}, "blocked by guard"),
        ("herald.action.escalated.v1", {}, "sent to review"),
        ("herald.action.approved.v1", {"stage": "proposal"}, "approved by guard"),
        ("herald.action.approved.v1", {"stage": "review"}, "approved by guard after review"),
        ("herald.review.decided.v1", {"decision": "approved"}, "approved by reviewer"),
        ("herald.review.decided.v1", {"decision": "rejected"}, "rejected by reviewer"),
        ("herald.action.executed.v1", {"tool": "send_email", "status": "succeeded"}, "sent"),
        ("herald.action.executed.v1", {"tool": "schedule_meeting", "status": "succeeded"}, "meeting scheduled"),
        ("herald.action.executed.v1", {"tool": "send_email", "status": "in_doubt"}, "in doubt"),
        ("herald.execution.resolved.v1", {"outcome": "happened"}, "resolved"),
        ("herald.consent.withdrawn.v1", {"reason": "unsubscribe"}, "consent withdrawn"),
        ("herald.control.kill-switch.v1", {"engaged": False}, "kill switch released"),
        ("herald.action.proposed.v1", None, "action proposed"),  # an erased contact's record: no body left
        ("herald.something.new.v1", {"reason": "x"}, "herald.something.new.v1"),  # unknown: the type as written
    ],
)
def test_an_audit_records_type_is_said_in_words(record_type: str, body: dict[str, object] | None, words: str) -> None:
    assert type_in_words(record_type, body) == words


def test_an_audit_summary_is_one_line_of_the_records_own_words() -> None:
    proposed = audit_summary("herald.action.proposed.v1", _proposal())
    # the draft's words as written, markup and all (the page escapes them), on one line
    assert (
        proposed
        == "email “Routes” to jordan@northwind.example — Hi Jordan, <script>alert(1)</script> We cut dispatch time."
    )
    decided = {"decision": "rejected", "reviewer": "dana", "reason": "Promises\na cut we cannot show"}
    assert audit_summary("herald.review.decided.v1", decided) == "dana: Promises a cut we cannot show"
    withdrawn = {"channel": "email", "reason": "hard_bounce", "upstream_source": "ses"}
    assert audit_summary("herald.consent.withdrawn.v1", withdrawn) == "email: hard bounce (from ses)"
    assert audit_summary("herald.action.blocked.v1", {"reason": "over the daily cap"}) == "over the daily cap"
    assert audit_summary("herald.action.blocked.v1", None).startswith("no body kept")
    long = audit_summary("herald.action.escalated.v1", {"reason": "word " * 100})
    assert len(long) == 200 and long.endswith("…")


def test_an_audit_row_names_the_rule_that_decided() -> None:
    at = "2031-03-04T12:00:00.123456+00:00"
    record = {"partition": 2, "offset": 7, "tenant": "acme", "contact_id": "c1", "action_id": "a1", "occurred_at": at}
    hits = [
        {"rule": "consent.opt_out", "outcome": "pass", "detail": ""},
        {"rule": "escalation.vip", "outcome": "escalate", "detail": "contact is marked VIP"},
    ]
    escalated = audit_row({**record, "type": "herald.action.escalated.v1", "rule": None, "body": {"rules": hits}})
    assert (escalated["key"], escalated["at"], escalated["rules"]) == (
        "2-7",
        "2031-03-04 12:00:00 UTC",
        ["escalation.vip"],
    )
    blocked = audit_row({**record, "type": "herald.action.blocked.v1", "rule": "review.rejected", "body": None})
    assert blocked["rules"] == ["review.rejected"]


@pytest.mark.parametrize(
    ("typed", "since", "until"),
    [
        ({"since": "2031-03-04"}, datetime(2031, 3, 4, tzinfo=UTC), None),
        ({"until": "2031-03-04"}, None, datetime(2031, 3, 5, tzinfo=UTC)),  # a date as until includes its day
        ({"since": "2031-03-04T14:30"}, datetime(2031, 3, 4, 14, 30, tzinfo=UTC), None),
        ({"since": "2031-03-04 14:30+02:00"}, datetime(2031, 3, 4, 12, 30, tzinfo=UTC), None),
    ],
)
def test_the_audit_search_reads_dates_and_times_in_utc(
    typed: dict[str, str], since: datetime | None, until: datetime | None
) -> None:
    criteria, errors = audit_criteria({"tenant": " acme ", **typed})
    assert errors == {}
    assert criteria == {
        "tenant": "acme",
        "contact_id": None,
        "action_id": None,
        "rule": None,
        "since": since,
        "until": until,
    }


def test_a_bad_audit_search_says_what_is_wrong_by_field() -> None:
    assert audit_criteria({"tenant": "acme", "since": "yesterday"})[1] == {"since": MOMENT_PROBLEM}
    assert audit_criteria({"tenant": "acme", "until": "9999-12-31"})[1] == {"until": MOMENT_PROBLEM}
    backwards = audit_criteria({"tenant": "acme", "since": "2031-03-05", "until": "2031-03-04T00:00"})[1]
    assert list(backwards) == ["until"]
    assert list(audit_criteria({"contact_id": "c1"})[1]) == ["tenant"]
    assert audit_criteria({}) == (
        {"tenant": None, "contact_id": None, "action_id": None, "rule": None, "since": None, "until": None},
        {},
    )
