"""Ingest's pure logic: HubSpot signatures and webhook schema, the CRM port, HubSpot contact properties as
Herald's contact fields, mapping upstream events to Herald's contracts and building their messages. No I/O here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal, Protocol
from zoneinfo import available_timezones

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from herald_core.bus import Outbound
from herald_core.consent import address_hash
from herald_core.contracts import (
    ConsentReason,
    ConsentWithdrawn,
    ContactCreated,
    ContactErased,
    ContactFacts,
    ContactId,
    ContactUpdated,
    Contract,
    EmailAddress,
    EmailEngagement,
    EmailReplied,
    MeetingBooked,
    ReplyReceived,
)
from herald_core.envelope import Envelope, child_traceparent, new_traceparent
from herald_core.hubspot import DEFAULT_CONTACT_PROPERTIES
from herald_core.tenants import zone_named
from herald_core.topics import CONSENT, EVENTS, TopicSpec, consent_key, contact_key

SOURCE = "herald/ingest"
HUBSPOT = "hubspot"
SEED = "herald-seed"

#: what `POST /v1/events` accepts, CloudEvents type → the contract its `data` must match
CLOUDEVENT_TYPES: dict[str, type[Contract]] = {
    m.TYPE: m
    for m in (
        ContactCreated,
        ContactUpdated,
        ConsentWithdrawn,
        ContactErased,
        EmailReplied,
        EmailEngagement,
        MeetingBooked,
    )
}


# ---------------------------------------------------------------- the CRM port


class ContactDirectory(Protocol):
    """The CRM port: what Herald knows about a tenant's contacts. Default adapter: Herald's own
    contact store in Postgres (`adapters.contacts.PostgresContacts`)."""

    async def get_many(self, tenant: str, contact_ids: Sequence[str]) -> dict[str, ContactFacts]:
        """The contacts among `contact_ids` that exist; an unreadable row is left out."""
        ...

    async def find_by_email(self, tenant: str, emails: Sequence[str]) -> dict[str, list[ContactFacts]]:
        """The contacts holding each of `emails` (matched case-insensitively), by lower-cased address; an address
        no contact holds is left out."""
        ...

    async def record_property(self, tenant: str, contact_id: str, field: str, value: str | bool | int | None) -> None:
        """Keep a changed property (a contact field a HubSpot property maps to); a real CRM adapter may ignore it."""
        ...

    async def erase(self, tenant: str, contact_id: str) -> None:
        """Forget the contact and everything recorded about it (an erasure)."""
        ...

    async def upsert_fetched(self, tenant: str, contacts: Sequence[CrmContact]) -> int:
        """Keep contacts read from the tenant's CRM (the fields read overwrite, the others stay)."""
        ...

    async def remember(self, tenant: str, contacts: Sequence[ContactFacts]) -> None:
        """Keep contacts as an event sent to Herald describes them (their facts overwrite)."""
        ...

    async def fetched_at(self, tenant: str, contact_ids: Sequence[str]) -> dict[str, datetime]:
        """When each of `contact_ids` was last read from the tenant's CRM (one never read from it is left out)."""
        ...


#: HubSpot contact property → the contact field it sets, by default (`opted_out` and `country` are stored, not in
#: ContactFacts); a tenant may map its own (`crm.properties`, read through `crm.contact_properties`).
CONTACT_PROPERTIES: Mapping[str, str] = DEFAULT_CONTACT_PROPERTIES

StoredValue = str | bool | int | None

_BOOLEAN_FIELDS = frozenset({"opted_out", "vip"})
_WHOLE_NUMBER = re.compile(r"^\d{1,18}(?:\.0*)?$")  # HubSpot writes numbers as text, `1250` or `1250.0`
_EMAIL: TypeAdapter[str] = TypeAdapter(EmailAddress)


@cache
def _zones_by_folded_name() -> dict[str, str]:
    return {name.lower(): name for name in available_timezones()}


def zone_of(value: str) -> str | None:
    """The IANA zone `value` names — as IANA spells it, or as HubSpot's time zone property does
    (`america_slash_new_york`) — or None."""
    named = value.strip().replace("_slash_", "/")
    if zone_named(named) is not None:
        return named
    return _zones_by_folded_name().get(named.lower())


def hubspot_value(field: str, raw: str | None) -> StoredValue:
    """The value a HubSpot property's text gives the contact field `field`: blank is no value (a box not ticked,
    no deal), a checkbox is `true` or not, industry is lower case. `ValueError` says why `raw` is no value
    the field can hold (an address that is none, a zone no one knows, a number that is not a whole one)."""
    text = (raw or "").strip()
    if field in _BOOLEAN_FIELDS:
        return text.lower() == "true"
    if field == "deal_value_minor":
        if not text:
            return 0
        if not _WHOLE_NUMBER.match(text):
            raise ValueError(f"{text[:40]!r} is not a whole, non-negative amount in minor units")
        return int(text.split(".")[0])
    if not text:
        return None
    if field == "company_size":
        return company_size_of(text)
    if field == "email":
        try:
            return _EMAIL.validate_python(text)
        except ValidationError:
            raise ValueError(f"{text[:80]!r} is not an email address") from None
    if field == "timezone":
        zone = zone_of(text)
        if zone is None:
            raise ValueError(f"{text[:60]!r} is not a time zone")
        return zone
    if field == "industry":
        return text.lower()
    return text


_SIZE = re.compile(r"^(\d{1,8})(?:\.0*)?\s*(?:(?:-|–|to)\s*(\d{1,8})|\+)?$")


def company_size_of(text: str) -> int:
    """Employees, from a number (`1250`) or a range as HubSpot's `numemployees` offers them (`100-500`, `1000+`):
    a range counts as its lower bound, the size the company is known to have at least."""
    found = _SIZE.match(text.replace(",", "").strip())
    if found is None:
        raise ValueError(f"{text[:40]!r} is not a number of employees (a number, or a range like 100-500 or 1000+)")
    return int(found.group(1))


def property_change(
    name: str | None, value: str | None, properties: Mapping[str, str] = CONTACT_PROPERTIES
) -> tuple[str, StoredValue] | None:
    """The stored field and value a HubSpot property change sets, or None if Herald does not keep it. A value
    the field cannot hold is passed on as sent, for `apply_property` to refuse."""
    field = properties.get(name or "")
    if field is None:
        return None
    try:
        return field, hubspot_value(field, value)
    except ValueError:
        return field, value


class StoredFields(BaseModel):
    """The contact store's fields besides the id (`herald_core.hubspot.CONTACT_FIELDS`), as a seed file or a CRM
    read gives them."""

    email: EmailAddress | None = None
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    industry: str | None = None
    lifecycle_stage: str | None = None
    country: str | None = None
    timezone: str | None = None
    vip: bool = False
    deal_value_minor: int = Field(default=0, ge=0)
    company_size: int | None = Field(default=None, ge=0, le=10_000_000)
    owner: str | None = Field(default=None, min_length=1, max_length=100, pattern=r"^[^\r\n]*$")
    opted_out: bool = False


class CrmContact(StoredFields):
    """A contact as read from the tenant's CRM, in the contact store's fields. `read` names the fields the CRM
    gave (a blank one included: it was cleared there); only those overwrite what the store holds, so a field the
    tenant's mapping does not cover, or a value left out as invalid, keeps its stored value."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contact_id: ContactId = Field(description="The contact's id in the tenant's CRM (HubSpot objectId).")
    read: frozenset[str] = Field(default=frozenset(), description="The fields the CRM gave.")

    def facts(self) -> ContactFacts:
        """The contact's facts as read (a field not read has its default: the store's row may know better)."""
        return ContactFacts.model_validate(self.model_dump(include=set(ContactFacts.model_fields)))


def contact_from_hubspot(
    contact_id: str,
    properties: Mapping[str, str | None],
    mapping: Mapping[str, str],
    *,
    company: str | None = None,
) -> tuple[CrmContact, tuple[str, ...]]:
    """A HubSpot contact's properties as Herald's contact, through the tenant's `mapping` (HubSpot property →
    field), with `company` (its associated company's name) where its own company property is blank; and why each
    value left out was (an invalid one never fails the contact, let alone its batch)."""
    values: dict[str, StoredValue] = {}
    left_out: list[str] = []
    for name, field in mapping.items():
        if name not in properties:
            continue  # not in HubSpot's answer: a property the portal does not have
        try:
            values[field] = hubspot_value(field, properties[name])
        except ValueError as exc:
            left_out.append(f"{name} ({field}): {exc}")
    if values.get("company") is None and company and company.strip():
        values["company"] = company.strip()
    read = frozenset(values)
    return CrmContact(contact_id=contact_id, read=read, **values), tuple(left_out)


def apply_property(contact: ContactFacts, field: str, value: StoredValue) -> ContactFacts:
    """The contact after a property change; raises `ValueError` (a `ValidationError`) for a value it cannot hold."""
    if field not in ContactFacts.model_fields:
        return contact
    return ContactFacts.model_validate({**contact.model_dump(), field: value})


# ---------------------------------------------------------------- HubSpot webhooks

# HubSpot signs the URI with these escapes decoded (its v3 validation guide)
_URI_DECODE = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_URI_ESCAPE = re.compile("|".join(_URI_DECODE), re.IGNORECASE)


def hubspot_uri(uri: str) -> str:
    return _URI_ESCAPE.sub(lambda m: _URI_DECODE[m.group(0).upper()], uri)


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(app secret, method + URI + body + timestamp)), HubSpot's v3 scheme."""
    message = method.upper().encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


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
) -> tuple[str, str] | None:
    """None if the request is authentic and fresh, else (error, detail) saying why not.

    The timestamp (ms, `X-HubSpot-Request-Timestamp`) must be within `max_age_seconds` of `now`
    either way, so a captured request cannot be replayed later.
    """
    if not signature:
        return "missing_signature", "missing X-HubSpot-Signature-v3 header"
    if not timestamp:
        return "missing_signature", "missing X-HubSpot-Request-Timestamp header"
    try:
        sent = datetime.fromtimestamp(int(timestamp) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return "bad_timestamp", "X-HubSpot-Request-Timestamp is not a millisecond timestamp"
    age = (now - sent).total_seconds()
    if age > max_age_seconds:
        return "stale_timestamp", f"request timestamp is {int(age)}s old (limit {max_age_seconds}s)"
    if age < -max_age_seconds:
        return "stale_timestamp", f"request timestamp is {int(-age)}s in the future (limit {max_age_seconds}s)"
    expected = hubspot_signature(secret, method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        return "bad_signature", "signature does not match"
    return None


def verify_bearer(authorization: str | None, tokens: Sequence[str]) -> tuple[int, str, str] | None:
    """None if `authorization` is `Bearer <one of tokens>`, else (status, error, detail) saying why not.

    No credential, or one of another scheme, is a 401; a bearer token that is none of `tokens` a 403; no token
    to compare with (every file unreadable or empty) a 503, for that is the deployment's fault, not the
    sender's, and it must never let a request through. Each token is compared in constant time, and all of
    them, so the answer's timing says nothing of the tokens. The detail never holds what was sent.
    """
    scheme, _, sent = (authorization or "").strip().partition(" ")
    sent = sent.strip()
    if scheme.lower() != "bearer" or not sent:
        return 401, "missing_credentials", "this tenant requires `Authorization: Bearer <token>`"
    usable = [token for token in tokens if token]
    if not usable:
        return 503, "credentials_unavailable", "this tenant's ingest tokens cannot be read now; retry later"
    matches = [hmac.compare_digest(sent.encode(), token.encode()) for token in usable]
    if not any(matches):
        return 403, "bad_credentials", "the bearer token is not one of this tenant's ingest tokens"
    return None


#: the last millisecond a Python datetime holds (9999-12-31T23:59:59.999Z): a later `occurredAt` is no time at all
LAST_MILLISECOND = 253_402_300_799_999


class HubSpotEvent(BaseModel):
    """One item of a HubSpot webhook batch (the fields Herald uses; others are allowed and ignored)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    event_id: int = Field(alias="eventId", ge=0, description="HubSpot's id of the event.")
    subscription_id: int | None = Field(default=None, alias="subscriptionId")
    portal_id: int = Field(alias="portalId", description="The HubSpot account the event belongs to.")
    app_id: int | None = Field(default=None, alias="appId")
    occurred_at: int = Field(
        alias="occurredAt", ge=0, le=LAST_MILLISECOND, description="Milliseconds since the epoch (before year 10000)."
    )
    subscription_type: str = Field(alias="subscriptionType", description="e.g. `contact.creation`.")
    attempt_number: int = Field(default=0, alias="attemptNumber")
    object_id: int = Field(alias="objectId", ge=0, description="The contact's id.")
    property_name: str | None = Field(default=None, alias="propertyName")
    property_value: str | None = Field(default=None, alias="propertyValue")
    change_source: str | None = Field(default=None, alias="changeSource")

    @property
    def occurred(self) -> datetime:
        return datetime.fromtimestamp(self.occurred_at / 1000, UTC)


Kind = Literal["created", "updated", "consent_withdrawn", "erased"]


def classify(event: HubSpotEvent) -> Kind | None:
    """What a HubSpot event means to Herald, or None for subscriptions Herald does not take."""
    if event.subscription_type == "contact.creation":
        return "created"
    if event.subscription_type == "contact.privacyDeletion":
        return "erased"
    if event.subscription_type == "contact.propertyChange":
        if event.property_name == "hs_email_optout" and (event.property_value or "").strip().lower() == "true":
            return "consent_withdrawn"
        return "updated"
    return None


def to_contract(event: HubSpotEvent, contact: ContactFacts) -> Contract:
    """The Herald fact for a HubSpot event, with the contact as enriched from the CRM port."""
    upstream_id = str(event.event_id)
    kind = classify(event)
    if kind == "created":
        return ContactCreated(
            contact=contact, upstream_source=HUBSPOT, upstream_event_id=upstream_id, occurred_at=event.occurred
        )
    if kind == "erased":
        return ContactErased(
            contact_id=contact.contact_id,
            email_sha256=address_hash(contact.email) if contact.email else None,
            upstream_source=HUBSPOT,
            upstream_event_id=upstream_id,
            occurred_at=event.occurred,
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
    if kind == "updated":
        return ContactUpdated(
            contact=contact,
            changed_property=event.property_name,
            new_value=event.property_value,
            upstream_source=HUBSPOT,
            upstream_event_id=upstream_id,
            occurred_at=event.occurred,
        )
    raise ValueError(f"unsupported subscriptionType {event.subscription_type}")


# ---------------------------------------------------------------- the contact file `herald-ingest seed` loads


class SeedContact(StoredFields):
    """One line of a contacts JSON-lines file."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    contact_id: int = Field(ge=0)
    created_at: datetime | None = None

    @property
    def id(self) -> str:
        return str(self.contact_id)


def parse_contact_lines(lines: Sequence[str]) -> tuple[list[SeedContact], list[str]]:
    """The contacts, and one error per unreadable line (numbered from 1)."""
    contacts: list[SeedContact] = []
    errors: list[str] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            contacts.append(SeedContact.model_validate_json(line))
        except ValidationError as exc:
            errors.append(f"line {number}: {validation_summary(exc)}")
    return contacts, errors


def crm_opt_out(contact: ContactFacts, upstream_event_id: str) -> ConsentWithdrawn:
    """The withdrawal of a contact read from the CRM already opted out (`hs_email_optout`): no webhook says so,
    for it happened before Herald knew the contact."""
    return ConsentWithdrawn(
        contact_id=contact.contact_id,
        email=contact.email,
        reason=ConsentReason.UNSUBSCRIBE,
        upstream_source=HUBSPOT,
        upstream_event_id=upstream_event_id,
        occurred_at=datetime.now(UTC),
    )


def seed_opt_out(contact: SeedContact, now: datetime) -> ConsentWithdrawn:
    return ConsentWithdrawn(
        contact_id=contact.id,
        email=contact.email,
        reason=ConsentReason.IMPORTED_OPT_OUT,
        upstream_source=SEED,
        upstream_event_id=f"seed-optout-{contact.id}",
        occurred_at=now,
    )


# ---------------------------------------------------------------- messages


def contact_of(contract: Contract) -> ContactId:
    """The contact a contract is about (its Kafka key and envelope subject)."""
    if isinstance(contract, ContactCreated | ContactUpdated | ReplyReceived):
        return contract.contact.contact_id
    if isinstance(contract, ConsentWithdrawn | ContactErased | EmailReplied | EmailEngagement | MeetingBooked):
        return contract.contact_id
    raise TypeError(f"ingest does not publish {type(contract).__name__}")


_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def continue_trace(traceparent: str | None) -> str:
    """A span under the caller's W3C trace context when it sent a valid one, else a new trace."""
    match = _TRACEPARENT.match((traceparent or "").strip().lower())
    if not match or match.group(1) == "ff" or set(match.group(2)) == {"0"} or set(match.group(3)) == {"0"}:
        return new_traceparent()
    return child_traceparent(match.group(0))


def messages_for(tenant: str, contract: Contract, traceparent: str) -> list[Outbound]:
    """An upstream event's messages: a new chain (correlation id) on herald.events.v1, and a
    withdrawal or an erasure also on the compacted herald.consent.v1 (keyed per contact and channel;
    an erasure covers every channel)."""
    contact_id = contact_of(contract)
    envelope = Envelope.new_chain(
        source=SOURCE, type=contract.TYPE, subject=f"contact/{contact_id}", tenant=tenant, traceparent=traceparent
    )
    messages = [Outbound(EVENTS, contact_key(tenant, contact_id), envelope, contract)]
    if isinstance(contract, ConsentWithdrawn):
        key = consent_key(tenant, contact_id, contract.channel.value)
        messages.append(Outbound(CONSENT, key, envelope, contract))
    if isinstance(contract, ContactErased):
        messages.append(Outbound(CONSENT, consent_key(tenant, contact_id, "all"), envelope, contract))
    return messages


def erasures(messages: Sequence[Outbound]) -> list[tuple[str, str]]:
    """The (tenant, contact) pairs whose erasure `messages` publish."""
    return [
        (m.envelope.tenant, m.body.contact_id)
        for m in messages
        if isinstance(m.body, ContactErased) and m.topic is EVENTS
    ]


def consent_tombstones(erased: Sequence[tuple[str, str]]) -> list[tuple[TopicSpec, bytes]]:
    """With an erasure: no value under the contact's channel keys, so compaction removes its earlier consent
    records (and the addresses in them); the erasure itself stands under `all`."""
    return [(CONSENT, consent_key(t, c, channel)) for t, c in erased for channel in ("email", "sms", "phone")]


def validation_summary(exc: ValidationError, limit: int = 5) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg']}" for e in exc.errors()[:limit])


def validation_errors(exc: ValidationError, limit: int = 20) -> list[dict[str, Any]]:
    """pydantic's errors, JSON-safe (no input echo, no exception objects)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:limit]]
