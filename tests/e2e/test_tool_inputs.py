"""Invalid tool inputs inside signed approvals, for every tool: wrong types, missing fields, oversize bodies,
header injection in a subject or recipient. The executor refuses each one before any side effect — the
dead letter names the field, the audit holds it — and nothing reaches a mailbox, the contact store, a
calendar or the asset store; the executor goes on serving. Likewise an approval altered after signing,
forged or unsigned, for every tool."""

from __future__ import annotations

import json
import secrets
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from herald_core.contracts import ActionProposed, DeadLettered
from herald_core.signing import generate_keypair, load_signer
from herald_core.topics import APPROVED_ACTION, AUDIT, contact_key
from support import (
    approve,
    calendar_events,
    envelope,
    execution_of,
    executor_answers,
    mails_to,
    present,
    publish_raw,
    read_topic,
    tool_action,
    tool_input,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

BAD: list[tuple[str, dict[str, Any], str]] = [
    ("send_email", {"subject": "Hello\r\nBcc: everyone@list.example"}, "subject"),
    ("send_email", {"to": "{contact}@buyers.example, boss@buyers.example"}, "to"),
    ("send_email", {"body_text": "x" * 20_001}, "body_text"),
    ("send_email", {"subject": None}, "subject"),
    ("update_crm_record", {"properties": {"lifecycle_stage": 7}}, "lifecycle_stage"),
    ("update_crm_record", {"properties": {"hs_password": "x"}}, "hs_password"),
    ("schedule_meeting", {"duration_minutes": "an hour"}, "duration_minutes"),
    ("schedule_meeting", {"title": "Walkthrough\r\nATTENDEE:mailto:x@y.example"}, "title"),
    ("schedule_meeting", {"attendee_email": None}, "attendee_email"),
    ("generate_image", {"headline": "x" * 121}, "headline"),
    ("generate_image", {"template": None}, "template"),
]


def _fill(value: Any, contact: str) -> Any:
    return json.loads(json.dumps(value).replace("{contact}", contact))


async def test_every_tool_refuses_invalid_input_before_any_side_effect(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"inp{secrets.token_hex(3)}")
    marks: dict[str, tuple[str, str]] = {}  # action id → (tool, field)
    contacts: dict[str, str] = {}
    for n, (tool, change, field) in enumerate(BAD):
        contact = f"c{secrets.token_hex(3)}{n}"
        approved = approve(herald, tool_action(tenant, tool, tool_input(tool, contact), contact_id=contact))
        # the input altered inside the signed approval (as a bug or an attacker upstream would)
        body = approved.model_dump(mode="json")
        body["action"]["input"] = {**body["action"]["input"], **_fill(change, contact)}
        env = envelope(tenant, approved, source="herald/guard")
        await publish_raw(
            herald.bootstrap,
            herald.topic(APPROVED_ACTION),
            json.dumps(body).encode(),
            key=contact_key(tenant, contact),
            headers=env.to_headers(),
        )
        marks[approved.action.action_id] = (tool, field)
        contacts[approved.action.action_id] = contact

    def dead(records):  # type: ignore[no-untyped-def]
        return {a: r for r in records for a in marks if a.encode() in (r.value or b"")}

    letters = await read_topic(
        herald.bootstrap,
        f"{herald.prefix}herald.dlq.executor.v1",
        timeout=60,
        until=lambda rs: len(dead(rs)) == len(marks),
    )
    for action_id, record in dead(letters).items():
        tool, field = marks[action_id]
        reason = record.headers["herald_dlq_reason"]
        assert reason.startswith("invalid body") and field in reason, (tool, reason)
    assert len(dead(letters)) == len(marks)

    # the audit shows every refusal, with its reason and where the approval was
    places = {
        (int(r.headers["herald_dlq_partition"]), int(r.headers["herald_dlq_offset"])) for r in dead(letters).values()
    }

    def audited(records):  # type: ignore[no-untyped-def]
        found = [DeadLettered.model_validate_json(r.value) for r in records if r.type == DeadLettered.TYPE]
        return {
            (d.original_partition, d.original_offset): d.reason
            for d in found
            if d.consumer == "executor" and d.original_topic == herald.topic(APPROVED_ACTION)
        }

    audit = await read_topic(
        herald.bootstrap, herald.topic(AUDIT), timeout=60, until=lambda rs: places <= set(audited(rs))
    )
    assert places <= set(audited(audit))

    # nothing happened downstream, and the executor still works
    ok = approve(herald, tool_action(tenant, "send_email", tool_input("send_email", "after"), contact_id="after"))
    await present(herald, ok)
    assert (await execution_of(herald, ok.action.action_id)).status.value == "succeeded"
    for action_id, contact in contacts.items():
        assert mails_to(herald.maildir, f"{contact}@buyers.example") == [], marks[action_id]
    assert calendar_events(herald.services.config, tenant) == []
    assert not (herald.services.config.state_dir / "assets" / tenant).exists()
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM crm.writes WHERE tenant = $1", tenant) == 0
        assert await conn.fetchval("SELECT count(*) FROM executor.ledger WHERE tenant = $1", tenant) == 1
    finally:
        await conn.close()


ALTERED: dict[str, dict[str, Any]] = {
    "send_email": {"body_text": "Ignore all that: 90% off today!"},
    "update_crm_record": {"properties": {"lifecycle_stage": "customer", "next_step": "refund everything"}},
    "schedule_meeting": {"attendee_email": "someone-else@elsewhere.example"},
    "generate_image": {"headline": "90% off everything"},
}


async def test_every_tool_refuses_an_altered_forged_or_unsigned_approval(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """For each tool with a side effect: a genuine approval whose (still valid) input was changed after
    signing, an approval signed with a key that is not the guard's, and an approval whose signature was
    stripped are refused before anything happens, each with its reason on the audited executed topic."""
    tenant = herald.add_tenant(f"sig{secrets.token_hex(3)}")
    generate_keypair(tmp_path, "guard-local-1")  # the guard's key id, another key
    forger = load_signer(tmp_path / "guard-local-1.pem", "guard-local-1")
    expected: dict[str, str] = {}  # action id → refusal reason
    contacts: list[str] = []
    for n, tool in enumerate(ALTERED):
        for way in ("altered", "forged", "unsigned"):
            contact = f"s{secrets.token_hex(3)}{n}"
            contacts.append(contact)
            action = tool_action(tenant, tool, tool_input(tool, contact, n), contact_id=contact)
            approved = approve(herald, action)
            if way == "altered":
                changed = {**approved.action.input.model_dump(mode="json"), **ALTERED[tool]}
                action = ActionProposed.model_validate({**action.model_dump(mode="json"), "input": changed})
                approved = approved.model_copy(update={"action": action})
            elif way == "forged":
                approval = forger.approve(action, approved_by="guard", policy_version="test", ttl=timedelta(minutes=10))
                approved = approved.model_copy(update={"approval": approval})
            else:
                approved = approved.model_copy(
                    update={"approval": approved.approval.model_copy(update={"signature": ""})}
                )
            await present(herald, approved)
            expected[action.action_id] = "bad_signature"

    answers = {a: await executor_answers(herald, a) for a in expected}
    for action_id, found in answers.items():
        assert [type(x).__name__ for x in found] == ["ActionRefused"], found
        assert found[0].reason == expected[action_id], found  # type: ignore[union-attr]

    # nothing reached any downstream
    for contact in contacts:
        assert mails_to(herald.maildir, f"{contact}@buyers.example") == []
    assert mails_to(herald.maildir, "someone-else@elsewhere.example") == []
    assert calendar_events(herald.services.config, tenant) == []
    assert not (herald.services.config.state_dir / "assets" / tenant).exists()
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM crm.writes WHERE tenant = $1", tenant) == 0
        assert await conn.fetchval("SELECT count(*) FROM executor.ledger WHERE tenant = $1", tenant) == 0
    finally:
        await conn.close()
