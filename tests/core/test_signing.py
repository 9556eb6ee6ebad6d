"""Approvals: a valid one verifies; any change to the action, the expiry or the key is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald_core.contracts import ActionApproved, ActionProposed, ContactFacts, SendEmailInput
from herald_core.signing import VerificationError, generate_keypair, load_signer, load_verifier


def _action() -> ActionProposed:
    return ActionProposed(
        action_id="01JTESTACTION0000000000000",
        tenant="acme",
        workflow_id="wf-1",
        tool="send_email",
        input=SendEmailInput(to="lead@northwind.example", subject="Hello", body_text="Hi there"),
        contact=ContactFacts(contact_id="5100001", email="lead@northwind.example"),
        evidence=(),
        confidence=0.9,
        rationale="first touch",
    )


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    generate_keypair(tmp_path, "guard-a")
    return tmp_path


def test_valid_approval_verifies(keys: Path) -> None:
    signer, verifier = load_signer(keys / "guard-a.pem"), load_verifier(keys)
    approval = signer.approve(_action(), approved_by="guard", policy_version="v1", ttl=timedelta(minutes=5))
    verifier.verify(ActionApproved(action=_action(), approval=approval, rules=()))


def test_altered_action_is_refused(keys: Path) -> None:
    signer, verifier = load_signer(keys / "guard-a.pem"), load_verifier(keys)
    approval = signer.approve(_action(), approved_by="guard", policy_version="v1", ttl=timedelta(minutes=5))
    altered = _action().model_copy(
        update={"input": SendEmailInput(to="other@evil.example", subject="Hello", body_text="Hi there")}
    )
    with pytest.raises(VerificationError) as err:
        verifier.verify(ActionApproved(action=altered, approval=approval, rules=()))
    assert err.value.reason == "bad_signature"


def test_stretched_expiry_is_refused(keys: Path) -> None:
    signer, verifier = load_signer(keys / "guard-a.pem"), load_verifier(keys)
    approval = signer.approve(_action(), approved_by="guard", policy_version="v1", ttl=timedelta(minutes=5))
    stretched = approval.model_copy(update={"expires_at": approval.expires_at + timedelta(days=1)})
    with pytest.raises(VerificationError) as err:
        verifier.verify(ActionApproved(action=_action(), approval=stretched, rules=()))
    assert err.value.reason == "bad_signature"


def test_expired_approval_is_refused(keys: Path) -> None:
    signer, verifier = load_signer(keys / "guard-a.pem"), load_verifier(keys)
    past = datetime.now(UTC) - timedelta(hours=1)
    approval = signer.approve(_action(), approved_by="guard", policy_version="v1", ttl=timedelta(minutes=5), now=past)
    with pytest.raises(VerificationError) as err:
        verifier.verify(ActionApproved(action=_action(), approval=approval, rules=()))
    assert err.value.reason == "expired"


def test_forged_key_is_refused(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    other = tmp_path_factory.mktemp("forger")
    generate_keypair(other, "guard-a")  # same key id, different key
    forged = load_signer(other / "guard-a.pem").approve(
        _action(), approved_by="guard", policy_version="v1", ttl=timedelta(minutes=5)
    )
    with pytest.raises(VerificationError) as err:
        load_verifier(keys).verify(ActionApproved(action=_action(), approval=forged, rules=()))
    assert err.value.reason == "bad_signature"
