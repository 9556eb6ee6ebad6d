"""`POST /v1/events`: CloudEvents 1.0 over HTTP, structured and binary, validated against Herald's
contracts, de-duplicated on (source, id), published like the webhook's events; bad ones refused and audited."""

from __future__ import annotations

import json
import secrets
from typing import Any

import pytest

from herald_core.contracts import ConsentReason, ConsentWithdrawn, ContactCreated
from herald_core.topics import AUDIT, CONSENT, EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def created_event(tenant: str, contact_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"ce-{secrets.token_hex(6)}",
        "source": "reverse-etl/hightouch",
        "type": "herald.contact.created.v1",
        "tenant": tenant,
        "datacontenttype": "application/json",
        "data": {
            "contact": {
                "contact_id": contact_id,
                "email": f"{contact_id}@globex.example",
                "first_name": "Dana",
                "company": "Globex",
                "vip": True,
                "deal_value_minor": 250_000,
            },
            "upstream_source": "hightouch",
            "upstream_event_id": f"sync-{secrets.token_hex(4)}",
            "occurred_at": "2026-11-20T10:00:00Z",
        },
        **attributes,
    }


def withdrawal_data(contact_id: str) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "email": f"{contact_id}@globex.example",
        "reason": "complaint",
        "upstream_source": "esp",
        "upstream_event_id": f"complaint-{secrets.token_hex(4)}",
        "occurred_at": "2026-11-20T10:00:00Z",
    }


def mine(records: list[Any], data: dict[str, Any]) -> list[Any]:
    return [r for r in records if r.json().get("upstream_event_id") == data["upstream_event_id"]]


async def test_a_structured_cloudevent_is_published_once(ingest) -> None:  # type: ignore[no-untyped-def]
    contact_id = str(ingest.unique_int())
    event = created_event(ingest.tenant, contact_id)
    response = await ingest.post_cloudevent(event)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0}
    again = await ingest.post_cloudevent(event)
    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "duplicates": 1}

    [record] = mine(await ingest.read(EVENTS), event["data"])
    assert record.type == ContactCreated.TYPE
    assert record.tenant == ingest.tenant
    assert record.key == f"{ingest.tenant}:{contact_id}".encode()
    assert record.headers["ce_source"] == "herald/ingest"
    assert record.headers["ce_subject"] == f"contact/{contact_id}"
    assert record.body(ContactCreated) == ContactCreated.model_validate(event["data"])
    assert [r.headers["herald_topic"] for r in await ingest.read(AUDIT) if r.value == record.value] == [
        ingest.topic(EVENTS)
    ]


async def test_the_same_id_from_another_source_is_another_event(ingest) -> None:  # type: ignore[no-untyped-def]
    event = created_event(ingest.tenant, str(ingest.unique_int()))
    assert (await ingest.post_cloudevent(event)).json()["accepted"] == 1
    other = {**event, "source": "crm/salesforce", "data": {**event["data"], "upstream_event_id": "sf-1"}}
    assert (await ingest.post_cloudevent(other)).json()["accepted"] == 1


async def test_a_binary_mode_consent_withdrawal_reaches_both_topics_on_the_callers_trace(ingest) -> None:  # type: ignore[no-untyped-def]
    contact_id = str(ingest.unique_int())
    data = withdrawal_data(contact_id)
    traceparent, trace = ingest.new_traceparent()
    response = await ingest.client.post(
        "/v1/events",
        content=json.dumps(data),
        headers={
            "content-type": "application/json",
            "ce-specversion": "1.0",
            "ce-id": f"bin-{secrets.token_hex(6)}",
            "ce-source": "esp/complaints",
            "ce-type": "herald.consent.withdrawn.v1",
            "ce-tenant": ingest.tenant,
            "ce-traceparent": traceparent,
        },
    )
    assert response.status_code == 202, response.text

    [on_events] = mine(await ingest.read(EVENTS), data)
    [on_consent] = mine(await ingest.read(CONSENT), data)
    assert on_events.body(ConsentWithdrawn).reason is ConsentReason.COMPLAINT
    assert on_consent.body(ConsentWithdrawn) == ConsentWithdrawn.model_validate(data)
    assert on_consent.key == f"{ingest.tenant}:{contact_id}:email".encode()
    assert ingest.trace_of(on_events) == trace


def _bad_cloudevents(tenant: str) -> dict[str, tuple[dict[str, Any], int, str, str]]:
    """name → (request, status, error, audited tenant)."""
    good = created_event(tenant, "424242")
    untenanted = {k: v for k, v in good.items() if k != "tenant"}
    structured = {"content-type": "application/cloudevents+json"}
    return {
        "not_json": ({"raw": b"{not json", "headers": structured}, 400, "invalid_cloudevent", "unknown"),
        "missing_attributes": (
            {"raw": b'{"specversion": "1.0", "tenant": "x"}', "headers": structured},
            400,
            "invalid_cloudevent",
            "unknown",
        ),
        "unknown_specversion": ({"event": {**good, "specversion": "0.1"}}, 400, "invalid_cloudevent", "unknown"),
        "missing_tenant": ({"event": untenanted}, 400, "missing_tenant", "unknown"),
        "unknown_tenant": ({"event": {**good, "tenant": "nosuchtenant"}}, 404, "unknown_tenant", "unknown"),
        "unsupported_type": ({"event": {**good, "type": "com.acme.nope"}}, 422, "unsupported_type", tenant),
        "invalid_data": ({"event": {**good, "data": {"reason": "x"}}}, 422, "invalid_schema", tenant),
        "erasure_with_a_plain_address": (
            {
                "event": {
                    **good,
                    "type": "herald.contact.erased.v1",
                    "data": {
                        "contact_id": "424242",
                        "email_sha256": "lead@northwind.example",  # the address itself, not its hash
                        "upstream_source": "dsar-portal",
                        "upstream_event_id": "dsar-1",
                        "occurred_at": "2026-11-25T10:00:00Z",
                    },
                }
            },
            422,
            "invalid_schema",
            tenant,
        ),
        "extra_field": (
            {"event": {**good, "data": {**good["data"], "surprise": 1}}},
            422,
            "invalid_schema",
            tenant,
        ),
        "binary_not_json": (
            {
                "raw": b"plain text",
                "headers": {
                    "content-type": "text/plain",
                    "ce-specversion": "1.0",
                    "ce-id": "b-1",
                    "ce-source": "s",
                    "ce-type": "herald.contact.created.v1",
                    "ce-tenant": tenant,
                },
            },
            422,
            "invalid_schema",
            tenant,
        ),
    }


@pytest.mark.parametrize("case", list(_bad_cloudevents("t")))
async def test_a_bad_cloudevent_gets_its_4xx_and_is_audited(ingest, case: str) -> None:  # type: ignore[no-untyped-def]
    request, status, error, audited_tenant = _bad_cloudevents(ingest.tenant)[case]
    traceparent, trace = ingest.new_traceparent()
    headers = {**request.get("headers", {}), "traceparent": traceparent}
    response = await ingest.post_cloudevent(request.get("event"), raw=request.get("raw"), headers=headers)
    await ingest.assert_refused(
        response, trace, status=status, error=error, tenant=audited_tenant, endpoint="/v1/events"
    )

    good = created_event(ingest.tenant, str(ingest.unique_int()))
    assert (await ingest.post_cloudevent(good)).status_code == 202


async def test_invalid_data_is_answered_with_pydantics_errors(ingest) -> None:  # type: ignore[no-untyped-def]
    event = created_event(ingest.tenant, "1")
    event["data"]["contact"]["email"] = "not an address"
    response = await ingest.post_cloudevent(event)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["contact", "email"]
    assert error["type"] == "string_pattern_mismatch"
