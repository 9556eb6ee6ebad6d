"""What more than one service needs to know of HubSpot's CRM API: the contact properties Herald maps, how HubSpot
says to slow down, and how it says what went wrong.

HubSpot sends `X-HubSpot-RateLimit-Max`, `-Remaining` and `-Interval-Milliseconds` with its answers (the calls
left in the current rolling interval, and that interval's length) and answers a spent limit with 429,
`errorType: RATE_LIMIT` and a `policyName` (`TEN_SECONDLY_ROLLING`, `SECONDLY`, or `DAILY`, which no short wait
ends). Its errors are JSON objects whose fields are all optional: `status`, `message`, `category`,
`correlationId`, `errorType`, `context`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from herald_core.bus.failures import retry_after_seconds

#: the contact fields Herald's contact store keeps, which a HubSpot property may set
CONTACT_FIELDS: tuple[str, ...] = (
    "email",
    "first_name",
    "last_name",
    "company",
    "job_title",
    "industry",
    "lifecycle_stage",
    "country",
    "timezone",
    "vip",
    "deal_value_minor",
    "company_size",
    "owner",
    "opted_out",
)

#: HubSpot contact property → the contact field it sets, unless a tenant maps its own (`crm.properties`).
#: Not `hs_timezone`: HubSpot's values (`america_slash_new_york`) are not IANA names.
DEFAULT_CONTACT_PROPERTIES: Mapping[str, str] = MappingProxyType(
    {
        "email": "email",
        "firstname": "first_name",
        "lastname": "last_name",
        "company": "company",
        "jobtitle": "job_title",
        "industry": "industry",
        "lifecyclestage": "lifecycle_stage",
        "country": "country",
        "hs_email_optout": "opted_out",
        "numemployees": "company_size",
        "hubspot_owner_id": "owner",
    }
)

#: the most inputs HubSpot takes in one batch call
BATCH_LIMIT = 100

#: `policyName` of a spent daily limit: it rolls over at midnight in the portal's time zone, no retry soon helps
DAILY_POLICY = "DAILY"


def _interval_seconds(headers: Mapping[str, str]) -> float | None:
    interval_ms = headers.get("X-HubSpot-RateLimit-Interval-Milliseconds", "").strip()
    return int(interval_ms) / 1000 if interval_ms.isdigit() else None


def interval_pause(headers: Mapping[str, str]) -> float | None:
    """How long to wait before the next call when this answer spent the interval's last call (`Remaining` 0):
    the interval's length, the longest it can take to roll over. None while calls remain, or without the headers."""
    remaining = headers.get("X-HubSpot-RateLimit-Remaining", "").strip()
    if not remaining.isdigit() or int(remaining) > 0:
        return None
    return _interval_seconds(headers)


def rate_limited_wait(headers: Mapping[str, str], default: float = 1.0) -> float:
    """How long a 429 asks to wait: its `Retry-After`, else the rate-limit interval, else `default`."""
    asked = retry_after_seconds(headers)
    if asked is not None:
        return asked
    interval = _interval_seconds(headers)
    return interval if interval is not None else default


def error_body(text: str) -> dict[str, Any]:
    """An error answer's JSON object, or an empty one when it is not JSON (a proxy's HTML page)."""
    try:
        body = json.loads(text)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def error_message(text: str) -> str:
    """An error answer in a few words: its category (or error type) and message, else the start of its text."""
    body = error_body(text)
    if not body:
        return text[:300]
    return f"{body.get('category') or body.get('errorType') or ''} {body.get('message', '')}".strip()[:500]


def is_daily_limit(text: str) -> bool:
    """Whether a 429 says the portal's daily limit is spent."""
    return str(error_body(text).get("policyName", "")).upper() == DAILY_POLICY
