"""Ingest wiring: the HTTP edge where upstream systems publish into Herald.

    POST /v1/webhooks/hubspot/{tenant}   HubSpot webhook batches (v3 signature)  → Ingest.hubspot_webhook
    POST /v1/events                      CloudEvents 1.0 (structured or binary)  → Ingest.cloudevent
    POST /v1/inbound/{tenant}/email      one raw message to the inbound address  → Ingest.inbound_email
    POST /v1/segments/{tenant}           the contacts matching a segment filter   → Ingest.segment
    GET  /healthz /readyz /metrics
    herald.executed.v1 (consumed)        the emails Herald sent                  → Ingest.on_executed

Valid events become `ContactCreated` / `ContactUpdated` / `ConsentWithdrawn` on herald.events.v1
(withdrawals also on the compacted herald.consent.v1), audit copies included, in one Kafka
transaction; the de-duplication rows commit only after it. Bounces and complaints (`bounces`) become
`ConsentWithdrawn` and `EmailEngagement` the same way; a person's reply (`replies`) becomes `ReplyReceived`,
matched to the email it answers by its thread (the sent emails are kept from the executor's reports), else to
the contact holding its sender's address. Bad input is refused with a 4xx and a JSON
`{"error", "detail"}`, and every refusal is on the audit as `EventRejected`; so is whatever part of an
inbound message is left aside (an automatic message, an unknown recipient or sender), with status 202.

HubSpot's webhook proves itself by its signature. The other two edges require one of a tenant's bearer tokens
when its file names `ingest_token_files` (`Authorization: Bearer <token>`, checked as soon as the tenant is
known, before the event or the message is validated); a tenant without them is open here, and the ingress in
front must authenticate its senders.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import structlog
from cloudevents.v1.exceptions import GenericException as CloudEventError
from cloudevents.v1.http import from_http
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import ValidationError

from herald_core.auth.access import AccessDenied
from herald_core.auth.callers import Authenticator
from herald_core.auth.services import ServiceKeys
from herald_core.bus import ConsumerWorker, Inbound, Outbound, TransactionalProducer, UnpublishableError
from herald_core.contracts import (
    ActionExecuted,
    ContactCreated,
    ContactFacts,
    ContactUpdated,
    Contract,
    EventRejected,
    ReplyMatch,
    ReplyReceived,
    SegmentFilter,
)
from herald_core.db import create_pool, migrate, readiness
from herald_core.envelope import Envelope
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_core.secret_files import SecretFiles
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.text import MAX_TEXT, JsonRefused, read_json, storable, text_problem, value_problem
from herald_core.topics import EVENTS, EXECUTED, contact_key
from herald_ingest.adapters.contacts import PostgresContacts, Segments
from herald_ingest.adapters.dedup import EventKey, SeenEvents
from herald_ingest.adapters.hubspot import HubSpotContacts, HubSpotUnavailable
from herald_ingest.adapters.threads import SentEmails
from herald_ingest.bounces import MalformedReport, Report, is_report, read_report, report_facts
from herald_ingest.logic import (
    CLOUDEVENT_TYPES,
    HUBSPOT,
    SOURCE,
    ContactDirectory,
    HubSpotEvent,
    apply_property,
    classify,
    consent_tombstones,
    continue_trace,
    crm_opt_out,
    erasures,
    messages_for,
    property_change,
    to_contract,
    validation_errors,
    verify_bearer,
    verify_hubspot_v3,
)
from herald_ingest.replies import INBOUND, Reply, UnreadableReply, read_reply, referral_of, sent_email_of
from herald_ingest.settings import Settings

MIGRATIONS = Path(str(files("herald_ingest") / "migrations"))
EVENTS_IN = Counter(
    "herald_ingest_events_total",
    "Upstream events by outcome (accepted, duplicate, ignored, rejected, failed) and reason.",
    ["outcome", "reason"],
)
REFERRALS = Counter("herald_ingest_referrals_total", "Referrals a person approved that became new leads.")
SEGMENT_READS = Counter("herald_ingest_segment_reads_total", "Segment reads by outcome.", ["outcome"])
log = get_logger("herald.ingest")


class Refusal(Exception):
    """Input ingest will not take: answered with `status`, `{"error", "detail"}` and `headers`, and audited."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: Any,
        upstream_event_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.upstream_event_id = status, error, detail, upstream_event_id
        self.headers = headers


class Unavailable(Exception):
    """Kafka, Postgres or the tenant's CRM could not take or give what the events need now; the sender should retry
    (503, with `Retry-After` when the CRM said how long to wait)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Ingest:
    def __init__(
        self,
        settings: Settings,
        tenants: TenantDirectory,
        contacts: ContactDirectory,
        seen: SeenEvents,
        producer: TransactionalProducer,
        sent: SentEmails,
        hubspot: HubSpotContacts | None = None,
        planner_only: Authenticator | None = None,
    ) -> None:
        self.settings = settings
        self.planner_only = planner_only  # who may read segments: the planner's service token
        self.sent = sent
        self.hubspot = hubspot
        self.tenants = tenants
        self.contacts = contacts
        self.seen = seen
        self.producer = producer
        self.token_files = SecretFiles()

    # ------------------------------------------------------------ HubSpot

    async def hubspot_webhook(self, request: Request, tenant_id: str) -> JSONResponse:
        tenant = self.tenants.get(tenant_id)
        try:
            if tenant is None:
                raise Refusal(404, "unknown_tenant", f"no tenant {tenant_id!r}")
            body = await self._read_body(request)
            if not tenant.hubspot_app_secret or tenant.hubspot_portal_id is None:
                raise Refusal(
                    403, "hubspot_not_configured", "this tenant has no hubspot_app_secret or hubspot_portal_id"
                )
            problem = verify_hubspot_v3(
                secret=tenant.hubspot_app_secret,
                method=request.method,
                uri=self._signed_uri(request),
                body=body,
                timestamp=request.headers.get("x-hubspot-request-timestamp"),
                signature=request.headers.get("x-hubspot-signature-v3"),
                now=datetime.now(UTC),
                max_age_seconds=self.settings.signature_max_age_seconds,
            )
            if problem:
                raise Refusal(401, *problem)
            try:
                # what no store can hold is refused per event below, not for the whole delivery
                raw = read_json(body, storable_only=False)
            except JsonRefused as exc:
                raise Refusal(400, exc.error, exc.detail) from exc
            if not isinstance(raw, list):
                detail = [{"loc": [], "msg": "a webhook delivery is a JSON array of events", "type": "list_type"}]
                raise Refusal(422, "invalid_schema", detail)
            # one event HubSpot sent malformed must not lose the others of its delivery: it is refused alone
            raw, refused = _storable_items(raw)
            events, invalid = _valid_events(raw)
            if invalid and not events and not refused:
                raise Refusal(422, "invalid_schema", [e for _, errors in invalid for e in errors][:20])
            refused += [
                (event_id, "invalid_schema", f"invalid event: {_first_error(errors)}") for event_id, errors in invalid
            ]
            foreign = [e.event_id for e in events if e.portal_id != tenant.hubspot_portal_id]
            if foreign:
                raise Refusal(
                    403, "wrong_portal", f"events {foreign[:5]} are not from portal {tenant.hubspot_portal_id}"
                )
        except Refusal as refusal:
            return await self.refuse(request, tenant, refusal)
        return await self._accept_hubspot(request, tenant, events, refused)

    async def _contacts_of(
        self, tenant: TenantConfig, events: Sequence[HubSpotEvent]
    ) -> tuple[dict[str, ContactFacts], dict[str, str], list[ContactFacts]]:
        """The contacts `events` are about, by the id each event names: those the store holds, and — for a tenant
        whose CRM is HubSpot — those it does not hold (or read longer ago than `hubspot_stale_seconds`), read from
        HubSpot's CRM API in one batch read and kept in the store. Also why each contact not found is missing, and
        the contacts read as opted out in HubSpot (each to be withdrawn on the consent topic).

        `HubSpotUnavailable` when HubSpot cannot be read now: nothing was claimed, and the webhook is answered 503
        so HubSpot delivers it again (it retries for up to three days)."""
        wanted = sorted({str(e.object_id) for e in events if classify(e) != "erased"})
        known = await self.contacts.get_many(tenant.tenant_id, sorted({str(e.object_id) for e in events}))
        missing: dict[str, str] = {}
        opted_out: list[ContactFacts] = []
        if tenant.crm.kind != "hubspot" or self.hubspot is None:
            return known, missing, opted_out
        stale_before = datetime.now(UTC) - timedelta(seconds=self.settings.hubspot_stale_seconds)
        fetched = await self.contacts.fetched_at(tenant.tenant_id, [i for i in wanted if i in known])
        to_read = [i for i in wanted if i not in known or (i in fetched and fetched[i] < stale_before)]
        if not to_read:
            return known, missing, opted_out
        read = await self.hubspot.read(tenant, to_read)
        found = {asked: contact for asked in to_read if (contact := read.get(asked)) is not None}
        await self.contacts.upsert_fetched(tenant.tenant_id, list({c.contact_id: c for c in found.values()}.values()))
        stored = await self.contacts.get_many(tenant.tenant_id, sorted({c.contact_id for c in found.values()}))
        for asked, contact in found.items():
            if contact.contact_id in stored:
                known[asked] = stored[contact.contact_id]
                if contact.opted_out:
                    opted_out.append(stored[contact.contact_id])
        for asked in to_read:
            if asked not in known:
                missing[asked] = f"unknown contact {asked}: HubSpot has no such contact"
        log.info("contacts read from hubspot", tenant=tenant.tenant_id, asked=len(to_read), found=len(found))
        return known, missing, opted_out

    async def _accept_hubspot(
        self,
        request: Request,
        tenant_config: TenantConfig,
        events: list[HubSpotEvent],
        refused: list[tuple[int | None, str, str]],
    ) -> JSONResponse:
        tenant = tenant_config.tenant_id
        properties = tenant_config.crm.contact_properties
        header = request.headers.get("traceparent")
        # (the event, or the id of one that could not be read; the metric reason; the reason in words)
        rejected: list[tuple[HubSpotEvent | int | None, str, str]] = list(refused)
        duplicates = 0
        candidates: list[HubSpotEvent] = []
        ids_in_batch: set[int] = set()
        for event in events:
            if classify(event) is None:
                rejected.append((event, "unsupported_type", f"unsupported subscriptionType {event.subscription_type}"))
            elif event.event_id in ids_in_batch:
                duplicates += 1  # the same event twice in one delivery
            else:
                ids_in_batch.add(event.event_id)
                candidates.append(event)
        try:
            known, missing, opted_out = await self._contacts_of(tenant_config, candidates)
        except HubSpotUnavailable as exc:
            raise Unavailable(f"HubSpot's CRM API cannot be read now: {exc}", retry_after=exc.retry_after) from exc
        usable: list[HubSpotEvent] = []
        for event in candidates:
            contact = known.get(str(event.object_id))
            if contact is None and classify(event) == "erased":
                # an erasure of a contact this store never held still reaches every other store
                contact = known[str(event.object_id)] = ContactFacts(contact_id=str(event.object_id))
            if contact is None:
                words = missing.get(str(event.object_id), f"unknown contact {event.object_id}")
                rejected.append((event, "unknown_contact", words))
                continue
            change = property_change(event.property_name, event.property_value, properties)
            if change is not None:
                try:
                    apply_property(contact, *change)
                except ValidationError as exc:
                    problem = exc.errors()[0]["msg"] if exc.errors() else str(exc)
                    rejected.append((event, "invalid_property", f"invalid {event.property_name}: {problem}"))
                    continue
            usable.append(event)
        # property changes of one contact apply in the order they happened
        usable.sort(key=lambda e: (e.occurred_at, e.event_id))

        accepted: list[Outbound] = []
        withdrawals = {(HUBSPOT, f"optout-{c.contact_id}"): c for c in opted_out}
        async with self.seen.claim(tenant, [*withdrawals, *((HUBSPOT, str(e.event_id)) for e in usable)]) as fresh:
            messages: list[Outbound] = []
            for key, contact in withdrawals.items():
                if key in fresh:  # opted out in HubSpot before Herald read the contact: withdrawn first, once
                    messages.extend(messages_for(tenant, crm_opt_out(contact, key[1]), continue_trace(header)))
            for event in usable:
                if (HUBSPOT, str(event.event_id)) not in fresh:
                    duplicates += 1
                    continue
                contact_id = str(event.object_id)
                contact = known[contact_id]
                change = property_change(event.property_name, event.property_value, properties)
                if change is not None:
                    # persisted before the publish: a failed publish leaves the event unseen, and its
                    # retry sets the same value again
                    contact = known[contact_id] = apply_property(contact, *change)
                    await self.contacts.record_property(tenant, contact_id, *change)
                out = messages_for(tenant, to_contract(event, contact), continue_trace(header))
                messages.extend(out)
                accepted.append(out[0])
            audit = [self._item_rejection(request, tenant, event, words, header) for event, _, words in rejected]
            if messages or audit:
                await self._publish(messages, audit)
        self._count_accepted(tenant, accepted, duplicates)
        for _, reason, words in rejected:
            EVENTS_IN.labels("rejected", reason).inc()
            log.warning("event refused", tenant=tenant, reason=words)
        log.info("hubspot batch", tenant=tenant, accepted=len(accepted), duplicates=duplicates, rejected=len(rejected))
        return JSONResponse(
            {
                "accepted": len(accepted),
                "duplicates": duplicates,
                "rejected": [{"eventId": _event_id(event), "reason": words} for event, _, words in rejected],
            }
        )

    def _item_rejection(
        self, request: Request, tenant: str, event: HubSpotEvent | int | None, reason: str, header: str | None
    ) -> tuple[bytes | None, Envelope, Contract]:
        contact_id = str(event.object_id) if isinstance(event, HubSpotEvent) else None
        envelope = Envelope.new_chain(
            source=SOURCE,
            type=EventRejected.TYPE,
            subject=f"contact/{contact_id}" if contact_id else None,
            tenant=tenant,
            traceparent=continue_trace(header),
        )
        event_id = _event_id(event)
        body = EventRejected(
            status_code=422,
            reason=storable(reason, 2000),
            endpoint=request.url.path,
            upstream_event_id=str(event_id) if event_id is not None else None,
        )
        return (contact_key(tenant, contact_id) if contact_id else None), envelope, body

    def _signed_uri(self, request: Request) -> str:
        """The URI HubSpot signed: the one it called (behind an ingress, `public_base_url`), path as sent."""
        raw_path = request.scope.get("raw_path")
        path = raw_path.decode("latin-1").split("?", 1)[0] if raw_path else request.url.path
        query = f"?{request.url.query}" if request.url.query else ""
        base = self.settings.public_base_url or f"{request.url.scheme}://{request.url.netloc}"
        return base.rstrip("/") + path + query

    # ------------------------------------------------------------ CloudEvents

    async def cloudevent(self, request: Request) -> JSONResponse:
        tenant: TenantConfig | None = None
        try:
            body = await self._read_body(request)
            if _is_json(request.headers.get("content-type")) or body.lstrip()[:1] in (b"{", b"["):
                try:  # before the SDK parses it: JSON nested without end makes any parser recurse without end
                    read_json(body)
                except JsonRefused as exc:
                    if exc.error == "malformed_json":
                        raise Refusal(400, "invalid_cloudevent", exc.detail) from exc
                    raise Refusal(422, exc.error, exc.detail) from exc
            try:
                event = from_http(dict(request.headers), body)
            except (CloudEventError, ValueError, TypeError, AttributeError, RecursionError) as exc:
                raise Refusal(400, "invalid_cloudevent", storable(str(exc), 1000) or type(exc).__name__) from exc
            problem = _attributes_problem(event)
            if problem is not None:
                raise Refusal(400, "invalid_cloudevent", problem)
            event_id = str(event["id"])
            tenant_id = event.get("tenant")
            if not tenant_id:
                raise Refusal(400, "missing_tenant", "the CloudEvents extension `tenant` is required", event_id)
            tenant = self.tenants.get(str(tenant_id))
            if tenant is None:
                raise Refusal(404, "unknown_tenant", f"no tenant {tenant_id!r}", event_id)
            # whatever the mode (structured, binary, or both at once, where from_http reads one), the tenant
            # checked is the one parsed, which is the one the event is published under
            self._authenticate(request, tenant, event_id)
            model = CLOUDEVENT_TYPES.get(str(event["type"]))
            if model is None:
                accepted_types = ", ".join(sorted(CLOUDEVENT_TYPES))
                detail = f"type {event['type']!r} is not one of {accepted_types}"
                raise Refusal(422, "unsupported_type", detail, event_id)
            try:
                contract = model.model_validate(event.get_data())
            except ValidationError as exc:
                raise Refusal(422, "invalid_schema", validation_errors(exc), event_id) from exc
        except Refusal as refusal:
            return await self.refuse(request, tenant, refusal)
        # the CloudEvents distributed-tracing extension, else the HTTP header
        traceparent = event.get("traceparent") or request.headers.get("traceparent")
        key = (str(event["source"]), event_id)
        accepted, duplicates = await self.accept(tenant.tenant_id, [(key, contract)], traceparent)
        if accepted and isinstance(contract, ContactCreated | ContactUpdated):
            # Herald's contact store holds it too: a bounce or a reply from its address finds it
            await self.contacts.remember(tenant.tenant_id, [contract.contact])
        return JSONResponse({"accepted": accepted, "duplicates": duplicates}, status_code=202 if accepted else 200)

    # ------------------------------------------------------------ segments (a campaign task's audience)

    async def segment(self, request: Request, tenant_id: str, segments: Segments) -> JSONResponse:
        """The contacts matching a segment filter: `{"matched": n, "truncated": bool, "contacts": [...]}`, by id, at
        most the filter's `limit`. Asked by the planner for a campaign task's audience; opted-out contacts and
        contacts without an address are never answered (the guard still decides every send to the others). A read,
        so a refusal is answered but not audited; only the planner's service token is answered (contacts' data)."""
        tenant = self.tenants.get(tenant_id)
        try:
            try:
                if self.planner_only is None:
                    raise AccessDenied(503, "no_service_keys", "segments are answered only to the planner's token")
                await self.planner_only(request)
            except AccessDenied as denied:
                raise Refusal(denied.status, denied.error, denied.detail) from denied
            if tenant is None:
                raise Refusal(404, "unknown_tenant", f"no tenant {tenant_id!r}")
            try:
                raw = read_json(await self._read_body(request))
            except JsonRefused as exc:
                raise Refusal(400, exc.error, exc.detail) from exc
            try:
                wanted = SegmentFilter.model_validate(raw)
            except ValidationError as exc:
                raise Refusal(422, "invalid_segment", validation_errors(exc)) from exc
        except Refusal as refusal:
            SEGMENT_READS.labels("refused").inc()
            return JSONResponse(
                {"error": refusal.error, "detail": _storable_detail(refusal.detail)},
                status_code=refusal.status,
                headers=refusal.headers,
            )
        matched, contacts = await segments.matching(tenant_id, wanted)
        SEGMENT_READS.labels("answered").inc()
        log.info("segment read", tenant=tenant_id, matched=matched, answered=len(contacts))
        return JSONResponse(
            {
                "matched": matched,
                "truncated": matched > len(contacts),
                "contacts": [c.model_dump(mode="json") for c in contacts],
            }
        )

    # ------------------------------------------------------------ bounces and complaints

    async def inbound_email(self, request: Request, tenant_id: str) -> JSONResponse:
        """One message that arrived at the tenant's inbound address, raw: a bounce or complaint report, or a
        person's reply. A hard bounce or a complaint withdraws consent and a reply moves workflows, so with the
        tenant's ingest tokens the sender must hold one; it is checked before the body is read."""
        tenant = self.tenants.get(tenant_id)
        try:
            if tenant is None:
                raise Refusal(404, "unknown_tenant", f"no tenant {tenant_id!r}")
            self._authenticate(request, tenant)
            media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media_type != "message/rfc822":
                detail = f"send the raw message as message/rfc822, not {media_type or 'no Content-Type'}"
                raise Refusal(415, "unsupported_media_type", detail)
            body = await self._read_body(request)
            if not body.strip():
                raise Refusal(400, "empty_message", "the body holds no message")
            if not is_report(body):
                try:
                    reply = read_reply(body, datetime.now(UTC))
                except UnreadableReply as exc:
                    raise Refusal(exc.status, exc.code, exc.reason, exc.message_id) from exc
                return await self._accept_reply(request, tenant.tenant_id, reply)
            try:
                report = read_report(body, datetime.now(UTC))
            except MalformedReport as exc:
                raise Refusal(422, "malformed_report", str(exc), exc.report_id) from exc
        except Refusal as refusal:
            return await self.refuse(request, tenant, refusal)
        return await self._accept_report(request, tenant.tenant_id, report)

    async def _accept_reply(self, request: Request, tenant: str, reply: Reply) -> JSONResponse:
        """A person's reply: matched by its thread, else by its sender; or left aside with the reason (202)."""
        matched = await self._reply_of(tenant, reply)
        if isinstance(matched, tuple):
            code, reason = matched
            record = _rejected_record(request, tenant, 202, f"{code}: {reason}", reply.message_id)
            await self._publish([], [record])
            EVENTS_IN.labels("ignored", code).inc()
            log.info("inbound reply left aside", tenant=tenant, message_id=reply.message_id, reason=code)
            return JSONResponse(
                {"accepted": 0, "duplicates": 0, "ignored": [{"recipient": None, "reason": reason}]}, status_code=202
            )
        key = (INBOUND, reply.message_id)
        accepted, duplicates = await self.accept(tenant, [(key, matched)], request.headers.get("traceparent"))
        log.info(
            "inbound reply",
            tenant=tenant,
            message_id=reply.message_id,
            contact_id=matched.contact.contact_id,
            action_id=matched.answers_action_id,
            matched_by=matched.matched_by.value,
            out_of_office=matched.out_of_office,
            accepted=accepted,
            duplicates=duplicates,
        )
        return JSONResponse(
            {"accepted": accepted, "duplicates": duplicates, "ignored": []},
            status_code=200 if duplicates and not accepted else 202,
        )

    async def _reply_of(self, tenant: str, reply: Reply) -> ReplyReceived | tuple[str, str]:
        """The reply as `ReplyReceived`, or (code, reason) for leaving it aside; the reasons name no address."""
        if reply.automatic is not None:
            return "automatic", reply.automatic
        if not reply.text and not reply.out_of_office:
            return "nothing_new", "the reply adds no text to what it quotes"
        thread = await self.sent.find(tenant, reply.thread)
        if thread is not None:
            named, sent = thread
            contact = (await self.contacts.get_many(tenant, [sent.contact_id])).get(sent.contact_id)
            if contact is None:
                return "unknown_contact", "the email it answers went to a contact Herald no longer holds"
            match = ReplyMatch.IN_REPLY_TO if named == reply.in_reply_to else ReplyMatch.REFERENCES
        else:
            holders = (await self.contacts.find_by_email(tenant, [reply.from_address])).get(reply.from_address, [])
            if not holders:
                return "unknown_sender", "neither its thread nor its sender is known: no email Herald sent, no contact"
            if len(holders) > 1:
                return "ambiguous_sender", f"no known thread, and {len(holders)} contacts hold the sender's address"
            contact, sent, named, match = holders[0], None, None, ReplyMatch.SENDER
        return ReplyReceived(
            contact=contact,
            message_id=reply.message_id,
            matched_by=match,
            in_reply_to=named,
            answers_action_id=sent.action_id if sent else None,
            answers_workflow_id=sent.workflow_id if sent else None,
            references=reply.references,
            from_address=reply.from_address,
            subject=reply.subject,
            text=reply.text,
            clipped=reply.clipped,
            out_of_office=reply.out_of_office,
            returns_on=reply.returns_on,
            upstream_source=INBOUND,
            upstream_event_id=reply.message_id,
            occurred_at=reply.sent_at,
        )

    # ------------------------------------------------------------ what Herald sent

    async def on_executed(self, msg: Inbound) -> list[Outbound]:
        """Keep each email Herald sent, so a reply's thread finds its contact and run; and make a referral a
        person approved (`create_contact` in Herald's own store) a new lead."""
        if not isinstance(msg.body, ActionExecuted):
            return []
        tenant = msg.envelope.tenant
        sent = sent_email_of(msg.body)
        if sent is not None:
            await self.sent.record(tenant, sent)
        made = referral_of(msg.body)
        if made is None:
            return []
        holders = (await self.contacts.find_by_email(tenant, [made.email])).get(made.email.lower(), [])
        if any(h.contact_id != made.contact_id for h in holders):
            log.info("a referral's address belongs to a known contact: no new lead", referred_by=made.referred_by)
            return []
        facts = ContactFacts(
            contact_id=made.contact_id,
            email=made.email,
            first_name=made.first_name,
            last_name=made.last_name,
            company=made.company,
            lifecycle_stage="lead",
        )
        await self.contacts.remember(tenant, [facts])
        created = ContactCreated(
            contact=facts,
            upstream_source="herald-referral",
            upstream_event_id=msg.body.action_id,
            occurred_at=datetime.now(UTC),
        )
        # in the chain of the reply that named them: `herald explain` tells where the lead came from
        envelope = msg.envelope.caused(source=SOURCE, type=ContactCreated.TYPE, subject=f"contact/{made.contact_id}")
        REFERRALS.inc()
        log.info("a referral became a new lead", referred_by=made.referred_by)
        return [Outbound(EVENTS, contact_key(tenant, made.contact_id), envelope, created)]

    async def _accept_report(self, request: Request, tenant: str, report: Report) -> JSONResponse:
        header = request.headers.get("traceparent")
        addresses = sorted({p.recipient for p in report.problems})
        holders = await self.contacts.find_by_email(tenant, addresses) if addresses else {}
        items, ignored = report_facts(report, holders)
        # what is left aside is on the audit too (in the same transaction), so "why was this bounce not
        # recorded" has an answer; the reasons name no address
        audit = [
            _rejected_record(request, tenant, 202, f"{item.code}: {item.reason}", report.report_id) for item in ignored
        ]
        accepted, duplicates = await self.accept(tenant, items, header, audit_only=audit)
        for item in ignored:
            EVENTS_IN.labels("ignored", item.code).inc()
        log.info(
            "inbound email",
            tenant=tenant,
            report_id=report.report_id,
            action_id=report.original_action_id,
            problems=[p.outcome.value for p in report.problems],
            accepted=accepted,
            duplicates=duplicates,
            ignored=[item.code for item in ignored],
        )
        return JSONResponse(
            {
                "accepted": accepted,
                "duplicates": duplicates,
                "ignored": [{"recipient": item.recipient, "reason": item.reason} for item in ignored],
            },
            status_code=200 if duplicates and not accepted else 202,
        )

    # ------------------------------------------------------------ shared

    def _authenticate(self, request: Request, tenant: TenantConfig, upstream_event_id: str | None = None) -> None:
        """Refuse the request unless it carries one of the tenant's ingest tokens (a tenant with none is open).

        The files are read at each request (their text kept until they change), so a token added, rewritten
        or removed counts from the next request. A file that cannot be read is left out (the old token of a
        rotation may go before the tenant file stops naming it); if none can be read, every request is refused."""
        if not tenant.ingest_token_files:
            return
        tokens: list[str] = []
        for path in tenant.ingest_token_files:
            try:
                tokens.append(self.token_files.read(path))
            except (OSError, UnicodeDecodeError) as exc:
                # the path and the reason only: the error of a read never holds the file's text
                log.warning(
                    "ingest token file unreadable", tenant=tenant.tenant_id, path=str(path), error=type(exc).__name__
                )
        problem = verify_bearer(request.headers.get("authorization"), tokens)
        if problem is not None:
            status, error, detail = problem
            challenge = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            raise Refusal(status, error, detail, upstream_event_id, headers=challenge)

    async def accept(
        self,
        tenant: str,
        items: Sequence[tuple[EventKey, Contract]],
        traceparent: str | None,
        audit_only: Sequence[tuple[bytes | None, Envelope, Contract]] = (),
    ) -> tuple[int, int]:
        """Publish the events not seen before (by key), once, and `audit_only` records in the same transaction;
        return (accepted, duplicates)."""
        duplicates = 0
        unique: dict[EventKey, Contract] = {}
        for key, contract in items:
            if key in unique:
                duplicates += 1
            else:
                unique[key] = contract
        accepted: list[Outbound] = []
        async with self.seen.claim(tenant, list(unique)) as fresh:
            messages: list[Outbound] = []
            for key, contract in unique.items():
                if key not in fresh:
                    duplicates += 1
                    continue
                out = messages_for(tenant, contract, continue_trace(traceparent))
                messages.extend(out)
                accepted.append(out[0])
            if messages or audit_only:
                await self._publish(messages, audit_only)
        self._count_accepted(tenant, accepted, duplicates)
        return len(accepted), duplicates

    async def refuse(self, request: Request, tenant: TenantConfig | None, refusal: Refusal) -> JSONResponse:
        """Answer a refusal and record it on the audit (tenant `unknown` when there is none)."""
        tenant_id = tenant.tenant_id if tenant else "unknown"
        reason = f"{refusal.error}: {_text(refusal.detail)}"
        record = _rejected_record(request, tenant_id, refusal.status, reason, refusal.upstream_event_id)
        _, envelope, _ = record
        # no refusal goes unrecorded: if the audit cannot be written, ask the sender to come back
        await self._publish([], [record])
        EVENTS_IN.labels("rejected", refusal.error).inc()
        log.warning(
            "request refused",
            tenant=tenant_id,
            correlation_id=envelope.correlation_id,
            status=refusal.status,
            error=refusal.error,
            detail=_text(refusal.detail)[:500],
        )
        return JSONResponse(
            {"error": refusal.error, "detail": _storable_detail(refusal.detail)},
            status_code=refusal.status,
            headers=refusal.headers,
        )

    async def _publish(
        self, messages: Sequence[Outbound], audit_only: Sequence[tuple[bytes | None, Envelope, Contract]] = ()
    ) -> None:
        """One Kafka transaction, or `Unavailable`. No timeout of our own: a transaction given up on
        here could still commit, and the sender's retry would then publish the events twice."""
        if not self.producer.started:  # publishing on a stopped producer would wait forever
            raise Unavailable("the Kafka producer is not running")
        erased = erasures(messages)
        try:
            await self.producer.publish(messages, audit_only=audit_only, tombstones=consent_tombstones(erased))
        except UnpublishableError:
            raise  # this request's own messages; nothing was sent, and a retry would fail the same way
        except Exception as exc:  # whatever the failure (a broker outage, a fenced producer), nothing was published
            raise Unavailable(f"Kafka did not take the events: {exc!r}") from exc
        # once the erasure is on Kafka (so every other store follows), this store forgets the contact too
        for tenant, contact_id in erased:
            await self.contacts.erase(tenant, contact_id)
            await self.sent.forget(tenant, contact_id)

    def _count_accepted(self, tenant: str, accepted: Sequence[Outbound], duplicates: int) -> None:
        for out in accepted:
            log.info(
                "event accepted",
                tenant=tenant,
                correlation_id=out.envelope.correlation_id,
                type=out.envelope.type,
                subject=out.envelope.subject,
                upstream_event_id=getattr(out.body, "upstream_event_id", None),
            )
        if accepted:
            EVENTS_IN.labels("accepted", "none").inc(len(accepted))
        if duplicates:
            EVENTS_IN.labels("duplicate", "duplicate").inc(duplicates)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Refusal(413, "payload_too_large", f"limit is {limit} bytes")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refusal(413, "payload_too_large", f"limit is {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _event_id(event: HubSpotEvent | int | None) -> int | None:
    return event.event_id if isinstance(event, HubSpotEvent) else event


def _storable_items(raw: list[Any]) -> tuple[list[Any], list[tuple[int | None, str, str]]]:
    """A webhook delivery without the events holding a value no store can hold (a NUL, a lone surrogate, a number
    past bigint, a string past `MAX_TEXT`), and for each of those its id (when usable), metric reason and words."""
    kept: list[Any] = []
    refused: list[tuple[int | None, str, str]] = []
    for item in raw:
        problem = value_problem(item, max_text=MAX_TEXT)
        if problem is None:
            kept.append(item)
            continue
        event_id = item.get("eventId") if isinstance(item, dict) else None
        usable_id = event_id if isinstance(event_id, int) and value_problem(event_id) is None else None
        refused.append((usable_id, "unstorable_value", f"a value no store can hold: {problem}"))
    return kept, refused


def _valid_events(raw: list[Any]) -> tuple[list[HubSpotEvent], list[tuple[int | None, list[dict[str, Any]]]]]:
    """The events of a delivery that match HubSpot's shape, and for each one that does not its id (when it has
    a usable one) and its errors, located by its place in the delivery."""
    events: list[HubSpotEvent] = []
    invalid: list[tuple[int | None, list[dict[str, Any]]]] = []
    for index, item in enumerate(raw):
        try:
            events.append(HubSpotEvent.model_validate(item))
        except ValidationError as exc:
            errors = [{**e, "loc": [index, *e["loc"]]} for e in validation_errors(exc)]
            event_id = item.get("eventId") if isinstance(item, dict) else None
            invalid.append((event_id if isinstance(event_id, int) and event_id >= 0 else None, errors))
    return events, invalid


def _first_error(errors: list[dict[str, Any]]) -> str:
    first = errors[0]
    return f"{'.'.join(str(p) for p in first['loc'][1:]) or '(event)'}: {first['msg']}"


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


#: the longest CloudEvents attribute value taken (ids, sources and types are short; 500 is generous)
_MAX_ATTRIBUTE = 500


def _attributes_problem(event: Any) -> str | None:
    """Why the event's context attributes cannot be kept (each is stored and logged), or None."""
    for name, value in event.get_attributes().items():
        text = value if isinstance(value, str) else str(value)
        if len(text) > _MAX_ATTRIBUTE:
            return f"attribute {storable(name, 40)} is longer than {_MAX_ATTRIBUTE} characters"
        if (problem := text_problem(text)) is not None:
            return f"attribute {storable(name, 40)} {problem}"
    return None


def _storable_detail(detail: Any) -> Any:
    """A refusal's detail as JSON can carry it: a detail may quote what was refused (a field's name, a key), and
    what no store can hold cannot be answered either."""
    if isinstance(detail, str):
        return storable(detail, 2000)
    if isinstance(detail, list):
        return [_storable_detail(item) for item in detail]
    if isinstance(detail, dict):
        return {storable(str(k), 200): _storable_detail(v) for k, v in detail.items()}
    return detail


def _text(detail: Any) -> str:
    return detail if isinstance(detail, str) else json.dumps(detail)[:1500]


async def _answer(handling: Awaitable[JSONResponse]) -> JSONResponse:
    """The handler's answer; an outage becomes a 503 the sender retries (nothing was marked seen), a bug a 500."""
    try:
        return await handling
    except UnpublishableError as exc:
        EVENTS_IN.labels("rejected", "unpublishable").inc()
        log.error("request refused: its messages cannot be published", error=str(exc))
        return JSONResponse({"error": "unpublishable", "detail": storable(str(exc), 1000)}, status_code=422)
    except (Unavailable, asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        EVENTS_IN.labels("failed", "unavailable").inc()
        log.error("could not take the request; the sender should retry", error=repr(exc))
        wait = getattr(exc, "retry_after", None)
        return JSONResponse(
            {"error": "unavailable", "detail": "the events could not be recorded now; retry"},
            status_code=503,
            headers={"Retry-After": str(max(1, round(wait)))} if wait else None,
        )
    except Exception:
        EVENTS_IN.labels("failed", "internal_error").inc()
        log.exception("request failed")
        return JSONResponse({"error": "internal_error", "detail": "see the service log"}, status_code=500)


def _rejected_record(
    request: Request, tenant: str, status: int, reason: str, upstream_event_id: str | None
) -> tuple[bytes | None, Envelope, Contract]:
    """An `EventRejected` audit record (a new chain under the caller's trace) of what an endpoint did not take."""
    envelope = Envelope.new_chain(
        source=SOURCE,
        type=EventRejected.TYPE,
        tenant=tenant,
        traceparent=continue_trace(request.headers.get("traceparent")),
    )
    body = EventRejected(
        status_code=status,
        reason=storable(reason, 2000),
        endpoint=storable(request.url.path, 2000),
        upstream_event_id=storable(upstream_event_id, 500) if upstream_event_id is not None else None,
    )
    return None, envelope, body


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn, max_size=settings.pg_pool_size)
    await migrate(pool, "ingest", MIGRATIONS)
    producer = TransactionalProducer(common, "ingest")
    crm_client = httpx.AsyncClient(timeout=settings.hubspot_timeout_seconds)
    hubspot = HubSpotContacts(crm_client, budget_seconds=settings.hubspot_budget_seconds)
    contacts = PostgresContacts(pool)
    tenants = TenantDirectory(common.tenants_dir)
    keys = ServiceKeys(common.auth.service_keys_dir, "ingest", common.auth.service_token_seconds)
    planner_only = Authenticator(common.auth, keys, services=("planner",), people=False)
    ingest = Ingest(settings, tenants, contacts, SeenEvents(pool), producer, SentEmails(pool), hubspot, planner_only)
    worker = ConsumerWorker(common, "ingest", "sent", {EXECUTED: ingest.on_executed})
    http = FastAPI(title="herald-ingest", description="Where upstream systems publish events into Herald.")

    @http.post("/v1/webhooks/hubspot/{tenant}")
    async def hubspot_webhook(tenant: str, request: Request) -> JSONResponse:
        with structlog.contextvars.bound_contextvars(tenant=tenant, endpoint="hubspot"):
            return await _answer(ingest.hubspot_webhook(request, tenant))

    @http.post("/v1/events")
    async def cloudevents(request: Request) -> JSONResponse:
        with structlog.contextvars.bound_contextvars(endpoint="cloudevents"):
            return await _answer(ingest.cloudevent(request))

    @http.post("/v1/inbound/{tenant}/email")
    async def inbound_email(tenant: str, request: Request) -> JSONResponse:
        with structlog.contextvars.bound_contextvars(tenant=tenant, endpoint="inbound_email"):
            return await _answer(ingest.inbound_email(request, tenant))

    segments = Segments(pool)

    @http.post("/v1/segments/{tenant}")
    async def segment(tenant: str, request: Request) -> JSONResponse:
        with structlog.contextvars.bound_contextvars(tenant=tenant, endpoint="segments"):
            return await _answer(ingest.segment(request, tenant, segments))

    async def producer_ok() -> bool:
        return producer.started

    add_ops_routes(http, {"postgres": readiness(pool), "kafka_producer": producer_ok, "consumer": worker.ready})
    runtime = ServiceRuntime("ingest", http, settings.http_host, settings.http_port)
    runtime.on_start += [producer.start, worker.start]
    runtime.on_stop += [pool.close, producer.stop, worker.stop, crm_client.aclose]
    return runtime
