"""Kafka wiring shared by every service.

Three promises live here, so no service has to keep them by hand:
- **audit, atomically**: every message published on a topic is written together with its copy on
  `herald.audit.v1` in one Kafka transaction, so there is never one without the other (`producer`);
- **consume-transform-produce, exactly once on Kafka's side**: a consumer's outputs commit in the
  same transaction as its input offsets, batch by batch; every consumer reads `read_committed` (`worker`);
- **nothing lost, nothing wedged**: a message that cannot be read or handled goes to the consumer's
  dead-letter topic with the reason and its origin in headers (and a `DeadLettered` record on the audit),
  and the consumer moves on (`dead_letters`); whether a failure can heal is decided in one place
  (`failures`); a consumer that stops making progress says so in its readiness (`progress`).

Rooms: `messages` (what travels), `failures`, `producer`, `worker`, `follower` (readers outside a group),
`dead_letters`, `progress`, `admin` (topic creation), `tasks`.

Side effects outside Kafka (Postgres, SMTP) are the handlers' business and must be idempotent:
a batch whose transaction fails is read again.
"""

from herald_core.bus.admin import ensure_topics
from herald_core.bus.dead_letters import DeadLetterer, send_dead_letter
from herald_core.bus.failures import (
    Rejected,
    TransientError,
    grpc_code_is_transient,
    http_status_is_transient,
    is_transient,
    reason_of,
    retry_after_seconds,
)
from herald_core.bus.follower import TopicFollower, read_to_end, tail_reader
from herald_core.bus.messages import (
    MAX_REQUEST_BYTES,
    BusNames,
    Encoded,
    Inbound,
    Outbound,
    UnpublishableError,
    Unreadable,
    decode,
    envelope_or_none,
    read_record,
)
from herald_core.bus.producer import TransactionalProducer, send_with_audit, transactional_producer
from herald_core.bus.progress import Progress
from herald_core.bus.tasks import cancel_and_wait
from herald_core.bus.worker import (
    FETCH_MAX_WAIT_MS,
    ConsumerWorker,
    Handler,
    group_consumer,
    note_commit,
    note_fetch,
    rewind,
)

__all__ = [
    "FETCH_MAX_WAIT_MS",
    "MAX_REQUEST_BYTES",
    "BusNames",
    "ConsumerWorker",
    "DeadLetterer",
    "Encoded",
    "Handler",
    "Inbound",
    "Outbound",
    "Progress",
    "Rejected",
    "TopicFollower",
    "TransactionalProducer",
    "TransientError",
    "UnpublishableError",
    "Unreadable",
    "cancel_and_wait",
    "decode",
    "ensure_topics",
    "envelope_or_none",
    "group_consumer",
    "grpc_code_is_transient",
    "http_status_is_transient",
    "is_transient",
    "note_commit",
    "note_fetch",
    "read_record",
    "read_to_end",
    "reason_of",
    "retry_after_seconds",
    "rewind",
    "send_dead_letter",
    "send_with_audit",
    "tail_reader",
    "transactional_producer",
]
