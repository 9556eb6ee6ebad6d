"""SIGKILL the executor in the middle of a batch of approvals and start it again: no email is sent
twice; every approved email arrives once, or — if the kill fell inside an SMTP exchange — is
reported `in_doubt` on the executed topic instead of being repeated."""

from __future__ import annotations

import asyncio
import secrets
from datetime import timedelta

import pytest

from herald_core.contracts import ActionApproved, ActionProposed
from herald_core.envelope import Envelope
from herald_core.signing import load_signer
from herald_core.topics import APPROVED_ACTION, EXECUTED, contact_key
from support import email_action, envelope, eventually, executions, mails_to, publish_many, read_topic, recipients

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

APPROVALS = 800
EXECUTOR_CONCURRENCY = 8  # herald_executor.settings.Settings.concurrency


async def test_executor_killed_mid_batch_sends_each_email_at_most_once(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"crash{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    signer = load_signer(herald.keys_dir / "guard-local-1.pem", "guard-local-1")
    addresses = [f"crash-{run}-{n}@buyers.example" for n in range(APPROVALS)]
    recipients(herald.maildir)  # read the mailbox once now, so watching it later is quick
    actions = [
        email_action(tenant, contact_id=f"{run}{n:04d}", email=address, rationale="crash test")
        for n, address in enumerate(addresses)
    ]
    action_ids = [action.action_id for action in actions]

    def approved(action: ActionProposed) -> tuple[bytes, Envelope, ActionApproved]:
        approval = signer.approve(action, approved_by="guard", policy_version="test", ttl=timedelta(minutes=30))
        body = ActionApproved(action=action, approval=approval, rules=())
        return contact_key(tenant, action.contact.contact_id), envelope(tenant, body, source="test/guard"), body

    await publish_many(herald.bootstrap, herald.topic(APPROVED_ACTION), (approved(a) for a in actions))

    wanted = set(addresses)

    def delivered() -> int:
        return sum(1 for r in recipients(herald.maildir) if r in wanted)

    # kill it while it is working through the approvals
    await eventually(lambda: delivered() >= 5, timeout=60, interval=0.02, what="the first emails")
    herald.services.kill("executor-0")
    killed_at = delivered()
    herald.services.start("executor-0")
    assert killed_at < APPROVALS, "the executor finished before it could be killed; raise APPROVALS"

    def finished(records):  # type: ignore[no-untyped-def]
        return set(executions(records, tenant)) >= set(action_ids)

    records = await read_topic(herald.bootstrap, herald.topic(EXECUTED), timeout=120, until=finished)
    assert finished(records), "not every approval has an execution result"
    reports = executions(records, tenant)
    results = {action_id: {e.status.value for e in found} for action_id, found in reports.items()}

    await asyncio.sleep(1)
    counts = [len(mails_to(herald.maildir, a)) for a in addresses]
    assert max(counts) == 1, "an email was sent twice"
    in_doubt = {a for a, statuses in results.items() if statuses == {"in_doubt"}}
    # an in-doubt report says why, typed for whoever picks it up: a human must check
    for executed in (e for found in reports.values() for e in found if e.status.value == "in_doubt"):
        assert executed.failure is not None and executed.failure.kind.value == "needs_human"
    for action_id, address, count in zip(action_ids, addresses, counts, strict=True):
        if action_id in in_doubt:
            continue  # surfaced for a human; at most one email, never a repeat
        assert count == 1, f"{address} approved and reported {results[action_id]} but not delivered"
    # only sends under way at the kill can be in doubt: at most one per concurrent lane
    assert len(in_doubt) <= EXECUTOR_CONCURRENCY, in_doubt
