"""Ed25519 signing of approvals: the guard signs, the executor verifies before any side effect.

What is signed is the canonical JSON of the action together with the approval's own fields
(key id, nonce, issue and expiry times, approver, policy version): sorted keys, no spaces,
UTF-8. Changing any byte of the action (recipient, subject, body) or stretching the expiry
breaks the signature.

Keys rotate without a restart (`herald keys rotate --grace 30m`, `rotate_keys`): the keys directory
holds `<key_id>.pem` / `<key_id>.pub.pem` pairs, a `current` file naming the key the guard signs
with, and a `<key_id>.retired` file (an ISO time) for each rotated-out key. The guard's `KeyRing`
signs with the current key; the executor's trusts every public key until its retirement time,
the grace period in which approvals signed before the rotation are still honoured. Both re-read
the directory when it changes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from herald_core.auth.services import ServiceKeys
from herald_core.contracts import ActionApproved, ActionProposed, Approval, DecisionSignature, ReviewDecided


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signed_payload(action: ActionProposed, approval_fields: dict[str, Any], *, legacy: bool = False) -> bytes:
    """What is signed: the action without the fields left at their defaults, so a field added to a contract later
    (with a default) changes no signature of an action that does not set it, and a guard and an executor one
    release apart agree on the bytes. `legacy`: the whole action, as approvals were signed before."""
    action_json = action.model_dump(mode="json", exclude_defaults=not legacy)
    return canonical_bytes({"action": action_json, "approval": approval_fields})


def action_digest(action: ActionProposed) -> str:
    """SHA-256 of the action's canonical JSON (fields at their defaults left out, as in approvals)."""
    return hashlib.sha256(canonical_bytes(action.model_dump(mode="json", exclude_defaults=True))).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Signer:
    key_id: str
    private_key: Ed25519PrivateKey

    def approve(
        self,
        action: ActionProposed,
        *,
        approved_by: str,
        policy_version: str,
        ttl: timedelta,
        now: datetime | None = None,
    ) -> Approval:
        issued = (now or datetime.now(UTC)).replace(microsecond=0)
        fields = {
            "key_id": self.key_id,
            "nonce": secrets.token_hex(16),
            "issued_at": issued.isoformat(),
            "expires_at": (issued + ttl).isoformat(),
            "approved_by": approved_by,
            "policy_version": policy_version,
        }
        signature = self.private_key.sign(_signed_payload(action, fields))
        return Approval.model_validate({**fields, "signature": _b64(signature)})


class VerificationError(Exception):
    """Why an approval was refused; `reason` is one of ActionRefused's reasons."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Verifier:
    public_keys: dict[str, Ed25519PublicKey]
    retired: dict[str, datetime] = field(default_factory=dict)  # key id → when its approvals stop counting

    def verify(self, approved: ActionApproved, *, now: datetime | None = None) -> None:
        approval = approved.approval
        key = self.public_keys.get(approval.key_id)
        if key is None:
            raise VerificationError("unknown_key", f"no trusted guard key with id {approval.key_id!r}")
        retired_at = self.retired.get(approval.key_id)
        if retired_at is not None and (now or datetime.now(UTC)) >= retired_at:
            detail = f"key {approval.key_id!r} was rotated out; its grace period ended at {retired_at.isoformat()}"
            raise VerificationError("retired_key", detail)
        fields = approval.model_dump(mode="json", exclude={"signature"})
        # the signer wrote times as isoformat of whole seconds; re-derive exactly that text
        fields["issued_at"] = approval.issued_at.isoformat()
        fields["expires_at"] = approval.expires_at.isoformat()
        signature = _unb64(approval.signature)
        if not any(
            _valid(key, signature, _signed_payload(approved.action, fields, legacy=old)) for old in (False, True)
        ):
            raise VerificationError("bad_signature", "signature does not match the action and approval")
        if (now or datetime.now(UTC)) >= approval.expires_at:
            raise VerificationError("expired", f"approval expired at {approval.expires_at.isoformat()}")


def _valid(key: Ed25519PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        key.verify(signature, payload)
    except (InvalidSignature, ValueError):
        return False
    return True


def generate_keypair(directory: Path, key_id: str) -> tuple[Path, Path]:
    """Write `<key_id>.pem` (private, mode 0600) and `<key_id>.pub.pem` unless they exist."""
    directory.mkdir(parents=True, exist_ok=True)
    private_path = directory / f"{key_id}.pem"
    public_path = directory / f"{key_id}.pub.pem"
    if not private_path.exists():
        key = Ed25519PrivateKey.generate()
        private_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        private_path.chmod(0o600)
        public_path.write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
    return private_path, public_path


def load_signer(private_key_path: Path, key_id: str | None = None) -> Signer:
    key = serialization.load_pem_private_key(private_key_path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{private_key_path} is not an Ed25519 private key")
    return Signer(key_id or private_key_path.name.removesuffix(".pem"), key)


def load_verifier(public_key_dir: Path) -> Verifier:
    """Trust every `<key_id>.pub.pem` in the directory, each until its `<key_id>.retired` time if it has one."""
    keys: dict[str, Ed25519PublicKey] = {}
    for path in sorted(public_key_dir.glob("*.pub.pem")):
        key = serialization.load_pem_public_key(path.read_bytes())
        if isinstance(key, Ed25519PublicKey):
            keys[path.name.removesuffix(".pub.pem")] = key
    if not keys:
        raise ValueError(f"no Ed25519 public keys (*.pub.pem) in {public_key_dir}")
    retired = {
        path.name.removesuffix(".retired"): datetime.fromisoformat(path.read_text().strip())
        for path in public_key_dir.glob("*.retired")
    }
    return Verifier(keys, retired)


CURRENT = "current"


def rotate_keys(
    directory: Path, grace: timedelta, *, replacing: str | None = None, now: datetime | None = None
) -> tuple[str, str | None]:
    """Make a new key current; the one it replaces (the `current` one, else `replacing`: the guard's configured
    key) is retired after `grace`. Returns (new id, old id)."""
    now = now or datetime.now(UTC)
    current = directory / CURRENT
    old = current.read_text().strip() if current.exists() else replacing
    new = f"guard-{now:%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
    generate_keypair(directory, new)
    if old:
        (directory / f"{old}.retired").write_text((now + grace).isoformat())
    staged = directory / f".{CURRENT}.{new}"
    staged.write_text(new)
    os.replace(staged, current)  # atomic: a reader sees the old id or the new one, never half
    return new, old


class KeyRing:
    """The keys directory, re-read when it changes (at most once per `interval` seconds): the guard signs
    with the `current` key (else `default_key_id`), the executor verifies with every trusted one."""

    def __init__(self, directory: Path, default_key_id: str | None = None, interval: float = 1.0) -> None:
        self.directory = directory
        self.default_key_id = default_key_id
        self.interval = interval
        self._checked = 0.0
        self._stamp: int | None = None
        self._signer: Signer | None = None
        self._verifier: Verifier | None = None

    def _fresh(self) -> None:
        if self._stamp is not None and time.monotonic() - self._checked < self.interval:
            return
        self._checked = time.monotonic()
        stamp = os.stat(self.directory).st_mtime_ns  # a key added, retired or made current changes it
        if stamp != self._stamp:
            self._stamp, self._signer, self._verifier = stamp, None, None

    def signer(self) -> Signer:
        self._fresh()
        if self._signer is None:
            current = self.directory / CURRENT
            key_id = current.read_text().strip() if current.exists() else self.default_key_id
            if not key_id:
                raise ValueError(f"no current key in {self.directory} and no default key id")
            self._signer = load_signer(self.directory / f"{key_id}.pem", key_id)
        return self._signer

    def verify(self, approved: ActionApproved, *, now: datetime | None = None) -> None:
        self._fresh()
        if self._verifier is None:
            self._verifier = load_verifier(self.directory)
        self._verifier.verify(approved, now=now)


# ---------------------------------------------------------------- reviewers' decisions (the review service signs)

REVIEW_SERVICE = "review"


def decision_payload(decided: ReviewDecided, key_id: str, signed_at: datetime, expires_at: datetime) -> bytes:
    """What the review service signs: the decision with its item, reviewer(s), reason and edit, the digest of the
    action reviewed, and the signature's own key id and times."""
    fields = decided.model_dump(mode="json", exclude={"signature", "action"}, exclude_defaults=True)
    return canonical_bytes(
        {
            "decision": fields,
            "action_digest": action_digest(decided.action),
            "key_id": key_id,
            "signed_at": signed_at.isoformat(),
            "expires_at": expires_at.isoformat(),
        }
    )


def sign_decision(
    decided: ReviewDecided, keys: ServiceKeys, ttl: timedelta, now: datetime | None = None
) -> ReviewDecided:
    """The decision with the review service's signature, valid for `ttl`."""
    signed_at = (now or datetime.now(UTC)).replace(microsecond=0)
    expires_at = signed_at + ttl
    key_id = keys.key_id()  # the key in use now: its id is part of what is signed
    _, signature = keys.sign(decision_payload(decided, key_id, signed_at, expires_at))
    seal = DecisionSignature(key_id=key_id, signed_at=signed_at, expires_at=expires_at, signature=signature)
    return decided.model_copy(update={"signature": seal})


def verify_decision(decided: ReviewDecided, keys: ServiceKeys, now: datetime | None = None) -> None:
    """Raise `VerificationError` unless the review service signed exactly this decision and it has not expired."""
    seal = decided.signature
    if seal is None:
        raise VerificationError("unsigned", "the decision carries no signature of the review service")
    payload = decision_payload(decided, seal.key_id, seal.signed_at, seal.expires_at)
    if not keys.verify(REVIEW_SERVICE, seal.key_id, payload, seal.signature):
        raise VerificationError(
            "bad_signature", "the signature does not match the decision, or no review key signed it"
        )
    if (now or datetime.now(UTC)) >= seal.expires_at:
        raise VerificationError("expired", f"the decision's signature expired at {seal.expires_at.isoformat()}")
