"""Send windows defer, never drop: an action proposed outside the contact's window is held (in Postgres),
survives a restart of the guards, and is decided again and sent exactly once when the window opens —
here, by moving the guards' clock past the opening."""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta

import pytest

from herald_core.contracts import ActionApproved, ActionDeferred
from herald_core.topics import APPROVED_ACTION, PROPOSED_ACTION, contact_key
from support import (
    email_action,
    envelope,
    eventually,
    guard_answer,
    herald_command,
    mails_to,
    on_every_guard,
    publish,
    read_topic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]


def closed_window_policy(tenant: str, now: datetime) -> tuple[str, datetime]:
    """A policy whose one-hour window (the contact is in UTC) opens about two hours from now, and that opening."""
    start = (now + timedelta(hours=2)).hour
    if start == 23:
        start = 1  # the window must close on the day it opens
    opening = now.replace(hour=start, minute=0, second=0, microsecond=0)
    if opening <= now:
        opening += timedelta(days=1)
    source = f"""\
tenant: {tenant}
version: 1
send_window:
  start: "{start:02d}:00"
  end: "{start + 1:02d}:00"
rules: []
"""
    return source, opening


def guards(herald):  # type: ignore[no-untyped-def]
    return [name for name, replica in herald.services.replicas.items() if replica.service == "guard"]


def restart_guards(herald, offset_seconds: float) -> None:  # type: ignore[no-untyped-def]
    for name in guards(herald):
        herald.services.stop(name)
    for name in guards(herald):
        herald.services.replicas[name].env["HERALD_GUARD_CLOCK_OFFSET_SECONDS"] = str(offset_seconds)
        herald.services.start(name)


async def test_a_held_action_survives_a_restart_and_is_sent_once_when_its_window_opens(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"win{os.urandom(3).hex()}")
    now = datetime.now(UTC)
    source, opening = closed_window_policy(tenant, now)
    policy = tmp_path / "policy.yaml"
    policy.write_text(source)
    assert herald_command(herald, "policy", "apply", str(policy)).returncode == 0
    await on_every_guard(herald, tenant, "v1-")

    action = email_action(tenant, contact_id="w1", email=f"w1@{tenant}.example", timezone="UTC")
    env = envelope(tenant, action, source="test/planner")
    await publish(herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, "w1"), env, action)

    held = await guard_answer(herald, tenant, action.action_id)
    assert isinstance(held, ActionDeferred), held
    assert held.action_id == action.action_id and held.release_at == opening
    assert "outside the send window" in held.reason and held.rules[-1].rule == "schedule.send_window"
    await asyncio.sleep(2)
    assert mails_to(herald.maildir, f"w1@{tenant}.example") == []

    try:
        # the guards go down while the action is held, and come back with their clock past the opening
        restart_guards(herald, (opening - datetime.now(UTC)).total_seconds() + 60)

        async def approved() -> ActionApproved | None:
            records = await read_topic(herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=2)
            found = [r.body(ActionApproved) for r in records if r.tenant == tenant]
            return found[0] if found else None

        released = await eventually(approved, timeout=60, what="the release")
        assert released.action.action_id == action.action_id
        assert any(h.rule == "schedule.send_window" and h.outcome == "pass" for h in released.rules)
        await eventually(lambda: mails_to(herald.maildir, f"w1@{tenant}.example"), timeout=60, what="the email")
        await asyncio.sleep(3)  # a second release would have been sent by now
        assert len(mails_to(herald.maildir, f"w1@{tenant}.example")) == 1
    finally:
        restart_guards(herald, 0)

    said = herald_command(herald, "explain", action.action_id)
    assert said.returncode == 0, said.stderr
    assert "deferred at proposal" in said.stdout and "approved at release" in said.stdout
