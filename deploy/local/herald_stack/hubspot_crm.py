"""A loopback server that answers like HubSpot's CRM API: the contacts it is given, their companies and the
associations between them. `make demo` reads its sample leads from it as ingest reads a real portal's, and the
tests use it for the executor's HubSpot adapter (updates) and ingest's (batch reads). Never a product code path:
the services call whatever `crm.hubspot_base_url` a tenant names.

It follows HubSpot's documented shapes:
- `PATCH /crm/v3/objects/contacts/{contactId}` with a private app's bearer token and `{"properties": {...}}`,
  answered with the contact object (`id`, `properties`, `createdAt`, `updatedAt`, `archived`);
- `POST /crm/v3/objects/{contacts|companies}/batch/read` with `{"properties", "propertiesWithHistory",
  "inputs": [{"id"}]}` (at most 100): 200 with `{"status": "COMPLETE", "results", "startedAt", "completedAt"}`
  when every id is found, else 207 with `numErrors` and `errors: [{"status": "error", "category":
  "OBJECT_NOT_FOUND", "message", "context": {"ids": [...]}}]`; a requested property the portal has is returned
  (null when empty), one it does not have is not; a contact merged into another comes back as the survivor,
  whose `hs_merged_object_ids` lists it;
- `POST /crm/v4/associations/contacts/companies/batch/read` with `{"inputs": [{"id"}]}`: `results` of
  `{"from": {"id"}, "to": [{"toObjectId", "associationTypes": [{"category", "typeId", "label"}]}]}` (typeId 1
  for the primary company, 279 unlabelled), and a 207 error of subCategory
  `crm.associations.NO_ASSOCIATIONS_FOUND` for a contact without a company;
- errors as `{"status": "error", "message", "correlationId", "category"}` (401 INVALID_AUTHENTICATION, 404
  OBJECT_NOT_FOUND, 400 VALIDATION_ERROR); rate limits as the `X-HubSpot-RateLimit-*` headers on every answer
  (`Max` calls per rolling `Interval-Milliseconds`, and the `Remaining` ones) and a 429 with `errorType:
  RATE_LIMIT` and a `policyName` once they are spent.

A test queues failures (`fail_next`), fails every call for a stretch (`fail_for`), takes a scope away from the
app (`missing_scopes`: 403 MISSING_SCOPES), and counts the calls per endpoint (`calls`).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from herald_stack.loopback import loopback

KNOWN_PROPERTIES = {
    "email",
    "firstname",
    "lastname",
    "company",
    "jobtitle",
    "industry",
    "lifecyclestage",
    "hs_lead_status",
    "herald_next_step",
    "herald_lead_score",
    "herald_referred_by",
    "numemployees",
    "hubspot_owner_id",
    "country",
    "hs_email_optout",
    "hs_timezone",
    "hs_merged_object_ids",
}
COMPANY_PROPERTIES = {"name", "domain", "industry"}
ALWAYS = ("hs_object_id", "createdate", "lastmodifieddate")  # HubSpot returns these with every object

CONTACT_UPDATE = "contacts.update"
CONTACT_CREATE = "contacts.create"
CONTACTS_READ = "contacts.batch_read"
COMPANIES_READ = "companies.batch_read"
ASSOCIATIONS_READ = "associations.contacts_companies.batch_read"

CREATED = "2026-01-05T10:00:00Z"
PRIMARY = {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": "Primary"}
UNLABELLED = {"category": "HUBSPOT_DEFINED", "typeId": 279, "label": None}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class HubSpotApi:
    token: str
    url: str = ""
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    companies: dict[str, dict[str, str]] = field(default_factory=dict)
    associations: dict[str, list[str]] = field(default_factory=dict)  # contact → its companies, the primary first
    merged: dict[str, str] = field(default_factory=dict)  # a contact merged away → the contact that absorbed it
    requests: list[dict[str, Any]] = field(default_factory=list)  # every request, answered or not
    failures: list[int] = field(default_factory=list)  # status codes to answer next, in order
    calls: Counter[str] = field(default_factory=Counter)  # requests per endpoint, answered or not
    rate_limit_max: int = 100  # calls allowed per rolling interval
    rate_limit_interval_ms: int = 200
    rate_limit_policy: str = "SECONDLY"
    retry_after: str | None = None  # a `Retry-After` the next 429s carry
    failing_until: float = 0.0  # monotonic time a stretch of failures ends
    failing_status: int = 503
    missing_scopes: set[str] = field(default_factory=set)  # endpoints the private app has no scope for (403)
    _answered: list[float] = field(default_factory=list)  # when calls were counted against the limit

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    def fail_for(self, seconds: float, status: int = 503) -> None:
        """Answer every call with `status` for the next `seconds`: an outage."""
        self.failing_until, self.failing_status = time.monotonic() + seconds, status

    def applied(self, contact_id: str) -> list[dict[str, Any]]:
        """The PATCHes to the contact that HubSpot accepted (answered 200)."""
        return [r["body"] for r in self.requests if r.get("contact_id") == contact_id and r["status"] == 200]

    def to(self, endpoint: str) -> list[dict[str, Any]]:
        """The requests to `endpoint`, in order."""
        return [r for r in self.requests if r["endpoint"] == endpoint]

    def rate_limit_headers(self) -> dict[str, str]:
        now = time.monotonic()
        self._answered = [t for t in self._answered if now - t < self.rate_limit_interval_ms / 1000]
        return {
            "X-HubSpot-RateLimit-Max": str(self.rate_limit_max),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.rate_limit_interval_ms),
            "X-HubSpot-RateLimit-Remaining": str(max(self.rate_limit_max - len(self._answered), 0)),
        }


def _error(
    status: int, category: str, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    return JSONResponse({**body, **extra}, status_code=status, headers=headers)


def _rate_limited(api: HubSpotApi) -> JSONResponse:
    headers = {**api.rate_limit_headers(), "X-HubSpot-RateLimit-Remaining": "0"}
    if api.retry_after is not None:
        headers["Retry-After"] = api.retry_after
    return JSONResponse(
        {
            "status": "error",
            "message": f"You have reached your {api.rate_limit_policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": api.rate_limit_policy,
        },
        status_code=429,
        headers=headers,
    )


def _refusal(api: HubSpotApi, request: Request, seen: dict[str, Any]) -> JSONResponse | None:
    """The answer to a call HubSpot does not serve — a queued failure, an outage, a wrong token, a spent rate
    limit — or None to serve it. The call is recorded and counted either way."""
    api.requests.append(seen)
    api.calls[seen["endpoint"]] += 1
    status = api.failures.pop(0) if api.failures else None
    if status is None and time.monotonic() < api.failing_until:
        status = api.failing_status
    if status is not None:
        seen["status"] = status
        if status == 429:
            return _rate_limited(api)
        return _error(status, "INTERNAL_ERROR", "internal error")
    if request.headers.get("authorization") != f"Bearer {api.token}":
        seen["status"] = 401
        return _error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
            errorType="INVALID_AUTHENTICATION",
        )
    if seen["endpoint"] in api.missing_scopes:
        seen["status"] = 403
        return _error(
            403,
            "MISSING_SCOPES",
            "This app hasn't been granted all required scopes to make this call.",
            errors=[
                {"message": "One or more of the following scopes are required.", "context": {"requiredScopes": []}}
            ],
        )
    api.rate_limit_headers()  # forget calls older than the interval
    if len(api._answered) >= api.rate_limit_max:
        seen["status"] = 429
        return _rate_limited(api)
    api._answered.append(time.monotonic())
    return None


def _batch_too_large(seen: dict[str, Any], inputs: list[Any], limit: int) -> JSONResponse | None:
    if len(inputs) <= limit:
        return None
    seen["status"] = 400
    return _error(400, "VALIDATION_ERROR", f"Batch input size {len(inputs)} exceeds the limit of {limit}.")


def _batch_answer(
    api: HubSpotApi, seen: dict[str, Any], results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str
) -> JSONResponse:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": started, "completedAt": _now()}
    if errors:
        body |= {"numErrors": len(errors), "errors": errors}
    seen["status"] = 207 if errors else 200
    return JSONResponse(body, status_code=seen["status"], headers=api.rate_limit_headers())


def _app(api: HubSpotApi) -> FastAPI:
    app = FastAPI()

    @app.patch("/crm/v3/objects/contacts/{contact_id}")
    async def update_contact(contact_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        seen: dict[str, Any] = {
            "endpoint": CONTACT_UPDATE,
            "contact_id": contact_id,
            "body": body,
            "auth": request.headers.get("authorization"),
            "at": time.monotonic(),
        }
        refused = _refusal(api, request, seen)
        if refused is not None:
            return refused
        if contact_id not in api.contacts:
            seen["status"] = 404
            return _error(404, "OBJECT_NOT_FOUND", f"Object not found.  objectId are usually numeric. ({contact_id})")
        properties = body.get("properties", {})
        unknown = sorted(set(properties) - KNOWN_PROPERTIES)
        if unknown:
            seen["status"] = 400
            return _error(400, "VALIDATION_ERROR", f'Property values were not valid: "{unknown[0]}" does not exist')
        seen["status"] = 200
        api.contacts[contact_id].update(properties)
        now = _now()
        return JSONResponse(
            {
                "id": contact_id,
                "properties": {**api.contacts[contact_id], "hs_object_id": contact_id, "lastmodifieddate": now},
                "createdAt": CREATED,
                "updatedAt": now,
                "archived": False,
            },
            headers=api.rate_limit_headers(),
        )

    @app.post("/crm/v3/objects/contacts")
    async def create_contact(request: Request) -> JSONResponse:
        """As HubSpot creates a contact: 201 with its id; an address a contact has already is 409 CONFLICT naming
        the existing id (HubSpot keeps one contact per address)."""
        body = await request.json()
        seen: dict[str, Any] = {"endpoint": CONTACT_CREATE, "body": body, "at": time.monotonic()}
        refused = _refusal(api, request, seen)
        if refused is not None:
            return refused
        properties = {k: str(v) for k, v in (body.get("properties") or {}).items()}
        unknown = sorted(set(properties) - KNOWN_PROPERTIES)
        if unknown:
            seen["status"] = 400
            return _error(400, "VALIDATION_ERROR", f'Property values were not valid: "{unknown[0]}" does not exist')
        email = properties.get("email", "").lower()
        existing = next((c for c, p in api.contacts.items() if email and p.get("email", "").lower() == email), None)
        if existing is not None:
            seen["status"] = 409
            return _error(409, "CONFLICT", f"Contact already exists. Existing ID: {existing}")
        contact_id = str(max((int(c) for c in api.contacts if c.isdigit()), default=1000) + 1)
        api.contacts[contact_id] = properties
        seen["status"], seen["contact_id"] = 201, contact_id
        now = _now()
        return JSONResponse(
            {
                "id": contact_id,
                "properties": {**properties, "hs_object_id": contact_id, "createdate": now, "lastmodifieddate": now},
                "createdAt": now,
                "updatedAt": now,
                "archived": False,
            },
            status_code=201,
            headers=api.rate_limit_headers(),
        )

    def _object(object_id: str, stored: dict[str, str], asked: list[str], known: set[str]) -> dict[str, Any]:
        properties: dict[str, Any] = {name: stored.get(name) for name in asked if name in known}
        properties |= {"hs_object_id": object_id, "createdate": CREATED, "lastmodifieddate": CREATED}
        return {
            "id": object_id,
            "properties": properties,
            "createdAt": CREATED,
            "updatedAt": CREATED,
            "archived": False,
        }

    def _not_found(kind: str, ids: list[str]) -> dict[str, Any]:
        return {
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": f"Could not get some {kind} objects, they may be deleted or not exist. "
            "Check that ids are valid.",
            "context": {"ids": ids},
            "errors": [],
            "links": {},
        }

    async def _read_body(request: Request, endpoint: str) -> tuple[dict[str, Any], dict[str, Any]]:
        body = await request.json()
        seen = {
            "endpoint": endpoint,
            "body": body,
            "auth": request.headers.get("authorization"),
            "at": time.monotonic(),
            "ids": [str(i.get("id")) for i in body.get("inputs") or ()],
        }
        return body, seen

    @app.post("/crm/v3/objects/contacts/batch/read")
    async def read_contacts(request: Request) -> JSONResponse:
        started = _now()
        body, seen = await _read_body(request, CONTACTS_READ)
        refused = _refusal(api, request, seen) or _batch_too_large(seen, body.get("inputs") or [], 100)
        if refused is not None:
            return refused
        known = KNOWN_PROPERTIES | {name for stored in api.contacts.values() for name in stored}
        asked = list(body.get("properties") or ("email", "firstname", "lastname"))
        results: dict[str, dict[str, Any]] = {}
        missing: list[str] = []
        for contact_id in seen["ids"]:
            survivor = api.merged.get(contact_id, contact_id)
            if survivor not in api.contacts:
                missing.append(contact_id)
                continue
            absorbed = sorted(old for old, new in api.merged.items() if new == survivor)
            stored = {**api.contacts[survivor], **({"hs_merged_object_ids": ";".join(absorbed)} if absorbed else {})}
            results[survivor] = _object(survivor, stored, asked, known)
        errors = [_not_found("CONTACT", missing)] if missing else []
        return _batch_answer(api, seen, list(results.values()), errors, started)

    @app.post("/crm/v3/objects/companies/batch/read")
    async def read_companies(request: Request) -> JSONResponse:
        started = _now()
        body, seen = await _read_body(request, COMPANIES_READ)
        refused = _refusal(api, request, seen) or _batch_too_large(seen, body.get("inputs") or [], 100)
        if refused is not None:
            return refused
        known = COMPANY_PROPERTIES | {name for stored in api.companies.values() for name in stored}
        asked = list(body.get("properties") or ("name", "domain"))
        results = [_object(c, api.companies[c], asked, known) for c in dict.fromkeys(seen["ids"]) if c in api.companies]
        missing = [c for c in seen["ids"] if c not in api.companies]
        errors = [_not_found("COMPANY", missing)] if missing else []
        return _batch_answer(api, seen, results, errors, started)

    @app.post("/crm/v4/associations/contacts/companies/batch/read")
    async def read_associations(request: Request) -> JSONResponse:
        started = _now()
        body, seen = await _read_body(request, ASSOCIATIONS_READ)
        refused = _refusal(api, request, seen) or _batch_too_large(seen, body.get("inputs") or [], 1000)
        if refused is not None:
            return refused
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for contact_id in dict.fromkeys(seen["ids"]):
            companies = api.associations.get(contact_id) if contact_id in api.contacts else None
            if not companies:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No company is associated with contact {contact_id}.",
                        "context": {
                            "fromObjectId": [contact_id],
                            "fromObjectType": ["contact"],
                            "toObjectType": ["company"],
                        },
                    }
                )
                continue
            to = [
                {"toObjectId": int(company), "associationTypes": [PRIMARY, UNLABELLED] if n == 0 else [UNLABELLED]}
                for n, company in enumerate(companies)
            ]
            # HubSpot lists a contact's associations in its own order: the primary one need not come first
            results.append({"from": {"id": contact_id}, "to": to[::-1]})
        return _batch_answer(api, seen, results, errors, started)

    return app


@contextlib.asynccontextmanager
async def hubspot_api(
    token: str,
    contacts: dict[str, dict[str, str]],
    *,
    companies: dict[str, dict[str, str]] | None = None,
    associations: dict[str, list[str]] | None = None,
) -> AsyncIterator[HubSpotApi]:
    api = HubSpotApi(token=token, contacts=contacts, companies=companies or {}, associations=associations or {})
    async with loopback(_app(api)) as url:
        api.url = url
        yield api
