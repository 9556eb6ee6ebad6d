"""Readers outside a consumer group: following what happens from now on, or a compacted topic's whole state.

`TopicFollower` keeps state every replica must hold whole (policies, kill switches, budgets) or reacts to
changes (cache invalidation). It obeys the rule every consumer does: a record it cannot read or apply is
dead-lettered with the reason (and audited) and the follower moves on. Records met while it catches up at
start are only counted and logged, not dead-lettered again: they were when they first arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import Counter

from herald_core.bus.dead_letters import DeadLetterer
from herald_core.bus.failures import Rejected, reason_of
from herald_core.bus.messages import BusNames, envelope_or_none
from herald_core.bus.tasks import cancel_and_wait
from herald_core.bus.worker import FETCH_MAX_WAIT_MS
from herald_core.observability import get_logger
from herald_core.settings import CommonSettings
from herald_core.topics import TopicSpec

log = get_logger("herald.bus")
SKIPPED = Counter(
    "herald_follower_skipped_total",
    "Records a follower could not apply (dead-lettered when they arrived live), by follower and phase.",
    ["follower", "phase"],
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


#: what a follower does with a record; raises for one it cannot apply (`Rejected(reason)`: the dead letter's reason)
Apply = Callable[[ConsumerRecord[bytes, bytes]], None]


class TopicFollower:
    """Reads a topic (a compacted one: a table of state) from its beginning to its end at start, then follows
    it; `apply` sees every record in order. With `from_beginning=False` it follows from the end (changes to
    react to). `service` names the dead-letter topic a record that cannot be applied goes to."""

    def __init__(
        self,
        common: CommonSettings,
        spec: TopicSpec,
        apply: Apply,
        name: str,
        *,
        service: str | None = None,
        from_beginning: bool = True,
    ) -> None:
        self.common = common
        self.spec = spec
        self.apply = apply
        self.name = name
        self.from_beginning = from_beginning
        self.dead_letters = DeadLetterer(common, service or name.split("-", 1)[0])
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self.started = False

    async def start(self) -> None:
        await self.dead_letters.start()
        self._consumer = await tail_reader(self.common, self.spec, from_beginning=self.from_beginning)
        if self.from_beginning:
            async for record in read_to_end(self._consumer):
                self._try_apply(record, live=False)
        self._task = asyncio.create_task(self._follow(self._consumer), name=self.name)
        self.started = True

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        async for record in consumer:
            problem = self._try_apply(record, live=True)
            if problem is not None:
                # before the next record is applied: a dead letter is flushed as it is made
                await self._dead_letter(record, problem)

    def _try_apply(self, record: ConsumerRecord[bytes, bytes], *, live: bool) -> str | None:
        """Apply one record; the reason it could not be, else None. One bad record never stops the follower."""
        try:
            self.apply(record)
        except Exception as exc:
            reason = str(exc)[:1000] if isinstance(exc, Rejected) else f"not applied: {reason_of(exc)}"
            SKIPPED.labels(self.name, "live" if live else "catching_up").inc()
            log.warning("record could not be applied", follower=self.name, offset=record.offset, reason=reason)
            return reason
        return None

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        delay = 0.5
        while True:  # Kafka itself must take it: the follower waits for Kafka, as it would to read on
            try:
                await self.dead_letters.send(record, reason, envelope_or_none(record))
                await self.dead_letters.flush()
                return
            except Exception as exc:
                log.error("could not dead-letter a record; retrying", follower=self.name, error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def ready(self) -> bool:
        return self.started and self._task is not None and not self._task.done()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        if self._consumer:
            await self._consumer.stop()
        await self.dead_letters.stop()
