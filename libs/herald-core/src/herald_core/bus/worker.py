"""Consume-transform-produce: a consumer group member that runs a handler per message and commits the
handlers' outputs, the dead letters and its input offsets in one Kafka transaction, batch by batch.

One rule for every message, whatever the handler (`failures.is_transient` decides):
- a record that cannot be read, or whose handler fails for a reason that will not change on retry, is
  dead-lettered with the reason and the worker moves on;
- a failure that can heal (a dependency down, a timeout) stops the batch, which is read again after a growing
  backoff; past `HERALD_RETRY_GIVE_UP_SECONDS` of that, the batch is handled once more with no retry left and
  each record that still fails is dead-lettered ("gave up: …"), loudly (log, metric, alert rule);
- progress is watched (`progress.Progress`): a worker whose committed offset does not move while it has lag
  reports not-ready with the partition and the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client import Counter

from herald_core.bus.dead_letters import send_dead_letter
from herald_core.bus.failures import Rejected, TransientError, is_transient, reason_of
from herald_core.bus.messages import BusNames, Encoded, Inbound, Outbound, Unreadable, read_record
from herald_core.bus.producer import send_encoded, transactional_producer
from herald_core.bus.progress import Progress
from herald_core.bus.tasks import cancel_and_wait
from herald_core.envelope import Envelope, trace_id
from herald_core.observability import (
    BATCH_SIZE,
    HANDLER_SECONDS,
    MESSAGES_CONSUMED,
    TRANSACTION_SECONDS,
    NotReady,
    get_logger,
)
from herald_core.settings import CommonSettings
from herald_core.topics import TopicSpec

log = get_logger("herald.bus")

FETCH_MAX_WAIT_MS = 50
RETRIES = Counter(
    "herald_consumer_retries_total", "Batches read again after a failure that can heal.", ["service", "consumer"]
)
GAVE_UP = Counter(
    "herald_consumer_gave_up_total",
    "Records dead-lettered because a failure that should heal did not within the retry bound.",
    ["service", "consumer"],
)

GAVE_UP_REASON = "gave up"
Handler = Callable[[Inbound], Awaitable[Sequence[Outbound]]]
#: a record to dead-letter: the record, the reason, its envelope when it could be read
DeadLetter = tuple[ConsumerRecord[bytes, bytes], str, Envelope | None]


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


def rewind(consumer: AIOKafkaConsumer, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]) -> None:
    """Read a batch again from its first records. Not `seek_to_committed()`: that leaves a partition without a
    committed offset (a new group, a first record at offset 0) where it is, past the records to read again."""
    for tp, records in batch.items():
        if records:
            consumer.seek(tp, records[0].offset)


async def note_fetch(
    progress: Progress,
    consumer: AIOKafkaConsumer,
    batch: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]],
) -> None:
    """Tell `progress` what a fetch brought, how far each partition's committed records reach, and which
    partitions it found nothing left in (called after every fetch, an empty one too)."""
    assigned = consumer.assignment()
    progress.keep_only({(tp.topic, tp.partition) for tp in assigned})
    for tp in assigned:
        records = batch.get(tp)
        end = partition_end(consumer, tp)
        if records:
            progress.fetched(tp.topic, tp.partition, records[0].offset, end)
        elif end is not None and progress.tracks(tp.topic, tp.partition):
            progress.caught_up(tp.topic, tp.partition, await consumer.position(tp), end)


def partition_end(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """How far a partition's readable records reach, as the last fetch said (no request): for a read_committed
    reader its last stable offset, else its high watermark; None before the first fetch."""
    for end in (consumer.last_stable_offset(tp), consumer.highwater(tp)):
        if end is not None and end >= 0:
            return int(end)
    return None


def note_commit(progress: Progress, batch: Mapping[TopicPartition, Sequence[ConsumerRecord[Any, Any]]]) -> None:
    for tp, records in batch.items():
        if records:
            progress.committed(tp.topic, tp.partition, records[-1].offset + 1)


@dataclass
class Backoff:
    """Delays between attempts that grow to `longest`, and when the bound on retrying has passed."""

    give_up_after: float
    first: float = 0.5
    longest: float = 30.0
    since: float | None = None
    attempts: int = 0

    def failed(self) -> float:
        """Record a failure; the delay before the next attempt."""
        if self.since is None:
            self.since = time.monotonic()
        self.attempts += 1
        return min(self.first * 2.0 ** (self.attempts - 1), self.longest)

    @property
    def exhausted(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= self.give_up_after

    def reset(self) -> None:
        self.since, self.attempts = None, 0


class ConsumerWorker:
    """Consume topics, run a handler per message, commit outputs and offsets in one transaction.

    `handlers` maps each subscribed topic to its handler (`{PROPOSED_ACTION: on_proposed_action}`).
    A handler returns the messages to publish; raising `Rejected`, failing validation or failing in any way
    that retrying cannot mend sends the input to the dead-letter topic; raising `TransientError` (or a failure
    that can heal) stops the batch, which is read again after a backoff, up to the retry bound.
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
        self.progress = Progress(service, name, common.wedge_seconds)
        self.backoff = Backoff(common.retry_give_up_seconds)
        self._task: asyncio.Task[None] | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run_forever(), name=f"{self.service}-{self.name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self._close()

    async def ready(self) -> bool | NotReady:
        if not self.assigned:
            return False
        wedged = self.progress.wedged()
        return NotReady(wedged) if wedged else True

    async def _open(self) -> tuple[AIOKafkaConsumer, AIOKafkaProducer]:
        producer = transactional_producer(
            self.common, f"{self.common.topic_prefix}herald-{self.service}-{self.name}-{self.common.instance_id}"
        )
        consumer = group_consumer(self.common, self.group_id, *self.by_topic_name, max_records=self.max_batch)
        # kept before they start, so a stop that cancels the start still closes both
        self._consumer, self._producer = consumer, producer
        await producer.start()
        await consumer.start()
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
                # Kafka itself (the transaction, the group): nothing a record did, so nothing to dead-letter
                self.progress.failed(f"Kafka: {reason_of(exc)}")
                log.error("consumer loop failed; reconnecting", worker=self.name, error=repr(exc), backoff=backoff)
                await self._close()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def _loop(self, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer) -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=self.max_batch)
            self.assigned = bool(consumer.assignment())
            await note_fetch(self.progress, consumer, batch)
            if not batch:
                continue
            records = [r for part in batch.values() for r in part]
            BATCH_SIZE.labels(self.service).observe(len(records))
            give_up = self.backoff.exhausted
            try:
                outputs, dead = await self._handle_batch(records, give_up=give_up)
            except TransientError as exc:
                delay = self.backoff.failed()
                RETRIES.labels(self.service, self.name).inc()
                self.progress.failed(str(exc))
                log.warning("failure that can heal; the batch will be read again", error=str(exc)[:500], delay=delay)
                rewind(consumer, batch)
                await asyncio.sleep(delay)
                continue
            if given_up := sum(1 for _, reason, _ in dead if reason.startswith(GAVE_UP_REASON)):
                GAVE_UP.labels(self.service, self.name).inc(given_up)
            self.backoff.reset()
            started = time.perf_counter()
            try:
                async with producer.transaction():
                    for record in outputs:
                        await send_encoded(producer, self.names, record, self.service)
                    for record, reason, envelope in dead:
                        await send_dead_letter(producer, self.names, self.service, record, reason, envelope)
                    offsets = {tp: msgs[-1].offset + 1 for tp, msgs in batch.items()}
                    await producer.send_offsets_to_transaction(offsets, self.group_id)
            except Exception:
                # the batch's side effects were idempotent; read it again
                rewind(consumer, batch)
                raise
            TRANSACTION_SECONDS.labels(self.service).observe(time.perf_counter() - started)
            note_commit(self.progress, batch)
            self.processed += len(records)

    async def _handle_batch(
        self, records: list[ConsumerRecord[bytes, bytes]], *, give_up: bool = False
    ) -> tuple[list[Encoded], list[DeadLetter]]:
        """Handle a batch: one key's messages in order, different keys concurrently (up to `concurrency`)."""
        if self.before_batch is not None:
            try:
                await self.before_batch()
            except Exception as exc:
                # a precondition of every message (the consent feed caught up), not any one record's fault:
                # retried without bound, and the wedge check says so if it lasts
                raise TransientError(f"before_batch: {exc!r}") from exc
        results: list[tuple[list[Encoded], tuple[str, Envelope | None] | None]] = [([], None)] * len(records)
        by_key: dict[object, list[int]] = {}
        for index, record in enumerate(records):
            group = (record.topic, record.key) if record.key is not None else ("no-key", index)
            by_key.setdefault(group, []).append(index)
        groups = list(by_key.values())

        async def handle(index: int) -> None:
            results[index] = await self._handle_one(records[index], give_up=give_up)

        if self.concurrency <= 1 or len(groups) == 1:
            for indexes in groups:
                for index in indexes:
                    await handle(index)
        else:
            pending = iter(groups)

            async def lane() -> None:
                for indexes in pending:  # lanes share one iterator: each group is taken once
                    for index in indexes:
                        await handle(index)

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
        self, record: ConsumerRecord[bytes, bytes], *, give_up: bool = False
    ) -> tuple[list[Encoded], tuple[str, Envelope | None] | None]:
        """The message's outputs (encoded), or the reason (and envelope) to dead-letter it."""
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
            return [Encoded.of(out) for out in await self._call(spec, inbound)], None
        except Rejected as exc:
            return [], (f"rejected: {exc}", inbound.envelope)
        except Exception as exc:
            if is_transient(exc):
                if not give_up:
                    raise exc if isinstance(exc, TransientError) else TransientError(reason_of(exc)) from exc
                log.error(
                    "a failure that should heal did not; dead-lettering",
                    topic=spec.name,
                    offset=record.offset,
                    error=reason_of(exc),
                    retried_for=self.common.retry_give_up_seconds,
                )
                retried = f"retried {self.backoff.attempts} times over {self.common.retry_give_up_seconds:.0f}s"
                return [], (f"{GAVE_UP_REASON}: {retried}: {reason_of(exc)}", inbound.envelope)
            log.exception("handler failed; dead-lettering", topic=spec.name, offset=record.offset)
            return [], (f"handler error: {reason_of(exc)}", inbound.envelope)
        finally:
            HANDLER_SECONDS.labels(self.service, spec.name).observe(time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("action_id")

    async def _call(self, spec: TopicSpec, inbound: Inbound) -> Sequence[Outbound]:
        """The handler's outputs; a failure of unknown kind is tried `handler_attempts` times in place."""
        last: Exception | None = None
        for attempt in range(self.handler_attempts):
            try:
                return await self.handlers[spec](inbound)
            except Exception as exc:
                if isinstance(exc, Rejected) or is_transient(exc) or _certainly_final(exc):
                    raise
                last = exc
                await asyncio.sleep(0.05 * (2**attempt))
        assert last is not None
        raise last


def _certainly_final(exc: Exception) -> bool:
    """Failures that the same input always repeats: trying again in place is pointless."""
    return isinstance(exc, ValueError | TypeError | KeyError | AttributeError | LookupError)
