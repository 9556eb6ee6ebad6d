"""Messages as they travel: `Outbound` (to publish), `Encoded` (its bytes, checked before a transaction opens),
`Inbound` (read and validated) and `Unreadable` (why a record cannot be read)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import ConsumerRecord
from pydantic import ValidationError

from herald_core.bus.failures import Rejected
from herald_core.contracts import MESSAGE_TYPES, Contract
from herald_core.envelope import Envelope, EnvelopeError
from herald_core.topics import AUDIT, TopicSpec, all_topics

# the largest record a producer sends: a knowledge document (and its audit copy, or its dead letter)
MAX_REQUEST_BYTES = 4 * 1024 * 1024
#: room left in a request for a record's key, headers and batch framing
_FRAMING_BYTES = 64 * 1024
C = TypeVar("C", bound=Contract)
Headers = list[tuple[str, bytes]]


class BusNames:
    """Full topic names under the configured prefix."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def __call__(self, spec: TopicSpec) -> str:
        return spec.full_name(self.prefix)


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


class UnpublishableError(ValueError):
    """A message that Kafka cannot carry (too large, not serialisable): the message's fault, never retried."""


@dataclass(frozen=True)
class Encoded:
    """A record's bytes, made before any transaction opens, so a message that cannot be sent fails alone
    (its producer's caller, or its input's dead letter) and never the transaction it would have shared."""

    topic: TopicSpec
    key: bytes | None
    value: bytes | None
    headers: Headers
    type: str | None = None  # the contract type, for the published-messages metric
    audited: bool = True  # False: the record is itself an audit record (or a tombstone): no copy

    @classmethod
    def of(cls, out: Outbound) -> Encoded:
        return cls(out.topic, out.key, _body_bytes(out.body), out.envelope.to_headers(), out.body.TYPE)

    @classmethod
    def audit_record(cls, key: bytes | None, envelope: Envelope, body: Contract) -> Encoded:
        """A record for the audit topic only (a refusal, a dead letter's account)."""
        return cls(AUDIT, key, _body_bytes(body), envelope.to_headers(), body.TYPE, audited=False)

    @classmethod
    def tombstone(cls, topic: TopicSpec, key: bytes) -> Encoded:
        """No value under `key`: compaction then removes the key's earlier records."""
        return cls(topic, key, None, [], None, audited=False)


def _body_bytes(body: Contract) -> bytes:
    try:
        value = body.model_dump_json().encode()
    except Exception as exc:  # a value no JSON can carry
        raise UnpublishableError(f"{body.TYPE} cannot be serialised: {exc}"[:1000]) from exc
    limit = MAX_REQUEST_BYTES - _FRAMING_BYTES
    if len(value) > limit:
        raise UnpublishableError(f"{body.TYPE} is {len(value)} bytes; a record may hold {limit}")
    return value


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


def decode(record: ConsumerRecord[bytes, bytes], spec: TopicSpec) -> Inbound:
    """Read a record into an `Inbound`; raises `EnvelopeError` or `ValidationError` with the reason."""
    headers = tuple(record.headers or ())
    unset = [name for name, value in headers if value is None]
    if unset:
        raise EnvelopeError(f"header(s) without a value: {', '.join(sorted(set(unset)))[:200]}")
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
    """`decode`, with a failure turned into the dead-letter reason instead of an exception. Whatever a record
    holds, reading it never raises: what cannot be read is the record's fault, and it is dead-lettered."""
    try:
        return decode(record, spec)
    except Exception as exc:
        return Unreadable(reason_unreadable(exc), envelope_or_none(record))


def envelope_or_none(record: ConsumerRecord[bytes, bytes]) -> Envelope | None:
    try:
        return Envelope.from_headers([(k, v) for k, v in record.headers or () if v is not None])
    except Exception:
        return None


def reason_unreadable(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        errors = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        return f"invalid body: {errors}"[:1000]
    if isinstance(exc, EnvelopeError):
        return f"invalid envelope: {exc}"[:1000]
    return f"invalid: {type(exc).__name__}: {exc}"[:1000]


def audit_headers(headers: Sequence[tuple[str, bytes | None]], topic_name: str) -> list[tuple[str, bytes | None]]:
    return [*headers, ("herald_topic", topic_name.encode())]
