"""A reviewer's decision is the review service's, provably: signed over the decision, its item, the action's
digest and the authenticated reviewer, with an expiry; any change to any of them, another service's key, or no
signature at all is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald_core.auth.services import ServiceKeys, generate_service_keys
from herald_core.contracts import DraftEdit, ReviewDecided, ReviewDecision, SendEmailInput
from herald_core.signing import VerificationError, sign_decision, verify_decision
from support import email_action


@pytest.fixture
def keys(tmp_path: Path) -> tuple[ServiceKeys, ServiceKeys]:
    generate_service_keys(tmp_path, ["review", "planner", "guard"])
    return ServiceKeys(tmp_path, "review"), ServiceKeys(tmp_path, "guard")


def decided(**fields: object) -> ReviewDecided:
    action = email_action("acme", contact_id="42", email="jordan@northwind.example", vip=True)
    values = {
        "review_id": "rv-1",
        "action": action,
        "decision": ReviewDecision.APPROVED,
        "reviewer": "dana@acme.example",
        "decided_at": datetime(2026, 12, 2, 15, 0, tzinfo=UTC),
        **fields,
    }
    return ReviewDecided.model_validate(values)


def reason_refused(decision: ReviewDecided, guard: ServiceKeys, now: datetime | None = None) -> str:
    with pytest.raises(VerificationError) as refused:
        verify_decision(decision, guard, now=now)
    return refused.value.reason


def test_a_signed_decision_verifies_and_survives_the_wire(keys) -> None:  # type: ignore[no-untyped-def]
    review, guard = keys
    signed = sign_decision(
        decided(edit=DraftEdit(subject="Better"), approvers=("ana", "dana@acme.example")), review, timedelta(days=1)
    )
    verify_decision(ReviewDecided.model_validate_json(signed.model_dump_json()), guard)


@pytest.mark.parametrize(
    "change",
    [
        {"reviewer": "mallory@attacker.example"},
        {"decision": ReviewDecision.REJECTED},
        {"review_id": "rv-2"},
        {"reason": "added later"},
        {"edit": DraftEdit(subject="Wire $5,000 now")},
        {"approvers": ("dana@acme.example",)},
    ],
)
def test_any_change_to_the_decision_breaks_its_signature(keys, change) -> None:  # type: ignore[no-untyped-def]
    review, guard = keys
    signed = sign_decision(decided(), review, timedelta(days=1))
    assert reason_refused(signed.model_copy(update=change), guard) == "bad_signature"


def test_a_changed_action_breaks_it_too(keys) -> None:  # type: ignore[no-untyped-def]
    review, guard = keys
    signed = sign_decision(decided(), review, timedelta(days=1))
    assert isinstance(signed.action.input, SendEmailInput)
    other = signed.action.model_copy(update={"input": signed.action.input.model_copy(update={"to": "x@evil.example"})})
    assert reason_refused(signed.model_copy(update={"action": other}), guard) == "bad_signature"


def test_unsigned_expired_or_signed_by_another_service_is_refused(keys, tmp_path) -> None:  # type: ignore[no-untyped-def]
    review, guard = keys
    assert reason_refused(decided(), guard) == "unsigned"
    signed = sign_decision(decided(), review, timedelta(minutes=5))
    assert reason_refused(signed, guard, now=datetime.now(UTC) + timedelta(minutes=6)) == "expired"
    stretched = signed.model_copy(
        update={"signature": signed.signature.model_copy(update={"expires_at": datetime.now(UTC) + timedelta(days=9)})}
    )
    assert reason_refused(stretched, guard) == "bad_signature"
    by_planner = sign_decision(decided(), ServiceKeys(tmp_path, "planner"), timedelta(days=1))
    assert reason_refused(by_planner, guard) == "bad_signature"
