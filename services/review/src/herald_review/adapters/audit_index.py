"""The audit index in Postgres (schema `review`): every audit record, findable by tenant, contact,
action, rule and time. The rows are derived from the records alone (headers and JSON body).

Whatever a record holds, the index stores what it can and never stops the sealer: text Postgres refuses (a NUL
character, a lone surrogate) is stored escaped, an id that is not text is left NULL, a body that is not JSON — or
a row Postgres refuses even so — is stored as its SHA-256, and `body_note` says what was done. Only an outage
(Postgres unreachable, a connection lost) raises, to be retried: it heals, a record's content does not.

An erasure (`herald.contact.erased.v1` on the audit) redacts the index: every row of a chain that
touched the contact keeps its ids, type and time, but not its body, and names the contact by its
hash; the service's own `on_erasure` (the review queue's) runs in the same transaction."""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
from aiokafka import ConsumerRecord
from prometheus_client import Counter

from herald_core.consent import OnErasure, contact_hash
from herald_core.contracts import ContactErased
from herald_core.envelope import Envelope
from herald_core.observability import get_logger

DECISION_TYPES = (
    "herald.action.approved.v1",
    "herald.action.blocked.v1",
    "herald.action.escalated.v1",
    "herald.action.deferred.v1",
)
_COLUMNS = (
    'partition, "offset", message_id, type, topic, tenant, correlation_id, causation_id, action_id, contact_id, '
    "rule, occurred_at, body, rules, body_note"
)
_INSERT = (
    f"INSERT INTO review.audit_index ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, "
    "$13::jsonb, $14, $15) ON CONFLICT DO NOTHING"
)
HASHED_BODY = "body hashed"  # how `body_note` begins when the body is the record's hash, not its content

REPAIRED = Counter(
    "herald_review_audit_index_repaired_total",
    "Audit index rows not stored as the record holds them: a part escaped, nulled, hashed or truncated, or the "
    "row dropped, by why.",
    ["stored", "reason"],
)
log = get_logger("herald.review.audit_index")


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
    body_note: str | None = None  # what was done to store the record (None: stored as it is)


# why a part of a row is not stored as the record holds it, and the words `body_note` uses for it
NUL = "nul"
LONE_SURROGATE = "lone_surrogate"
NON_FINITE_NUMBER = "non_finite_number"
NOT_JSON = "not_json"
NOT_TEXT = "not_text"
_WORDS = {
    NUL: "NUL characters, written \\u0000",
    LONE_SURROGATE: "lone surrogates, written as their \\ud800-\\udfff escapes",
    NON_FINITE_NUMBER: "numbers JSON cannot hold (NaN, infinite), written as strings",
    NOT_JSON: "the value is not JSON",
    NOT_TEXT: "not text",
}


class Repair(NamedTuple):
    """One thing done to store a record: where (a column), how (escaped, nulled, hashed, truncated) and why."""

    where: str
    stored: str
    reason: str  # one of the names above, or the class of the error Postgres refused the row with
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.where} {self.stored}: {self.detail or _WORDS.get(self.reason, self.reason)}"


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def escape_text(text: str) -> tuple[str, set[str]]:
    """`text` as Postgres can store it, and what it held that Postgres cannot: each NUL character and each lone
    surrogate becomes the six characters of its JSON escape (`\\u0000`, `\\ud800`), visible to a reader."""
    found: set[str] = set()

    def escaped(match: re.Match[str]) -> str:
        character = match.group()
        found.add(NUL if character == "\x00" else LONE_SURROGATE)
        return f"\\u{ord(character):04x}"

    return _UNSTORABLE.sub(escaped, text), found


def storable_json(value: Any) -> tuple[Any, set[str]]:
    """A parsed JSON value as jsonb can hold it, and what had to change: every string (keys too) escaped as
    `escape_text` does, and every number JSON cannot hold (NaN, ±Infinity, 1e999) written as a string."""
    found: set[str] = set()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            text, problems = escape_text(item)
            found.update(problems)
            return text
        if isinstance(item, float) and not math.isfinite(item):
            found.add(NON_FINITE_NUMBER)
            return str(item).replace("inf", "Infinity").replace("nan", "NaN")
        if isinstance(item, dict):
            return {walk(k): walk(v) for k, v in item.items()}
        if isinstance(item, list):
            return [walk(v) for v in item]
        return item

    return walk(value), found


def rules_touched(body: dict[str, Any]) -> list[str]:
    """The rules a record names that did more than pass: its own `rule` (a block), and each rule hit in its
    `rules` whose outcome is not `pass` (an escalation's, an approval's or a deferral's list)."""
    named = {str(body["rule"])} if body.get("rule") else set()
    hits: list[Any] = body["rules"] if isinstance(body.get("rules"), list) else []
    named |= {str(h["rule"]) for h in hits if isinstance(h, dict) and h.get("rule") and h.get("outcome") != "pass"}
    return sorted(named)


class _Entry(NamedTuple):
    """A record's index row, what was done to make it storable, and the record's value (for its hash)."""

    row: IndexRow
    repairs: tuple[Repair, ...]
    value: bytes | None

    @classmethod
    def of(cls, row: IndexRow, repairs: Sequence[Repair], value: bytes | None) -> _Entry:
        # a hashed body first: it is what a reader most needs to know (and how `HASHED_BODY` finds such rows)
        ordered = (*(r for r in repairs if r.stored == "hashed"), *(r for r in repairs if r.stored != "hashed"))
        note = "; ".join(str(r) for r in ordered) if ordered else None
        return cls(row._replace(body_note=note), ordered, value)

    def with_repair(self, repair: Repair, **columns: Any) -> _Entry:
        return _Entry.of(self.row._replace(**columns), (*self.repairs, repair), self.value)


def _hash_body(value: bytes | None, why: str) -> str:
    return json.dumps({"sha256": hashlib.sha256(value or b"").hexdigest(), "reason": why})


def _body(value: bytes | None) -> tuple[str | None, dict[str, Any], list[Repair]]:
    """The body column (JSON text jsonb takes), the body as a dict to read ids from, and what was done."""
    if not value:
        return None, {}, []
    try:
        parsed = json.loads(value)
    except (ValueError, RecursionError):  # not UTF-8, not JSON, a number of more digits than Python reads, too deep
        repair = Repair("body", "hashed", NOT_JSON)
        return _hash_body(value, str(repair)), {}, [repair]
    try:
        body, problems = storable_json(parsed)
        text = json.dumps(body, allow_nan=False)
    except (ValueError, RecursionError) as exc:  # nested deeper than can be walked again
        repair = Repair("body", "hashed", type(exc).__name__, "too deeply nested to store")
        return _hash_body(value, str(repair)), {}, [repair]
    repairs = [Repair("body", "escaped", p) for p in sorted(problems)]
    return text, body if isinstance(body, dict) else {}, repairs


def _text(where: str, value: Any, repairs: list[Repair]) -> str | None:
    """A text column from the body: strings only (already escaped with the body); anything else is NULL."""
    if value is None or isinstance(value, str):
        return value
    repairs.append(Repair(where, "nulled", NOT_TEXT, f"a JSON {type(value).__name__}, not text: left NULL"))
    return None


def _escaped(where: str, value: str, repairs: list[Repair]) -> str:
    """A text column from a header: escaped where Postgres cannot store it."""
    text, problems = escape_text(value)
    repairs.extend(Repair(where, "escaped", p) for p in sorted(problems))
    return text


def _entry(record: ConsumerRecord[bytes, bytes]) -> _Entry | None:
    """The record's index entry (None if its envelope cannot be read: it is sealed, but has no row)."""
    headers = tuple(record.headers or ())
    try:
        envelope = Envelope.from_headers(headers)
    except Exception:  # not only EnvelopeError: whatever the headers hold, the answer is "no envelope"
        return None
    repairs: list[Repair] = []
    body, found, body_repairs = _body(record.value)
    repairs += body_repairs
    action: dict[str, Any] = found["action"] if isinstance(found.get("action"), dict) else {}
    contact = found["contact"] if isinstance(found.get("contact"), dict) else action.get("contact") or {}
    topic = next(((v or b"").decode(errors="replace") for k, v in headers if k == "herald_topic"), "")
    causation = envelope.causation_id
    row = IndexRow(
        record.partition,
        record.offset,
        _escaped("message_id", envelope.id, repairs),
        _escaped("type", envelope.type, repairs),
        _escaped("topic", topic, repairs),
        _escaped("tenant", envelope.tenant, repairs),
        _escaped("correlation_id", envelope.correlation_id, repairs),
        None if causation is None else _escaped("causation_id", causation, repairs),
        _text("action_id", found.get("action_id") or action.get("action_id"), repairs),
        _text(
            "contact_id",
            found.get("contact_id") or (contact.get("contact_id") if isinstance(contact, dict) else None),
            repairs,
        ),
        _text("rule", found.get("rule"), repairs),
        envelope.time,
        body,
        rules_touched(found),
    )
    return _Entry.of(row, repairs, record.value)


def _safe_entry(record: ConsumerRecord[bytes, bytes]) -> _Entry | None:
    try:
        return _entry(record)
    except Exception as exc:  # a shape no one foresaw: no row, never a stopped sealer
        log.error(
            "audit record not indexed: it could not be read",
            partition=record.partition,
            offset=record.offset,
            error=repr(exc)[:500],
        )
        REPAIRED.labels("dropped", type(exc).__name__).inc()
        return None


def index_row(record: ConsumerRecord[bytes, bytes]) -> IndexRow | None:
    """The index row of one audit record (None if its envelope cannot be read); never raises, whatever the
    record's headers, key and value hold."""
    entry = _safe_entry(record)
    return None if entry is None else entry.row


# Failures that heal — Postgres unreachable, restarting, out of connections, a connection lost, a transaction to
# run again, a schema not migrated yet — are retried by the caller. Anything else a row meets is the row's: Postgres
# (or asyncpg, encoding it) refused one of its values, and trying it again would never succeed.
_HEALS = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InsufficientResourcesError,
    asyncpg.OperatorInterventionError,
    asyncpg.TransactionRollbackError,
    asyncpg.PostgresSystemError,
    asyncpg.InternalServerError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InvalidSchemaNameError,
    asyncpg.UndefinedTableError,
    asyncpg.UndefinedColumnError,
    asyncpg.ReadOnlySQLTransactionError,
)


def heals(exc: BaseException) -> bool:
    """Whether a failure to store rows is one that passes (an outage) rather than a refusal of a value."""
    if isinstance(exc, asyncpg.InterfaceError) and not isinstance(exc, ValueError):
        return True  # the pool or connection is closed, or went away; asyncpg's DataError is a ValueError
    return isinstance(exc, _HEALS)


def _refusal(exc: BaseException) -> Repair:
    message = escape_text((str(exc).splitlines() or [""])[0][:200])[0]  # it may quote the refused value
    return Repair("body", "hashed", type(exc).__name__, f"Postgres refused the row ({type(exc).__name__}: {message})")


_TRUNCATED_CHARS = 200


def _hashed(entry: _Entry, exc: BaseException) -> _Entry:
    """The entry with its body replaced by the record's hash and why."""
    repair = _refusal(exc)
    return entry.with_repair(repair, body=_hash_body(entry.value, str(repair)))


def _report(entry: _Entry) -> None:
    row = entry.row
    for repair in entry.repairs:
        REPAIRED.labels(repair.stored, repair.reason).inc()
    log.warning(
        "audit record indexed other than as it is",
        partition=row.partition,
        offset=row.offset,
        message_id=row.message_id,
        tenant=row.tenant,
        correlation_id=row.correlation_id,
        action_id=row.action_id,
        body_note=row.body_note,
    )


def _truncated(entry: _Entry, exc: BaseException) -> _Entry:
    """The least row there is: the record's place, type and envelope ids cut short, no body but its hash."""
    row = entry.row
    repair = Repair(
        "row",
        "truncated",
        type(exc).__name__,
        f"ids cut to {_TRUNCATED_CHARS} characters, body, contact, action and rules dropped ({type(exc).__name__})",
    )
    cut = {
        name: getattr(row, name)[:_TRUNCATED_CHARS]
        for name in ("message_id", "type", "topic", "tenant", "correlation_id")
    }
    return entry.with_repair(repair, **cut, causation_id=None, action_id=None, contact_id=None, rule=None, rules=[])


class AuditIndex:
    def __init__(self, pool: asyncpg.Pool, on_erasure: OnErasure | None = None) -> None:
        self.pool = pool
        self.on_erasure = on_erasure

    async def add(self, records: Sequence[ConsumerRecord[bytes, bytes]]) -> None:
        """Index the records. Raises only for an outage (`heals`); every record's content is stored as it can be."""
        entries = [entry for entry in (_safe_entry(r) for r in records) if entry is not None]
        if not entries:
            return
        try:
            await self.pool.executemany(_INSERT, [entry.row for entry in entries])
            stored = entries
        except Exception as exc:
            if await self._outage(exc):
                raise
            # one refused row fails the whole executemany: find it (them) by storing the rows one by one
            log.warning("audit index refused a batch; storing it row by row", rows=len(entries), error=repr(exc)[:500])
            stored = [entry for entry in [await self._store_one(entry) for entry in entries] if entry is not None]
        for entry in stored:
            if entry.repairs:
                _report(entry)
        for entry in stored:
            row = entry.row
            if row.type == ContactErased.TYPE and row.contact_id:
                try:
                    await self.erase(row.tenant, row.contact_id)
                except Exception as exc:
                    if await self._outage(exc):
                        raise
                    log.error(
                        "audit index could not apply an erasure",
                        tenant=row.tenant,
                        message_id=row.message_id,
                        error=repr(exc)[:500],
                    )

    async def _outage(self, exc: BaseException) -> bool:
        """Whether a failure is Postgres being away rather than a refusal of the rows: a failure that `heals`, or
        any failure while the database does not answer a query that holds no value of any record."""
        if heals(exc):
            return True
        try:
            return not await self.pool.fetchval("SELECT true")
        except Exception:
            return True

    async def _store_one(self, entry: _Entry) -> _Entry | None:
        """Store one row as it is, else with its body hashed, else cut to its place and ids; what was stored."""
        candidate = entry
        for fallback in (_hashed, _truncated, None):
            try:
                await self.pool.execute(_INSERT, *candidate.row)
                return candidate
            except Exception as exc:
                if await self._outage(exc):
                    raise
                if fallback is None:
                    row = candidate.row
                    log.error(
                        "audit record not indexed: Postgres refused even its least row",
                        partition=row.partition,
                        offset=row.offset,
                        message_id=row.message_id,
                        tenant=row.tenant,
                        error=repr(exc)[:500],
                    )
                    REPAIRED.labels("dropped", type(exc).__name__).inc()
                    return None
                candidate = fallback(candidate, exc)
        return None  # not reached: the last attempt returns or drops

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
        (approved, blocked, escalated or deferred; none if it was never decided): what a backtest replays. Rows
        whose body is only the record's hash are left out: there is nothing in them to replay."""
        rows = await self.pool.fetch(
            "SELECT p.body AS action, p.occurred_at, d.type AS decision_type, d.body AS decision "
            "FROM review.audit_index p LEFT JOIN LATERAL (SELECT type, body FROM review.audit_index d "
            "WHERE d.tenant = p.tenant AND d.action_id = p.action_id AND d.type = ANY($4::text[]) "
            "AND NOT starts_with(coalesce(d.body_note, ''), $6) "
            'ORDER BY d.occurred_at, d.partition, d."offset" LIMIT 1) d ON true '
            "WHERE p.tenant = $1 AND p.type = 'herald.action.proposed.v1' AND p.body IS NOT NULL "
            "AND NOT starts_with(coalesce(p.body_note, ''), $6) "
            "AND p.occurred_at >= $2 AND ($3::timestamptz IS NULL OR p.occurred_at < $3) "
            "ORDER BY p.occurred_at LIMIT $5",
            tenant,
            since,
            until,
            list(DECISION_TYPES),
            limit,
            HASHED_BODY,  # a body that is only a hash is no proposal (or decision) to replay
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
