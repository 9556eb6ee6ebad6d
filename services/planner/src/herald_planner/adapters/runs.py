"""Workflow runs in Postgres: created once per (tenant, contact, workflow), advanced by transitions."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import asyncpg


@dataclass(frozen=True)
class Run:
    workflow_id: str
    created: bool
    trigger_id: str | None
    outputs: list[dict[str, str]] | None


class WorkflowRuns:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def start(
        self, *, workflow_id: str, tenant: str, contact_id: str, workflow: str, correlation_id: str, trigger_id: str
    ) -> Run:
        """Create the run, or return the one this contact already has (from this event or another)."""
        row = await self.pool.fetchrow(
            "INSERT INTO planner.workflow_runs(workflow_id, tenant, contact_id, workflow, state, correlation_id, "
            "history, trigger_id) VALUES ($1, $2, $3, $4, 'started', $5, $6, $7) "
            "ON CONFLICT (tenant, contact_id, workflow) DO NOTHING RETURNING workflow_id",
            workflow_id,
            tenant,
            contact_id,
            workflow,
            correlation_id,
            json.dumps([{"state": "started"}]),
            trigger_id,
        )
        if row is not None:
            return Run(workflow_id, created=True, trigger_id=trigger_id, outputs=None)
        existing = await self.pool.fetchrow(
            "SELECT workflow_id, trigger_id, outputs FROM planner.workflow_runs "
            "WHERE tenant = $1 AND contact_id = $2 AND workflow = $3",
            tenant,
            contact_id,
            workflow,
        )
        outputs = json.loads(existing["outputs"]) if existing["outputs"] else None
        return Run(existing["workflow_id"], created=False, trigger_id=existing["trigger_id"], outputs=outputs)

    async def set_state(
        self,
        workflow_id: str,
        state: str,
        *,
        action_id: str | None = None,
        note: dict[str, Any] | None = None,
        outputs: list[dict[str, str]] | None = None,
    ) -> None:
        await self.pool.execute(
            "UPDATE planner.workflow_runs SET state = $2, action_id = COALESCE($3, action_id), updated_at = now(), "
            "history = history || $4::jsonb, outputs = COALESCE($5::jsonb, outputs) WHERE workflow_id = $1",
            workflow_id,
            state,
            action_id,
            json.dumps([{"state": state, **(note or {})}]),
            json.dumps(outputs) if outputs is not None else None,
        )

    async def state(self, workflow_id: str) -> str | None:
        value = await self.pool.fetchval("SELECT state FROM planner.workflow_runs WHERE workflow_id = $1", workflow_id)
        return None if value is None else str(value)

    async def forget(self, tenant: str, contact_id: str) -> int:
        """An erasure: the contact's runs (their history and stored messages quote the contact) go."""
        status = await self.pool.execute(
            "DELETE FROM planner.workflow_runs WHERE tenant = $1 AND contact_id = $2", tenant, contact_id
        )
        return int(status.split()[-1])

    async def workflow_of_action(self, action_id: str) -> str | None:
        value = await self.pool.fetchval(
            "SELECT workflow_id FROM planner.workflow_runs WHERE action_id = $1", action_id
        )
        return None if value is None else str(value)
