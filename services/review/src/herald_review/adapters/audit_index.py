"""The audit index in Postgres (schema `review`): every audit record, findable by tenant, contact,
action, rule and time. The rows are derived from the records alone (headers and JSON body).

An erasure (`herald.contact.erased.v1` on the audit) redacts the index: every row of a chain that
touched the contact keeps its ids, type and time, but not its body, and names the contact by its
hash; the service's own `on_erasure` (the review queue's) runs in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from aiokafka import ConsumerRecord

from herald_core.consent import OnErasure, contact_hash
from herald_core.contracts import ContactErased
from herald_core.envelope import Envelope

DECISION_TYPES = (
    "herald.action.approved.v1",
    "herald.action.blocked.v1",
    "herald.action.escalated.v1",
    "herald.action.deferred.v1",
)
_COLUMNS = (
    'partition, "offset", message_id, type, topic, tenant, correlation_id, causation_id, action_id, contact_id, '
    "rule, occurred_at, body, rules"
)


class IndexRow(NamedTuple):
    """One row of `review.audit_index`, in `_COLUMNS` order."""

    partition: int
    offset: int
    message_id: str
    type: str
    topic: str
    tenant: str
    correlation_id: str
    causation_id: str | None
    action_id: str | None
    contact_id: str | None
    rule: str | None
    occurred_at: datetime
    body: str | None
    rules: list[str]  # every rule that did not simply pass: what a search by rule finds


def rules_touched(body: dict[str, Any]) -> list[str]:
    """The rules a record names that did more than pass: its own `rule` (a block), and each rule hit in its
    `rules` whose outcome is not `pass` (an escalation's, an approval's or a deferral's list)."""
    named = {str(body["rule"])} if body.get("rule") else set()
    hits = body.get("rules") if isinstance(body.get("rules"), list) else []
    named |= {str(h["rule"]) for h in hits if isinstance(h, dict) and h.get("rule") and h.get("outcome") != "pass"}
    return sorted(named)


def index_row(record: ConsumerRecord[bytes, bytes]) -> IndexRow | None:
    """The index row of one audit record (None if its envelope cannot be read)."""
    headers = tuple(record.headers or ())
    try:
        envelope = Envelope.from_headers(headers)
    except Exception:
        return None
    try:
        body = json.loads(record.value) if record.value else None
    except ValueError:
        body = None
    topic = next((v.decode(errors="replace") for k, v in headers if k == "herald_topic"), "")
    found = body if isinstance(body, dict) else {}
    action = found.get("action") if isinstance(found.get("action"), dict) else {}
    contact = found.get("contact") if isinstance(found.get("contact"), dict) else action.get("contact") or {}
    return IndexRow(
        record.partition,
        record.offset,
        envelope.id,
        envelope.type,
        topic,
        envelope.tenant,
        envelope.correlation_id,
        envelope.causation_id,
        found.get("action_id") or action.get("action_id"),
        found.get("contact_id") or (contact.get("contact_id") if isinstance(contact, dict) else None),
        found.get("rule"),
        envelope.time,
        json.dumps(body) if body is not None else None,
        rules_touched(found),
    )


class AuditIndex:
    def __init__(self, pool: asyncpg.Pool, on_erasure: OnErasure | None = None) -> None:
        self.pool = pool
        self.on_erasure = on_erasure

    async def add(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        rows = [row for row in (index_row(r) for r in records) if row is not None]
        if rows:
            await self.pool.executemany(
                f"INSERT INTO review.audit_index ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
                "$12, $13::jsonb, $14) ON CONFLICT DO NOTHING",
                rows,
            )
        for row in rows:
            if row.type == ContactErased.TYPE and row.contact_id:
                await self.erase(row.tenant, row.contact_id)

    async def erase(self, tenant: str, contact_id: str) -> None:
        hashed = contact_hash(tenant, contact_id)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE review.audit_index SET body = NULL, contact_id = $3 WHERE tenant = $1 AND (contact_id = $2 "
                "OR correlation_id IN (SELECT correlation_id FROM review.audit_index WHERE tenant = $1 "
                "AND contact_id = $2))",
                tenant,
                contact_id,
                hashed,
            )
            if self.on_erasure is not None:
                await self.on_erasure(conn, tenant, contact_id, hashed)

    async def chain_of_action(self, action_id: str) -> list[dict[str, Any]]:
        """Every record of the chain (same correlation id) that the action belongs to, oldest first."""
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM review.audit_index WHERE correlation_id IN "
            "(SELECT correlation_id FROM review.audit_index WHERE action_id = $1) "
            'ORDER BY occurred_at, partition, "offset"',
            action_id,
        )
        return [_row(r) for r in rows]

    async def proposals(self, tenant: str, since: datetime, until: datetime | None, limit: int) -> list[dict[str, Any]]:
        """The tenant's recorded proposals in a period (oldest first), each with the first decision made on it
        (approved, blocked, escalated or deferred; none if it was never decided): what a backtest replays."""
        rows = await self.pool.fetch(
            "SELECT p.body AS action, p.occurred_at, d.type AS decision_type, d.body AS decision "
            "FROM review.audit_index p LEFT JOIN LATERAL (SELECT type, body FROM review.audit_index d "
            "WHERE d.tenant = p.tenant AND d.action_id = p.action_id AND d.type = ANY($4::text[]) "
            'ORDER BY d.occurred_at, d.partition, d."offset" LIMIT 1) d ON true '
            "WHERE p.tenant = $1 AND p.type = 'herald.action.proposed.v1' AND p.body IS NOT NULL "
            "AND p.occurred_at >= $2 AND ($3::timestamptz IS NULL OR p.occurred_at < $3) "
            "ORDER BY p.occurred_at LIMIT $5",
            tenant,
            since,
            until,
            list(DECISION_TYPES),
            limit,
        )
        return [
            {
                "action": json.loads(r["action"]),
                "occurred_at": r["occurred_at"].isoformat(),
                "decision_type": r["decision_type"],
                "decision": json.loads(r["decision"]) if r["decision"] else None,
            }
            for r in rows
        ]

    async def search(
        self,
        *,
        tenant: str,
        contact_id: str | None = None,
        action_id: str | None = None,
        rule: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = False,
    ) -> list[dict[str, Any]]:
        """A tenant's records, each filter applied when given, oldest first (newest first for people reading
        back from today); ordered by time then place on the audit topic, so pages do not overlap."""
        direction = "DESC" if newest_first else "ASC"
        rows = await self.pool.fetch(
            f"SELECT {_COLUMNS} FROM review.audit_index WHERE tenant = $1 "
            "AND ($2::text IS NULL OR contact_id = $2) AND ($3::text IS NULL OR action_id = $3) "
            "AND ($4::text IS NULL OR $4 = ANY(rules)) AND ($5::timestamptz IS NULL OR occurred_at >= $5) "
            f"AND ($6::timestamptz IS NULL OR occurred_at < $6) ORDER BY occurred_at {direction}, "
            f'partition {direction}, "offset" {direction} LIMIT $7 OFFSET $8',
            tenant,
            contact_id,
            action_id,
            rule,
            since,
            until,
            limit,
            offset,
        )
        return [_row(r) for r in rows]


def _row(row: asyncpg.Record) -> dict[str, Any]:
    item = dict(row)
    item["occurred_at"] = item["occurred_at"].isoformat()
    item["body"] = json.loads(item["body"]) if item["body"] else None
    return item
