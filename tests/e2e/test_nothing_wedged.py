"""Nothing lost, nothing wedged: each record that once stopped a consumer for good is dead-lettered with its
reason (or refused at the edge) while the consumers move on, and a consumer that cannot move says so in its
readiness. Each case was a consumer retrying one record forever, with every `/readyz` answering 200."""

from __future__ import annotations

import json
import secrets

import httpx
import pytest
from test_first_touch import _contact, _creation, post_hubspot

from herald_core.contracts import ActionBlocked, EventRejected, PlanCreated
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.topics import AUDIT, CONSENT, EVENTS, PLAN, REVIEW_DECISION, all_topics
from support import eventually, publish_raw, read_topic, restarted_with

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture(scope="module")
def world(herald, tmp_path_factory):  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"wedge{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    contacts = [_contact(run, n) for n in range(1, 9)]
    contacts.append(_contact(run, 9, job_title="Head of " + "very " * 700 + "long titles"))
    herald.seed_contacts(tenant, contacts, tmp_path_factory.mktemp("wedge"))
    return tenant, contacts, run


def _event_id(run: str, n: int) -> int:
    return int(f"6{int(run, 16) % 100000:05d}{n:03d}")


async def _planned(herald, tenant: str, contact_id: object, timeout: float = 60) -> PlanCreated:  # type: ignore[no-untyped-def]
    def mine(records):  # type: ignore[no-untyped-def]
        return [
            r.body(PlanCreated)
            for r in records
            if r.type == PlanCreated.TYPE and r.tenant == tenant and f'"contact_id":"{contact_id}"' in r.value.decode()
        ]

    records = await read_topic(herald.bootstrap, herald.topic(PLAN), timeout=timeout, until=lambda rs: bool(mine(rs)))
    found = mine(records)
    assert found, f"contact {contact_id} was never planned"
    return found[0]


async def _dead_letters(herald, service: str, marker: bytes, count: int = 1, timeout: float = 30):  # type: ignore[no-untyped-def]
    topic = f"{herald.prefix}herald.dlq.{service}.v1"
    records = await read_topic(
        herald.bootstrap,
        topic,
        timeout=timeout,
        until=lambda rs: sum(marker in (r.value or b"") for r in rs) >= count,
    )
    return [r for r in records if marker in (r.value or b"")]


async def _every_service_ready(herald) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(timeout=5) as client:
        for name, replica in herald.services.replicas.items():
            answer = await client.get(f"http://127.0.0.1:{replica.ops_port}/readyz")
            assert answer.status_code == 200, (name, answer.text)


async def test_a_nul_byte_in_a_signed_hubspot_property_is_refused_alone_and_consent_keeps_flowing(
    herald,  # type: ignore[no-untyped-def]
    world,
) -> None:
    tenant, contacts, run = world
    poisoned = {
        **_creation(contacts[0], _event_id(run, 1)),
        "subscriptionType": "contact.propertyChange",
        "propertyName": "jobtitle",
        "propertyValue": "VP\u0000Operations",
    }
    response = await post_hubspot(herald, tenant, [poisoned, _creation(contacts[1], _event_id(run, 2))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["eventId"] == _event_id(run, 1)
    assert "NUL" in body["rejected"][0]["reason"]
    audit = await read_topic(
        herald.bootstrap,
        herald.topic(AUDIT),
        timeout=20,
        until=lambda rs: any(
            r.type == EventRejected.TYPE and r.tenant == tenant and str(_event_id(run, 1)) in r.value.decode()
            for r in rs
        ),
    )
    assert any(r.type == EventRejected.TYPE and str(_event_id(run, 1)) in r.value.decode() for r in audit)
    # the lead batched with it goes all the way: planned and decided by a guard whose consent feed is current
    await _planned(herald, tenant, contacts[1]["contact_id"])
    await _every_service_ready(herald)


async def test_a_job_title_longer_than_retrieval_takes_is_still_planned(herald, world) -> None:  # type: ignore[no-untyped-def]
    tenant, contacts, run = world
    response = await post_hubspot(herald, tenant, [_creation(contacts[8], _event_id(run, 9))])
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    plan = await _planned(herald, tenant, contacts[8]["contact_id"])
    assert len(plan.query) <= 2000


async def test_records_no_store_can_hold_are_dead_lettered_where_they_are_read(herald, world) -> None:  # type: ignore[no-untyped-def]
    """Written straight to the topics, past the edge: a NUL in a body, a list where memory expects a tool name."""
    tenant, contacts, run = world
    marker = secrets.token_hex(6)
    env = Envelope(source="test/raw", type="herald.contact.created.v1", tenant=tenant, correlation_id=new_id())
    nul_body = json.dumps(
        {
            "contact": {"contact_id": f"{marker}", "first_name": "Ann\u0000"},
            "upstream_source": "test",
            "upstream_event_id": marker,
            "occurred_at": "2026-12-01T10:00:00Z",
        }
    ).encode()
    await publish_raw(
        herald.bootstrap, herald.topic(EVENTS), nul_body, key=f"{tenant}:{marker}".encode(), headers=env.to_headers()
    )
    decided = Envelope(source="test/raw", type="herald.review.decided.v1", tenant=tenant, correlation_id=new_id())
    listed = json.dumps({"review_id": marker, "action": {"tool": ["send_email"], "input": {}}}).encode()
    await publish_raw(herald.bootstrap, herald.topic(REVIEW_DECISION), listed, key=b"k", headers=decided.to_headers())
    for service in ("planner", "retrieval", "executor"):
        found = await _dead_letters(herald, service, marker.encode())
        reasons = [r.headers["herald_dlq_reason"] for r in found]
        assert any("NUL" in reason for reason in reasons), (service, reasons)
    for service in ("guard", "retrieval"):
        found = await _dead_letters(herald, service, b'"review_id": "' + marker.encode())
        assert found and found[0].headers["herald_dlq_reason"].startswith("invalid body"), service
    # and the consumers moved on: a lead sent after them is planned
    response = await post_hubspot(herald, tenant, [_creation(contacts[2], _event_id(run, 3))])
    assert response.json()["accepted"] == 1
    await _planned(herald, tenant, contacts[2]["contact_id"])
    await _every_service_ready(herald)


#: every consumer of each topic, as it runs (the topic table's names, the review service's sealer apart)
_CONSUMED = {
    "herald.events.v1": ("planner", "retrieval", "executor"),
    "herald.proposed-action.v1": ("guard",),
    "herald.decision.v1": ("planner",),
    "herald.review.v1": ("review",),
    "herald.review-decision.v1": ("guard", "retrieval", "planner"),
    "herald.approved-action.v1": ("executor",),
    "herald.executed.v1": ("planner", "retrieval", "review", "executor"),
    "herald.consent.v1": ("guard", "executor"),
    "herald.knowledge.v1": ("retrieval",),
    "herald.knowledge-indexed.v1": ("retrieval",),
    "herald.policy.v1": ("guard",),
    "herald.control.v1": ("guard", "executor", "planner"),
    "herald.llm-usage.v1": ("guard",),
    "herald.workflow-timer.v1": ("planner",),
}


def test_the_table_names_every_consumer_this_test_covers() -> None:
    for spec in all_topics():
        if spec.name in _CONSUMED:
            assert set(_CONSUMED[spec.name]) <= set(spec.consumers), spec.name


async def test_a_null_header_value_on_every_consumed_topic_is_dead_lettered_by_every_consumer(herald, world) -> None:  # type: ignore[no-untyped-def]
    tenant, contacts, run = world
    marker = secrets.token_hex(6).encode()
    specs = {spec.name: spec for spec in all_topics()}
    for name in _CONSUMED:
        spec = specs[name]
        env = Envelope(source="test/raw", type=spec.message_types[0], tenant=tenant, correlation_id=new_id())
        headers = [*env.to_headers(), ("x-upstream-trace", None)]
        key = f"{tenant}:nullheader:email".encode()
        await publish_raw(
            herald.bootstrap, herald.topic(spec), b'{"marker": "' + marker + b'"}', key=key, headers=headers
        )  # type: ignore[arg-type]
    expected: dict[str, int] = {}
    for services in _CONSUMED.values():
        for service in services:
            expected[service] = expected.get(service, 0) + 1
    for service, count in expected.items():
        found = await _dead_letters(herald, service, marker, count=count, timeout=45)
        origins = {r.headers["herald_dlq_topic"] for r in found}
        wanted = {herald.topic(specs[name]) for name, services in _CONSUMED.items() if service in services}
        assert origins == wanted, (service, sorted(wanted - origins))
        assert all(
            "without a value" in r.headers["herald_dlq_reason"] or "invalid" in r.headers["herald_dlq_reason"]
            for r in found
        )
    response = await post_hubspot(herald, tenant, [_creation(contacts[3], _event_id(run, 4))])
    assert response.json()["accepted"] == 1
    await _planned(herald, tenant, contacts[3]["contact_id"])
    await _every_service_ready(herald)


async def test_deeply_nested_json_and_mime_get_a_4xx_not_a_500(herald, world) -> None:  # type: ignore[no-untyped-def]
    tenant, _, _ = world
    deep = b"[" * 50_000 + b"]" * 50_000
    hubspot = await post_hubspot(herald, tenant, [], raw=deep)
    assert hubspot.status_code == 400 and "nests deeper" in hubspot.json()["detail"], hubspot.text
    async with httpx.AsyncClient(timeout=30) as client:
        cloud = await client.post(
            f"{herald.services.ingest_url}/v1/events",
            content=deep,
            headers={"content-type": "application/cloudevents+json"},
        )
        assert cloud.status_code == 400, cloud.text
        parts = [f"Content-Type: multipart/mixed; boundary=b{i}\r\n\r\n--b{i}\r\n" for i in range(400)]
        mime = ("From: x@example.com\r\nTo: bounces@acmerelay.example\r\n" + "".join(parts)).encode()
        email = await client.post(
            f"{herald.services.ingest_url}/v1/inbound/{tenant}/email",
            content=mime,
            headers={"content-type": "message/rfc822"},
        )
        assert 400 <= email.status_code < 500, email.text
        # a structured event sent without a content type, an attribute named by a lone surrogate and too long
        event = (
            '{"specversion": "1.0", "id": "p1", "source": "s", "type": "herald.message.replied.v1", '
            f'"tenant": "{tenant}", "\\ud800": "{"x" * 600}", "data": {{}}}}'
        )
        odd = await client.post(f"{herald.services.ingest_url}/v1/events", content=event.encode())
        assert 400 <= odd.status_code < 500, odd.text
        assert odd.json()["error"]


async def test_a_wedged_consumer_is_not_ready_and_names_its_partition_then_gives_up_loudly(herald, world) -> None:  # type: ignore[no-untyped-def]
    """Retrieval unreachable: the planner retries (a failure that heals), reports the wedge in /readyz, and once
    the retry bound passes dead-letters the lead with why, and moves on."""
    tenant, contacts, run = world
    env = {
        "HERALD_PLANNER_RETRIEVAL_TARGET": "127.0.0.1:9",  # nothing listens: UNAVAILABLE
        "HERALD_WEDGE_SECONDS": "2",
        "HERALD_RETRY_GIVE_UP_SECONDS": "12",
    }
    planners = [name for name, r in herald.services.replicas.items() if r.service == "planner"]
    assert len(planners) == 1
    async with restarted_with(herald, planners[0], env):
        response = await post_hubspot(herald, tenant, [_creation(contacts[4], _event_id(run, 5))])
        assert response.json()["accepted"] == 1
        replica = herald.services.replicas[planners[0]]
        async with httpx.AsyncClient(timeout=5) as client:

            async def wedged() -> dict[str, object] | None:
                answer = await client.get(f"http://127.0.0.1:{replica.ops_port}/readyz")
                return answer.json() if answer.status_code == 503 else None

            report = await eventually(wedged, timeout=30)
        reason = report["reasons"]["consumer"]
        assert f"{herald.topic(EVENTS)}[" in reason and "stuck at offset" in reason, reason
        assert "UNAVAILABLE" in reason, reason
        found = await _dead_letters(herald, "planner", str(contacts[4]["contact_id"]).encode(), timeout=60)
        assert found[0].headers["herald_dlq_reason"].startswith("gave up"), found[0].headers
        async with httpx.AsyncClient(timeout=5) as client:

            async def ready_again() -> bool | None:
                answer = await client.get(f"http://127.0.0.1:{replica.ops_port}/readyz")
                return True if answer.status_code == 200 else None

            await eventually(ready_again, timeout=30)


async def test_a_damaged_withdrawal_still_stops_sending_to_the_contact_its_key_names(herald, world) -> None:  # type: ignore[no-untyped-def]
    """A withdrawal whose body no store can hold (a NUL in the address) cannot be applied as it is: it is
    dead-lettered, and the guard fails closed — the contact its key names is suppressed."""
    tenant, contacts, run = world
    contact = contacts[5]
    env = Envelope(source="herald/ingest", type="herald.consent.withdrawn.v1", tenant=tenant, correlation_id=new_id())
    damaged = json.dumps(
        {
            "contact_id": str(contact["contact_id"]),
            "email": "lead\u0000@northwind.example",
            "reason": "unsubscribe",
            "upstream_source": "hubspot",
            "upstream_event_id": f"damaged-{run}",
            "occurred_at": "2026-12-01T10:00:00Z",
        }
    ).encode()
    key = f"{tenant}:{contact['contact_id']}:email".encode()
    await publish_raw(herald.bootstrap, herald.topic(CONSENT), damaged, key=key, headers=env.to_headers())
    found = await _dead_letters(herald, "guard", f"damaged-{run}".encode())
    assert "NUL" in found[0].headers["herald_dlq_reason"]
    response = await post_hubspot(herald, tenant, [_creation(contact, _event_id(run, 6))])
    assert response.json()["accepted"] == 1

    def blocked(records):  # type: ignore[no-untyped-def]
        return [
            r.body(ActionBlocked)
            for r in records
            if r.type == ActionBlocked.TYPE and r.tenant == tenant and str(contact["contact_id"]) in r.value.decode()
        ]

    decisions = blocked(
        await read_topic(herald.bootstrap, herald.topic(AUDIT), timeout=60, until=lambda rs: bool(blocked(rs)))
    )
    assert decisions and decisions[0].rule == "consent.opt_out", decisions
    assert "unreadable_consent_record" in decisions[0].reason


async def test_a_malformed_event_in_a_signed_delivery_is_refused_alone(herald, world) -> None:  # type: ignore[no-untyped-def]
    """An `occurredAt` past year 9999 was a 500 for the whole delivery (and HubSpot retries it for days)."""
    tenant, contacts, run = world
    broken = {**_creation(contacts[6], _event_id(run, 7)), "occurredAt": 253_402_300_800_000}
    response = await post_hubspot(herald, tenant, [broken, _creation(contacts[7], _event_id(run, 8))])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["eventId"] == _event_id(run, 7)
    assert "occurredAt" in body["rejected"][0]["reason"], body
    await _planned(herald, tenant, contacts[7]["contact_id"])
