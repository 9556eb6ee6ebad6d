"""The CloudEvents 1.0 envelope every Herald message travels in.

On Kafka the envelope rides in headers (the CloudEvents Kafka protocol binding, binary content
mode: `ce_id`, `ce_type`, …) and the body is the JSON of the message's data model. Keeping the
attributes in headers lets a consumer route, log and dead-letter a message without parsing
its body. The codec is a few lines on the hot path, so it is written here rather than going
through the `cloudevents` SDK's generic conversion (which the HTTP edge does use).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field

from herald_core.ids import new_id

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

# extension attribute names: CloudEvents allows only lower-case letters and digits
_ATTRS = ("id", "source", "type", "time", "subject", "tenant", "correlationid", "causationid", "traceparent")


class Envelope(BaseModel):
    """CloudEvents attributes plus Herald's tenant, correlation and causation ids and trace context."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_id, description="Unique id of this message (ULID).")
    source: str = Field(description="The producing service, e.g. `herald/guard`, or the upstream system.")
    type: str = Field(description="The message type, e.g. `herald.action.proposed.v1`.")
    time: datetime = Field(default_factory=lambda: datetime.now(UTC), description="When it happened (UTC).")
    subject: str | None = Field(default=None, description="What it is about, e.g. `contact/5100001`.")
    tenant: str = Field(description="The Herald tenant this message belongs to.")
    correlation_id: str = Field(description="Id shared by every message of one chain, from the upstream event on.")
    causation_id: str | None = Field(default=None, description="Id of the message that caused this one.")
    traceparent: str | None = Field(default=None, description="W3C trace context of the producing span.")

    @classmethod
    def new_chain(
        cls,
        *,
        source: str,
        type: str,
        tenant: str,
        subject: str | None = None,
        traceparent: str | None = None,
        correlation_id: str | None = None,
    ) -> Envelope:
        """The first message of a chain: a new correlation id (unless given), a new trace unless one is given."""
        return cls(
            source=source,
            type=type,
            subject=subject,
            tenant=tenant,
            correlation_id=correlation_id or new_id(),
            traceparent=traceparent or new_traceparent(),
        )

    def caused(self, *, source: str, type: str, subject: str | None = None) -> Envelope:
        """The envelope of a message caused by this one: same chain, same trace, new span."""
        return Envelope(
            source=source,
            type=type,
            subject=subject if subject is not None else self.subject,
            tenant=self.tenant,
            correlation_id=self.correlation_id,
            causation_id=self.id,
            traceparent=child_traceparent(self.traceparent),
        )

    def to_headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("ce_specversion", b"1.0"),
            ("ce_id", self.id.encode()),
            ("ce_source", self.source.encode()),
            ("ce_type", self.type.encode()),
            ("ce_time", self.time.isoformat().encode()),
            ("ce_tenant", self.tenant.encode()),
            ("ce_correlationid", self.correlation_id.encode()),
            ("content-type", CONTENT_TYPE.encode()),
        ]
        if self.subject is not None:
            headers.append(("ce_subject", self.subject.encode()))
        if self.causation_id is not None:
            headers.append(("ce_causationid", self.causation_id.encode()))
        if self.traceparent is not None:
            # both spellings: ce_ for CloudEvents readers, plain for OpenTelemetry's Kafka propagators
            headers.append(("ce_traceparent", self.traceparent.encode()))
            headers.append(("traceparent", self.traceparent.encode()))
        return headers

    @classmethod
    def from_headers(cls, headers: Sequence[tuple[str, bytes | None]] | None) -> Envelope:
        """Read the envelope back; raises `EnvelopeError` naming what is missing or wrong."""
        found: dict[str, str] = {}
        for name, value in headers or ():
            if name.startswith("ce_"):
                attr = name[3:]
                if attr in _ATTRS:
                    if value is None:
                        raise EnvelopeError(f"header {name} has no value")
                    try:
                        found[attr] = value.decode()
                    except UnicodeDecodeError as exc:
                        raise EnvelopeError(f"header {name} is not UTF-8") from exc
        missing = [a for a in ("id", "source", "type", "tenant", "correlationid") if a not in found]
        if missing:
            raise EnvelopeError(f"missing CloudEvents header(s): {', '.join('ce_' + m for m in missing)}")
        try:
            time = datetime.fromisoformat(found["time"]) if "time" in found else datetime.now(UTC)
        except ValueError as exc:
            raise EnvelopeError(f"ce_time is not an ISO-8601 time: {found['time']!r}") from exc
        return cls(
            id=found["id"],
            source=found["source"],
            type=found["type"],
            time=time,
            subject=found.get("subject"),
            tenant=found["tenant"],
            correlation_id=found["correlationid"],
            causation_id=found.get("causationid"),
            traceparent=found.get("traceparent"),
        )


class EnvelopeError(ValueError):
    """A message whose envelope cannot be read; it goes to the dead-letter topic with this reason."""


def new_traceparent() -> str:
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def child_traceparent(parent: str | None) -> str:
    """Same trace, new span id: each hop is a span whose parent is the message it consumed."""
    if not parent:
        return new_traceparent()
    parts = parent.split("-")
    if len(parts) != 4 or len(parts[1]) != 32:
        return new_traceparent()
    return f"{parts[0]}-{parts[1]}-{os.urandom(8).hex()}-{parts[3]}"


def trace_id(traceparent: str | None) -> str | None:
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 else None
