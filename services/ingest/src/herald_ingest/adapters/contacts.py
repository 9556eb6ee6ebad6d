"""Herald's own contact store in Postgres: the default adapter of the CRM port."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg

from herald_core.contracts import ContactFacts

# HubSpot contact property → our column
HUBSPOT_PROPERTIES = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "jobtitle": "job_title",
    "lifecyclestage": "lifecycle_stage",
    "country": "country",
    "industry": "industry",
}
_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "industry",
    "lifecycle_stage",
    "country",
    "timezone",
    "vip",
    "deal_value_minor",
    "opted_out",
)


class PostgresContacts:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get_many(self, tenant: str, contact_ids: list[str]) -> dict[str, ContactFacts]:
        rows = await self.pool.fetch(
            "SELECT * FROM ingest.contacts WHERE tenant = $1 AND contact_id = ANY($2::text[])", tenant, contact_ids
        )
        return {r["contact_id"]: _facts(r) for r in rows}

    async def apply_property(self, tenant: str, contact_id: str, name: str | None, value: str | None) -> None:
        column = HUBSPOT_PROPERTIES.get(name or "")
        if column is None:
            return
        await self.pool.execute(
            f"UPDATE ingest.contacts SET {column} = $3, updated_at = now() WHERE tenant = $1 AND contact_id = $2",
            tenant,
            contact_id,
            value,
        )

    async def upsert(self, tenant: str, contacts: list[dict[str, Any]]) -> int:
        placeholders = ", ".join(f"${i + 3}" for i in range(len(_COLUMNS)))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS)
        statement = (
            f"INSERT INTO ingest.contacts(tenant, contact_id, {', '.join(_COLUMNS)}) VALUES ($1, $2, {placeholders}) "
            f"ON CONFLICT (tenant, contact_id) DO UPDATE SET {updates}, updated_at = now()"
        )
        await self.pool.executemany(
            statement, [(tenant, str(c["contact_id"]), *(_value(c, col) for col in _COLUMNS)) for c in contacts]
        )
        return len(contacts)


def _value(contact: dict[str, Any], column: str) -> Any:
    if column in ("vip", "opted_out"):
        return bool(contact.get(column, False))
    if column == "deal_value_minor":
        return int(contact.get(column) or 0)
    return contact.get(column)


def _facts(row: asyncpg.Record) -> ContactFacts:
    return ContactFacts(
        contact_id=row["contact_id"],
        email=row["email"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        company=row["company"],
        job_title=row["job_title"],
        industry=row["industry"],
        lifecycle_stage=row["lifecycle_stage"],
        timezone=row["timezone"],
        vip=row["vip"],
        deal_value_minor=row["deal_value_minor"],
    )


def read_contacts_file(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
