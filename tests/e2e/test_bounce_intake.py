"""A bounce posted to the ingest edge stops the next email: a Postfix DSN (5.1.1, user unknown) for a seeded
contact's address goes to `POST /v1/inbound/<tenant>/email`; the guard then blocks that contact's next email on
consent, with the hard bounce as the reason, while a contact whose mailbox was only full is still written to."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from herald_core.contracts import ActionApproved, ActionBlocked
from herald_core.topics import PROPOSED_ACTION, contact_key
from support import contact_record, email_action, envelope, guard_answer, publish

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

SAMPLES = Path(__file__).parent.parent / "ingest" / "samples"


async def post_report(herald, tenant: str, sample: str, sampled_address: str, address: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    raw = (SAMPLES / sample).read_bytes().replace(sampled_address.encode(), address.encode())
    raw = re.sub(rb"(?mi)^Message-Id: <[^>]+>", f"Message-Id: <{os.urandom(8).hex()}@mx.test>".encode(), raw, count=1)
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{herald.services.ingest_url}/v1/inbound/{tenant}/email",
            content=raw,
            headers={"Content-Type": "message/rfc822"},
        )


async def decision_for(herald, tenant: str, contact_id: str, address: str):  # type: ignore[no-untyped-def]
    action = email_action(tenant, contact_id=contact_id, email=address)
    env = envelope(tenant, action, source="test/planner")
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, contact_id), env, action)
    return await guard_answer(herald, tenant, action.action_id)


async def test_a_hard_bounce_at_the_edge_blocks_the_contacts_next_email(herald, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"bounce{os.urandom(3).hex()}")
    gone, full = 7_100_000_001, 7_100_000_002
    gone_address, full_address = f"gone-{gone}@northwind.example", f"full-{full}@umbrella.example"
    herald.seed_contacts(
        tenant, [contact_record(gone, email=gone_address), contact_record(full, email=full_address)], tmp_path
    )

    hard = await post_report(
        herald, tenant, "postfix_5.1.1_unknown_user.eml", "jordan.reyes@northwind.example", gone_address
    )
    assert hard.status_code == 202 and hard.json()["accepted"] == 2, hard.text
    soft = await post_report(
        herald, tenant, "postfix_4.2.2_failed_after_retries.eml", "sam.lee@umbrella.example", full_address
    )
    assert soft.status_code == 202 and soft.json()["accepted"] == 1, soft.text

    blocked = await decision_for(herald, tenant, str(gone), gone_address)
    assert isinstance(blocked, ActionBlocked), blocked
    assert blocked.rule == "consent.opt_out"
    assert "hard_bounce" in blocked.reason
    approved = await decision_for(herald, tenant, str(full), full_address)
    assert isinstance(approved, ActionApproved), approved
