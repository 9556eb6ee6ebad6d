"""Sealing the audit: `herald.audit.v1` → `herald.audit-sealed.v1`, a hash chain per partition, and
the audit index in Postgres (`adapters.audit_index`) from the same reading.

One consumer group; each partition is sealed by one replica at a time. A batch's sealed copies and
the consumer offsets commit in one Kafka transaction, so a record is sealed exactly once, in its
original order. The chain's last seal per partition is read back from the sealed topic whenever a
partition is assigned, so a restart or a rebalance continues the chain where it stopped.
(`herald_core.audit` has the seal and the verification.)

No record can stop it: the index stores every record as it can (`adapters.audit_index`), the seal takes any
key, value and headers Kafka carries, and a record the sealed topic cannot take as it is gets a stand-in at its
place. Only what heals — Kafka or Postgres unavailable — is retried, with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import MessageSizeTooLargeError
from prometheus_client import Counter

from herald_core.audit import HASH, seal_headers, stand_in
from herald_core.bus import (
    BusNames,
    Progress,
    cancel_and_wait,
    group_consumer,
    note_commit,
    note_fetch,
    reason_of,
    rewind,
    transactional_producer,
)
from herald_core.observability import NotReady, get_logger
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, AUDIT_SEALED
from herald_review.adapters.audit_index import AuditIndex

SEALED = Counter("herald_review_audit_sealed_total", "Audit records sealed into the hash chain.")
STOOD_IN = Counter(
    "herald_review_audit_stand_ins_total",
    "Audit records sealed as a stand-in naming their hash, because the sealed topic cannot take them as they are.",
)
log = get_logger("herald.review.sealer")
_FIRST_BACKOFF, _MAX_BACKOFF = 0.5, 10.0  # seconds between attempts while Kafka or Postgres is away


class AuditSealer:
    def __init__(self, common: CommonSettings, index: AuditIndex) -> None:
        self.common = common
        self.index = index
        names = BusNames(common.topic_prefix)
        self.source, self.sealed = names(AUDIT), names(AUDIT_SEALED)
        self.group_id = f"{common.topic_prefix}herald-review-sealer"
        self.last: dict[int, str] = {}  # partition → seal of the last sealed record
        self._task: asyncio.Task[None] | None = None
        self._backoff = _FIRST_BACKOFF
        self.assigned = False
        self.progress = Progress("review", "audit-sealer", common.wedge_seconds)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="review-audit-sealer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def ready(self) -> bool | NotReady:
        if not self.assigned:
            return False
        wedged = self.progress.wedged()
        return NotReady(wedged) if wedged else True

    async def _run_forever(self) -> None:
        while True:
            producer = transactional_producer(
                self.common, f"{self.common.topic_prefix}herald-review-sealer-{self.common.instance_id}"
            )
            consumer = group_consumer(self.common, self.group_id)
            try:
                await producer.start()
                await consumer.start()
                consumer.subscribe([self.source], listener=_Reload(self))
                await self._loop(consumer, producer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # only what heals gets here (Kafka or Postgres away): a record's content never raises this far
                self.progress.failed(reason_of(exc))
                log.error("audit sealer failed; reconnecting", error=repr(exc), backoff=self._backoff)
                await asyncio.sleep(self._backoff)
                self._backoff = min(self._backoff * 2, _MAX_BACKOFF)
            finally:
                self.assigned = False
                for client in (consumer, producer):
                    with contextlib.suppress(Exception):
                        await client.stop()

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            self.assigned = bool(consumer.assignment())
            await note_fetch(self.progress, consumer, batch)
            if not batch:
                continue
            # the index first: rows are keyed by the record's place, so a batch read again writes nothing new
            await self.index.add([r for records in batch.values() for r in records])
            chain = dict(self.last)
            try:
                async with producer.transaction():
                    for tp, records in batch.items():
                        for r in records:
                            chain[tp.partition] = await self._seal(producer, r, chain.get(tp.partition, ""))
                    offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
            except Exception:
                rewind(consumer, batch)  # the chain stays at its last committed seal
                raise
            self.last = chain
            note_commit(self.progress, batch)
            self._backoff = _FIRST_BACKOFF  # it has made progress: the next failure starts the backoff over
            SEALED.inc(sum(len(records) for records in batch.values()))

    async def _seal(self, producer: AIOKafkaProducer, record: ConsumerRecord[bytes, bytes], prev: str) -> str:
        """Send the record's sealed copy (in the open transaction); its seal, the next record's prev hash."""
        partition, headers_in = record.partition, list(record.headers or ())
        headers, sealed = seal_headers(prev, partition, record.offset, record.key, headers_in, record.value)
        # Kafka allows a record with neither key nor value, aiokafka's producer does not: an empty value seals the
        # same (a null key or value seals as empty) and is the closest copy there is
        value = b"" if record.key is None and record.value is None else record.value
        try:
            await producer.send(self.sealed, value=value, key=record.key, headers=headers, partition=partition)
            return sealed
        except MessageSizeTooLargeError as exc:  # larger than a sealed record may be: never will it fit
            reason = f"too large for {self.sealed} once sealed ({exc})"
        key, stand_in_headers, stand_in_value = stand_in(
            prev, partition, record.offset, record.key, headers_in, record.value, reason
        )
        headers, sealed = seal_headers(prev, partition, record.offset, key, stand_in_headers, stand_in_value)
        await producer.send(self.sealed, value=stand_in_value, key=key, headers=headers, partition=partition)
        STOOD_IN.inc()
        envelope = {k: (v or b"").decode(errors="replace") for k, v in stand_in_headers}
        log.error(
            "audit record sealed as a stand-in",
            partition=partition,
            offset=record.offset,
            message_id=envelope.get("ce_id"),
            tenant=envelope.get("ce_tenant"),
            correlation_id=envelope.get("ce_correlationid"),
            value_bytes=len(record.value or b""),
            reason=reason,
        )
        return sealed

    async def load_last_seals(self, partitions: list[int]) -> None:
        """The seal of the last committed record of each sealed partition ("" for an empty one)."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.common.kafka_bootstrap, isolation_level="read_committed", enable_auto_commit=False
        )
        await reader.start()
        try:
            tps = [TopicPartition(self.sealed, p) for p in partitions]
            reader.assign(tps)
            ends = await reader.end_offsets(tps)
            starts = await reader.beginning_offsets(tps)
            for tp in tps:
                self.last[tp.partition] = await _last_seal(reader, tp, starts[tp], ends[tp])
        finally:
            await reader.stop()


async def _last_seal(reader: AIOKafkaConsumer, tp: TopicPartition, start: int, end: int) -> str:
    step = 16
    while end > start:
        reader.seek(tp, max(start, end - step))
        found = ""
        while await reader.position(tp) < end:
            records = (await reader.getmany(tp, timeout_ms=500)).get(tp, [])
            if not records:
                break
            for record in records:
                if record.offset < end:
                    found = next(((v or b"").decode() for k, v in record.headers or () if k == HASH), found)
        if found or end - step <= start:
            return found
        step *= 4  # only transaction markers (or aborted records) in the tail: look further back
    return ""


class _Reload(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, sealer: AuditSealer) -> None:
        self.sealer = sealer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        for tp in revoked:
            self.sealer.last.pop(tp.partition, None)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self.sealer.load_last_seals([tp.partition for tp in assigned])
