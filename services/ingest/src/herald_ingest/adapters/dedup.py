"""De-duplication by (tenant, source, event id) in `ingest.seen_events`, held open until the
event's messages are on Kafka."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import asyncpg

EventKey = tuple[str, str]  # (source, event id)


class SeenEvents:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    @contextlib.asynccontextmanager
    async def claim(self, tenant: str, keys: Sequence[EventKey]) -> AsyncIterator[set[EventKey]]:
        """Yield the keys not seen before; they count as seen only if the block completes.

        The rows are inserted in a transaction that commits after the block (the Kafka publish): a
        failed publish leaves them unseen, so the sender's retry is accepted. A concurrent delivery
        of the same event waits on the row lock and then finds it seen. Keys are inserted in sorted
        order, so two overlapping batches cannot deadlock.
        """
        wanted = sorted(set(keys))
        async with self.pool.acquire() as conn, conn.transaction():
            fresh: set[EventKey] = set()
            if wanted:
                rows = await conn.fetch(
                    "INSERT INTO ingest.seen_events(tenant, source, event_id) "
                    "SELECT $1, s, e FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(s, e, n) ORDER BY n "
                    "ON CONFLICT DO NOTHING RETURNING source, event_id",
                    tenant,
                    [source for source, _ in wanted],
                    [event_id for _, event_id in wanted],
                )
                fresh = {(r["source"], r["event_id"]) for r in rows}
            yield fresh
