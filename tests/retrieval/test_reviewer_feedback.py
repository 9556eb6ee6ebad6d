"""What a reviewer says becomes long-term memory for the next drafts: a reason, and the wording they approved
instead of the draft's (an edit says what the draft should have been, even without a reason)."""

from __future__ import annotations

from datetime import UTC, datetime

from herald_core.bus import Inbound
from herald_core.contracts import DraftEdit, ReviewDecided, ReviewDecision
from herald_core.envelope import Envelope
from herald_core.topics import REVIEW_DECISION
from herald_retrieval.memory import feedback_of
from support import email_action


def _decided(**fields) -> Inbound:  # type: ignore[no-untyped-def]
    action = email_action("acme", contact_id="42", email="jordan@northwind.example", job_title="Head of Operations")
    body = ReviewDecided(
        review_id="rv-1",
        action=action,
        decision=ReviewDecision.APPROVED,
        reviewer="dana@acme.example",
        decided_at=datetime(2026, 11, 27, 15, 0, tzinfo=UTC),
        **fields,
    )
    env = Envelope(source="herald/review", type=ReviewDecided.TYPE, tenant="acme", correlation_id="c-1")
    return Inbound(REVIEW_DECISION, 0, 0, b"acme:42", env, body, ())


def test_an_edit_without_a_reason_is_remembered_as_the_wording_the_reviewer_wanted() -> None:
    memory = feedback_of(_decided(edit=DraftEdit(subject="Jordan, your routes", body_text="Hi Jordan,\n\nShort.")))
    assert memory is not None and memory.kind == "reviewer_feedback" and memory.about == "42"
    assert "changed the subject to “Jordan, your routes”" in memory.text
    assert "rewrote the body as: Hi Jordan" in memory.text
    assert "Head of Operations" in memory.text


def test_a_reason_and_an_edit_are_both_remembered() -> None:
    memory = feedback_of(_decided(reason="too long", edit=DraftEdit(subject="Shorter")))
    assert memory is not None and memory.text.endswith("too long; changed the subject to “Shorter”")


def test_an_approval_with_neither_teaches_nothing() -> None:
    assert feedback_of(_decided()) is None
