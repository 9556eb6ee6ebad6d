"""Herald's own contact store in Postgres (`ingest.contacts`): the default adapter of the CRM port."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import asyncpg
from pydantic import ValidationError

from herald_core.contracts import ContactFacts, SegmentFilter
from herald_core.hubspot import CONTACT_FIELDS
from herald_core.observability import get_logger
from herald_ingest.logic import CrmContact, SeedContact, StoredValue, parse_contact_lines

log = get_logger("herald.ingest.contacts")

_COLUMNS = CONTACT_FIELDS  # the store's columns are the fields a CRM property may set
_WRITABLE = frozenset(_COLUMNS)


def _readable(rows: Sequence[asyncpg.Record]) -> Iterator[tuple[asyncpg.Record, ContactFacts]]:
    """Each row with its facts; an unreadable row is logged and left out."""
    for row in rows:
        try:
            facts = _facts(row)
        except ValidationError as exc:
            log.error("unreadable contact row", contact_id=row["contact_id"], error=str(exc)[:300])
            continue
        yield row, facts


class PostgresContacts:
    """Implements `logic.ContactDirectory` over `ingest.contacts`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def get_many(self, tenant: str, contact_ids: Sequence[str]) -> dict[str, ContactFacts]:
        rows = await self.pool.fetch(
            "SELECT * FROM ingest.contacts WHERE tenant = $1 AND contact_id = ANY($2::text[])",
            tenant,
            list(contact_ids),
        )
        return {row["contact_id"]: facts for row, facts in _readable(rows)}

    async def find_by_email(self, tenant: str, emails: Sequence[str]) -> dict[str, list[ContactFacts]]:
        rows = await self.pool.fetch(
            "SELECT * FROM ingest.contacts WHERE tenant = $1 AND lower(email) = ANY($2::text[]) ORDER BY contact_id",
            tenant,
            sorted({e.lower() for e in emails}),
        )
        found: dict[str, list[ContactFacts]] = {}
        for row, facts in _readable(rows):
            found.setdefault(row["email"].lower(), []).append(facts)
        return found

    async def record_property(self, tenant: str, contact_id: str, field: str, value: StoredValue) -> None:
        if field not in _WRITABLE:  # the column name is interpolated below: only known ones pass
            raise ValueError(f"not a contact store column: {field!r}")
        await self.pool.execute(
            f"UPDATE ingest.contacts SET {field} = $3, updated_at = now() WHERE tenant = $1 AND contact_id = $2",
            tenant,
            contact_id,
            value,
        )

    async def erase(self, tenant: str, contact_id: str) -> None:
        """Forget the contact (an erasure): the row and everything in it."""
        await self.pool.execute("DELETE FROM ingest.contacts WHERE tenant = $1 AND contact_id = $2", tenant, contact_id)

    async def upsert(self, tenant: str, contacts: Sequence[SeedContact]) -> int:
        placeholders = ", ".join(f"${i + 3}" for i in range(len(_COLUMNS)))
        updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS)
        statement = (
            f"INSERT INTO ingest.contacts(tenant, contact_id, {', '.join(_COLUMNS)}) VALUES ($1, $2, {placeholders}) "
            f"ON CONFLICT (tenant, contact_id) DO UPDATE SET {updates}, updated_at = now()"
        )
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                statement, [(tenant, c.id, *(getattr(c, column) for column in _COLUMNS)) for c in contacts]
            )
        return len(contacts)

    async def upsert_fetched(self, tenant: str, contacts: Sequence[CrmContact]) -> int:
        """Keep contacts read from the tenant's CRM, stamped `fetched_at`: a new one is inserted whole (a field not
        read takes its default), a known one has the fields that were read overwritten and keeps the others (a VIP
        flag or a deal value seeded into Herald that the CRM mapping does not cover). The number kept."""
        groups: dict[tuple[str, ...], list[CrmContact]] = {}
        for contact in contacts:
            groups.setdefault(tuple(c for c in _COLUMNS if c in contact.read), []).append(contact)
        placeholders = ", ".join(f"${i + 3}" for i in range(len(_COLUMNS)))
        async with self.pool.acquire() as conn, conn.transaction():
            for read, group in groups.items():
                updates = "".join(f"{c} = EXCLUDED.{c}, " for c in read)
                await conn.executemany(
                    f"INSERT INTO ingest.contacts(tenant, contact_id, {', '.join(_COLUMNS)}, fetched_at) "
                    f"VALUES ($1, $2, {placeholders}, now()) ON CONFLICT (tenant, contact_id) DO UPDATE "
                    f"SET {updates}fetched_at = now(), updated_at = now()",
                    [(tenant, c.contact_id, *(getattr(c, column) for column in _COLUMNS)) for c in group],
                )
        return len(contacts)

    async def remember(self, tenant: str, contacts: Sequence[ContactFacts]) -> None:
        """Keep contacts as an event sent to Herald describes them whole (a CloudEvent's `ContactCreated` or
        `ContactUpdated`): their facts overwrite, what the facts do not hold (an opt-out flag) stays."""
        fields = [f for f in ContactFacts.model_fields if f != "contact_id" and f in _WRITABLE]
        placeholders = ", ".join(f"${i + 3}" for i in range(len(fields)))
        updates = ", ".join(f"{f} = EXCLUDED.{f}" for f in fields)
        await self.pool.executemany(
            f"INSERT INTO ingest.contacts(tenant, contact_id, {', '.join(fields)}) VALUES ($1, $2, {placeholders}) "
            f"ON CONFLICT (tenant, contact_id) DO UPDATE SET {updates}, updated_at = now()",
            [(tenant, c.contact_id, *(getattr(c, f) for f in fields)) for c in contacts],
        )

    async def fetched_at(self, tenant: str, contact_ids: Sequence[str]) -> dict[str, datetime]:
        """When each of `contact_ids` was last read from the CRM; a contact never read from it is left out."""
        rows = await self.pool.fetch(
            "SELECT contact_id, fetched_at FROM ingest.contacts "
            "WHERE tenant = $1 AND contact_id = ANY($2::text[]) AND fetched_at IS NOT NULL",
            tenant,
            list(contact_ids),
        )
        return {row["contact_id"]: row["fetched_at"] for row in rows}


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
        company_size=row["company_size"],
        owner=row["owner"],
    )


class ContactFileError(ValueError):
    """A contacts file with unreadable lines; the message lists them."""


def read_contacts_file(path: Path) -> list[SeedContact]:
    """Every contact in a JSON-lines file, or `ContactFileError` naming each bad line (nothing half-loaded)."""
    contacts, errors = parse_contact_lines(path.read_text(encoding="utf-8").splitlines())
    if errors:
        shown = "\n  ".join(errors[:20])
        more = f"\n  … and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise ContactFileError(f"{path}: {len(errors)} unreadable line(s):\n  {shown}{more}")
    return contacts


def _like_prefix(word: str) -> str:
    """`word` as a LIKE prefix pattern, its own `%`, `_` and `\\` taken literally."""
    return word.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _like_anywhere(word: str) -> str:
    return "%" + _like_prefix(word)


class Segments:
    """The contacts matching a campaign's segment filter (`SegmentFilter`), read from `ingest.contacts`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def matching(self, tenant: str, segment: SegmentFilter) -> tuple[int, list[ContactFacts]]:
        """How many contacts match (all of them), and the first `segment.limit` by id. Opted-out contacts and
        contacts without an address never match. (Seniority is the planner's reading of a title: not here.)"""
        where = ["tenant = $1", "NOT opted_out", "email IS NOT NULL"]
        args: list[object] = [tenant]

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if segment.industries:
            where.append(f"lower(industry) LIKE ANY({arg([_like_prefix(i) for i in segment.industries])}::text[])")
        if segment.lifecycle_stages:
            where.append(f"lower(lifecycle_stage) = ANY({arg([s.lower() for s in segment.lifecycle_stages])}::text[])")
        if segment.title_contains:
            words = [_like_anywhere(w) for w in segment.title_contains]
            where.append(f"lower(job_title) LIKE ANY({arg(words)}::text[])")
        if segment.countries:
            where.append(f"upper(country) = ANY({arg(list(segment.countries))}::text[])")
        size = segment.company_size
        if size is not None and size.min is not None:
            where.append(f"company_size >= {arg(size.min)}")
        if size is not None and size.max is not None:
            where.append(f"company_size <= {arg(size.max)}")
        condition = " AND ".join(where)
        async with self.pool.acquire() as conn:
            matched = await conn.fetchval(f"SELECT count(*) FROM ingest.contacts WHERE {condition}", *args)
            rows = await conn.fetch(
                f"SELECT * FROM ingest.contacts WHERE {condition} ORDER BY contact_id LIMIT ${len(args) + 1}",
                *args,
                segment.limit,
            )
        return int(matched), [facts for _, facts in _readable(rows)]
