"""SIGKILL the executor at random points while it works through approvals of each tool — five kills per
tool, twenty in all — and read every downstream back: no side effect happened twice, every action has an
answer, and only a call the downstream cannot account for (an SMTP hand-over, an invite) is reported in
doubt, typed for a human; tools whose downstream can be asked (the contact store, the asset store, the
calendar) reconcile instead of doubting."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import secrets
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from herald_core.contracts import ActionApproved, ActionExecuted, ActionProposed
from herald_core.envelope import Envelope
from herald_core.topics import APPROVED_ACTION, EXECUTED, contact_key
from support import (
    approve,
    calendar_events,
    envelope,
    eventually,
    executions,
    mails_to,
    publish_many,
    read_topic,
    tool_action,
    tool_input,
)

pytestmark = [pytest.mark.chaos, pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

KILLS_PER_TOOL = 5


# approvals queued at a time (more are queued whenever the executor nears the end of them)
BATCH = {"send_email": 300, "update_crm_record": 300, "schedule_meeting": 30, "generate_image": 60}


async def _done(pool: asyncpg.Pool, tenant: str) -> int:
    """How far the executor got (its ledger): only to time the kills, never to judge the outcome."""
    return int(
        await pool.fetchval("SELECT count(*) FROM executor.ledger WHERE tenant = $1 AND state <> 'claimed'", tenant)
    )


@pytest.mark.parametrize("tool", ["send_email", "update_crm_record", "schedule_meeting", "generate_image"])
async def test_executor_killed_at_random_points_never_repeats_a_side_effect(herald, tool: str) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"kill{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    actions: list[ActionProposed] = []

    def message(action: ActionProposed) -> tuple[bytes, Envelope, ActionApproved]:
        approved = approve(herald, action, ttl=timedelta(minutes=30))
        return (
            contact_key(tenant, action.contact.contact_id),
            envelope(tenant, approved, source="herald/guard"),
            approved,
        )

    async def queue_more() -> None:
        """Another batch of approvals, so the executor is always busy when it is killed."""
        batch = [
            tool_action(tenant, tool, tool_input(tool, f"{run}{n:04d}", n), contact_id=f"{run}{n:04d}")
            for n in range(len(actions), len(actions) + BATCH[tool])
        ]
        actions.extend(batch)
        await publish_many(herald.bootstrap, herald.topic(APPROVED_ACTION), (message(a) for a in batch))

    pool = await asyncpg.create_pool(herald.pg_dsn, min_size=1, max_size=2)
    try:
        await queue_more()
        kills = 0
        while kills < KILLS_PER_TOOL:
            reached = await _done(pool, tenant)
            if reached + 3 >= len(actions):  # a fast machine got through the queue: give it more
                await queue_more()
            target = reached + random.randint(1, 3)
            await eventually(_at_least(pool, tenant, target), timeout=120, interval=0.01, what=f"{target} actions done")
            await asyncio.sleep(random.uniform(0, 0.05))  # somewhere inside the next calls
            herald.services.kill("executor-0")
            kills += 1
            herald.services.start("executor-0")

        ids = {a.action_id for a in actions}

        def answered(records) -> bool:  # type: ignore[no-untyped-def]
            return ids <= {json.loads(r.value)["action_id"] for r in records if r.type == ActionExecuted.TYPE}

        records = await read_topic(herald.bootstrap, herald.topic(EXECUTED), timeout=180, until=answered)
        assert answered(records), "an approval has no answer"
        reports = executions(records, tenant)
        statuses = {action_id: {e.status.value for e in found} for action_id, found in reports.items()}
        for executed in (e for found in reports.values() for e in found if e.status.value == "in_doubt"):
            assert executed.failure is not None and executed.failure.kind.value == "needs_human"
        in_doubt = {a for a, s in statuses.items() if s == {"in_doubt"}}
        assert all(s in ({"succeeded"}, {"in_doubt"}) for s in statuses.values()), statuses
        await asyncio.sleep(1)  # anything still on its way would arrive now
        await CHECKS[tool](herald, pool, tenant, actions, in_doubt)
        # every execution in doubt waits in the review queue for a person to check the downstream
        await eventually(lambda: _queued_in_doubt(herald, tenant) == in_doubt, timeout=30, what="in-doubt reviews")
    finally:
        await pool.close()


def _queued_in_doubt(herald, tenant: str) -> set[str]:  # type: ignore[no-untyped-def]
    response = httpx.get(
        f"{herald.services.review_url}/v1/reviews",
        params={"tenant": tenant, "limit": 1000},
        headers=herald.auth_headers(),
    )
    return {item["action_id"] for item in response.json() if item["kind"] == "in_doubt"}


def _at_least(pool: asyncpg.Pool, tenant: str, target: int) -> Callable[[], Any]:
    async def reached() -> bool:
        return await _done(pool, tenant) >= target

    return reached


# ---------------------------------------------------------------- each downstream, read back with its own client


async def _emails(herald, pool, tenant, actions, in_doubt) -> None:  # type: ignore[no-untyped-def]
    for action in actions:
        count = len(mails_to(herald.maildir, action.recipient))
        assert count <= 1, f"{action.recipient} got {count} emails"
        if action.action_id not in in_doubt:
            assert count == 1, f"{action.recipient} reported sent but not delivered"
    assert len(in_doubt) <= KILLS_PER_TOOL * 8, in_doubt  # at most the sends under way at each kill


async def _crm(herald, pool, tenant, actions, in_doubt) -> None:  # type: ignore[no-untyped-def]
    assert in_doubt == set(), "the contact store can be asked; nothing should be in doubt"
    writes = await pool.fetch("SELECT action_id FROM crm.writes WHERE tenant = $1", tenant)
    assert sorted(w["action_id"] for w in writes) == sorted(a.action_id for a in actions)
    rows = await pool.fetch("SELECT contact_id, properties FROM crm.contacts WHERE tenant = $1", tenant)
    assert {r["contact_id"]: json.loads(r["properties"]) for r in rows} == {
        a.contact.contact_id: {"lifecycle_stage": "opportunity", "next_step": a.input.properties["next_step"]}  # type: ignore[union-attr]
        for a in actions
    }


async def _meetings(herald, pool, tenant, actions, in_doubt) -> None:  # type: ignore[no-untyped-def]
    events = calendar_events(herald.services.config, tenant)
    uids = [str(e["UID"]) for e in events]
    assert len(uids) == len(set(uids)) == len(actions), "one event per meeting, none twice"
    for action in actions:
        invites = len(mails_to(herald.maildir, action.recipient))
        assert invites <= 1, f"{action.recipient} was invited {invites} times"
        if action.action_id not in in_doubt:
            assert invites == 1, f"{action.recipient} booked but not invited"


async def _images(herald, pool, tenant, actions, in_doubt) -> None:  # type: ignore[no-untyped-def]
    assert in_doubt == set(), "the asset store can be asked; nothing should be in doubt"
    results = await pool.fetch("SELECT action_id, result FROM executor.ledger WHERE tenant = $1", tenant)
    assert len(results) == len(actions)
    reported = {Path(json.loads(row["result"])["path"]): json.loads(row["result"])["sha256"] for row in results}
    folder = herald.services.config.state_dir / "assets" / tenant / "images"
    stored = await asyncio.to_thread(_files, folder)
    assert stored == reported, "the asset store holds exactly the reported images"
    assert sorted(p.name for p in stored) == sorted(f"{a.action_id.lower()}.png" for a in actions)


def _files(folder: Path) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}


CHECKS = {"send_email": _emails, "update_crm_record": _crm, "schedule_meeting": _meetings, "generate_image": _images}
