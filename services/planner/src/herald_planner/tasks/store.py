"""Campaign tasks in Postgres (`planner.tasks`): recorded when accepted, moved by compare-and-set on their state."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from herald_core.contracts import CampaignBrief
from herald_planner.tasks.logic import Member, TaskState


@dataclass(frozen=True)
class Task:
    task_id: str
    tenant: str
    kind: str
    brief: CampaignBrief
    state: TaskState
    version: int
    journal: list[dict[str, Any]]
    audience: list[dict[str, Any]]
    action_ids: list[str]
    reason: str | None
    requested_by: str
    correlation_id: str
    trigger_id: str | None
    outputs: list[dict[str, str]] | None
    created_at: datetime
    updated_at: datetime

    def summary(self, actions_shown: int = 100) -> dict[str, Any]:
        """The task as `GET /v1/tasks/<id>` answers it."""
        variants: dict[str, int] = {}
        for member in self.audience:
            variants[member["variant"]] = variants.get(member["variant"], 0) + 1
        return {
            "task_id": self.task_id,
            "tenant": self.tenant,
            "kind": self.kind,
            "state": self.state,
            "reason": self.reason,
            "brief": self.brief.model_dump(mode="json"),
            "requested_by": self.requested_by,
            "journal": self.journal,
            "audience": len(self.audience),
            "variants": variants,
            "proposed": len(self.action_ids),
            "actions": self.action_ids[:actions_shown],
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


def _task(row: asyncpg.Record) -> Task:
    return Task(
        task_id=row["task_id"],
        tenant=row["tenant"],
        kind=row["kind"],
        brief=CampaignBrief.model_validate_json(row["brief"]),
        state=row["state"],
        version=row["version"],
        journal=json.loads(row["journal"]),
        audience=json.loads(row["audience"]),
        action_ids=list(row["action_ids"]),
        reason=row["reason"],
        requested_by=row["requested_by"],
        correlation_id=row["correlation_id"],
        trigger_id=row["trigger_id"],
        outputs=json.loads(row["outputs"]) if row["outputs"] is not None else None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class TaskConflict(Exception):
    """The task moved since it was read (another replica carries it): read it again."""


class TaskStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def record(
        self, *, task_id: str, tenant: str, brief: CampaignBrief, requested_by: str, correlation_id: str, note: str
    ) -> bool:
        """Record an accepted task (False: it was recorded already)."""
        status = await self.pool.execute(
            "INSERT INTO planner.tasks(task_id, tenant, kind, brief, state, journal, requested_by, correlation_id) "
            "VALUES ($1, $2, 'defined', $3, 'accepted', "
            "jsonb_build_array(jsonb_build_object('state', 'accepted', 'at', now(), 'note', $6::text)), $4, $5) "
            "ON CONFLICT (task_id) DO NOTHING",
            task_id,
            tenant,
            brief.model_dump_json(),
            requested_by,
            correlation_id,
            note,
        )
        return status.endswith(" 1")

    async def forget(self, task_id: str) -> None:
        """Remove a task that was never published (its acceptance could not be sent): nothing half-done remains."""
        await self.pool.execute("DELETE FROM planner.tasks WHERE task_id = $1 AND state = 'accepted'", task_id)

    async def get(self, task_id: str) -> Task | None:
        row = await self.pool.fetchrow("SELECT * FROM planner.tasks WHERE task_id = $1", task_id)
        return None if row is None else _task(row)

    async def of_tenant(self, tenant: str, limit: int = 50) -> list[Task]:
        rows = await self.pool.fetch(
            "SELECT * FROM planner.tasks WHERE tenant = $1 ORDER BY created_at DESC LIMIT $2", tenant, limit
        )
        return [_task(r) for r in rows]

    async def move(self, task: Task, to: TaskState, note: dict[str, Any]) -> Task:
        """`task` in state `to`, its journal one step longer; `TaskConflict` if it moved meanwhile."""
        row = await self.pool.fetchrow(
            "UPDATE planner.tasks SET state = $3, version = version + 1, updated_at = now(), "
            "journal = journal || jsonb_build_array($4::jsonb || jsonb_build_object('state', $3::text, 'at', now())) "
            "WHERE task_id = $1 AND version = $2 RETURNING *",
            task.task_id,
            task.version,
            to,
            json.dumps(note),
        )
        if row is None:
            raise TaskConflict(task.task_id)
        return _task(row)

    async def finish(
        self,
        task: Task,
        to: TaskState,
        note: dict[str, Any],
        *,
        trigger_id: str,
        outputs: Sequence[dict[str, str]],
        members: Sequence[Member] = (),
        reason: str | None = None,
    ) -> Task:
        """The task's last step of a carry: its state, its audience and actions and what it publishes, at once."""
        row = await self.pool.fetchrow(
            "UPDATE planner.tasks SET state = $3, version = version + 1, updated_at = now(), "
            "journal = journal || jsonb_build_array($4::jsonb || jsonb_build_object('state', $3::text, 'at', now())), "
            "trigger_id = $5, outputs = $6, audience = $7, action_ids = $8, reason = $9 "
            "WHERE task_id = $1 AND version = $2 RETURNING *",
            task.task_id,
            task.version,
            to,
            json.dumps(note),
            trigger_id,
            json.dumps(list(outputs)),
            json.dumps([{"contact_id": m.contact_id, "variant": m.variant, "action_id": m.action_id} for m in members]),
            [m.action_id for m in members],
            reason,
        )
        if row is None:
            raise TaskConflict(task.task_id)
        return _task(row)
