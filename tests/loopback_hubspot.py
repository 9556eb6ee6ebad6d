"""A loopback server that answers like HubSpot's CRM v3 contacts API, for the executor's HubSpot adapter.

It follows HubSpot's documented shapes: `PATCH /crm/v3/objects/contacts/{contactId}` with a private app's
bearer token and `{"properties": {...}}`, answered with the contact object (`id`, `properties`,
`createdAt`, `updatedAt`, `archived`); errors as `{"status": "error", "message", "correlationId",
"category"}` (401 INVALID_AUTHENTICATION, 404 OBJECT_NOT_FOUND, 400 VALIDATION_ERROR for an unknown
property); rate limits as 429 with `errorType: RATE_LIMIT` and the `X-HubSpot-RateLimit-*` headers. A test
queues failures (`fail_next`) to see the adapter back off and retry.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from support import loopback

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
}


@dataclass
class HubSpotApi:
    token: str
    url: str = ""
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)  # every request, answered or not
    failures: list[int] = field(default_factory=list)  # status codes to answer next, in order

    def fail_next(self, *statuses: int) -> None:
        self.failures.extend(statuses)

    def applied(self, contact_id: str) -> list[dict[str, Any]]:
        """The PATCHes to the contact that HubSpot accepted (answered 200)."""
        return [r["body"] for r in self.requests if r["contact_id"] == contact_id and r["status"] == 200]


def _error(status: int, category: str, message: str, **extra: Any) -> JSONResponse:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()), "category": category}
    return JSONResponse({**body, **extra}, status_code=status)


def _app(api: HubSpotApi) -> FastAPI:
    app = FastAPI()

    @app.patch("/crm/v3/objects/contacts/{contact_id}")
    async def update_contact(contact_id: str, request: Request) -> JSONResponse:
        body = await request.json()
        seen: dict[str, Any] = {"contact_id": contact_id, "body": body, "auth": request.headers.get("authorization")}
        api.requests.append(seen)
        limit = {"X-HubSpot-RateLimit-Max": "100", "X-HubSpot-RateLimit-Interval-Milliseconds": "200"}
        if api.failures:
            seen["status"] = api.failures.pop(0)
            if seen["status"] == 429:
                return JSONResponse(
                    {
                        "status": "error",
                        "message": "You have reached your secondly limit.",
                        "errorType": "RATE_LIMIT",
                        "correlationId": str(uuid.uuid4()),
                        "policyName": "SECONDLY",
                    },
                    status_code=429,
                    headers={**limit, "X-HubSpot-RateLimit-Remaining": "0"},
                )
            return _error(seen["status"], "INTERNAL_ERROR", "internal error")
        if request.headers.get("authorization") != f"Bearer {api.token}":
            seen["status"] = 401
            return _error(
                401,
                "INVALID_AUTHENTICATION",
                "Authentication credentials not found.",
                errorType="INVALID_AUTHENTICATION",
            )
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
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        return JSONResponse(
            {
                "id": contact_id,
                "properties": {**api.contacts[contact_id], "hs_object_id": contact_id, "lastmodifieddate": now},
                "createdAt": "2026-01-05T10:00:00Z",
                "updatedAt": now,
                "archived": False,
            },
            headers={**limit, "X-HubSpot-RateLimit-Remaining": "99"},
        )

    return app


@contextlib.asynccontextmanager
async def hubspot_api(token: str, contacts: dict[str, dict[str, str]]) -> AsyncIterator[HubSpotApi]:
    api = HubSpotApi(token=token, contacts=contacts)
    async with loopback(_app(api)) as url:
        api.url = url
        yield api
