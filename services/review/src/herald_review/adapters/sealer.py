"""Sealing the audit: `herald.audit.v1` → `herald.audit-sealed.v1`, a hash chain per partition, and
the audit index in Postgres (`adapters.audit_index`) from the same reading.

One consumer group; each partition is sealed by one replica at a time. A batch's sealed copies and
the consumer offsets commit in one Kafka transaction, so a record is sealed exactly once, in its
original order. The chain's last seal per partition is read back from the sealed topic whenever a
partition is assigned, so a restart or a rebalance continues the chain where it stopped.
(`herald_core.audit` has the seal and the verification.)
"""

from __future__ import annotations

import asyncio
import contextlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from prometheus_client import Counter

from herald_core.audit import HASH, seal_headers
from herald_core.bus import BusNames, cancel_and_wait, group_consumer, rewind, transactional_producer
from herald_core.observability import get_logger
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, AUDIT_SEALED
from herald_review.adapters.audit_index import AuditIndex

SEALED = Counter("herald_review_audit_sealed_total", "Audit records sealed into the hash chain.")
log = get_logger("herald.review.sealer")


class AuditSealer:
    def __init__(self, common: CommonSettings, index: AuditIndex) -> None:
        self.common = common
        self.index = index
        names = BusNames(common.topic_prefix)
        self.source, self.sealed = names(AUDIT), names(AUDIT_SEALED)
        self.group_id = f"{common.topic_prefix}herald-review-sealer"
        self.last: dict[int, str] = {}  # partition → seal of the last sealed record
        self._task: asyncio.Task[None] | None = None
        self.assigned = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name="review-audit-sealer")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def ready(self) -> bool:
        return self.assigned

    async def _run_forever(self) -> None:
        backoff = 0.5
        while True:
            producer = transactional_producer(
                self.common, f"{self.common.topic_prefix}herald-review-sealer-{self.common.instance_id}"
            )
            consumer = group_consumer(self.common, self.group_id)
            try:
                await producer.start()
                await consumer.start()
                consumer.subscribe([self.source], listener=_Reload(self))
                backoff = 0.5
                await self._loop(consumer, producer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("audit sealer failed; reconnecting", error=repr(exc), backoff=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                self.assigned = False
                for client in (consumer, producer):
                    with contextlib.suppress(Exception):
                        await client.stop()

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            self.assigned = bool(consumer.assignment())
            if not batch:
                continue
            # the index first: rows are keyed by the record's place, so a batch read again writes nothing new
            await self.index.add([r for records in batch.values() for r in records])
            chain = dict(self.last)
            try:
                async with producer.transaction():
                    for tp, records in batch.items():
                        for r in records:
                            headers, chain[tp.partition] = seal_headers(
                                chain.get(tp.partition, ""), tp.partition, r.offset, r.key, r.headers or (), r.value
                            )
                            await producer.send(
                                self.sealed, value=r.value, key=r.key, headers=headers, partition=tp.partition
                            )
                    offsets = {tp: records[-1].offset + 1 for tp, records in batch.items()}
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
            except Exception:
                rewind(consumer, batch)  # the chain stays at its last committed seal
                raise
            self.last = chain
            SEALED.inc(sum(len(records) for records in batch.values()))

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
                    found = next((v.decode() for k, v in record.headers or () if k == HASH), found)
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
