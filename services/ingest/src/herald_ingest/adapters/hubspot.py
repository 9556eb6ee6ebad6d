"""Contacts read from the tenant's HubSpot: CRM v3 batch reads with the tenant's private app token, their
company through its association, HubSpot's rate limits honoured and its outages retried within a time budget.

One call reads up to 100 contacts (`POST /crm/v3/objects/contacts/batch/read`). HubSpot answers 200 when it
found them all and 207 (multi-status) when it did not: the ones it has in `results`, the others under `errors`
with `category: OBJECT_NOT_FOUND` and their ids in `context.ids` (deleted, archived, or never there). A contact
merged into another comes back under the surviving id, the old one in its `hs_merged_object_ids`. A contact
with no company of its own gets its associated company's name (`POST /crm/v4/associations/contacts/companies/
batch/read`, the primary association first, then `POST /crm/v3/objects/companies/batch/read`).

HubSpot gives up on a webhook answered too slowly, so the retries live within `budget_seconds` for one read;
what cannot be read within it is `HubSpotUnavailable`, for the webhook to be answered 503 and sent again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter
from tenacity.stop import stop_base

from herald_core import hubspot
from herald_core.bus import http_status_is_transient
from herald_core.observability import get_logger
from herald_core.secret_files import SecretFiles
from herald_core.tenants import CrmConnection, TenantConfig
from herald_ingest.logic import CrmContact, contact_from_hubspot

CONTACTS_READ = "/crm/v3/objects/contacts/batch/read"
COMPANY_ASSOCIATIONS_READ = "/crm/v4/associations/contacts/companies/batch/read"
COMPANIES_READ = "/crm/v3/objects/companies/batch/read"

#: HubSpot's association type of a contact's primary company (HUBSPOT_DEFINED); 279 is the unlabelled one
PRIMARY_COMPANY_TYPE_ID = 1
#: what HubSpot reads with every contact besides the mapped properties: which contacts it absorbed in a merge
MERGED_IDS = "hs_merged_object_ids"

CALLS = Counter(
    "herald_ingest_hubspot_calls_total",
    "Calls to HubSpot's CRM API by endpoint and outcome (ok, rate_limited, unavailable, unauthorized, refused).",
    ["endpoint", "outcome"],
)
log = get_logger("herald.ingest.hubspot")


class HubSpotUnavailable(Exception):
    """HubSpot could not be read: unreachable, or failing (5xx, 429) through every retry the budget allowed, or
    asking for a longer wait than the budget has. Nothing is known of the contacts asked for — answer the webhook
    503 (or 429 with `retry_after`) so HubSpot sends it again."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds HubSpot asked to wait, when it said


class HubSpotUnauthorized(HubSpotUnavailable):
    """HubSpot refused the tenant's private app token (401, or 403: a revoked token or a missing scope), or there
    is no token to send. To the sender an outage like any other (answer 503); but it is the deployment's fault
    and no retry ends it: the token file (`crm.hubspot_token_file`) or the app's scopes must be fixed."""


class _Transient(Exception):
    """A failed call worth another attempt (HubSpot unreachable, 5xx, a rate limit), with the wait it asked for."""

    def __init__(self, message: str, *, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


@dataclass(frozen=True)
class Company:
    """A contact's company as HubSpot holds it."""

    company_id: str
    name: str | None
    domain: str | None


@dataclass(frozen=True)
class ContactsRead:
    """What one read found. `contacts` are keyed by the id HubSpot answered with; an id asked for that was merged
    into another contact is in `merged` (asked → surviving id), one HubSpot does not have in `missing`."""

    contacts: dict[str, CrmContact] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    merged: dict[str, str] = field(default_factory=dict)
    left_out: dict[str, tuple[str, ...]] = field(default_factory=dict)  # contact → values not kept, and why
    companies: dict[str, Company] = field(default_factory=dict)  # contact → the company its name came from
    companies_unread: str | None = None  # why companies could not be read (the contacts are complete otherwise)

    def get(self, contact_id: str) -> CrmContact | None:
        """The contact asked for as `contact_id`, followed through a merge."""
        return self.contacts.get(self.merged.get(contact_id, contact_id))


def _chunks(items: Sequence[str], size: int = hubspot.BATCH_LIMIT) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


class _PastDeadline(stop_base):
    """tenacity stop: no attempt whose wait would end after the read's deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, state: RetryCallState) -> bool:
        return time.monotonic() + state.upcoming_sleep >= self.deadline


class HubSpotContacts:
    """Reads a tenant's contacts from HubSpot, by id, in batches. The token is read from its file at each call
    (a rotated Secret is used at once); HubSpot's rate-limit headers are honoured before the next call of the same
    app, and a 429 or 5xx is retried after the wait HubSpot asked for or a jittered backoff, at most `attempts`
    calls per request and all within `budget_seconds` per read."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.2,
        max_backoff_seconds: float = 1.0,
        budget_seconds: float = 3.0,
        secrets: SecretFiles | None = None,
    ) -> None:
        self.client = client
        self.attempts = attempts
        self.budget_seconds = budget_seconds
        self._backoff = wait_exponential_jitter(
            multiplier=backoff_seconds, max=max_backoff_seconds, jitter=backoff_seconds
        )
        self.secrets = secrets or SecretFiles()
        self._not_before: dict[tuple[str, str], float] = {}  # per (API root, token): when the interval allows a call

    async def read(self, tenant: TenantConfig, contact_ids: Sequence[str]) -> ContactsRead:
        """The contacts among `contact_ids` HubSpot has, mapped through the tenant's `crm.properties`; the rest
        reported missing. `HubSpotUnavailable` (or `HubSpotUnauthorized`) when HubSpot could not be read."""
        crm = tenant.crm
        deadline = time.monotonic() + self.budget_seconds
        wanted = list(dict.fromkeys(str(c).strip() for c in contact_ids))
        asked = [c for c in wanted if c.isdigit()]  # HubSpot's object ids are numbers; anything else it cannot hold
        mapping = crm.contact_properties
        properties = sorted({*mapping, MERGED_IDS})
        found: dict[str, dict[str, str | None]] = {}
        merged: dict[str, str] = {}
        for chunk in _chunks(asked):
            body = {"properties": properties, "propertiesWithHistory": [], "inputs": [{"id": c} for c in chunk]}
            answer = await self._post(tenant, CONTACTS_READ, body, deadline)
            results = _contacts_of(answer, chunk)
            found.update(results)
            for survivor, props in results.items():
                for absorbed in str(props.get(MERGED_IDS) or "").split(";"):
                    if absorbed.strip() in chunk and absorbed.strip() != survivor:
                        merged[absorbed.strip()] = survivor
        # not found (OBJECT_NOT_FOUND), or not answered for at all: either way HubSpot has no such contact
        missing = tuple(c for c in wanted if c not in found and c not in merged)
        mapped = {cid: contact_from_hubspot(cid, props, mapping) for cid, props in found.items()}

        companies: dict[str, Company] = {}
        companies_unread = None
        without_company = [cid for cid, (contact, _) in mapped.items() if contact.company is None]
        if without_company:
            try:
                companies = await self._companies(tenant, without_company, deadline)
            except HubSpotUnavailable as exc:
                # the contacts themselves were read: they go on without a company name rather than not at all
                companies_unread = str(exc)
                log.warning("hubspot companies not read", tenant=tenant.tenant_id, error=companies_unread)
            for cid, company in companies.items():
                mapped[cid] = contact_from_hubspot(cid, found[cid], mapping, company=company.name)

        left_out = {cid: reasons for cid, (_, reasons) in mapped.items() if reasons}
        for cid, reasons in left_out.items():
            log.warning("hubspot values left out", tenant=tenant.tenant_id, contact_id=cid, reasons=list(reasons))
        if missing:
            log.info("hubspot has no such contacts", tenant=tenant.tenant_id, ids=list(missing))
        return ContactsRead(
            contacts={cid: contact for cid, (contact, _) in mapped.items()},
            missing=missing,
            merged=merged,
            left_out=left_out,
            companies=companies,
            companies_unread=companies_unread,
        )

    async def _companies(self, tenant: TenantConfig, contact_ids: Sequence[str], deadline: float) -> dict[str, Company]:
        """Each contact's company (its primary one where it has several), by contact."""
        company_of: dict[str, str] = {}
        for chunk in _chunks(contact_ids):
            answer = await self._post(
                tenant, COMPANY_ASSOCIATIONS_READ, {"inputs": [{"id": c} for c in chunk]}, deadline
            )
            company_of.update(_primary_companies(answer))
        companies: dict[str, Company] = {}
        for chunk in _chunks(sorted(set(company_of.values()))):
            body = {"properties": ["name", "domain"], "propertiesWithHistory": [], "inputs": [{"id": c} for c in chunk]}
            answer = await self._post(tenant, COMPANIES_READ, body, deadline)
            for result in answer.get("results") or ():
                props = result.get("properties") or {}
                company_id = str(result.get("id"))
                companies[company_id] = Company(company_id, _text(props.get("name")), _text(props.get("domain")))
        return {cid: companies[company] for cid, company in company_of.items() if company in companies}

    # ------------------------------------------------------------ one request, retried

    async def _post(self, tenant: TenantConfig, path: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        calls = 0

        def count_retry(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            log.info("retrying hubspot call", tenant=tenant.tenant_id, path=path, attempt=calls, error=str(error))

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(self.attempts) | _PastDeadline(deadline),
                wait=self._wait,
                retry=retry_if_exception_type(_Transient),
                before_sleep=count_retry,
                reraise=True,
            ):
                with attempt:
                    calls += 1
                    return await self._call(tenant.crm, path, body, deadline)
        except _Transient as exc:
            raise HubSpotUnavailable(
                f"HubSpot not read ({path}) after {calls} call(s) in {self.budget_seconds:g}s: {exc}",
                retry_after=exc.wait,
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, _Transient) and error.wait is not None:
            return error.wait  # what HubSpot asked for, never less; the deadline decides whether to wait at all
        return float(self._backoff(state))

    def _token(self, crm: CrmConnection) -> str:
        if crm.hubspot_token_file is None:
            raise HubSpotUnauthorized("this tenant has no crm.hubspot_token_file: HubSpot cannot be read")
        try:
            token = self.secrets.read(crm.hubspot_token_file)
        except OSError as exc:
            raise HubSpotUnauthorized(f"the HubSpot token file cannot be read: {exc}") from exc
        if not token:
            raise HubSpotUnauthorized(f"the HubSpot token file {crm.hubspot_token_file} is empty")
        return token

    async def _call(self, crm: CrmConnection, path: str, body: dict[str, Any], deadline: float) -> dict[str, Any]:
        token = self._token(crm)  # at every attempt: a token rotated between two attempts is used at the second
        limiter = (crm.hubspot_base_url, token)
        pause = self._not_before.get(limiter, 0.0) - time.monotonic()
        if pause > 0:
            if time.monotonic() + pause >= deadline:
                raise HubSpotUnavailable(
                    f"HubSpot's rate-limit interval is spent for {pause:.2f}s more, past this read's budget",
                    retry_after=pause,
                )
            await asyncio.sleep(pause)
        endpoint = path.rsplit("/crm/", 1)[-1]
        try:
            response = await self.client.post(
                f"{crm.hubspot_base_url.rstrip('/')}{path}",
                json=body,
                headers={"Authorization": f"Bearer {token}"},
                timeout=max(deadline - time.monotonic(), 0.05),
            )
        except httpx.TransportError as exc:  # a read changes nothing: trying it again is always safe
            CALLS.labels(endpoint, "unavailable").inc()
            raise _Transient(f"HubSpot unreachable: {exc!r}") from exc
        wait = hubspot.interval_pause(response.headers)
        if wait is not None:
            self._not_before[limiter] = time.monotonic() + wait
        status = response.status_code
        if status in (200, 207):
            try:
                answer = response.json()
            except ValueError:
                answer = None
            if not isinstance(answer, dict):
                CALLS.labels(endpoint, "unavailable").inc()
                raise _Transient(f"HubSpot answered {status} without a JSON object")
            CALLS.labels(endpoint, "ok").inc()
            return answer
        detail = hubspot.error_message(response.text)
        if status == 429:
            CALLS.labels(endpoint, "rate_limited").inc()
            if hubspot.is_daily_limit(response.text):
                raise HubSpotUnavailable(f"HubSpot's daily API limit for this portal is spent: {detail}")
            raise _Transient(f"HubSpot 429: {detail}", wait=hubspot.rate_limited_wait(response.headers))
        if http_status_is_transient(status):
            CALLS.labels(endpoint, "unavailable").inc()
            raise _Transient(f"HubSpot {status}: {detail}", wait=hubspot.retry_after_seconds(response.headers))
        if status in (401, 403):
            CALLS.labels(endpoint, "unauthorized").inc()
            raise HubSpotUnauthorized(
                f"HubSpot refused the tenant's private app token ({status}: {detail}); the deployment must fix the "
                "token file or the app's scopes (crm.objects.contacts.read, crm.objects.companies.read)"
            )
        CALLS.labels(endpoint, "refused").inc()
        raise HubSpotUnavailable(f"HubSpot refused the request ({status}: {detail})")


# ---------------------------------------------------------------- reading HubSpot's answers


def _text(value: Any) -> str | None:
    return (value.strip() or None) if isinstance(value, str) else None


def _contacts_of(answer: dict[str, Any], asked: Sequence[str]) -> dict[str, dict[str, str | None]]:
    """A batch read's contacts (id → properties). Its errors of category OBJECT_NOT_FOUND name ids HubSpot does
    not have; any other category means HubSpot did not answer for those contacts, which is not saying they do not
    exist: the read fails, for the webhook to come again, rather than report a lead as unknown."""
    results: dict[str, dict[str, str | None]] = {}
    for result in answer.get("results") or ():
        if isinstance(result, dict) and result.get("id") is not None:
            results[str(result["id"])] = dict(result.get("properties") or {})
    for error in answer.get("errors") or ():
        if not isinstance(error, dict) or error.get("category") == "OBJECT_NOT_FOUND":
            continue
        ids = {str(i) for i in ((error.get("context") or {}).get("ids") or ())}
        if ids & set(asked) or not ids:
            message = f"{error.get('category') or 'error'} {error.get('message') or ''}".strip()
            raise HubSpotUnavailable(f"HubSpot did not read every contact: {message[:300]}")
    return results


def _primary_companies(answer: dict[str, Any]) -> dict[str, str]:
    """contact id → the id of its primary company, else of the first one HubSpot lists (a contact without a
    company is not in the answer, or has no `to`)."""
    chosen: dict[str, str] = {}
    for result in answer.get("results") or ():
        if not isinstance(result, dict):
            continue
        contact_id = str((result.get("from") or {}).get("id", ""))
        targets = [t for t in result.get("to") or () if isinstance(t, dict) and t.get("toObjectId") is not None]
        if not contact_id or not targets:
            continue
        primary = [
            t
            for t in targets
            if any(
                a.get("typeId") == PRIMARY_COMPANY_TYPE_ID and a.get("category") == "HUBSPOT_DEFINED"
                for a in t.get("associationTypes") or ()
            )
        ]
        chosen[contact_id] = str((primary or targets)[0]["toObjectId"])
    return chosen
