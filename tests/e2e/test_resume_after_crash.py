"""A call cut off by a crash is settled with its downstream when the executor meets its record again — even if,
meanwhile, the approval expired, the contact opted out or a kill switch went on. Those stop anything new from
starting; they do not turn a side effect that may already have happened into a refusal. What had happened is
reported done, what cannot be known is in doubt (and reaches a person), and what had not happened is refused
and stays undone."""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from PIL import Image

from herald_core.contracts import ActionApproved, ActionExecuted, ActionRefused
from herald_core.signing import load_signer
from support import (
    cut_off_by_a_crash,
    eventually,
    executor_answers,
    mails_to,
    opt_out,
    tool_action,
    tool_input,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]


def _signed(herald, action, *, expired: bool) -> ActionApproved:  # type: ignore[no-untyped-def]
    signer = load_signer(herald.keys_dir / "guard-local-1.pem", "guard-local-1")
    now = datetime.now(UTC) - (timedelta(hours=1) if expired else timedelta(0))
    approval = signer.approve(action, approved_by="guard", policy_version="test", ttl=timedelta(minutes=10), now=now)
    return ActionApproved(action=action, approval=approval, rules=())


async def test_a_call_cut_off_by_a_crash_is_settled_even_when_it_may_no_longer_start(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"cut{secrets.token_hex(3)}")
    run = secrets.token_hex(3)

    def action(tool: str, n: int):  # type: ignore[no-untyped-def]
        contact = f"{run}{n}"
        return tool_action(tenant, tool, tool_input(tool, contact, n), contact_id=contact)

    image_written, image_not_written, email_late, email_opted_out = (
        action("generate_image", 0),
        action("generate_image", 1),
        action("send_email", 2),
        action("send_email", 3),
    )
    approvals = [
        _signed(herald, image_written, expired=True),
        _signed(herald, image_not_written, expired=True),
        _signed(herald, email_late, expired=True),
        _signed(herald, email_opted_out, expired=False),
    ]

    # the crash came after the first image was stored (the asset store holds it, whole)
    stored = herald.services.config.state_dir / "assets" / tenant / "images" / f"{image_written.action_id.lower()}.png"
    stored.parent.mkdir(parents=True, exist_ok=True)
    picture = io.BytesIO()
    Image.new("RGB", (1080, 1080), "#123456").save(picture, format="PNG")
    stored.write_bytes(picture.getvalue())
    # the last contact opted out after the approval was signed
    await opt_out(herald, tenant, email_opted_out.contact)

    await cut_off_by_a_crash(herald, approvals)

    answers = {a.action.action_id: await executor_answers(herald, a.action.action_id) for a in approvals}
    (done,) = answers[image_written.action_id]
    assert isinstance(done, ActionExecuted) and done.status.value == "succeeded", done
    assert done.result["sha256"] == hashlib.sha256(picture.getvalue()).hexdigest()  # the stored file, not redrawn
    (refused,) = answers[image_not_written.action_id]
    assert isinstance(refused, ActionRefused) and refused.reason == "expired", refused
    assert "had not happened" in refused.detail
    for email in (email_late, email_opted_out):
        (doubt,) = answers[email.action_id]
        assert isinstance(doubt, ActionExecuted) and doubt.status.value == "in_doubt", doubt
        assert mails_to(herald.maildir, email.recipient) == []

    # nothing new was made; the ledger is settled; the emails in doubt wait for a person
    images = sorted(p.name for p in stored.parent.iterdir())
    assert images == [stored.name]
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        rows = await conn.fetch("SELECT action_id, state FROM executor.ledger WHERE tenant = $1", tenant)
    finally:
        await conn.close()
    assert {r["action_id"]: r["state"] for r in rows} == {
        image_written.action_id: "sent",
        image_not_written.action_id: "failed",
        email_late.action_id: "in_doubt",
        email_opted_out.action_id: "in_doubt",
    }

    def queued() -> set[str]:
        response = httpx.get(
            f"{herald.services.review_url}/v1/reviews", params={"tenant": tenant}, headers=herald.auth_headers()
        )
        return {i["action_id"] for i in response.json() if i["kind"] == "in_doubt"}

    await eventually(
        lambda: queued() == {email_late.action_id, email_opted_out.action_id}, timeout=30, what="both in doubt queued"
    )
