"""Workflow runs in Postgres: rows changed by compare-and-set, a journal of steps, durable timers, and what
each contact did (the activity a wait checks before it sleeps)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from herald_core.contracts import ContactFacts
from herald_planner.engine.activity import company_domain
from herald_planner.engine.spec import Activity, Run


class Conflict(Exception):
    """The run changed since it was read (another lane of its contact moved it): read it again and decide anew."""


@dataclass(frozen=True)
class NewTimer:
    timer_id: str
    name: str
    due_at: datetime


@dataclass(frozen=True)
class Change:
    """One step of a run, written at once: the state, the journal entry, the actions, the timers."""

    run: Run  # as it was read (its state and version are what the UPDATE expects)
    state: str
    data: Mapping[str, Any]
    contact: ContactFacts
    trigger_id: str
    event_type: str
    note: Mapping[str, Any]
    outputs: Sequence[Mapping[str, str]]
    actions: Sequence[tuple[str, str | None]] = ()  # (action id, the step that proposed it)
    timers: Sequence[NewTimer] = ()
    cancel_timers: bool = False
    fired_timer: str | None = None  # the timer this step consumes: it must still be pending


@dataclass(frozen=True)
class DueTimer:
    timer_id: str
    workflow_id: str
    workflow: str
    tenant: str
    contact_id: str
    name: str
    due_at: datetime
    correlation_id: str
    leases: int


@dataclass
class TimerCounts:
    pending: int = 0
    overdue: int = 0
    by_state: dict[str, int] = field(default_factory=dict)


def _run(row: asyncpg.Record) -> Run:
    contact = (
        ContactFacts.model_validate_json(row["contact"])
        if row["contact"]
        else ContactFacts(contact_id=row["contact_id"])  # a run made before runs kept their contact
    )
    return Run(
        workflow_id=row["workflow_id"],
        workflow=row["workflow"],
        tenant=row["tenant"],
        contact=contact,
        state=row["state"],
        version=row["version"],
        data=json.loads(row["data"]),
        config=json.loads(row["config"]),
        started_at=row["created_at"],
        correlation_id=row["correlation_id"],
        key=row["run_key"],
    )


_COLUMNS = (
    "workflow_id, workflow, tenant, contact_id, contact::text, state, version, data::text, config::text, "
    "created_at, correlation_id, run_key"
)


class WorkflowRuns:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    # ------------------------------------------------------------ reading runs

    async def load(self, workflow_id: str) -> Run | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM planner.workflow_runs WHERE workflow_id = $1", workflow_id
        )
        return None if row is None else _run(row)

    async def find(self, tenant: str, contact_id: str, workflow: str, key: str = "") -> Run | None:
        row = await self.pool.fetchrow(
            f"SELECT {_COLUMNS} FROM planner.workflow_runs "
            "WHERE tenant = $1 AND contact_id = $2 AND workflow = $3 AND run_key = $4",
            tenant,
            contact_id,
            workflow,
            key,
        )
        return None if row is None else _run(row)

    async def of_contact(self, tenant: str, contact_id: str) -> list[Run]:
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM planner.workflow_runs WHERE tenant = $1 AND contact_id = $2 ORDER BY created_at",
            tenant,
            contact_id,
        )
        return [_run(r) for r in rows]

    async def at_domain(self, tenant: str, domain: str, exclude_contact: str, limit: int = 200) -> list[Run]:
        """Runs of other contacts at one company domain (a colleague's reply may end them)."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM planner.workflow_runs WHERE tenant = $1 AND contact_domain = $2 "
            "AND contact_id <> $3 ORDER BY created_at LIMIT $4",
            tenant,
            domain,
            exclude_contact,
            limit,
        )
        return [_run(r) for r in rows]

    async def step_of_action(self, action_id: str) -> tuple[str, str, str | None] | None:
        """(run, workflow, step) of an action a run proposed."""
        row = await self.pool.fetchrow(
            "SELECT a.workflow_id, r.workflow, a.step FROM planner.run_actions a "
            "JOIN planner.workflow_runs r USING (workflow_id) WHERE a.action_id = $1",
            action_id,
        )
        return None if row is None else (row["workflow_id"], row["workflow"], row["step"])

    async def run_of_action(self, action_id: str) -> str | None:
        value = await self.pool.fetchval("SELECT workflow_id FROM planner.run_actions WHERE action_id = $1", action_id)
        return None if value is None else str(value)

    async def published_for(self, workflow_id: str, trigger_id: str) -> list[dict[str, str]] | None:
        """What the run published when it took this event (None: it has not taken it)."""
        value = await self.pool.fetchval(
            "SELECT outputs::text FROM planner.run_steps WHERE workflow_id = $1 AND trigger_id = $2",
            workflow_id,
            trigger_id,
        )
        return None if value is None else list(json.loads(value))

    async def steps(self, workflow_id: str) -> list[dict[str, Any]]:
        """The run's journal, oldest first."""
        rows = await self.pool.fetch(
            "SELECT seq, trigger_id, event_type, from_state, to_state, note::text, at FROM planner.run_steps "
            "WHERE workflow_id = $1 ORDER BY seq",
            workflow_id,
        )
        return [{**dict(r), "note": json.loads(r["note"])} for r in rows]

    # ------------------------------------------------------------ changing runs

    async def commit(self, change: Change) -> None:
        """Write the step at once, or raise `Conflict` if the run (or the timer it consumes) moved meanwhile."""
        run = change.run
        contact_json = change.contact.model_dump_json()
        domain = company_domain(change.contact.email)
        entry = json.dumps([{"state": change.state, **change.note}])
        async with self.pool.acquire() as conn, conn.transaction():
            if run.state == "":
                inserted = await conn.fetchval(
                    "INSERT INTO planner.workflow_runs(workflow_id, tenant, contact_id, workflow, state, "
                    "correlation_id, history, version, data, config, contact, contact_domain, run_key) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $9, $10, $11, $12) "
                    "ON CONFLICT (tenant, contact_id, workflow, run_key) DO NOTHING RETURNING 1",
                    run.workflow_id,
                    run.tenant,
                    run.contact.contact_id,
                    run.workflow,
                    change.state,
                    run.correlation_id,
                    entry,
                    json.dumps(change.data),
                    json.dumps(run.config),
                    contact_json,
                    domain,
                    run.key,
                )
                if inserted is None:
                    raise Conflict(f"{run.workflow} already runs for contact {run.contact.contact_id}")
            else:
                status = await conn.execute(
                    "UPDATE planner.workflow_runs SET state = $3, version = version + 1, data = $4, contact = $5, "
                    "contact_domain = $6, history = history || $7::jsonb, updated_at = now() "
                    "WHERE workflow_id = $1 AND version = $2",
                    run.workflow_id,
                    run.version,
                    change.state,
                    json.dumps(change.data),
                    contact_json,
                    domain,
                    entry,
                )
                if status.split()[-1] != "1":
                    raise Conflict(f"run {run.workflow_id} moved past version {run.version}")
            if change.fired_timer is not None:
                status = await conn.execute(
                    "UPDATE planner.timers SET state = 'fired', fired_at = now() "
                    "WHERE timer_id = $1 AND state = 'pending'",
                    change.fired_timer,
                )
                if status.split()[-1] != "1":
                    raise Conflict(f"timer {change.fired_timer} is no longer pending")
            if change.cancel_timers:
                await conn.execute(
                    "UPDATE planner.timers SET state = 'cancelled' WHERE workflow_id = $1 AND state = 'pending'",
                    run.workflow_id,
                )
            await conn.execute(
                "INSERT INTO planner.run_steps(workflow_id, trigger_id, seq, event_type, from_state, to_state, note, "
                "outputs) VALUES ($1, $2, (SELECT count(*) + 1 FROM planner.run_steps WHERE workflow_id = $1), "
                "$3, $4, $5, $6, $7)",
                run.workflow_id,
                change.trigger_id,
                change.event_type,
                run.state,
                change.state,
                json.dumps(change.note, default=str),
                json.dumps(list(change.outputs)),
            )
            if change.actions:
                await conn.executemany(
                    "INSERT INTO planner.run_actions(action_id, workflow_id, step) VALUES ($1, $2, $3)",
                    [(action_id, run.workflow_id, step) for action_id, step in change.actions],
                )
            if change.timers:
                await conn.executemany(
                    "INSERT INTO planner.timers(timer_id, workflow_id, tenant, contact_id, workflow, name, due_at, "
                    "correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    [
                        (
                            t.timer_id,
                            run.workflow_id,
                            run.tenant,
                            run.contact.contact_id,
                            run.workflow,
                            t.name,
                            t.due_at,
                            run.correlation_id,
                        )
                        for t in change.timers
                    ],
                )

    async def spend_timer(self, timer_id: str) -> None:
        """A timer that fired into a run that had moved on: it is done, and never published again."""
        await self.pool.execute(
            "UPDATE planner.timers SET state = 'spent', fired_at = now() WHERE timer_id = $1 AND state = 'pending'",
            timer_id,
        )

    async def timer_state(self, timer_id: str) -> str | None:
        value = await self.pool.fetchval("SELECT state FROM planner.timers WHERE timer_id = $1", timer_id)
        return None if value is None else str(value)

    async def forget(self, tenant: str, contact_id: str) -> int:
        """An erasure: the contact's runs (their journal, data and stored messages quote the contact), timers and
        recorded activity go."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM planner.contact_activity WHERE tenant = $1 AND contact_id = $2", tenant, contact_id
            )
            status = await conn.execute(
                "DELETE FROM planner.workflow_runs WHERE tenant = $1 AND contact_id = $2", tenant, contact_id
            )
        return int(status.split()[-1])

    # ------------------------------------------------------------ what contacts did

    async def record_activity(self, tenant: str, activity: Activity, domain: str | None) -> None:
        await self.pool.execute(
            "INSERT INTO planner.contact_activity(tenant, event_id, contact_id, domain, type, recorded_at, facts) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            tenant,
            activity.event_id,
            activity.contact_id,
            domain,
            activity.type,
            activity.recorded_at,
            json.dumps(dict(activity.facts), default=str),
        )

    async def history(self, tenant: str, contact_id: str, domain: str | None, since: datetime) -> list[Activity]:
        """What the contact (and anyone recorded at its company domain) did since `since`, oldest first."""
        rows = await self.pool.fetch(
            "SELECT event_id, type, contact_id, recorded_at, facts::text FROM planner.contact_activity "
            "WHERE tenant = $1 AND (contact_id = $2 OR ($3::text IS NOT NULL AND domain = $3)) AND recorded_at >= $4 "
            "ORDER BY recorded_at, event_id LIMIT 500",
            tenant,
            contact_id,
            domain,
            since,
        )
        return [
            Activity(r["event_id"], r["type"], r["contact_id"], r["recorded_at"], json.loads(r["facts"])) for r in rows
        ]

    # ------------------------------------------------------------ timers

    async def lease_due(self, now: datetime, limit: int, lease_seconds: float) -> list[DueTimer]:
        """Pending timers due by `now`, leased to this replica for `lease_seconds` (another replica takes a timer
        whose lease ran out: one that died between leasing and publishing loses none)."""
        rows = await self.pool.fetch(
            "UPDATE planner.timers SET leased_until = now() + make_interval(secs => $3), leases = leases + 1 "
            "WHERE timer_id IN (SELECT timer_id FROM planner.timers WHERE state = 'pending' AND due_at <= $1 "
            "AND (leased_until IS NULL OR leased_until < now()) ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED) "
            "RETURNING timer_id, workflow_id, workflow, tenant, contact_id, name, due_at, correlation_id, leases",
            now,
            limit,
            lease_seconds,
        )
        return sorted((DueTimer(**dict(r)) for r in rows), key=lambda t: t.due_at)

    async def sweep(self, before: datetime) -> tuple[int, int]:
        """Forget what no run can ask for any more: activity recorded before `before` (a wait reads only what
        happened since its run started) and timers that fired, were spent or cancelled before it. Pending timers
        are never swept. Returns (activity rows, timer rows) deleted."""
        async with self.pool.acquire() as conn:
            activity = await conn.execute("DELETE FROM planner.contact_activity WHERE recorded_at < $1", before)
            timers = await conn.execute(
                "DELETE FROM planner.timers WHERE state <> 'pending' AND coalesce(fired_at, created_at) < $1", before
            )
        return int(activity.split()[-1]), int(timers.split()[-1])

    async def timer_counts(self, now: datetime) -> TimerCounts:
        row = await self.pool.fetchrow(
            "SELECT count(*) FILTER (WHERE state = 'pending') AS pending, "
            "count(*) FILTER (WHERE state = 'pending' AND due_at <= $1) AS overdue FROM planner.timers",
            now,
        )
        return TimerCounts(pending=row["pending"], overdue=row["overdue"])
