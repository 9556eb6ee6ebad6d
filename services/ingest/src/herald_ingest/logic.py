"""Ingest's pure logic: HubSpot signature checks, the webhook schema, and mapping upstream events
to Herald's contracts. No I/O here."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from herald_core.contracts import (
    ConsentReason,
    ConsentWithdrawn,
    ContactCreated,
    ContactFacts,
    ContactUpdated,
    Contract,
)

HUBSPOT = "hubspot"


class ContactDirectory(Protocol):
    """The CRM port: what Herald knows about a tenant's contacts (default adapter: Postgres)."""

    async def get_many(self, tenant: str, contact_ids: list[str]) -> dict[str, ContactFacts]: ...


def verify_hubspot_v3(
    *,
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now: datetime,
    max_age_seconds: int,
) -> str | None:
    """None if the request is authentic and fresh, else the reason it is not.

    HubSpot's v3 scheme: base64(HMAC-SHA256(app secret, method + URI + body + timestamp)), with the
    timestamp (ms) in `X-HubSpot-Request-Timestamp`; requests older than five minutes are refused.
    """
    if not signature or not timestamp:
        return "missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp"
    try:
        sent = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
    except (ValueError, OverflowError):
        return "X-HubSpot-Request-Timestamp is not a millisecond timestamp"
    age = (now - sent).total_seconds()
    if age > max_age_seconds:
        return f"request timestamp is {int(age)}s old (limit {max_age_seconds}s)"
    if age < -max_age_seconds:
        return "request timestamp is in the future"
    message = method.upper().encode() + uri.encode() + body + timestamp.encode()
    expected = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(expected, signature):
        return "signature does not match"
    return None


class HubSpotEvent(BaseModel):
    """One item of a HubSpot webhook batch (the fields Herald uses; others are allowed and ignored)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: int = Field(alias="eventId")
    subscription_id: int | None = Field(default=None, alias="subscriptionId")
    portal_id: int = Field(alias="portalId")
    occurred_at: int = Field(alias="occurredAt", description="Milliseconds since the epoch.")
    subscription_type: str = Field(alias="subscriptionType")
    attempt_number: int = Field(default=0, alias="attemptNumber")
    object_id: int = Field(alias="objectId")
    property_name: str | None = Field(default=None, alias="propertyName")
    property_value: str | None = Field(default=None, alias="propertyValue")
    change_source: str | None = Field(default=None, alias="changeSource")

    @property
    def occurred(self) -> datetime:
        return datetime.fromtimestamp(self.occurred_at / 1000, UTC)


SUPPORTED = ("contact.creation", "contact.propertyChange")
Kind = Literal["created", "updated", "consent_withdrawn"]


def classify(event: HubSpotEvent) -> Kind | None:
    if event.subscription_type == "contact.creation":
        return "created"
    if event.subscription_type == "contact.propertyChange":
        if event.property_name == "hs_email_optout" and (event.property_value or "").lower() == "true":
            return "consent_withdrawn"
        return "updated"
    return None


def to_contract(event: HubSpotEvent, contact: ContactFacts) -> Contract:
    upstream_id = str(event.event_id)
    kind = classify(event)
    if kind == "created":
        return ContactCreated(
            contact=contact, upstream_source=HUBSPOT, upstream_event_id=upstream_id, occurred_at=event.occurred
        )
    if kind == "consent_withdrawn":
        return ConsentWithdrawn(
            contact_id=contact.contact_id,
            email=contact.email,
            reason=ConsentReason.UNSUBSCRIBE,
            upstream_source=HUBSPOT,
            upstream_event_id=upstream_id,
            occurred_at=event.occurred,
        )
    return ContactUpdated(
        contact=contact,
        changed_property=event.property_name,
        new_value=event.property_value,
        upstream_source=HUBSPOT,
        upstream_event_id=upstream_id,
        occurred_at=event.occurred,
    )
