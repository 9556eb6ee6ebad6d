"""Publishing: every message with its audit copy in one Kafka transaction.

`TransactionalProducer` serves the HTTP edges: concurrent callers' messages are grouped into one transaction
per flush (a hot edge pays one commit per batch, not per request). Each caller's messages are encoded in the
caller's own task first, so a message Kafka cannot carry fails its own request and never the others in the
transaction it would have shared.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from herald_core.bus.messages import MAX_REQUEST_BYTES, BusNames, Encoded, Outbound, audit_headers
from herald_core.bus.tasks import cancel_and_wait
from herald_core.contracts import Contract
from herald_core.envelope import Envelope
from herald_core.observability import MESSAGES_PUBLISHED, TRANSACTION_SECONDS, get_logger
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, TopicSpec

log = get_logger("herald.bus")

TRANSACTION_TIMEOUT_MS = 15_000


def transactional_producer(common: CommonSettings, transactional_id: str) -> AIOKafkaProducer:
    """The producer every Herald transaction uses (edge publishers and consume-transform-produce workers)."""
    return AIOKafkaProducer(
        bootstrap_servers=common.kafka_bootstrap,
        transactional_id=transactional_id,
        transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
        linger_ms=2,
        max_batch_size=256 * 1024,
        max_request_size=MAX_REQUEST_BYTES,
    )


async def send_encoded(producer: AIOKafkaProducer, names: BusNames, record: Encoded, service: str) -> None:
    """Send a record (and, for a pipeline message, its audit copy) inside the caller's open transaction."""
    topic_name = names(record.topic)
    await producer.send(topic_name, value=record.value, key=record.key, headers=record.headers)
    if record.audited:
        headers = audit_headers(record.headers, topic_name)
        await producer.send(names(AUDIT), value=record.value, key=record.key, headers=headers)
    if record.type is not None and record.topic is not AUDIT:
        MESSAGES_PUBLISHED.labels(service, record.topic.name, record.type).inc()


async def send_with_audit(producer: AIOKafkaProducer, names: BusNames, out: Outbound, service: str) -> None:
    """Send a message and its audit copy inside the caller's open transaction."""
    await send_encoded(producer, names, Encoded.of(out), service)


class TransactionalProducer:
    """One transactional producer; `publish` writes messages and their audit copies atomically."""

    def __init__(self, common: CommonSettings, service: str, name: str = "edge") -> None:
        self.names = BusNames(common.topic_prefix)
        self.service = service
        self.common = common
        self.transactional_id = f"{common.topic_prefix}herald-{service}-{name}-{common.instance_id}"
        self._producer = self._new_producer()
        self._queue: asyncio.Queue[tuple[list[Encoded], asyncio.Future[None]]] = asyncio.Queue()
        self._flusher: asyncio.Task[None] | None = None
        self.started = False

    def _new_producer(self) -> AIOKafkaProducer:
        return transactional_producer(self.common, self.transactional_id)

    async def start(self) -> None:
        await self._producer.start()
        self._flusher = asyncio.create_task(self._flush_forever(), name=f"{self.service}-publisher")
        self.started = True

    async def _renew(self) -> None:
        """After a failed transaction (fenced, broker gone) the producer may be unusable: start a new one.

        Until it is up, `started` is False, so readiness reports the edge as not ready.
        """
        self.started = False
        with contextlib.suppress(Exception):
            await self._producer.stop()
        backoff = 0.2
        while True:
            self._producer = self._new_producer()
            try:
                await self._producer.start()
                self.started = True
                return
            except Exception as exc:
                log.error("could not restart the transactional producer", error=repr(exc), backoff=backoff)
                with contextlib.suppress(Exception):
                    await self._producer.stop()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def stop(self) -> None:
        self.started = False
        await cancel_and_wait(self._flusher)
        await self._producer.stop()

    async def publish(
        self,
        messages: Sequence[Outbound],
        audit_only: Sequence[tuple[bytes | None, Envelope, Contract]] = (),
        tombstones: Sequence[tuple[TopicSpec, bytes]] = (),
    ) -> None:
        """Publish `messages` (each with its audit copy), `audit_only` records and `tombstones` (a key with no
        value: compaction then removes the key's earlier records), all or nothing.

        Raises `UnpublishableError` (nothing sent) for a message Kafka cannot carry, before it is queued."""
        if self._flusher is None or self._flusher.done():
            raise RuntimeError(f"{self.service} publisher is not running")
        records = [Encoded.of(out) for out in messages]
        records += [Encoded.audit_record(key, env, body) for key, env, body in audit_only]
        records += [Encoded.tombstone(spec, key) for spec, key in tombstones]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((records, done))
        await done

    async def _flush_forever(self) -> None:
        while True:
            first = await self._queue.get()
            pending = [first]
            while not self._queue.empty() and len(pending) < 500:
                pending.append(self._queue.get_nowait())
            started = time.perf_counter()
            try:
                async with self._producer.transaction():
                    for records, _ in pending:
                        for record in records:
                            await send_encoded(self._producer, self.names, record, self.service)
            except Exception as exc:
                # the records were checked before they were queued: what fails here is Kafka, for all of them
                for _, done in pending:
                    if not done.done():
                        done.set_exception(exc)
                log.error("transaction failed; restarting the producer", error=repr(exc))
                await self._renew()
                continue
            TRANSACTION_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            for _, done in pending:
                if not done.done():
                    done.set_result(None)
