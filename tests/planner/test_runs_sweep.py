"""The planner's tables do not grow without end: activity and finished timers older than the kept window are
swept, pending timers and newer rows stay (read back from Postgres)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from herald_core.contracts import ContactFacts
from herald_planner.adapters.runs import Change, NewTimer, WorkflowRuns
from herald_planner.engine.spec import Activity, Run

pytestmark = [pytest.mark.postgres]


async def test_old_activity_and_finished_timers_are_swept_and_pending_ones_kept(herald) -> None:  # type: ignore[no-untyped-def]
    pool = await asyncpg.create_pool(herald.pg_dsn, min_size=1, max_size=2)
    runs = WorkflowRuns(pool)
    now = datetime.now(UTC)
    tenant = f"sweep{now.timestamp():.0f}"
    try:
        run = Run("wf-sweep-" + tenant, "bench", tenant, ContactFacts(contact_id="c1"), "", 0, {}, {}, now, "corr")
        await runs.commit(
            Change(
                run=run,
                state="waiting",
                data={},
                contact=run.contact,
                trigger_id="t1",
                event_type="x",
                note={},
                outputs=[],
                timers=[
                    NewTimer(f"old-{tenant}", "old", now - timedelta(days=300)),
                    NewTimer(f"due-{tenant}", "due", now),
                ],
            )
        )
        await pool.execute(
            "UPDATE planner.timers SET state = 'fired', fired_at = $2 WHERE timer_id = $1",
            f"old-{tenant}",
            now - timedelta(days=200),
        )
        for event_id, at in (("e-old", now - timedelta(days=200)), ("e-new", now - timedelta(days=1))):
            await runs.record_activity(
                tenant, Activity(f"{event_id}-{tenant}", "herald.message.replied.v1", "c1", at), None
            )
        activity, timers = await runs.sweep(now - timedelta(days=180))
        assert activity >= 1 and timers >= 1
        left = await pool.fetch("SELECT event_id FROM planner.contact_activity WHERE tenant = $1", tenant)
        assert [r["event_id"] for r in left] == [f"e-new-{tenant}"]
        states = await pool.fetch("SELECT timer_id, state FROM planner.timers WHERE workflow_id = $1", run.workflow_id)
        assert [(r["timer_id"], r["state"]) for r in states] == [(f"due-{tenant}", "pending")]
    finally:
        await pool.execute("DELETE FROM planner.workflow_runs WHERE tenant = $1", tenant)
        await pool.close()
