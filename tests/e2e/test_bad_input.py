"""Bad input gets a clear error and nothing is lost: a 4xx with a reason at the edge, or the
consumer's dead-letter topic with the reason; the refusal is on the audit; the service keeps serving."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import httpx
import pytest
from test_first_touch import SECRET, _contact, _creation, post_hubspot

from herald_core.contracts import EventRejected
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.topics import (
    AUDIT,
    CONSENT,
    EVENTS,
    EXECUTED,
    LLM_USAGE,
    PROPOSED_ACTION,
    REVIEW,
    REVIEW_DECISION,
)
from support import hubspot_signature, publish_raw, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture(scope="module")
def edge(herald, tmp_path_factory):  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"edge{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    contact = _contact(run, 1)
    herald.seed_contacts(tenant, [contact], tmp_path_factory.mktemp("edge"))
    return tenant, contact, run


async def _rejections(herald, tenant: str, status: int) -> list[EventRejected]:  # type: ignore[no-untyped-def]
    """The tenant's refusals on the audit, read until one with `status` is there."""

    def mine(records):  # type: ignore[no-untyped-def]
        return [
            EventRejected.model_validate_json(r.value)
            for r in records
            if r.type == EventRejected.TYPE and r.headers.get("ce_tenant") == tenant
        ]

    records = await read_topic(
        herald.bootstrap,
        herald.topic(AUDIT),
        timeout=20,
        until=lambda rs: any(r.status_code == status for r in mine(rs)),
    )
    return mine(records)


async def _still_serving(herald, tenant: str, contact: dict[str, object], event_id: int) -> None:  # type: ignore[no-untyped-def]
    response = await post_hubspot(herald, tenant, [_creation(contact, event_id)])
    assert response.status_code == 200, response.text


async def test_malformed_json_is_400(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, contact, run = edge
    response = await post_hubspot(herald, tenant, [], raw=b'[{"eventId": 1,')
    assert response.status_code == 400
    assert response.json()["error"] == "malformed_json"
    assert any(r.status_code == 400 for r in await _rejections(herald, tenant, 400))
    await _still_serving(herald, tenant, contact, int(f"8{int(run, 16)}1"))


async def test_wrong_schema_is_422_with_the_field(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, _, _ = edge
    response = await post_hubspot(herald, tenant, [{"eventId": "not-a-number", "portalId": 62515}])
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_schema"
    assert any("eventId" in (e["loc"] or [None])[-1:] or "objectId" in e["loc"] for e in body["detail"])
    assert any(r.status_code == 422 for r in await _rejections(herald, tenant, 422))


async def test_bad_signature_is_401(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, contact, run = edge
    response = await post_hubspot(
        herald, tenant, [_creation(contact, int(f"8{int(run, 16)}2"))], secret="not-the-secret"
    )
    assert response.status_code == 401
    assert response.json()["detail"] == "signature does not match"


async def test_stale_timestamp_is_401(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, contact, run = edge
    ten_minutes_ago = int((time.time() - 600) * 1000)
    response = await post_hubspot(
        herald, tenant, [_creation(contact, int(f"8{int(run, 16)}3"))], timestamp_ms=ten_minutes_ago
    )
    assert response.status_code == 401
    assert "old" in response.json()["detail"]


async def test_missing_signature_is_401(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, contact, _ = edge
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"{herald.services.ingest_url}/v1/webhooks/hubspot/{tenant}", content=json.dumps([_creation(contact, 1)])
        )
    assert response.status_code == 401


async def test_unknown_tenant_is_404_and_audited(herald) -> None:  # type: ignore[no-untyped-def]
    url = f"{herald.services.ingest_url}/v1/webhooks/hubspot/nosuchtenant"
    body = b"[]"
    ts = int(time.time() * 1000)
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            url,
            content=body,
            headers={
                "X-HubSpot-Request-Timestamp": str(ts),
                "X-HubSpot-Signature-v3": hubspot_signature(SECRET, "POST", url, body, ts),
            },
        )
    assert response.status_code == 404
    assert response.json()["error"] == "unknown_tenant"
    rejections = await _rejections(herald, "unknown", 404)
    assert any(r.endpoint.endswith("/nosuchtenant") for r in rejections)


async def test_unknown_contact_in_a_batch_is_reported_and_the_rest_accepted(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, contact, run = edge
    stranger = {**contact, "contact_id": 999_999_999}
    response = await post_hubspot(
        herald, tenant, [_creation(stranger, int(f"8{int(run, 16)}4")), _creation(contact, int(f"8{int(run, 16)}5"))]
    )
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["reason"] == "unknown contact 999999999"


async def test_cloudevent_structured_and_binary_and_bad_ones(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, contact, run = edge
    data = {
        "contact_id": str(contact["contact_id"]),
        "email": contact["email"],
        "reason": "complaint",
        "upstream_source": "esp",
        "upstream_event_id": f"c-{run}",
        "occurred_at": "2026-11-20T10:00:00Z",
    }
    event = {
        "specversion": "1.0",
        "id": f"ce-{run}",
        "source": "esp/bounces",
        "tenant": tenant,
        "type": "herald.consent.withdrawn.v1",
        "data": data,
    }
    url = f"{herald.services.ingest_url}/v1/events"
    async with httpx.AsyncClient(timeout=10) as client:
        structured = await client.post(
            url, content=json.dumps(event), headers={"content-type": "application/cloudevents+json"}
        )
        assert structured.status_code == 202, structured.text
        again = await client.post(
            url, content=json.dumps(event), headers={"content-type": "application/cloudevents+json"}
        )
        assert again.json() == {"accepted": 0, "duplicates": 1}
        binary = await client.post(
            url,
            content=json.dumps({**data, "upstream_event_id": f"b-{run}"}),
            headers={
                "content-type": "application/json",
                "ce-specversion": "1.0",
                "ce-id": f"bin-{run}",
                "ce-source": "esp/bounces",
                "ce-type": "herald.consent.withdrawn.v1",
                "ce-tenant": tenant,
            },
        )
        assert binary.status_code == 202, binary.text
        missing = await client.post(
            url, content=b'{"specversion": "1.0"}', headers={"content-type": "application/cloudevents+json"}
        )
        assert missing.status_code == 400
        wrong_type = await client.post(
            url,
            content=json.dumps({**event, "id": f"x-{run}", "type": "com.acme.nope"}),
            headers={"content-type": "application/cloudevents+json"},
        )
        assert wrong_type.status_code == 422
        bad_data = await client.post(
            url,
            content=json.dumps({**event, "id": f"y-{run}", "data": {"reason": "x"}}),
            headers={"content-type": "application/cloudevents+json"},
        )
        assert bad_data.status_code == 422

    def consent(records):  # type: ignore[no-untyped-def]
        return [r for r in records if r.headers.get("ce_tenant") == tenant and r.type == "herald.consent.withdrawn.v1"]

    records = await read_topic(
        herald.bootstrap, herald.topic(EVENTS), timeout=15, until=lambda rs: len(consent(rs)) >= 2
    )
    await asyncio.sleep(1)  # a third (a duplicate let through) would have landed by now
    records = await read_topic(herald.bootstrap, herald.topic(EVENTS), timeout=5)
    assert len(consent(records)) == 2


@pytest.mark.parametrize(
    ("service", "spec"),
    [
        ("planner", EVENTS),
        ("guard", PROPOSED_ACTION),
        ("guard", REVIEW_DECISION),
        ("guard", LLM_USAGE),
        ("review", REVIEW),
        ("retrieval", EVENTS),
        ("retrieval", EXECUTED),
        ("retrieval", REVIEW_DECISION),
    ],
)
async def test_consumers_dead_letter_bad_messages_with_the_reason(herald, edge, service, spec) -> None:  # type: ignore[no-untyped-def]
    tenant, _, _ = edge
    marker = secrets.token_hex(6).encode()
    good_type = spec.message_types[0]
    env = Envelope(source="test/bad", type=good_type, tenant=tenant, correlation_id=new_id())
    await publish_raw(herald.bootstrap, herald.topic(spec), b"{not json " + marker, key=b"k", headers=env.to_headers())
    await publish_raw(
        herald.bootstrap, herald.topic(spec), b'{"m": "' + marker + b'"}', key=b"k", headers=env.to_headers()
    )
    await publish_raw(herald.bootstrap, herald.topic(spec), marker, key=b"k", headers=[("ce_id", b"x")])
    dlq_topic = f"{herald.prefix}herald.dlq.{service}.v1"
    dlq = await read_topic(
        herald.bootstrap, dlq_topic, timeout=30, until=lambda rs: sum(marker in (r.value or b"") for r in rs) >= 3
    )
    reasons = sorted(r.headers["herald_dlq_reason"] for r in dlq if marker in (r.value or b""))
    assert len(reasons) == 3, reasons
    assert sum(r.startswith("invalid body") for r in reasons) == 2
    assert sum(r.startswith("invalid envelope: missing CloudEvents header") for r in reasons) == 1
    origin = next(r for r in dlq if marker in (r.value or b""))
    assert origin.headers["herald_dlq_topic"] == herald.topic(spec)
    audit = await read_topic(
        herald.bootstrap,
        herald.topic(AUDIT),
        timeout=20,
        until=lambda rs: (
            sum(r.type == "herald.dead-lettered.v1" and r.headers.get("herald_topic") == dlq_topic for r in rs) >= 3
        ),
    )
    assert sum(r.type == "herald.dead-lettered.v1" and r.headers.get("herald_topic") == dlq_topic for r in audit) >= 3


async def test_unreadable_consent_records_are_dead_lettered_by_guard_and_executor(herald, edge) -> None:  # type: ignore[no-untyped-def]
    tenant, _, _ = edge
    marker = secrets.token_hex(6).encode()
    env = Envelope(source="test/bad", type="herald.consent.withdrawn.v1", tenant=tenant, correlation_id=new_id())
    await publish_raw(
        herald.bootstrap, herald.topic(CONSENT), b'{"m": "' + marker + b'"}', key=b"k", headers=env.to_headers()
    )
    for service in ("guard", "executor"):
        dlq_topic = f"{herald.prefix}herald.dlq.{service}.v1"
        dlq = await read_topic(
            herald.bootstrap, dlq_topic, timeout=30, until=lambda rs: any(marker in (r.value or b"") for r in rs)
        )
        mine = [r for r in dlq if marker in (r.value or b"")]
        # every replica follows the whole consent topic, so each one dead-letters what it cannot read
        replicas = sum(1 for r in herald.services.replicas.values() if r.service == service)
        assert 1 <= len(mine) <= replicas, service
        assert mine[0].headers["herald_dlq_reason"].startswith("invalid body")
        assert mine[0].headers["herald_dlq_topic"] == herald.topic(CONSENT)
