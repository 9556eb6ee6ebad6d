"""Ingest wiring: the HTTP edge where upstream systems publish into Herald.

    POST /v1/webhooks/hubspot/{tenant}   HubSpot webhook batches (v3 signature)
    POST /v1/events                      CloudEvents 1.0 (structured or binary HTTP mode)

Valid events become `ContactCreated` / `ContactUpdated` / `ConsentWithdrawn` on herald.events.v1
(consent also on the compacted herald.consent.v1), audit copies included, in one Kafka
transaction. Bad input is refused with a 4xx and a reason, and the refusal is on the audit.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import structlog
from cloudevents.v1.exceptions import GenericException as CloudEventError
from cloudevents.v1.http import from_http
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError

from herald_core.bus import Outbound, TransactionalProducer
from herald_core.contracts import (
    ConsentWithdrawn,
    ContactCreated,
    ContactUpdated,
    Contract,
    EventRejected,
)
from herald_core.db import create_pool, migrate
from herald_core.envelope import Envelope, child_traceparent, new_traceparent
from herald_core.ids import new_id
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_core.tenants import TenantDirectory
from herald_core.topics import CONSENT, EVENTS, contact_key
from herald_ingest.adapters.contacts import PostgresContacts
from herald_ingest.adapters.dedup import SeenEvents
from herald_ingest.logic import HUBSPOT, HubSpotEvent, classify, to_contract, verify_hubspot_v3
from herald_ingest.settings import Settings

SOURCE = "herald/ingest"
EVENTS_IN = Counter("herald_ingest_events_total", "Upstream events by outcome.", ["outcome", "reason"])
CLOUDEVENT_TYPES: dict[str, type[Contract]] = {m.TYPE: m for m in (ContactCreated, ContactUpdated, ConsentWithdrawn)}
_batch = TypeAdapter(list[HubSpotEvent])
log = get_logger("herald.ingest")


class Refusal(Exception):
    def __init__(self, status: int, error: str, detail: Any, upstream_event_id: str | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.upstream_event_id = status, error, detail, upstream_event_id


class Ingest:
    def __init__(
        self,
        settings: Settings,
        tenants: TenantDirectory,
        contacts: PostgresContacts,
        seen: SeenEvents,
        producer: TransactionalProducer,
    ) -> None:
        self.settings = settings
        self.tenants = tenants
        self.contacts = contacts
        self.seen = seen
        self.producer = producer

    def outbound(self, tenant: str, contract: Contract, subject_id: str, traceparent: str | None) -> list[Outbound]:
        """An upstream event's messages: a new chain (correlation id), continuing the caller's trace if any."""
        envelope = Envelope(
            source=SOURCE,
            type=contract.TYPE,
            subject=f"contact/{subject_id}",
            tenant=tenant,
            correlation_id=new_id(),
            traceparent=child_traceparent(traceparent) if traceparent else new_traceparent(),
        )
        messages = [Outbound(EVENTS, contact_key(tenant, subject_id), envelope, contract)]
        if isinstance(contract, ConsentWithdrawn):
            key = f"{tenant}:{subject_id}:{contract.channel.value}".encode()
            messages.append(Outbound(CONSENT, key, envelope, contract))
        return messages

    async def refuse(self, request: Request, tenant: str | None, refusal: Refusal) -> JSONResponse:
        EVENTS_IN.labels("rejected", refusal.error).inc()
        log.warning("refused", tenant=tenant, status=refusal.status, error=refusal.error)
        body = EventRejected(
            status_code=refusal.status,
            reason=f"{refusal.error}: {_text(refusal.detail)}"[:2000],
            endpoint=request.url.path,
            upstream_event_id=refusal.upstream_event_id,
        )
        envelope = Envelope(
            source=SOURCE,
            type=EventRejected.TYPE,
            tenant=tenant or "unknown",
            correlation_id=new_id(),
            traceparent=new_traceparent(),
        )
        try:
            await self.producer.publish([], audit_only=[(None, envelope, body)])
        except Exception as exc:  # the refusal stands even if the audit write fails; say so in the log
            log.error("could not audit a refusal", error=repr(exc))
        return JSONResponse({"error": refusal.error, "detail": refusal.detail}, status_code=refusal.status)

    async def hubspot_webhook(self, request: Request, tenant_id: str) -> JSONResponse:
        body = await request.body()
        try:
            if len(body) > self.settings.max_body_bytes:
                raise Refusal(413, "payload_too_large", f"limit is {self.settings.max_body_bytes} bytes")
            tenant = self.tenants.get(tenant_id)
            if tenant is None:
                raise Refusal(404, "unknown_tenant", f"no tenant {tenant_id!r}")
            if not tenant.hubspot_app_secret:
                raise Refusal(403, "hubspot_not_configured", "this tenant has no HubSpot app secret")
            uri = self._public_uri(request)
            problem = verify_hubspot_v3(
                secret=tenant.hubspot_app_secret,
                method=request.method,
                uri=uri,
                body=body,
                timestamp=request.headers.get("x-hubspot-request-timestamp"),
                signature=request.headers.get("x-hubspot-signature-v3"),
                now=datetime.now(UTC),
                max_age_seconds=self.settings.signature_max_age_seconds,
            )
            if problem:
                raise Refusal(401, "bad_signature", problem)
            try:
                raw = json.loads(body)
            except json.JSONDecodeError as exc:
                raise Refusal(400, "malformed_json", str(exc)) from exc
            try:
                events = _batch.validate_python(raw)
            except ValidationError as exc:
                raise Refusal(422, "invalid_schema", _errors(exc)) from exc
            if tenant.hubspot_portal_id is not None:
                foreign = [e.event_id for e in events if e.portal_id != tenant.hubspot_portal_id]
                if foreign:
                    raise Refusal(
                        403, "wrong_portal", f"events {foreign[:5]} are not from portal {tenant.hubspot_portal_id}"
                    )
        except Refusal as refusal:
            return await self.refuse(request, tenant_id if self.tenants.get(tenant_id) else None, refusal)
        return await self._accept_hubspot(request, tenant_id, events)

    async def _accept_hubspot(self, request: Request, tenant: str, events: list[HubSpotEvent]) -> JSONResponse:
        rejected: list[dict[str, Any]] = []
        usable = [e for e in events if classify(e) is not None]
        for e in events:
            if classify(e) is None:
                rejected.append(
                    {"eventId": e.event_id, "reason": f"unsupported subscriptionType {e.subscription_type}"}
                )
        known = await self.contacts.get_many(tenant, [str(e.object_id) for e in usable])
        traceparent = request.headers.get("traceparent")
        accepted = duplicates = 0
        async with self.seen.claim(tenant, [(HUBSPOT, str(e.event_id)) for e in usable]) as fresh:
            messages: list[Outbound] = []
            for event in usable:
                if (HUBSPOT, str(event.event_id)) not in fresh:
                    duplicates += 1
                    continue
                contact = known.get(str(event.object_id))
                if contact is None:
                    rejected.append({"eventId": event.event_id, "reason": f"unknown contact {event.object_id}"})
                    continue
                if event.subscription_type == "contact.propertyChange":
                    await self.contacts.apply_property(
                        tenant, contact.contact_id, event.property_name, event.property_value
                    )
                    contact = (await self.contacts.get_many(tenant, [contact.contact_id]))[contact.contact_id]
                messages.extend(self.outbound(tenant, to_contract(event, contact), contact.contact_id, traceparent))
                accepted += 1
            audit = [self._rejection(tenant, request, r) for r in rejected]
            await self.producer.publish(messages, audit_only=audit)
        EVENTS_IN.labels("accepted", "-").inc(accepted)
        EVENTS_IN.labels("duplicate", "-").inc(duplicates)
        EVENTS_IN.labels("rejected", "item").inc(len(rejected))
        log.info("hubspot batch", tenant=tenant, accepted=accepted, duplicates=duplicates, rejected=len(rejected))
        return JSONResponse({"accepted": accepted, "duplicates": duplicates, "rejected": rejected})

    def _rejection(self, tenant: str, request: Request, item: dict[str, Any]) -> tuple[None, Envelope, Contract]:
        body = EventRejected(
            status_code=422, reason=item["reason"], endpoint=request.url.path, upstream_event_id=str(item["eventId"])
        )
        return (
            None,
            Envelope(
                source=SOURCE,
                type=EventRejected.TYPE,
                tenant=tenant,
                correlation_id=new_id(),
                traceparent=new_traceparent(),
            ),
            body,
        )

    async def cloudevent(self, request: Request) -> JSONResponse:
        body = await request.body()
        tenant_id: str | None = None
        try:
            if len(body) > self.settings.max_body_bytes:
                raise Refusal(413, "payload_too_large", f"limit is {self.settings.max_body_bytes} bytes")
            try:
                event = from_http(dict(request.headers), body)
            except CloudEventError as exc:
                raise Refusal(400, "invalid_cloudevent", str(exc)) from exc
            tenant_id = event.get("tenant")
            if not tenant_id or self.tenants.get(str(tenant_id)) is None:
                raise Refusal(
                    404, "unknown_tenant", f"no tenant {tenant_id!r} (CloudEvents extension `tenant`)", event["id"]
                )
            model = CLOUDEVENT_TYPES.get(event["type"])
            if model is None:
                raise Refusal(422, "unsupported_type", f"accepted types: {sorted(CLOUDEVENT_TYPES)}", event["id"])
            try:
                contract = model.model_validate(event.data)
            except ValidationError as exc:
                raise Refusal(422, "invalid_schema", _errors(exc), event["id"]) from exc
        except Refusal as refusal:
            return await self.refuse(
                request, tenant_id if tenant_id and self.tenants.get(str(tenant_id)) else None, refusal
            )
        tenant = str(tenant_id)
        subject_id = contract.contact.contact_id if hasattr(contract, "contact") else contract.contact_id  # type: ignore[attr-defined]
        async with self.seen.claim(tenant, [(str(event["source"]), str(event["id"]))]) as fresh:
            if not fresh:
                EVENTS_IN.labels("duplicate", "-").inc()
                return JSONResponse({"accepted": 0, "duplicates": 1}, status_code=200)
            await self.producer.publish(self.outbound(tenant, contract, subject_id, request.headers.get("traceparent")))
        EVENTS_IN.labels("accepted", "-").inc()
        return JSONResponse({"accepted": 1, "duplicates": 0}, status_code=202)

    def _public_uri(self, request: Request) -> str:
        if self.settings.public_base_url:
            query = f"?{request.url.query}" if request.url.query else ""
            return self.settings.public_base_url.rstrip("/") + request.url.path + query
        return str(request.url)


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()[:20]]


def _text(detail: Any) -> str:
    return detail if isinstance(detail, str) else json.dumps(detail)[:1500]


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn, max_size=20)
    await migrate(pool, "ingest", Path(str(files("herald_ingest") / "migrations")))
    producer = TransactionalProducer(common, "ingest")
    ingest = Ingest(settings, TenantDirectory(common.tenants_dir), PostgresContacts(pool), SeenEvents(pool), producer)
    http = FastAPI(title="herald-ingest", description="Where upstream systems publish events into Herald.")

    @http.post("/v1/webhooks/hubspot/{tenant}")
    async def hubspot_webhook(tenant: str, request: Request) -> JSONResponse:
        structlog.contextvars.bind_contextvars(tenant=tenant)
        return await ingest.hubspot_webhook(request, tenant)

    @http.post("/v1/events")
    async def cloudevents(request: Request) -> JSONResponse:
        return await ingest.cloudevent(request)

    async def db_ok() -> bool:
        return bool(await pool.fetchval("SELECT true"))

    async def producer_ok() -> bool:
        return producer.started

    add_ops_routes(http, {"postgres": db_ok, "kafka_producer": producer_ok})
    runtime = ServiceRuntime("ingest", http, settings.http_host, settings.http_port)
    runtime.on_start.append(producer.start)
    runtime.on_stop += [pool.close, producer.stop]
    return runtime
