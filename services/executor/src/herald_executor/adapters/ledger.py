"""The executor's idempotency ledger in Postgres (see migrations/001_init.sql for the states)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg

from herald_core.contracts import ActionProposed, ExecutionResolved, ResolutionOutcome
from herald_executor.adapters.campaign_stats import record_sent
from herald_executor.logic import LedgerRow, message_id


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(
        self,
        *,
        action_id: str,
        tenant: str,
        contact_id: str,
        tool: str,
        nonce: str,
        partition: int,
        offset: int,
        consent_checked_at: datetime | None = None,
    ) -> LedgerRow | None:
        """Claim the action; return None if claimed now, else the row that was already there."""
        async with self.pool.acquire() as conn, conn.transaction():
            first_use = await conn.fetchval(
                "INSERT INTO executor.seen_nonces(nonce, action_id, source_partition, source_offset) "
                "VALUES ($1, $2, $3, $4) ON CONFLICT (nonce) DO NOTHING RETURNING true",
                nonce,
                action_id,
                partition,
                offset,
            )
            if not first_use:
                seen = await conn.fetchrow("SELECT * FROM executor.seen_nonces WHERE nonce = $1", nonce)
                if (seen["action_id"], seen["source_partition"], seen["source_offset"]) != (
                    action_id,
                    partition,
                    offset,
                ):
                    return LedgerRow(nonce, seen["source_partition"], seen["source_offset"], "sent", nonce_reused=True)
            claimed = await conn.fetchval(
                "INSERT INTO executor.ledger(action_id, tenant, contact_id, tool, nonce, source_partition, "
                "source_offset, state, consent_checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 'claimed', $8) "
                "ON CONFLICT (action_id) DO NOTHING RETURNING true",
                action_id,
                tenant,
                contact_id,
                tool,
                nonce,
                partition,
                offset,
                consent_checked_at,
            )
            if claimed:
                return None
            row = await conn.fetchrow("SELECT * FROM executor.ledger WHERE action_id = $1", action_id)
            return LedgerRow(row["nonce"], row["source_partition"], row["source_offset"], row["state"])

    async def of_record(self, action_id: str, nonce: str, partition: int, offset: int) -> LedgerRow | None:
        """The action's row if this very record (its approval, where it was read) claimed it before."""
        row = await self.pool.fetchrow(
            "SELECT state FROM executor.ledger WHERE action_id = $1 AND nonce = $2 AND source_partition = $3 "
            "AND source_offset = $4",
            action_id,
            nonce,
            partition,
            offset,
        )
        return None if row is None else LedgerRow(nonce, partition, offset, row["state"])

    async def finish(
        self, action: ActionProposed, state: str, result: dict[str, Any] | None, error: str | None
    ) -> None:
        """Record the outcome; a sent email is kept for campaign statistics in the same transaction, and an
        action in doubt is kept whole until a person resolves it."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE executor.ledger SET state = $2, result = $3, error = $4, action = $5, finished_at = now() "
                "WHERE action_id = $1",
                action.action_id,
                state,
                json.dumps(result) if result is not None else None,
                error,
                action.model_dump_json() if state == "in_doubt" else None,
            )
            if state == "sent" and action.tool == "send_email" and result and result.get("message_id"):
                await record_sent(conn, action, str(result["message_id"]))

    async def resolve(self, resolved: ExecutionResolved, *, message_id_domain: str) -> bool:
        """Settle an action in doubt with what a person found (once: a repeat or a late copy changes nothing).
        An email found sent counts in campaign statistics under the Message-ID it was sent with."""
        happened = resolved.outcome is ResolutionOutcome.HAPPENED
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT action FROM executor.ledger WHERE action_id = $1 AND state = 'in_doubt' FOR UPDATE",
                resolved.action_id,
            )
            if row is None:  # not in doubt (any more): a repeat or a late copy changes nothing
                return False
            action = ActionProposed.model_validate_json(row["action"]) if row["action"] is not None else None
            sent = happened and resolved.tool == "send_email" and action is not None
            message = message_id(resolved.action_id, message_id_domain) if sent else None
            # settled, and the action kept while in doubt is no longer needed
            await conn.execute(
                "UPDATE executor.ledger SET state = $2, resolution = $3, result = COALESCE($4::jsonb, result), "
                "action = NULL, finished_at = now() WHERE action_id = $1",
                resolved.action_id,
                "sent" if happened else "failed",
                resolved.model_dump_json(include={"review_id", "outcome", "reviewer", "reason", "resolved_at"}),
                json.dumps({"message_id": message}) if message else None,
            )
            if action is not None and message:
                await record_sent(conn, action, message)
            return True

    async def result(self, action_id: str) -> dict[str, Any]:
        value = await self.pool.fetchval("SELECT result FROM executor.ledger WHERE action_id = $1", action_id)
        return dict(json.loads(value)) if value else {}

    async def release(self, action_id: str) -> None:
        """Undo a claim whose side effect certainly did not start (the nonce stays seen for this record)."""
        await self.pool.execute("DELETE FROM executor.ledger WHERE action_id = $1 AND state = 'claimed'", action_id)

    async def error(self, action_id: str) -> str:
        value = await self.pool.fetchval("SELECT error FROM executor.ledger WHERE action_id = $1", action_id)
        return str(value or "in doubt")


async def erase_contact(conn: asyncpg.Connection, tenant: str, contact_id: str, hashed: str) -> None:
    """An erasure: the ledger keeps every action id (a redelivered approval must never send again) under the
        hashed contact id; an SMTP reply may quote the address, so results keep only the Message-ID. Herald's own
        contact store forgets the contact's record and what each write set; campaign statistics keep their counts
    under the hashed id."""
    await conn.execute(
        "UPDATE executor.ledger SET contact_id = $3, result = result - 'smtp_reply', action = NULL "
        "WHERE tenant = $1 AND contact_id = $2",
        tenant,
        contact_id,
        hashed,
    )
    for table in ("executor.messages", "executor.message_events"):
        await conn.execute(
            f"UPDATE {table} SET contact_id = $3 WHERE tenant = $1 AND contact_id = $2", tenant, contact_id, hashed
        )
    await conn.execute("DELETE FROM crm.contacts WHERE tenant = $1 AND contact_id = $2", tenant, contact_id)
    await conn.execute(
        "UPDATE crm.writes SET contact_id = $3, properties = '{}' WHERE tenant = $1 AND contact_id = $2",
        tenant,
        contact_id,
        hashed,
    )
