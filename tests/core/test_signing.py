"""Approvals: a valid one verifies; any change to the action, the expiry or the key is refused."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald_core.contracts import ActionApproved, ActionProposed, ContactFacts, SendEmailInput
from herald_core.signing import (
    KeyRing,
    VerificationError,
    canonical_bytes,
    generate_keypair,
    load_signer,
    load_verifier,
    rotate_keys,
)


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


def test_keys_rotate_without_a_restart_and_the_old_key_counts_until_its_grace_ends(keys: Path) -> None:
    guard, executor = KeyRing(keys, "guard-a", interval=0), KeyRing(keys, interval=0)
    issued = datetime.now(UTC)

    def approved(signer) -> ActionApproved:  # type: ignore[no-untyped-def]
        approval = signer.approve(_action(), approved_by="guard", policy_version="v1", ttl=timedelta(days=1))
        return ActionApproved(action=_action(), approval=approval, rules=())

    before = approved(guard.signer())
    assert before.approval.key_id == "guard-a"
    executor.verify(before)

    new, old = rotate_keys(keys, timedelta(minutes=10), replacing="guard-a", now=issued)
    assert old == "guard-a" and new != old
    after = approved(guard.signer())  # the same KeyRing, no restart: the new key signs
    assert after.approval.key_id == new
    executor.verify(after)
    executor.verify(before, now=issued + timedelta(minutes=9))  # within the grace period
    with pytest.raises(VerificationError) as refused:
        executor.verify(before, now=issued + timedelta(minutes=10))
    assert refused.value.reason == "retired_key"
    executor.verify(after, now=issued + timedelta(minutes=10))

    newer, replaced = rotate_keys(keys, timedelta(0), now=issued + timedelta(minutes=1))
    assert replaced == new and guard.signer().key_id == newer
    with pytest.raises(VerificationError, match="grace period ended"):
        executor.verify(after, now=issued + timedelta(minutes=1))


def test_an_approval_signed_over_the_whole_action_still_verifies(keys: Path) -> None:
    """Approvals a guard of the release before signed (every field of the action, defaults included) are still
    honoured by an executor that signs only the fields an action sets."""
    signer, verifier = load_signer(keys / "guard-a.pem"), load_verifier(keys)
    fresh = signer.approve(_action(), approved_by="guard", policy_version="v1", ttl=timedelta(minutes=5))
    fields = fresh.model_dump(mode="json", exclude={"signature"})
    fields |= {"issued_at": fresh.issued_at.isoformat(), "expires_at": fresh.expires_at.isoformat()}
    whole = canonical_bytes({"action": _action().model_dump(mode="json"), "approval": fields})
    signature = base64.urlsafe_b64encode(signer.private_key.sign(whole)).decode().rstrip("=")
    legacy = fresh.model_copy(update={"signature": signature})
    verifier.verify(ActionApproved(action=_action(), approval=legacy, rules=()))


def test_a_field_set_back_to_its_default_is_still_a_change(keys: Path) -> None:
    """Leaving defaults out of what is signed opens no gap: a VIP flag cleared, or a company size set, after the
    approval breaks it."""
    signer, verifier = load_signer(keys / "guard-a.pem"), load_verifier(keys)
    vip = _action().model_copy(update={"contact": ContactFacts(contact_id="5100001", vip=True)})
    approval = signer.approve(vip, approved_by="guard", policy_version="v1", ttl=timedelta(minutes=5))
    for altered in (
        vip.model_copy(update={"contact": ContactFacts(contact_id="5100001")}),
        vip.model_copy(update={"contact": ContactFacts(contact_id="5100001", vip=True, company_size=40)}),
    ):
        with pytest.raises(VerificationError) as err:
            verifier.verify(ActionApproved(action=altered, approval=approval, rules=()))
        assert err.value.reason == "bad_signature"
    verifier.verify(ActionApproved(action=vip, approval=approval, rules=()))
