"""The web UI's pure views: how long an item waited, a queue row, an item as a reviewer reads it, and form
problems in words — without a server (the browser test drives the pages themselves)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from herald_core.contracts import RuleHit
from herald_review.logic import Reject, Resolve
from herald_review.web import age, field_errors, item_view, queue_row
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
        Reject.model_validate({"reviewer": "dana"})
    problems = field_errors(rejected.value)
    assert list(problems) == ["reason"] and problems["reason"].startswith("Say why")
    with pytest.raises(ValidationError) as resolved:
        Resolve.model_validate({"outcome": "maybe"})
    problems = field_errors(resolved.value, resolving=True)
    assert set(problems) == {"reviewer", "outcome", "reason"}
    assert problems["reason"].startswith("Say how it was checked")
    assert "happened" in problems["outcome"]  # not missing but wrong: pydantic's own words name the choices
