"""Following `herald.consent.v1` into a service's own suppression table, with proof of freshness.

The guard and the executor each keep the latest consent state per (tenant, contact, channel)
in their own schema. Before each decision and each send, they call `caught_up()`: it reads the
consent topic's end offsets and waits until the feed has applied everything up to them, so an
opt-out committed before that moment is always seen — an opt-out at offset X blocks every action
checked after X was written. Concurrent callers share one end-offsets request, provided it began
after they called, so the check costs one broker round trip per wave of actions, not per action.

A record that cannot be read goes to the service's dead-letter topic — and when its key still names a contact
(`tenant:contact:channel`), that contact is suppressed on that channel (reason `unreadable_consent_record`):
a withdrawal that arrived damaged is still a withdrawal, so the feed fails closed. A record the database
refuses is applied alone and, if it still fails, treated the same way. A database outage is retried without
bound (never given up on: a withdrawal not yet applied must keep sending stopped); the feed's readiness
reports it wedged while it lasts.

An erasure (`ContactErased`) replaces every suppression row of the contact by one hashed entry
(contact id and address as SHA-256, reason `erasure`, all channels) and runs the service's own
`on_erasure` in the same transaction, which removes the contact's data from the service's tables.

Tables (created by `CONSENT_MIGRATIONS`, applied in the service's schema):
    <schema>.suppression(tenant, contact_id, channel, suppressed, reason, email, email_sha256, source_offset,
                         updated_at)
    <schema>.consent_offsets(partition PRIMARY KEY, next_offset)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from herald_core.bus import (
    FETCH_MAX_WAIT_MS,
    DeadLetterer,
    Inbound,
    Progress,
    Unreadable,
    cancel_and_wait,
    is_transient,
    note_commit,
    note_fetch,
    read_record,
    reason_of,
)
from herald_core.contracts import ConsentGranted, ConsentWithdrawn, ContactErased
from herald_core.observability import NotReady
from herald_core.settings import CommonSettings
from herald_core.text import text_problem
from herald_core.topics import CONSENT

log = structlog.get_logger("herald.consent")

#: a service's own erasure, run in the consent feed's transaction: (connection, tenant, contact_id, hashed id)
OnErasure = Callable[[asyncpg.Connection, str, str, str], Awaitable[None]]
#: a service's own use of a withdrawal (the guard counts bounces and complaints), in the same transaction
OnWithdrawn = Callable[[asyncpg.Connection, str, ConsentWithdrawn, int], Awaitable[None]]


def address_hash(email: str) -> str:
    """What an erasure keeps of an address: SHA-256 (hex) of it, lower-cased."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def contact_hash(tenant: str, contact_id: str) -> str:
    """What an erasure keeps of a contact id, in place of the id (`sha256:<hex>`)."""
    return "sha256:" + hashlib.sha256(f"{tenant}:{contact_id}".encode()).hexdigest()


class ConsentFeed:
    def __init__(
        self,
        common: CommonSettings,
        pool: asyncpg.Pool,
        schema: str,
        on_erasure: OnErasure | None = None,
        on_withdrawn: OnWithdrawn | None = None,
    ) -> None:
        self.common = common
        self.on_erasure = on_erasure
        self.on_withdrawn = on_withdrawn
        self.pool = pool
        self.schema = schema
        self.topic = CONSENT.full_name(common.topic_prefix)
        self._consumer: AIOKafkaConsumer | None = None
        # end offsets are asked on a connection of their own: the broker answers one request per connection
        # at a time, and the follower's long-poll fetch would hold a freshness check up to its wait
        self._offsets: AIOKafkaConsumer | None = None
        self.dead_letters = DeadLetterer(common, schema)
        self.progress = Progress(schema, f"{schema}-consent-feed", common.wedge_seconds)
        self._task: asyncio.Task[None] | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._advanced = asyncio.Condition()
        self._reading: asyncio.Task[tuple[datetime, dict[TopicPartition, int]]] | None = None
        self._reading_number = 0  # how many end-offsets readings have begun
        self.started = False

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.common.kafka_bootstrap,
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        partitions = [TopicPartition(self.topic, p) for p in await self._partitions()]
        await consumer.start()
        consumer.assign(partitions)
        stored = {
            r["partition"]: r["next_offset"]
            for r in await self.pool.fetch(f'SELECT partition, next_offset FROM "{self.schema}".consent_offsets')
        }
        for tp in partitions:
            if tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])
                self._positions[tp] = stored[tp.partition]
            else:
                await consumer.seek_to_beginning(tp)
                self._positions[tp] = 0
        self._consumer = consumer
        self._offsets = AIOKafkaConsumer(
            bootstrap_servers=self.common.kafka_bootstrap, group_id=None, isolation_level="read_committed"
        )
        await self._offsets.start()
        await self.dead_letters.start()
        self._task = asyncio.create_task(self._follow(), name=f"{self.schema}-consent-feed")
        self.started = True

    async def ready(self) -> bool | NotReady:
        if not self.started or self._task is None or self._task.done():
            return False
        wedged = self.progress.wedged()
        return NotReady(wedged) if wedged else True

    async def _partitions(self) -> list[int]:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.common.kafka_bootstrap)
        await admin.start()
        try:
            described = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        if not described or described[0].get("error_code", 0) != 0 or not described[0].get("partitions"):
            raise RuntimeError(f"consent topic {self.topic} does not exist")
        return sorted(p["partition"] for p in described[0]["partitions"])

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer:
            await self._consumer.stop()
        if self._offsets:
            await self._offsets.stop()
        await self.dead_letters.stop()

    async def _follow(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        delay = 0.5
        while True:
            batch = await consumer.getmany(timeout_ms=100, max_records=1000)
            await note_fetch(self.progress, consumer, batch)
            try:
                await self._store(batch)
            except Exception as exc:
                # only an outage gets here (a record's own fault is dead-lettered in `_store`): read it again
                self.progress.failed(reason_of(exc))
                log.error("consent feed could not store a batch; retrying", error=repr(exc), delay=delay)
                for tp in batch:
                    consumer.seek(tp, self._positions[tp])
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            note_commit(self.progress, batch)
            async with self._advanced:
                for tp in consumer.assignment():
                    self._positions[tp] = await consumer.position(tp)
                self._advanced.notify_all()

    async def _store(self, batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]) -> None:
        """Apply a batch and store the positions past it, in one transaction; dead letters are flushed first,
        so a crash repeats one at worst and never loses it."""
        readable: list[Inbound] = []
        damaged: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        for records in batch.values():
            for record in records:
                if record.value is None and not record.headers:
                    continue  # a tombstone: compaction removing an erased contact's older records
                read = read_record(record, CONSENT)
                if isinstance(read, Unreadable):
                    await self.dead_letters.send(record, read.reason, read.envelope)
                    damaged.append((record, read.reason))
                else:
                    readable.append(read)
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                await self._serialize(conn)
                await self._apply_all(conn, readable, damaged, batch)
        except Exception as exc:
            if is_transient(exc):
                raise
            # a value the database refuses: apply one record at a time, so only the one at fault is set aside
            log.warning("consent batch refused by the database; applying one by one", error=reason_of(exc))
            async with self.pool.acquire() as conn, conn.transaction():
                await self._serialize(conn)
                for inbound in readable:
                    try:
                        async with conn.transaction():  # a savepoint per record
                            await self._apply(conn, inbound)
                    except Exception as one:
                        if is_transient(one):
                            raise
                        record = _record_of(batch, inbound)
                        await self.dead_letters.send(record, f"not applied: {reason_of(one)}", inbound.envelope)
                        damaged.append((record, reason_of(one)))
                await self._apply_all(conn, [], damaged, batch)
        await self.dead_letters.flush()

    async def _serialize(self, conn: asyncpg.Connection) -> None:
        """Replicas of one service share its tables and apply the same records: one feed transaction at a time
        (a transaction-scoped advisory lock), so two upserting the same rows in another order never deadlock."""
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"{self.schema}.consent-feed")

    async def _apply_all(
        self,
        conn: asyncpg.Connection,
        readable: list[Inbound],
        damaged: list[tuple[ConsumerRecord[bytes, bytes], str]],
        batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]],
    ) -> None:
        for inbound in readable:
            await self._apply(conn, inbound)
        for record, _ in damaged:
            await self._suppress_damaged(conn, record)
        for tp, records in batch.items():
            if records:
                await conn.execute(
                    f'INSERT INTO "{self.schema}".consent_offsets(partition, next_offset) VALUES ($1, $2) '
                    "ON CONFLICT (partition) DO UPDATE SET next_offset = EXCLUDED.next_offset",
                    tp.partition,
                    records[-1].offset + 1,
                )

    async def _suppress_damaged(self, conn: asyncpg.Connection, record: ConsumerRecord[bytes, bytes]) -> None:
        """Fail closed on a record that could not be applied: suppress the contact its key names, if any."""
        named = _named_by_key(record.key)
        if named is None:
            return
        tenant, contact_id, channel = named
        await conn.execute(
            f'INSERT INTO "{self.schema}".suppression'
            "(tenant, contact_id, channel, suppressed, reason, email, source_offset, updated_at) "
            "VALUES ($1, $2, $3, true, 'unreadable_consent_record', NULL, $4, now()) "
            "ON CONFLICT (tenant, contact_id, channel) DO UPDATE SET suppressed = true, "
            "reason = EXCLUDED.reason, source_offset = EXCLUDED.source_offset, updated_at = now()",
            tenant,
            contact_id,
            channel,
            record.offset,
        )
        log.warning("contact suppressed: its consent record could not be applied", tenant=tenant, channel=channel)

    async def _apply(self, conn: asyncpg.Connection, inbound: Inbound) -> None:
        body = inbound.body
        tenant = inbound.envelope.tenant
        if isinstance(body, ContactErased):
            await self._erase(conn, tenant, body, inbound.offset)
            return
        if isinstance(body, ConsentWithdrawn):
            suppressed, reason, email = True, body.reason.value, body.email
            if self.on_withdrawn is not None:
                await self.on_withdrawn(conn, tenant, body, inbound.offset)
        elif isinstance(body, ConsentGranted):
            suppressed, reason, email = False, "granted", None
        else:
            return
        await conn.execute(
            f'INSERT INTO "{self.schema}".suppression'
            "(tenant, contact_id, channel, suppressed, reason, email, source_offset, updated_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, now()) "
            "ON CONFLICT (tenant, contact_id, channel) DO UPDATE SET suppressed = EXCLUDED.suppressed, "
            "reason = EXCLUDED.reason, email = COALESCE(EXCLUDED.email, suppression.email), "
            "source_offset = EXCLUDED.source_offset, updated_at = now()",
            tenant,
            body.contact_id,
            body.channel.value,
            suppressed,
            reason,
            email,
            inbound.offset,
        )

    async def _erase(self, conn: asyncpg.Connection, tenant: str, erased: ContactErased, offset: int) -> None:
        hashed = contact_hash(tenant, erased.contact_id)
        await conn.execute(
            f'DELETE FROM "{self.schema}".suppression WHERE tenant = $1 AND (contact_id = $2 '
            "OR (email IS NOT NULL AND $3::text IS NOT NULL AND encode(sha256(convert_to(lower(email), 'UTF8')), "
            "'hex') = $3))",
            tenant,
            erased.contact_id,
            erased.email_sha256,
        )
        await conn.execute(
            f'INSERT INTO "{self.schema}".suppression'
            "(tenant, contact_id, channel, suppressed, reason, email, email_sha256, source_offset, updated_at) "
            "VALUES ($1, $2, 'all', true, 'erasure', NULL, $3, $4, now()) "
            "ON CONFLICT (tenant, contact_id, channel) DO UPDATE SET email_sha256 = EXCLUDED.email_sha256, "
            "source_offset = EXCLUDED.source_offset, updated_at = now()",
            tenant,
            hashed,
            erased.email_sha256,
            offset,
        )
        if self.on_erasure is not None:
            await self.on_erasure(conn, tenant, erased.contact_id, hashed)
        log.info("contact erased", tenant=tenant, contact=hashed)

    async def caught_up(self, timeout: float = 10.0) -> datetime:
        """Return once every consent record committed before this call has been applied; the result is
        when the end offsets waited for were read (what a decision records as its consent check time)."""
        read_at, ends = await asyncio.wait_for(self._end_offsets_read_after(self._reading_number), timeout)
        deadline = time.monotonic() + timeout
        async with self._advanced:
            while any(self._positions[tp] < end for tp, end in ends.items()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("consent feed is behind the consent topic")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._advanced.wait(), remaining)
        return read_at

    async def _end_offsets_read_after(self, begun_before: int) -> tuple[datetime, dict[TopicPartition, int]]:
        """End offsets from a reading that began after `begun_before` readings had begun (shared by callers)."""
        while True:
            reading = self._reading
            if reading is not None and self._reading_number > begun_before:
                return await asyncio.shield(reading)
            if reading is None or reading.done():
                self._reading_number += 1
                self._reading = asyncio.create_task(self._read_end_offsets())
            else:  # a reading that began before this call: wait it out, then begin (or join) a newer one
                await asyncio.wait([reading])

    async def _read_end_offsets(self) -> tuple[datetime, dict[TopicPartition, int]]:
        assert self._offsets is not None
        read_at = datetime.now(UTC)
        return read_at, await self._offsets.end_offsets(list(self._positions))

    async def suppression(self, tenant: str, contact_id: str, email: str | None, channel: str = "email") -> str | None:
        """The reason the contact (or its address) must not be contacted on `channel`, or None. A withdrawal for
        `all` channels covers this one too; one for another channel does not."""
        row = await self.pool.fetchrow(
            f"SELECT reason FROM \"{self.schema}\".suppression WHERE tenant = $1 AND channel IN ($2, 'all') "
            "AND suppressed AND (contact_id IN ($3, $5) OR (email IS NOT NULL AND lower(email) = lower($4)) "
            "OR email_sha256 = $6) LIMIT 1",
            tenant,
            channel,
            contact_id,
            email,
            contact_hash(tenant, contact_id),
            address_hash(email) if email else None,
        )
        return None if row is None else str(row["reason"])


_CHANNELS = frozenset({"email", "sms", "phone", "all"})


def _named_by_key(key: bytes | None) -> tuple[str, str, str] | None:
    """(tenant, contact, channel) from a consent key `tenant:contact:channel`, if it is one a store can hold."""
    try:
        tenant, contact_id, channel = (
            (key or b"").decode().rsplit(":", 2) if key and key.count(b":") >= 2 else ("", "", "")
        )
    except UnicodeDecodeError:
        return None
    if not tenant or not contact_id or channel not in _CHANNELS or len(tenant) > 63 or len(contact_id) > 64:
        return None
    if text_problem(tenant) or text_problem(contact_id):
        return None
    return tenant, contact_id, channel


def _record_of(
    batch: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]], inbound: Inbound
) -> ConsumerRecord[bytes, bytes]:
    return next(
        r
        for tp, records in batch.items()
        if tp.partition == inbound.partition
        for r in records
        if r.offset == inbound.offset
    )


#: migrations for the tables above; a service passes this to `herald_core.db.migrate` after its own
CONSENT_MIGRATIONS = Path(__file__).parent / "migrations" / "consent"
