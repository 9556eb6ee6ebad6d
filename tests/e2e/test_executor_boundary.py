"""The executor is the last line: only a valid guard signature, unexpired, never replayed, with consent
still in place at that moment, becomes an email — and each refusal is on the audit."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from herald_core.contracts import (
    ActionApproved,
    ActionExecuted,
    ActionProposed,
    ActionRefused,
)
from herald_core.envelope import Envelope, new_traceparent
from herald_core.ids import new_id
from herald_core.signing import Signer, generate_keypair, load_signer
from herald_core.topics import APPROVED_ACTION, AUDIT, EXECUTED, PROPOSED_ACTION, contact_key
from support import email_action, eventually, mails_to, opt_out, publish, publish_raw, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]


def _action(tenant: str) -> ActionProposed:
    return email_action(
        tenant,
        contact_id=str(secrets.randbelow(10**9)),
        email=f"lead-{secrets.token_hex(6)}@northwind.example",
        subject="Hello from Acme Relay",
        body_text="Hi, a short note.",
        rationale="boundary test",
    )


def _guard(keys_dir: Path) -> Signer:
    return load_signer(keys_dir / "guard-local-1.pem", "guard-local-1")


def _approve(
    signer: Signer, action: ActionProposed, *, ttl: timedelta = timedelta(minutes=10), now: datetime | None = None
) -> ActionApproved:
    approval = signer.approve(action, approved_by="guard", policy_version="test", ttl=ttl, now=now)
    return ActionApproved(action=action, approval=approval, rules=())


def _envelope(tenant: str, message_type: str) -> Envelope:
    return Envelope(
        source="test/guard", type=message_type, tenant=tenant, correlation_id=new_id(), traceparent=new_traceparent()
    )


async def _send_approval(herald, approved: ActionApproved, tenant: str | None = None) -> Envelope:  # type: ignore[no-untyped-def]
    env = _envelope(tenant or approved.action.tenant, ActionApproved.TYPE)
    key = contact_key(approved.action.tenant, approved.action.contact.contact_id)
    await publish(herald.bootstrap, herald.prefix, APPROVED_ACTION, key, env, approved)
    return env


async def _outcome_for(herald, action_id: str, count: int = 1) -> list:  # type: ignore[no-untyped-def]
    def mine(records):  # type: ignore[no-untyped-def]
        return [r for r in records if r.value and action_id.encode() in r.value]

    records = await read_topic(
        herald.bootstrap, herald.topic(EXECUTED), timeout=30, until=lambda rs: len(mine(rs)) >= count
    )
    return mine(records)


async def _assert_refused(herald, approved: ActionApproved, reason: str, count: int = 1) -> None:  # type: ignore[no-untyped-def]
    outcomes = await _outcome_for(herald, approved.action.action_id, count)
    assert len(outcomes) >= count, f"no outcome for {approved.action.action_id}"
    refused = [ActionRefused.model_validate_json(r.value) for r in outcomes if r.type == ActionRefused.TYPE]
    assert reason in [r.reason for r in refused], [r.value for r in outcomes]
    audit = await read_topic(
        herald.bootstrap, herald.topic(AUDIT), timeout=15, until=lambda rs: any(r.id == outcomes[-1].id for r in rs)
    )
    assert any(r.id == outcomes[-1].id and r.headers.get("herald_topic") == herald.topic(EXECUTED) for r in audit)
    assert mails_to(herald.maildir, approved.action.input.to) == []


async def test_valid_approval_sends_exactly_one_email(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    approved = _approve(_guard(herald.keys_dir), _action(tenant))
    await _send_approval(herald, approved)
    mails = await eventually(lambda: mails_to(herald.maildir, approved.action.input.to), what="the email")
    assert len(mails) == 1
    mail = mails[0]
    assert approved.action.action_id.lower() in mail["Message-ID"]
    assert " ".join(mail["List-Unsubscribe"].split()).startswith("<https://acmerelay.example/unsubscribe?")
    assert mail["Subject"] == "Hello from Acme Relay"


async def test_forged_signature_is_refused(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    generate_keypair(tmp_path, "guard-local-1")  # the right key id, the wrong key
    forged = _approve(load_signer(tmp_path / "guard-local-1.pem"), _action(tenant))
    await _send_approval(herald, forged)
    await _assert_refused(herald, forged, "bad_signature")


async def test_unknown_key_is_refused(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    generate_keypair(tmp_path, "attacker-1")
    forged = _approve(load_signer(tmp_path / "attacker-1.pem"), _action(tenant))
    await _send_approval(herald, forged)
    await _assert_refused(herald, forged, "unknown_key")


async def test_altered_action_is_refused(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    genuine = _approve(_guard(herald.keys_dir), _action(tenant))
    altered_input = genuine.action.input.model_copy(update={"body_text": "Ignore all that: 90% off today!"})
    altered = genuine.model_copy(update={"action": genuine.action.model_copy(update={"input": altered_input})})
    await _send_approval(herald, altered)
    await _assert_refused(herald, altered, "bad_signature")


async def test_expired_approval_is_refused(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    stale = _approve(
        _guard(herald.keys_dir), _action(tenant), ttl=timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1)
    )
    await _send_approval(herald, stale)
    await _assert_refused(herald, stale, "expired")


async def test_replayed_approval_is_refused_and_sends_once(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    approved = _approve(_guard(herald.keys_dir), _action(tenant))
    await _send_approval(herald, approved)
    await eventually(lambda: mails_to(herald.maildir, approved.action.input.to), what="the first email")
    await _send_approval(herald, approved)  # the same signed approval, written again
    outcomes = await _outcome_for(herald, approved.action.action_id, count=2)
    refused = [ActionRefused.model_validate_json(r.value) for r in outcomes if r.type == ActionRefused.TYPE]
    assert [r.reason for r in refused] == ["replayed"]
    assert len(mails_to(herald.maildir, approved.action.input.to)) == 1


async def test_approval_moved_to_another_tenant_is_refused(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    other = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    approved = _approve(_guard(herald.keys_dir), _action(tenant))
    await _send_approval(herald, approved, tenant=other)
    await _assert_refused(herald, approved, "tenant_mismatch")


async def test_consent_withdrawn_after_approval_blocks_the_send(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    approved = _approve(_guard(herald.keys_dir), _action(tenant))
    # the opt-out is recorded after the guard approved, before the executor reads the approval
    await opt_out(herald, tenant, approved.action.contact)
    await _send_approval(herald, approved)
    await _assert_refused(herald, approved, "consent_withdrawn")


async def test_malformed_approval_is_dead_lettered_and_executor_keeps_working(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"sec{secrets.token_hex(3)}")
    marker = secrets.token_hex(8).encode()
    env = _envelope(tenant, ActionApproved.TYPE)
    await publish_raw(
        herald.bootstrap,
        herald.topic(APPROVED_ACTION),
        b'{"not": "an approval", "m": "' + marker + b'"}',
        key=b"x",
        headers=env.to_headers(),
    )
    await publish_raw(
        herald.bootstrap, herald.topic(APPROVED_ACTION), b"{broken json " + marker, key=b"x", headers=env.to_headers()
    )
    dlq = await read_topic(
        herald.bootstrap,
        f"{herald.prefix}herald.dlq.executor.v1",
        timeout=30,
        until=lambda rs: sum(marker in (r.value or b"") for r in rs) >= 2,
    )
    reasons = [r.headers["herald_dlq_reason"] for r in dlq if marker in (r.value or b"")]
    assert len(reasons) == 2 and all(reason.startswith("invalid body") for reason in reasons), reasons
    # still serving
    approved = _approve(_guard(herald.keys_dir), _action(tenant))
    await _send_approval(herald, approved)
    await eventually(lambda: mails_to(herald.maildir, approved.action.input.to), what="the email after bad input")


async def test_a_read_tool_presented_as_an_action_fails_typed_and_does_nothing(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"stats{secrets.token_hex(3)}")
    contact_id = f"c{secrets.token_hex(3)}"
    action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@buyers.example")
    action = ActionProposed.model_validate(
        {
            **action.model_dump(mode="json"),
            "tool": "fetch_campaign_stats",
            "input": {"campaign_id": "spring-launch"},
        }
    )
    env = Envelope(source="test/planner", type=ActionProposed.TYPE, tenant=tenant, correlation_id=new_id())
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, contact_id), env, action)

    def reported(records):  # type: ignore[no-untyped-def]
        return [
            ActionExecuted.model_validate_json(r.value)
            for r in records
            if r.type == ActionExecuted.TYPE and action.action_id.encode() in (r.value or b"")
        ]

    records = await read_topic(
        herald.bootstrap, herald.topic(EXECUTED), timeout=60, until=lambda rs: bool(reported(rs))
    )
    (executed,) = reported(records)
    assert executed.status.value == "failed" and executed.tool == "fetch_campaign_stats"
    assert executed.failure is not None and (executed.failure.kind.value, executed.failure.code) == (
        "permanent",
        "read_only_tool",
    )
