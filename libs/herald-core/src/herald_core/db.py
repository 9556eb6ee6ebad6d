"""PostgreSQL helpers: a connection pool and versioned migrations, one schema per service.

Each service owns a schema (`guard`, `executor`, …) and its migrations are numbered SQL files
(`001_init.sql`, …) applied in order, each once, under an advisory lock so replicas starting
together do not race.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size)
    assert pool is not None
    return pool


async def migrate(pool: asyncpg.Pool, schema: str, *migration_dirs: Path) -> list[str]:
    """Apply pending `*.sql` files into `schema`, directory by directory, each in name order.

    A service passes its own `migrations/` and, where it uses them, herald-core's shared ones
    (e.g. `herald_core.consent.CONSENT_MIGRATIONS`). File names must be unique within a schema.
    """
    files = [p for d in migration_dirs for p in sorted(d.glob("*.sql"))]
    applied: list[str] = []
    lock_key = zlib.crc32(f"herald-migrate-{schema}".encode())
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", lock_key)
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations '
                "(name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch(f'SELECT name FROM "{schema}".schema_migrations')}
            for path in files:
                if path.name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(f'SET LOCAL search_path TO "{schema}"')
                    await conn.execute(path.read_text())
                    await conn.execute(f'INSERT INTO "{schema}".schema_migrations(name) VALUES ($1)', path.name)
                applied.append(path.name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", lock_key)
    return applied


def readiness(pool: asyncpg.Pool) -> Callable[[], Awaitable[bool]]:
    """A readiness check for `/readyz`: the database answers a query."""

    async def postgres_answers() -> bool:
        return bool(await pool.fetchval("SELECT true"))

    return postgres_answers
