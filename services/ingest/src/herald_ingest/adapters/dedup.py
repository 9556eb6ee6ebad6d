"""De-duplication by (source, event id), held open until the event's messages are on Kafka."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg


class SeenEvents:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def claim(self, tenant: str, keys: list[tuple[str, str]]) -> AsyncIterator[set[tuple[str, str]]]:
        """Yield the keys not seen before; they count as seen only if the block completes.

        The rows are inserted inside a transaction that commits after the block (the Kafka publish):
        a failed publish leaves them unseen, so the sender's retry is accepted. A concurrent delivery
        of the same event waits on the row lock and then finds it seen.
        """
        async with self.pool.acquire() as conn, conn.transaction():
            fresh: set[tuple[str, str]] = set()
            for source, event_id in keys:
                inserted = await conn.fetchval(
                    "INSERT INTO ingest.seen_events(source, event_id, tenant) VALUES ($1, $2, $3) "
                    "ON CONFLICT DO NOTHING RETURNING true",
                    source,
                    event_id,
                    tenant,
                )
                if inserted:
                    fresh.add((source, event_id))
            yield fresh
