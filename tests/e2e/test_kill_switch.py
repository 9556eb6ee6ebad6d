"""The kill switch stops a running flood within a second, on the guard and at the executor's last check;
it is audited; turned off, sending resumes. Set by the CLI for one tenant, by the review API globally."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from herald_core.contracts import ActionApproved, ActionBlocked, ActionRefused, KillSwitchChanged
from herald_core.topics import APPROVED_ACTION, AUDIT, CONTROL, DECISION, EXECUTED, PROPOSED_ACTION, contact_key
from support import email_action, envelope, eventually, guard_answer, herald_command, publish, publish_many, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

MAX_FLOOD = 3000


def delivered(maildir: Path, domain: str) -> list[float]:
    """Delivery times (file modification) of the messages to addresses at `domain`."""
    times = []
    for folder in ("new", "cur"):
        directory = maildir / folder
        for path in directory.iterdir() if directory.is_dir() else ():
            with path.open("rb") as handle:
                head = handle.read(4096)
            if f"@{domain}".encode() in head:
                times.append(path.stat().st_mtime)
    return sorted(times)


async def test_a_tenant_kill_switch_stops_a_running_flood_within_a_second(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"kill{os.urandom(3).hex()}", limits={"emails_per_hour": 100_000})
    domain = f"{tenant}.example"
    published = 0
    flooding = True

    async def flood() -> None:
        """Proposals at about 100 a second until told to stop: a campaign running away."""
        nonlocal published
        while flooding and published < MAX_FLOOD:
            batch = []
            for n in range(published, published + 20):
                contact_id = f"k{n:05d}"
                action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@{domain}", rationale="flood")
                batch.append((contact_key(tenant, contact_id), envelope(tenant, action, source="test/planner"), action))
            await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), batch)
            published += len(batch)
            await asyncio.sleep(0.2)

    flooding_task = asyncio.create_task(flood())
    await eventually(lambda: len(delivered(herald.maildir, domain)) >= 50, timeout=60, what="the flood under way")
    engaged = herald_command(herald, "kill-switch", "on", "--tenant", tenant, "--reason", "runaway campaign")
    assert engaged.returncode == 0, engaged.stderr
    await asyncio.sleep(3)  # the flood goes on against the switch
    flooding = False
    await flooding_task
    await asyncio.sleep(3)
    control = [r for r in await read_topic(herald.bootstrap, herald.topic(CONTROL), timeout=5) if r.tenant == tenant]
    switched_at = control[-1].timestamp / 1000  # when the change was written (the broker's record time)
    times = delivered(herald.maildir, domain)
    late = [t - switched_at for t in times if t > switched_at + 1.0]
    assert not late, f"{len(late)} email(s) delivered more than 1 s after the switch, the last {max(late):.2f} s after"
    after = [t - switched_at for t in times if t > switched_at]
    print(f"kill switch: last email {max(after, default=0.0):.3f} s after the switch; {len(times)} of {published} sent")

    # what was stopped, and why: blocked at the guard or refused at the executor, every one accounted for
    decisions = [r for r in await read_topic(herald.bootstrap, herald.topic(DECISION), timeout=5) if r.tenant == tenant]
    blocked = [r.body(ActionBlocked) for r in decisions if r.type == ActionBlocked.TYPE]
    assert blocked and {b.rule for b in blocked} == {"control.kill_switch"}
    executed = [r for r in await read_topic(herald.bootstrap, herald.topic(EXECUTED), timeout=5) if r.tenant == tenant]
    refused = [r.body(ActionRefused) for r in executed if r.type == ActionRefused.TYPE]
    assert {r.reason for r in refused} <= {"kill_switch"}
    approved = [r for r in await read_topic(herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=5)]
    approved_here = [r for r in approved if r.tenant == tenant]
    assert len(times) + len(refused) == len(approved_here) and len(approved_here) + len(blocked) == published
    # the guard: approvals it signed after the switch was written, i.e. before it had heard of it
    signed_after = [r.timestamp / 1000 - switched_at for r in approved_here if r.timestamp / 1000 > switched_at]
    assert all(lag <= 1.0 for lag in signed_after), signed_after
    last = max(signed_after, default=0.0)
    print(f"guard: {len(signed_after)} approval(s) signed after the switch, the last {last:.3f} s after")
    assert len(blocked) >= 200  # three seconds of flood after the switch, every one stopped
    audit = await read_topic(herald.bootstrap, herald.topic(AUDIT), timeout=10)
    assert any(r.type == KillSwitchChanged.TYPE and r.tenant == tenant for r in audit)

    # off again: a new proposal goes out
    assert herald_command(herald, "kill-switch", "off", "--tenant", tenant, "--reason", "fixed").returncode == 0
    action = email_action(tenant, contact_id="after", email=f"after@{domain}")
    env = envelope(tenant, action, source="test/planner")
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, "after"), env, action)
    await eventually(lambda: len(delivered(herald.maildir, domain)) == len(times) + 1, timeout=30, what="a send after")


async def test_the_global_switch_from_the_review_api_stops_every_tenant(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"killg{os.urandom(3).hex()}")
    async with herald.review_client() as tenant_admin:  # every tenant's admin, yet not the platform's
        refused = await tenant_admin.post("/v1/kill-switch", json={"engaged": True, "reason": "incident 42"})
        assert refused.status_code == 403, refused.text
    async with herald.review_client("ops@herald.example", ("herald-platform",)) as review:
        on = await review.post("/v1/kill-switch", json={"engaged": True, "reason": "incident 42"})
        assert on.status_code == 200, on.text
        try:
            action = email_action(tenant, contact_id="g1", email=f"g1@{tenant}.example")
            env = envelope(tenant, action, source="test/planner")
            await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, "g1"), env, action)

            decision = await guard_answer(herald, tenant, action.action_id)
            assert isinstance(decision, ActionBlocked), decision
            assert decision.rule == "control.kill_switch" and "incident 42" in decision.reason
            assert "ops@herald.example" in decision.reason  # who set it: the signed-in platform admin
            bad = await review.post("/v1/kill-switch", json={"engaged": True, "reason": ""})
            assert bad.status_code == 422
        finally:
            off = await review.post("/v1/kill-switch", json={"engaged": False, "reason": "over"})
            assert off.status_code == 200, off.text
    action = email_action(tenant, contact_id="g2", email=f"g2@{tenant}.example")
    env = envelope(tenant, action, source="test/planner")
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, "g2"), env, action)

    async def approved() -> bool:
        records = await read_topic(herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=2)
        return any(r.tenant == tenant and r.body(ActionApproved).action.contact.contact_id == "g2" for r in records)

    await eventually(approved, timeout=30, what="an approval once the switch is off")
    control = [
        r.body(KillSwitchChanged)
        for r in await read_topic(herald.bootstrap, herald.topic(CONTROL), timeout=5)
        if r.type == KillSwitchChanged.TYPE  # the topic also carries spent LLM budgets
    ]
    assert [change.engaged for change in control if change.tenant is None][-2:] == [
        True,
        False,
    ]
