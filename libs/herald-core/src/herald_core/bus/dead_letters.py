"""Dead letters: a record a consumer cannot accept goes to `herald.dlq.<consumer>.v1`, unchanged, with the
reason and its origin in headers, and a `DeadLettered` record on the audit — so nothing is lost and the audit
shows it. Workers send both inside their batch transaction; followers (which keep their place outside Kafka)
through a `DeadLetterer`, before they store their position."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer, ConsumerRecord

from herald_core.bus.messages import BusNames, audit_headers
from herald_core.contracts import DeadLettered
from herald_core.envelope import Envelope
from herald_core.observability import DEAD_LETTERS, get_logger
from herald_core.settings import CommonSettings
from herald_core.text import storable
from herald_core.topics import AUDIT, dead_letter_topic

log = get_logger("herald.bus")


def reason_label(reason: str) -> str:
    """The metric label of a reason: its first word (`invalid body`, `rejected`, `gave up` …)."""
    return reason.split(":", 1)[0][:40]


async def send_dead_letter(
    producer: AIOKafkaProducer,
    names: BusNames,
    service: str,
    record: ConsumerRecord[bytes, bytes],
    reason: str,
    envelope: Envelope | None,
) -> None:
    """Send `record` to the service's dead-letter topic (reason and origin in headers), with an audit record."""
    DEAD_LETTERS.labels(service, reason_label(reason)).inc()
    log.warning("dead-lettered", topic=record.topic, partition=record.partition, offset=record.offset, reason=reason)
    dlq = names(dead_letter_topic(service))
    headers = [
        *(record.headers or ()),
        ("herald_dlq_reason", reason.encode(errors="replace")),
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
        reason=storable(reason, 2000),
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
    await producer.send(
        names(AUDIT),
        value=body.model_dump_json().encode(),
        key=record.key,
        headers=audit_headers(audit_env.to_headers(), dlq),
    )


class DeadLetterer:
    """An idempotent (not transactional) producer of dead letters, for consumers that keep their place in
    Postgres: each dead letter is flushed before the position past it is stored, so a crash repeats it at
    worst and never loses it."""

    def __init__(self, common: CommonSettings, consumer: str) -> None:
        self.common = common
        self.consumer = consumer
        self.names = BusNames(common.topic_prefix)
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(bootstrap_servers=self.common.kafka_bootstrap, enable_idempotence=True)
        await self._producer.start()

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()

    async def send(self, record: ConsumerRecord[bytes, bytes], reason: str, envelope: Envelope | None) -> None:
        assert self._producer is not None, "DeadLetterer.start() first"
        await send_dead_letter(self._producer, self.names, self.consumer, record, reason, envelope)

    async def flush(self) -> None:
        if self._producer is not None:
            await self._producer.flush()
