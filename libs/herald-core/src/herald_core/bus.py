"""Kafka wiring shared by every service.

Three promises live here, so no service has to keep them by hand:
- **audit, atomically**: every message published on a topic is written together with its copy on
  `herald.audit.v1` in one Kafka transaction, so there is never one without the other;
- **consume-transform-produce, exactly once on Kafka's side**: a consumer's outputs commit in the
  same transaction as its input offsets, batch by batch; every consumer reads `read_committed`;
- **nothing lost**: a message that cannot be read or handled goes to the consumer's dead-letter
  topic with the reason and its origin in headers (and a `DeadLettered` record on the audit), and
  the consumer moves on.

Side effects outside Kafka (Postgres, SMTP) are the handlers' business and must be idempotent:
a batch whose transaction fails is read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from pydantic import ValidationError

from herald_core.contracts import MESSAGE_TYPES, Contract, DeadLettered
from herald_core.envelope import Envelope, EnvelopeError, trace_id
from herald_core.observability import (
    BATCH_SIZE,
    DEAD_LETTERS,
    HANDLER_SECONDS,
    MESSAGES_CONSUMED,
    MESSAGES_PUBLISHED,
    TRANSACTION_SECONDS,
)
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, TopicSpec, all_topics, dead_letter_topic

log = structlog.get_logger("herald.bus")

TRANSACTION_TIMEOUT_MS = 15_000
# the largest record a producer sends: a knowledge document (and its audit copy, or its dead letter)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
FETCH_MAX_WAIT_MS = 50
C = TypeVar("C", bound=Contract)


@dataclass(frozen=True)
class Outbound:
    """A message to publish: topic, key, envelope and typed body."""

    topic: TopicSpec
    key: bytes
    envelope: Envelope
    body: Contract

    def __post_init__(self) -> None:
        if self.envelope.type != self.body.TYPE:
            raise ValueError(f"envelope type {self.envelope.type} does not match body {self.body.TYPE}")

    def to_stored(self) -> dict[str, str]:
        """A JSON-able form, so a handler can keep its outputs and emit exactly them again on redelivery."""
        return {
            "topic": self.topic.name,
            "key": self.key.decode(),
            "envelope": self.envelope.model_dump_json(),
            "body": self.body.model_dump_json(),
        }

    @classmethod
    def from_stored(cls, stored: dict[str, str]) -> Outbound:
        topic = next(spec for spec in all_topics() if spec.name == stored["topic"])
        envelope = Envelope.model_validate_json(stored["envelope"])
        body = MESSAGE_TYPES[envelope.type].model_validate_json(stored["body"])
        return cls(topic, stored["key"].encode(), envelope, body)


@dataclass(frozen=True)
class Inbound:
    """A message read from Kafka, its envelope and body already validated."""

    topic: TopicSpec
    partition: int
    offset: int
    key: bytes | None
    envelope: Envelope
    body: Contract
    headers: tuple[tuple[str, bytes], ...] = field(repr=False)

    def body_as(self, model: type[C]) -> C:
        if not isinstance(self.body, model):
            raise Rejected(f"expected {model.TYPE}, got {self.envelope.type}")
        return self.body


class Rejected(Exception):
    """Raised by a handler for a message it will never accept: dead-lettered with this reason."""


class BusNames:
    """Full topic names under the configured prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, spec: TopicSpec) -> str:
        return spec.full_name(self.prefix)


def decode(record: ConsumerRecord[bytes, bytes], spec: TopicSpec) -> Inbound:
    """Read a record into an `Inbound`; raises `EnvelopeError` or `ValidationError` with the reason."""
    headers = tuple(record.headers or ())
    envelope = Envelope.from_headers(headers)
    if spec.message_types and envelope.type not in spec.message_types:
        raise EnvelopeError(f"type {envelope.type!r} is not carried on {spec.name}")
    model = MESSAGE_TYPES.get(envelope.type)
    if model is None:
        raise EnvelopeError(f"unknown message type {envelope.type!r}")
    if record.value is None:
        raise EnvelopeError("empty body")
    body = model.model_validate_json(record.value)
    return Inbound(spec, record.partition, record.offset, record.key, envelope, body, headers)


@dataclass(frozen=True)
class Unreadable:
    """Why a record cannot be read, and its envelope when that much could be read."""

    reason: str
    envelope: Envelope | None


def read_record(record: ConsumerRecord[bytes, bytes], spec: TopicSpec) -> Inbound | Unreadable:
    """`decode`, with a failure turned into the dead-letter reason instead of an exception."""
    try:
        return decode(record, spec)
    except (EnvelopeError, ValidationError, ValueError) as exc:
        return Unreadable(_reason(exc), _envelope_or_none(record))


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


def group_consumer(common: CommonSettings, group_id: str, *topics: str, max_records: int = 500) -> AIOKafkaConsumer:
    """The consumer of a consume-transform-produce loop (not started): a group member reading committed
    records only, its offsets committed with the outputs in one transaction."""
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=common.kafka_bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_poll_records=max_records,
        # a read_committed fetch is not woken by a transaction's commit marker: without a short wait
        # every hop would add up to the default 500 ms
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )


async def tail_reader(common: CommonSettings, spec: TopicSpec, *, from_beginning: bool = False) -> AIOKafkaConsumer:
    """A started read_committed reader of every partition of `spec`, positioned at its current end
    (or at its beginning, to read a compacted topic's whole state first).

    For following what happens from now on (answers to a request just sent, changes to react to),
    without a consumer group.
    """
    topic = BusNames(common.topic_prefix)(spec)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=common.kafka_bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
    )
    await consumer.start()
    partitions = [TopicPartition(topic, p) for p in range(spec.partitions)]
    consumer.assign(partitions)
    # explicit offsets, not seek_to_end: that resolves lazily, and what comes right after must not be missed
    offsets = await (consumer.beginning_offsets if from_beginning else consumer.end_offsets)(partitions)
    for tp, offset in offsets.items():
        consumer.seek(tp, offset)
    return consumer


async def read_to_end(consumer: AIOKafkaConsumer) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """The records from the reader's positions up to the end its partitions have now (a compacted
    topic's whole state, read from its beginning), then stop."""
    ends = await consumer.end_offsets(list(consumer.assignment()))

    async def behind() -> bool:
        for tp, end in ends.items():
            if await consumer.position(tp) < end:
                return True
        return False

    while await behind():
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for record in records:
                yield record


class TopicFollower:
    """Reads a topic (a compacted one: a table of state) from its beginning to its end at start, then follows it;
    `apply` sees every record in order. For state every replica must hold whole: policies, kill switches."""

    def __init__(
        self, common: CommonSettings, spec: TopicSpec, apply: Callable[[ConsumerRecord[bytes, bytes]], None], name: str
    ) -> None:
        self.common = common
        self.spec = spec
        self.apply = apply
        self.name = name
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.started = False

    async def start(self) -> None:
        self._consumer = await tail_reader(self.common, self.spec, from_beginning=True)
        async for record in read_to_end(self._consumer):
            self._apply(record)
        self._task = asyncio.create_task(self._follow(self._consumer), name=self.name)
        self.started = True

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        async for record in consumer:
            self._apply(record)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            self.apply(record)
        except Exception:  # one bad record never stops the follower
            log.exception("record could not be applied", follower=self.name, offset=record.offset)

    async def ready(self) -> bool:
        return self.started

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer:
            await self._consumer.stop()


async def cancel_and_wait(task: asyncio.Task[None] | None) -> None:
    """Stop a background task and wait until it has stopped."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _audit_headers(headers: Sequence[tuple[str, bytes]], topic_name: str) -> list[tuple[str, bytes]]:
    return [*headers, ("herald_topic", topic_name.encode())]


class TransactionalProducer:
    """One transactional producer; `publish` writes messages and their audit copies atomically.

    Several callers may publish concurrently (HTTP handlers): their messages are grouped into one
    transaction per flush, so a hot edge pays for one commit per batch, not per request.
    """

    def __init__(self, common: CommonSettings, service: str, name: str = "edge") -> None:
        self.names = BusNames(common.topic_prefix)
        self.service = service
        self.common = common
        self.transactional_id = f"{common.topic_prefix}herald-{service}-{name}-{common.instance_id}"
        self._producer = self._new_producer()
        self._queue: asyncio.Queue[
            tuple[
                list[Outbound],
                list[tuple[TopicSpec, bytes | None, bytes | None, list[tuple[str, bytes]]]],
                asyncio.Future[None],
            ]
        ] = asyncio.Queue()
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
        value: compaction then removes the key's earlier records), all or nothing."""
        if self._flusher is None or self._flusher.done():
            raise RuntimeError(f"{self.service} publisher is not running")
        raw: list[tuple[TopicSpec, bytes | None, bytes | None, list[tuple[str, bytes]]]] = [
            (AUDIT, key, body.model_dump_json().encode(), env.to_headers()) for key, env, body in audit_only
        ]
        raw += [(spec, key, None, []) for spec, key in tombstones]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((list(messages), raw, done))
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
                    for messages, raw, _ in pending:
                        for out in messages:
                            await send_with_audit(self._producer, self.names, out, self.service)
                        for spec, key, value, headers in raw:
                            await self._producer.send(self.names(spec), value=value, key=key, headers=headers)
            except Exception as exc:
                for _, _, done in pending:
                    if not done.done():
                        done.set_exception(exc)
                log.error("publish transaction failed; renewing the producer", error=repr(exc))
                await self._renew()
                continue
            TRANSACTION_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            for _, _, done in pending:
                if not done.done():
                    done.set_result(None)


async def send_with_audit(producer: AIOKafkaProducer, names: BusNames, out: Outbound, service: str) -> None:
    """Send a message and its audit copy inside the caller's open transaction."""
    topic_name = names(out.topic)
    value = out.body.model_dump_json().encode()
    headers = out.envelope.to_headers()
    await producer.send(topic_name, value=value, key=out.key, headers=headers)
    await producer.send(names(AUDIT), value=value, key=out.key, headers=_audit_headers(headers, topic_name))
    MESSAGES_PUBLISHED.labels(service, out.topic.name, out.envelope.type).inc()


Handler = Callable[[Inbound], Awaitable[Sequence[Outbound]]]


class TransientError(Exception):
    """A handler failure worth retrying (a dependency is down); the batch is read again later."""


def rewind(consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]) -> None:
    """Read a batch again from its first records. Not `seek_to_committed()`: that leaves a partition without a
    committed offset (a new group, a first record at offset 0) where it is, past the records to read again."""
    for tp, records in batch.items():
        if records:
            consumer.seek(tp, records[0].offset)


class ConsumerWorker:
    """Consume topics, run a handler per message, commit outputs and offsets in one transaction.

    `handlers` maps each subscribed topic to its handler (`{PROPOSED_ACTION: on_proposed_action}`).
    A handler returns the messages to publish; raising `Rejected` (or failing validation) sends
    the input to the dead-letter topic; raising `TransientError` (or a connection error) stops the
    batch, which is read again after a back-off.
    """

    def __init__(
        self,
        common: CommonSettings,
        service: str,
        name: str,
        handlers: dict[TopicSpec, Handler],
        *,
        max_batch: int = 500,
        handler_attempts: int = 3,
        before_batch: Callable[[], Awaitable[None]] | None = None,
        concurrency: int = 1,
    ) -> None:
        self.common = common
        self.service = service
        self.name = name
        self.names = BusNames(common.topic_prefix)
        self.handlers = handlers
        self.by_topic_name = {self.names(spec): spec for spec in handlers}
        self.max_batch = max_batch
        self.handler_attempts = handler_attempts
        # e.g. "the consent feed has caught up": runs once per batch, before any handler
        self.before_batch = before_batch
        self.concurrency = concurrency
        self.group_id = f"{common.topic_prefix}herald-{service}-{name}"
        self.assigned = False
        self.processed = 0
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name=f"{self.service}-{self.name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._close()

    async def ready(self) -> bool:
        return self.assigned

    async def _open(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        producer = transactional_producer(
            self.common, f"{self.common.topic_prefix}herald-{self.service}-{self.name}-{self.common.instance_id}"
        )
        consumer = group_consumer(self.common, self.group_id, *self.by_topic_name, max_records=self.max_batch)
        await producer.start()
        await consumer.start()
        self._consumer, self._producer = consumer, producer
        return consumer, producer

    async def _close(self) -> None:
        self.assigned = False
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._consumer = self._producer = None

    async def _run_forever(self) -> None:
        backoff = 0.5
        while True:
            try:
                consumer, producer = await self._open()
                backoff = 0.5
                await self._loop(consumer, producer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error("consumer loop failed; reconnecting", worker=self.name, error=repr(exc), backoff=backoff)
                await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            self.assigned = bool(consumer.assignment())
            if not batch:
                continue
            records = [r for part in batch.values() for r in part]
            BATCH_SIZE.labels(self.service).observe(len(records))
            try:
                outputs, dead = await self._handle_batch(records)
            except TransientError as exc:
                log.warning("transient failure; batch will be read again", error=str(exc))
                rewind(consumer, batch)
                await asyncio.sleep(1.0)
                continue
            started = time.perf_counter()
            try:
                async with producer.transaction():
                    for out in outputs:
                        await send_with_audit(producer, self.names, out, self.service)
                    for record, reason, envelope in dead:
                        await send_dead_letter(producer, self.names, self.service, record, reason, envelope)
                    offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
            except Exception:
                # the batch's side effects were idempotent; read it again
                rewind(consumer, batch)
                raise
            TRANSACTION_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            self.processed += len(records)

    async def _handle_batch(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[Outbound], list[tuple[ConsumerRecord[bytes, bytes], str, Envelope | None]]]:
        """Handle a batch: one key's messages in order, different keys concurrently (up to `concurrency`)."""
        if self.before_batch is not None:
            try:
                await self.before_batch()
            except Exception as exc:
                raise TransientError(f"before_batch: {exc!r}") from exc
        results: list[tuple[list[Outbound], tuple[str, Envelope | None] | None]] = [([], None)] * len(records)
        by_key: dict[object, list[int]] = {}
        for index, record in enumerate(records):
            group = (record.topic, record.key) if record.key is not None else ("no-key", index)
            by_key.setdefault(group, []).append(index)
        groups = list(by_key.values())
        if self.concurrency <= 1 or len(groups) == 1:
            for indexes in groups:
                for index in indexes:
                    results[index] = await self._handle_one(records[index])
        else:
            pending = iter(groups)

            async def lane() -> None:
                for indexes in pending:  # lanes share one iterator: each group is taken once
                    for index in indexes:
                        results[index] = await self._handle_one(records[index])

            # let every lane finish (a cancelled handler could leave a side effect half done), then fail
            lanes = min(self.concurrency, len(groups))
            finished = await asyncio.gather(*(lane() for _ in range(lanes)), return_exceptions=True)
            for outcome in finished:
                if isinstance(outcome, BaseException):
                    raise outcome
        outputs = [out for outs, _ in results for out in outs]
        dead = [(records[i], failure[0], failure[1]) for i, (_, failure) in enumerate(results) if failure]
        return outputs, dead

    async def _handle_one(
        self, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[list[Outbound], tuple[str, Envelope | None] | None]:
        """The message's outputs, or the reason (and envelope) to dead-letter it."""
        spec = self.by_topic_name[record.topic]
        structlog.contextvars.unbind_contextvars("tenant", "correlation_id", "message_id", "trace_id", "action_id")
        inbound = read_record(record, spec)
        if isinstance(inbound, Unreadable):
            return [], (inbound.reason, inbound.envelope)
        MESSAGES_CONSUMED.labels(self.service, spec.name, inbound.envelope.type).inc()
        # each key group runs in its own task, so these bindings stay with this message's lines
        structlog.contextvars.bind_contextvars(
            tenant=inbound.envelope.tenant,
            correlation_id=inbound.envelope.correlation_id,
            message_id=inbound.envelope.id,
            trace_id=trace_id(inbound.envelope.traceparent),
        )
        started = time.perf_counter()
        try:
            return list(await self._call(spec, inbound)), None
        except Rejected as exc:
            return [], (f"rejected: {exc}", inbound.envelope)
        except TransientError:
            raise
        except Exception as exc:
            if _is_connection_error(exc):
                raise TransientError(repr(exc)) from exc
            log.exception("handler failed; dead-lettering", topic=spec.name, offset=record.offset)
            return [], (f"handler error: {exc!r}"[:1000], inbound.envelope)
        finally:
            HANDLER_SECONDS.labels(self.service, spec.name).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("action_id")

    async def _call(self, spec: TopicSpec, inbound: Inbound) -> Sequence[Outbound]:
        last: Exception | None = None
        for attempt in range(self.handler_attempts):
            try:
                return await self.handlers[spec](inbound)
            except (Rejected, TransientError):
                raise
            except Exception as exc:
                if _is_connection_error(exc):
                    raise
                last = exc
                await asyncio.sleep(0.05 * (2**attempt))
        assert last is not None
        raise last


async def send_dead_letter(
    producer: AIOKafkaProducer,
    names: BusNames,
    service: str,
    record: ConsumerRecord[bytes, bytes],
    reason: str,
    envelope: Envelope | None,
) -> None:
    """Send `record` to the service's dead-letter topic (reason and origin in headers), with an audit record."""
    DEAD_LETTERS.labels(service, reason.split(":")[0]).inc()
    log.warning("dead-lettered", topic=record.topic, partition=record.partition, offset=record.offset, reason=reason)
    dlq = names(dead_letter_topic(service))
    headers = [
        *(record.headers or ()),
        ("herald_dlq_reason", reason.encode()),
        ("herald_dlq_consumer", service.encode()),
        ("herald_dlq_topic", record.topic.encode()),
        ("herald_dlq_partition", str(record.partition).encode()),
        ("herald_dlq_offset", str(record.offset).encode()),
    ]
    await producer.send(dlq, value=record.value, key=record.key, headers=headers)
    body = DeadLettered(
        consumer=service,
        original_topic=record.topic,
        original_partition=record.partition,
        original_offset=record.offset,
        reason=reason,
    )
    if envelope is not None:
        audit_env = envelope.caused(source=f"herald/{service}", type=DeadLettered.TYPE)
    else:
        audit_env = Envelope.new_chain(
            source=f"herald/{service}",
            type=DeadLettered.TYPE,
            tenant="unknown",
            correlation_id=f"dlq:{record.topic}:{record.partition}:{record.offset}",
        )
    audit_headers = _audit_headers(audit_env.to_headers(), dlq)
    await producer.send(names(AUDIT), value=body.model_dump_json().encode(), key=record.key, headers=audit_headers)


def _envelope_or_none(record: ConsumerRecord[bytes, bytes]) -> Envelope | None:
    try:
        return Envelope.from_headers(record.headers)
    except Exception:
        return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return f"invalid body: {errors}"[:1000]
    if isinstance(exc, EnvelopeError):
        return f"invalid envelope: {exc}"[:1000]
    return f"invalid: {exc}"[:1000]


def _is_connection_error(exc: BaseException) -> bool:
    return isinstance(
        exc,
        (
            OSError,
            ConnectionError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.TooManyConnectionsError,
        ),
    )


async def ensure_topics(common: CommonSettings, specs: Sequence[TopicSpec] | None = None) -> list[str]:
    """Create the topic table's topics under the configured prefix; return those created."""
    names = BusNames(common.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=common.kafka_bootstrap)
    await admin.start()
    created: list[str] = []
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(names(spec), spec.partitions, 1, topic_configs=spec.config())
            for spec in (specs or all_topics())
            if names(spec) not in existing
        ]
        if wanted:
            try:
                await admin.create_topics(wanted)
            except TopicAlreadyExistsError:
                pass
            created = [t.name for t in wanted]
            await _wait_for_leaders(admin, created)
    finally:
        await admin.close()
    return created


async def _wait_for_leaders(admin: AIOKafkaAdminClient, topics: list[str], timeout: float = 30.0) -> None:
    """New partitions answer NOT_ENOUGH_REPLICAS until their leader and ISR settle; wait for that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        described = await admin.describe_topics(topics)
        if all(
            d.get("error_code", 0) == 0
            and d.get("partitions")
            and all(p.get("leader", -1) >= 0 and p.get("isr") for p in d["partitions"])
            for d in described
        ):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topics without a leader after {timeout}s: {topics}")
