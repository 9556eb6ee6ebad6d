"""Workflow runs in Postgres: created once per (tenant, contact, workflow), advanced by transitions."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


class WorkflowRuns:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def start(
        self, *, workflow_id: str, tenant: str, contact_id: str, workflow: str, correlation_id: str
    ) -> bool:
        """Create the run; False if this contact already has one (a duplicate event)."""
        created = await self.pool.fetchval(
            "INSERT INTO planner.workflow_runs(workflow_id, tenant, contact_id, workflow, state, correlation_id, "
            "history) VALUES ($1, $2, $3, $4, 'started', $5, $6) ON CONFLICT (tenant, contact_id, workflow) "
            "DO NOTHING RETURNING true",
            workflow_id,
            tenant,
            contact_id,
            workflow,
            correlation_id,
            json.dumps([{"state": "started"}]),
        )
        return bool(created)

    async def set_state(
        self, workflow_id: str, state: str, *, action_id: str | None = None, note: dict[str, Any] | None = None
    ) -> None:
        await self.pool.execute(
            "UPDATE planner.workflow_runs SET state = $2, action_id = COALESCE($3, action_id), updated_at = now(), "
            "history = history || $4::jsonb WHERE workflow_id = $1",
            workflow_id,
            state,
            action_id,
            json.dumps([{"state": state, **(note or {})}]),
        )

    async def state(self, workflow_id: str) -> str | None:
        value = await self.pool.fetchval("SELECT state FROM planner.workflow_runs WHERE workflow_id = $1", workflow_id)
        return None if value is None else str(value)
