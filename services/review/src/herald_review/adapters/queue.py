"""The review queue in Postgres."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from herald_core.contracts import ActionExecuted, DraftEdit, ReviewRequested
from herald_core.envelope import Envelope


class ReviewQueue:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def add(self, request: ReviewRequested, envelope: Envelope, approvals_needed: int = 1) -> None:
        await self.pool.execute(
            "INSERT INTO review.items(review_id, tenant, action_id, contact_id, reason, rules, action, correlation_id, "
            "request_message_id, traceparent, approvals_needed) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) "
            "ON CONFLICT (review_id) DO NOTHING",
            request.review_id,
            envelope.tenant,
            request.action.action_id,
            request.action.contact.contact_id,
            request.reason,
            json.dumps([r.model_dump(mode="json") for r in request.rules]),
            request.action.model_dump_json(),
            envelope.correlation_id,
            envelope.id,
            envelope.traceparent,
            approvals_needed,
        )

    async def add_in_doubt(self, executed: ActionExecuted, envelope: Envelope) -> None:
        """An execution in doubt, for a person to check in the downstream (one item per action)."""
        await self.pool.execute(
            "INSERT INTO review.items(review_id, kind, tenant, action_id, contact_id, reason, rules, action, "
            "correlation_id, request_message_id, traceparent) "
            "VALUES ($1, 'in_doubt', $2, $3, $4, $5, '[]', $6, $7, $8, $9) ON CONFLICT (review_id) DO NOTHING",
            f"doubt-{executed.action_id}",
            envelope.tenant,
            executed.action_id,
            executed.contact_id,
            executed.failure.message if executed.failure else (executed.error or "in doubt"),
            executed.model_dump_json(),
            envelope.correlation_id,
            envelope.id,
            envelope.traceparent,
        )

    async def list(
        self,
        tenants: Sequence[str],
        status: str | None,
        limit: int,
        kind: str | None = None,
        offset: int = 0,
        task: str | None = None,
    ) -> list[dict[str, Any]]:
        """Items of `tenants` oldest first (then by id, so pages do not overlap), each filter applied when given;
        `task`: the batch of one campaign task (its proposals carry its id)."""
        rows = await self.pool.fetch(
            "SELECT * FROM review.items WHERE tenant = ANY($1::text[]) AND ($2::text IS NULL OR status = $2) "
            "AND ($4::text IS NULL OR kind = $4) AND ($6::text IS NULL OR action ->> 'task_id' = $6) "
            "ORDER BY created_at, review_id LIMIT $3 OFFSET $5",
            list(tenants),
            status,
            limit,
            kind,
            offset,
            task,
        )
        return [_item(r) for r in rows]

    async def get(self, review_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT * FROM review.items WHERE review_id = $1", review_id)
        return None if row is None else _item(row)

    @contextlib.asynccontextmanager
    async def answer(
        self,
        review_id: str,
        kind: str,
        status: str,
        reviewer: str,
        reason: str | None,
        edit: DraftEdit | None = None,
        *,
        prior_approvals: int | None = None,
    ) -> AsyncIterator[dict[str, Any] | None]:
        """A reviewer's answer to a pending item of this kind — an `approval` approved / rejected, an `in_doubt`
        execution found to have happened or not. Yield the item (None if it was not a pending item of that
        kind, or, for the last approval of a high-risk item, if it no longer has `prior_approvals`); the row
        commits after the block, which publishes the answer."""
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "UPDATE review.items SET status = $3, reviewer = $4, decision_reason = $5, edit = $6, "
                "decided_at = now(), "
                "approvals = CASE WHEN $7::int IS NULL THEN approvals ELSE approvals || $8::jsonb END "
                "WHERE review_id = $1 AND kind = $2 AND status = 'pending' "
                "AND ($7::int IS NULL OR jsonb_array_length(approvals) = $7) RETURNING *",
                review_id,
                kind,
                status,
                reviewer,
                reason,
                edit.model_dump_json(exclude_none=True) if edit is not None else None,
                prior_approvals,
                _approval(reviewer, reason),
            )
            yield None if row is None else _item(row)

    async def add_approval(
        self, review_id: str, reviewer: str, reason: str | None, edit: DraftEdit | None
    ) -> dict[str, Any] | None:
        """A first approval of a high-risk item (it stays pending); None if the item is no longer pending, has
        the approvals it needs but one, or was approved by this reviewer already."""
        row = await self.pool.fetchrow(
            "UPDATE review.items SET approvals = approvals || $2::jsonb, edit = coalesce($3, edit) "
            "WHERE review_id = $1 AND kind = 'approval' AND status = 'pending' "
            "AND jsonb_array_length(approvals) + 1 < approvals_needed "
            "AND NOT approvals @> jsonb_build_array(jsonb_build_object('reviewer', $4::text)) RETURNING *",
            review_id,
            _approval(reviewer, reason),
            edit.model_dump_json(exclude_none=True) if edit is not None else None,
            reviewer,
        )
        return None if row is None else _item(row)

    @staticmethod
    async def forget(conn: asyncpg.Connection, tenant: str, contact_id: str, hashed: str) -> None:
        """An erasure: the contact's items leave the queue (the guard blocks their actions anyway)."""
        del hashed  # the queue keeps nothing of an erased contact, not even its hash
        await conn.execute("DELETE FROM review.items WHERE tenant = $1 AND contact_id = $2", tenant, contact_id)


def _approval(reviewer: str, reason: str | None) -> str:
    """One approval as a JSON array of one, to append to an item's approvals."""
    return json.dumps([{"reviewer": reviewer, "reason": reason, "at": datetime.now(UTC).isoformat()}])


def _item(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["rules"] = json.loads(item["rules"])
    item["approvals"] = json.loads(item["approvals"])
    item["action"] = json.loads(item["action"])
    item["edit"] = json.loads(item["edit"]) if item.get("edit") else None
    for key in ("created_at", "decided_at"):
        if item[key] is not None:
            item[key] = item[key].isoformat()
    return item
