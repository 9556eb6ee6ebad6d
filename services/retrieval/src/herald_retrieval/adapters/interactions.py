"""Medium-term memory in Postgres (schema `retrieval`): a contact's recent interactions, each with a TTL."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg

from herald_retrieval.adapters.memory_store import Memory

_COLUMNS = "interaction_id, contact_id, kind, text, occurred_at"


def _memory(row: asyncpg.Record) -> Memory:
    return Memory(row["interaction_id"], "medium", row["kind"], row["text"], row["occurred_at"], row["contact_id"])


class InteractionLog:
    def __init__(self, pool: asyncpg.Pool, ttl: timedelta) -> None:
        self.pool = pool
        self.ttl = ttl

    async def record(self, tenant: str, interaction: Memory) -> bool:
        """Remember an interaction until `occurred_at + ttl`; False if it was already recorded."""
        status = await self.pool.execute(
            "INSERT INTO retrieval.interactions (tenant, interaction_id, contact_id, kind, text, occurred_at,"
            " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            tenant,
            interaction.memory_id,
            interaction.contact_id,
            interaction.kind,
            interaction.text,
            interaction.occurred_at,
            interaction.occurred_at + self.ttl,
        )
        return bool(status == "INSERT 0 1")

    async def forget(self, tenant: str, contact_id: str) -> int:
        status = await self.pool.execute(
            "DELETE FROM retrieval.interactions WHERE tenant = $1 AND contact_id = $2", tenant, contact_id
        )
        return int(status.split()[-1])

    async def recent(self, tenant: str, contact_id: str, limit: int) -> list[Memory]:
        """The contact's interactions that have not expired, newest first."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM retrieval.interactions WHERE tenant = $1 AND contact_id = $2"
            " AND expires_at > now() ORDER BY occurred_at DESC LIMIT $3",
            tenant,
            contact_id,
            limit,
        )
        return [_memory(r) for r in rows]

    @contextlib.asynccontextmanager
    async def expired(self, limit: int = 1000) -> AsyncIterator[list[tuple[str, Memory]]]:
        """Expired interactions (tenant, interaction), locked for this caller alone; deleted when the block
        ends without an error, kept (for the next sweep) when it raises."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                f"SELECT tenant, {_COLUMNS} FROM retrieval.interactions WHERE expires_at <= now()"
                " ORDER BY tenant, contact_id, occurred_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                limit,
            )
            yield [(r["tenant"], _memory(r)) for r in rows]
            if rows:
                await conn.execute(
                    "DELETE FROM retrieval.interactions WHERE (tenant, interaction_id) IN"
                    " (SELECT * FROM unnest($1::text[], $2::text[]))",
                    [r["tenant"] for r in rows],
                    [r["interaction_id"] for r in rows],
                )
