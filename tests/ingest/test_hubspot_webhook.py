"""`POST /v1/webhooks/hubspot/{tenant}`: signed HubSpot batches in, Herald's contact facts out on
Kafka (with their audit copies), once per event; every refusal answered with a reason and audited."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from herald_core.contracts import (
    ConsentReason,
    ConsentWithdrawn,
    ContactCreated,
    ContactFacts,
    ContactUpdated,
    EventRejected,
)
from herald_core.topics import AUDIT, CONSENT, EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

FACT_FIELDS = tuple(ContactFacts.model_fields)


PORTAL = 62515
SECRET = "ingest-test-hubspot-secret"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
async def people(ingest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Contacts in the contact store for this module's tests, seeded with the real command."""
    people = {
        name: ingest.contact(**extra)
        for name, extra in {
            "lead": {"vip": True, "deal_value_minor": 9_900_000, "job_title": "COO"},
            "unsubscriber": {},
            "promoted": {},
            "twice": {},
            "racing": {},
            "partner": {},
            "traced": {},
            "untraced": {},
            "survivor": {},
            "typo": {},
        }.items()
    }
    await ingest.seeded(ingest.tenant, list(people.values()), tmp_path_factory.mktemp("people"))
    return people


def facts(contact: dict[str, Any], **changed: Any) -> ContactFacts:
    return ContactFacts.model_validate(
        {"contact_id": str(contact["contact_id"]), **{k: contact.get(k) for k in FACT_FIELDS[1:]}, **changed}
    )


def upstream(records: list[Any], event_id: int) -> list[Any]:
    bodies = [r for r in records if r.value is not None]  # not an erasure's tombstones on the consent topic
    return [r for r in bodies if r.json().get("upstream_event_id") == str(event_id)]


async def test_a_signed_batch_publishes_contact_created_enriched_with_its_audit_copy(ingest, people) -> None:  # type: ignore[no-untyped-def]
    contact = people["lead"]
    event = ingest.creation(contact)
    response = await ingest.post_hubspot(ingest.tenant, [event])
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}

    [record] = upstream(await ingest.read(EVENTS), event["eventId"])
    assert record.type == ContactCreated.TYPE
    assert record.key == f"{ingest.tenant}:{contact['contact_id']}".encode()
    assert record.tenant == ingest.tenant
    assert record.headers["ce_source"] == "herald/ingest"
    assert record.headers["ce_subject"] == f"contact/{contact['contact_id']}"
    assert len(record.headers["ce_correlationid"]) == 26  # a ULID
    created = record.body(ContactCreated)
    assert created.contact == facts(contact)  # enriched from the contact store: VIP, deal value, names …
    assert created.contact.vip and created.contact.deal_value_minor == 9_900_000
    assert created.upstream_source == "hubspot"
    assert created.occurred_at == datetime.fromtimestamp(event["occurredAt"] / 1000, UTC)

    [copy] = [r for r in await ingest.read(AUDIT) if r.headers.get("ce_id") == record.headers["ce_id"]]
    assert copy.headers["herald_topic"] == ingest.topic(EVENTS)
    assert copy.value == record.value
    assert copy.key == record.key


async def test_an_opt_out_is_a_consent_withdrawal_on_the_events_and_the_consent_topic(ingest, people) -> None:  # type: ignore[no-untyped-def]
    contact = people["unsubscriber"]
    event = ingest.property_change(contact, "hs_email_optout", "true")
    response = await ingest.post_hubspot(ingest.tenant, [event])
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}

    [on_events] = upstream(await ingest.read(EVENTS), event["eventId"])
    [on_consent] = upstream(await ingest.read(CONSENT), event["eventId"])
    for record in (on_events, on_consent):
        assert record.type == ConsentWithdrawn.TYPE
        withdrawn = record.body(ConsentWithdrawn)
        assert withdrawn.contact_id == str(contact["contact_id"])
        assert withdrawn.email == contact["email"]
        assert withdrawn.reason is ConsentReason.UNSUBSCRIBE
    assert on_events.key == f"{ingest.tenant}:{contact['contact_id']}".encode()
    assert on_consent.key == f"{ingest.tenant}:{contact['contact_id']}:email".encode()
    audited = {r.headers["herald_topic"] for r in await ingest.read(AUDIT) if r.value == on_events.value}
    assert audited == {ingest.topic(EVENTS), ingest.topic(CONSENT)}
    pool = await ingest.db()
    stored = await pool.fetchval(
        "SELECT opted_out FROM ingest.contacts WHERE tenant = $1 AND contact_id = $2",
        ingest.tenant,
        str(contact["contact_id"]),
    )
    assert stored is True


async def test_another_property_change_is_a_contact_update_with_the_new_value(ingest, people) -> None:  # type: ignore[no-untyped-def]
    contact = people["promoted"]
    event = ingest.property_change(contact, "jobtitle", "VP Operations")
    response = await ingest.post_hubspot(ingest.tenant, [event])
    assert response.json()["accepted"] == 1

    [record] = upstream(await ingest.read(EVENTS), event["eventId"])
    updated = record.body(ContactUpdated)
    assert updated.changed_property == "jobtitle"
    assert updated.new_value == "VP Operations"
    assert updated.contact == facts(contact, job_title="VP Operations")
    assert not upstream(await ingest.read(CONSENT), event["eventId"])
    # the store keeps the change: the next event about this contact carries it
    later = ingest.creation(contact)
    await ingest.post_hubspot(ingest.tenant, [later])
    [next_record] = upstream(await ingest.read(EVENTS), later["eventId"])
    assert next_record.body(ContactCreated).contact.job_title == "VP Operations"


async def test_the_same_webhook_delivered_twice_is_published_once(ingest, people) -> None:  # type: ignore[no-untyped-def]
    contact = people["twice"]
    event = ingest.creation(contact)
    first = await ingest.post_hubspot(ingest.tenant, [event])
    retried = await ingest.post_hubspot(ingest.tenant, [{**event, "attemptNumber": 1}])
    assert first.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert retried.status_code == 200
    assert retried.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    # and twice inside one batch
    doubled = ingest.creation(contact)
    response = await ingest.post_hubspot(ingest.tenant, [doubled, doubled])
    assert response.json() == {"accepted": 1, "duplicates": 1, "rejected": []}

    events = await ingest.read(EVENTS)
    assert len(upstream(events, event["eventId"])) == 1
    assert len(upstream(events, doubled["eventId"])) == 1


async def test_concurrent_deliveries_of_one_event_publish_it_once(ingest, people) -> None:  # type: ignore[no-untyped-def]
    event = ingest.creation(people["racing"])
    responses = await asyncio.gather(*(ingest.post_hubspot(ingest.tenant, [event]) for _ in range(4)))
    assert sorted(r.json()["accepted"] for r in responses) == [0, 0, 0, 1]
    assert len(upstream(await ingest.read(EVENTS), event["eventId"])) == 1


async def test_event_ids_are_deduplicated_per_tenant(ingest, people, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two HubSpot portals may send the same eventId; one tenant's event never shadows another's."""
    contact = people["partner"]
    await ingest.seeded(ingest.other_portal_tenant, [contact], tmp_path)
    event = ingest.creation(contact)
    mine = await ingest.post_hubspot(ingest.tenant, [event])
    theirs = await ingest.post_hubspot(ingest.other_portal_tenant, [{**event, "portalId": 99999}])
    assert mine.json()["accepted"] == 1
    assert theirs.json()["accepted"] == 1, theirs.text
    assert {r.tenant for r in upstream(await ingest.read(EVENTS), event["eventId"])} == {
        ingest.tenant,
        ingest.other_portal_tenant,
    }


async def test_a_w3c_traceparent_is_continued_and_each_event_is_its_own_chain(ingest, people) -> None:  # type: ignore[no-untyped-def]
    traceparent, trace = ingest.new_traceparent()
    traced = ingest.creation(people["traced"])
    await ingest.post_hubspot(ingest.tenant, [traced], headers={"traceparent": traceparent})
    untraced = [ingest.creation(people["untraced"]), ingest.property_change(people["untraced"], "company", "Acme")]
    await ingest.post_hubspot(ingest.tenant, untraced)

    events = await ingest.read(EVENTS)
    [record] = upstream(events, traced["eventId"])
    assert ingest.trace_of(record) == trace
    assert record.headers["ce_traceparent"] != traceparent  # a new span under the caller's
    fresh = [upstream(events, e["eventId"])[0] for e in untraced]
    assert len({ingest.trace_of(r) for r in fresh} | {trace}) == 3
    assert len({r.headers["ce_correlationid"] for r in [record, *fresh]}) == 3


async def test_an_unknown_contact_is_refused_for_its_item_and_the_rest_accepted(ingest, people, tmp_path) -> None:  # type: ignore[no-untyped-def]
    stranger = ingest.contact()
    unknown = ingest.creation(stranger)
    deletion = {**ingest.creation(people["survivor"]), "subscriptionType": "contact.deletion"}
    known = ingest.creation(people["survivor"])
    response = await ingest.post_hubspot(ingest.tenant, [unknown, deletion, known])
    assert response.status_code == 200
    body = response.json()
    assert body["accepted"] == 1
    assert body["duplicates"] == 0
    assert sorted(body["rejected"], key=lambda r: r["eventId"]) == sorted(
        [
            {"eventId": unknown["eventId"], "reason": f"unknown contact {stranger['contact_id']}"},
            {"eventId": deletion["eventId"], "reason": "unsupported subscriptionType contact.deletion"},
        ],
        key=lambda r: r["eventId"],
    )
    events = await ingest.read(EVENTS)
    assert len(upstream(events, known["eventId"])) == 1
    assert not upstream(events, unknown["eventId"])
    rejections = {
        r.body(EventRejected).upstream_event_id: r.body(EventRejected)
        for r in await ingest.read(AUDIT)
        if r.type == EventRejected.TYPE and r.tenant == ingest.tenant
    }
    assert rejections[str(unknown["eventId"])].reason == f"unknown contact {stranger['contact_id']}"
    assert rejections[str(unknown["eventId"])].endpoint == f"/v1/webhooks/hubspot/{ingest.tenant}"
    assert str(deletion["eventId"]) in rejections

    # a refused event is not marked seen: once the contact exists, HubSpot's retry is accepted
    await ingest.seeded(ingest.tenant, [stranger], tmp_path)
    retry = await ingest.post_hubspot(ingest.tenant, [{**unknown, "attemptNumber": 1}])
    assert retry.json() == {"accepted": 1, "duplicates": 0, "rejected": []}


async def test_a_property_value_the_contact_cannot_hold_is_refused_for_its_item(ingest, people) -> None:  # type: ignore[no-untyped-def]
    bad = ingest.property_change(people["typo"], "email", "not an address")
    good = ingest.property_change(people["typo"], "lastname", "Reyes-Ortiz")
    response = await ingest.post_hubspot(ingest.tenant, [bad, good])
    body = response.json()
    assert body["accepted"] == 1
    [refused] = body["rejected"]
    assert refused["eventId"] == bad["eventId"]
    assert refused["reason"].startswith("invalid email")
    [record] = upstream(await ingest.read(EVENTS), good["eventId"])
    assert record.body(ContactUpdated).contact.email == people["typo"]["email"]


# ---------------------------------------------------------------- refusals


def _bad_requests() -> dict[str, tuple[dict[str, Any], int, str]]:
    """name → (how to post it, status, error)."""
    stale = now_ms() - 10 * 60 * 1000
    future = now_ms() + 10 * 60 * 1000
    return {
        "malformed_json": ({"raw": b'[{"eventId": 1,'}, 400, "malformed_json"),
        "wrong_schema": ({"batch": [{"eventId": "not-a-number", "portalId": PORTAL}]}, 422, "invalid_schema"),
        "not_a_batch": ({"raw": b'{"eventId": 1}'}, 422, "invalid_schema"),
        "bad_signature": ({"secret": "not-the-secret"}, 401, "bad_signature"),
        "missing_signature": ({"signed": False}, 401, "missing_signature"),
        "stale_timestamp": ({"timestamp_ms": stale}, 401, "stale_timestamp"),
        "future_timestamp": ({"timestamp_ms": future}, 401, "stale_timestamp"),
        "foreign_portal": ({"portal": 11111}, 403, "wrong_portal"),
    }


@pytest.mark.parametrize("case", list(_bad_requests()))
async def test_bad_input_gets_its_4xx_is_audited_and_the_service_keeps_serving(ingest, people, case: str) -> None:  # type: ignore[no-untyped-def]
    how, status, error = _bad_requests()[case]
    traceparent, trace = ingest.new_traceparent()
    batch = how.get("batch") or [ingest.creation(people["survivor"], portal=how.get("portal", PORTAL))]
    response = await ingest.post_hubspot(
        ingest.tenant,
        batch,
        raw=how.get("raw"),
        secret=how.get("secret", SECRET),
        timestamp_ms=how.get("timestamp_ms"),
        signed=how.get("signed", True),
        headers={"traceparent": traceparent},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.json()["detail"]

    [audited] = [r for r in await ingest.read(AUDIT) if ingest.trace_of(r) == trace]
    assert audited.type == EventRejected.TYPE
    assert audited.tenant == ingest.tenant
    rejected = audited.body(EventRejected)
    assert rejected.status_code == status
    assert rejected.reason.startswith(error)
    assert rejected.endpoint == f"/v1/webhooks/hubspot/{ingest.tenant}"
    event_id = batch[0].get("eventId")
    if isinstance(event_id, int):
        assert not upstream(await ingest.read(EVENTS), event_id)

    good = ingest.creation(people["survivor"])
    assert (await ingest.post_hubspot(ingest.tenant, [good])).json()["accepted"] == 1


async def test_the_refusals_say_what_is_wrong(ingest, people) -> None:  # type: ignore[no-untyped-def]
    schema = await ingest.post_hubspot(ingest.tenant, [{"eventId": "not-a-number", "portalId": PORTAL}])
    locations = [tuple(e["loc"]) for e in schema.json()["detail"]]
    assert (0, "eventId") in locations
    assert (0, "objectId") in locations
    assert all({"loc", "msg", "type"} <= set(e) for e in schema.json()["detail"])

    bad = await ingest.post_hubspot(ingest.tenant, [ingest.creation(people["survivor"])], secret="nope")
    assert bad.json()["detail"] == "signature does not match"
    stale = await ingest.post_hubspot(
        ingest.tenant, [ingest.creation(people["survivor"])], timestamp_ms=now_ms() - 400_000
    )
    assert stale.json()["detail"] == "request timestamp is 400s old (limit 300s)"


async def test_the_signature_covers_the_full_uri_and_the_exact_body(ingest, people) -> None:  # type: ignore[no-untyped-def]
    path = f"/v1/webhooks/hubspot/{ingest.tenant}"
    body = json.dumps([ingest.creation(people["survivor"])]).encode()
    timestamp = now_ms()
    for signed_uri, sent_body in (
        (f"https://ingest.test{path}", body),  # another scheme
        (f"{ingest.base_url}{path}?x=1", body),  # another URI
        (f"{ingest.base_url}{path}", body + b" "),  # another body
    ):
        signature = ingest.sign(SECRET, "POST", signed_uri, sent_body, timestamp)
        response = await ingest.client.post(
            path,
            content=body,
            headers={"X-HubSpot-Request-Timestamp": str(timestamp), "X-HubSpot-Signature-v3": signature},
        )
        assert response.status_code == 401, signed_uri


async def test_an_unknown_tenant_is_404_and_audited_as_tenant_unknown(ingest, people) -> None:  # type: ignore[no-untyped-def]
    nobody = f"nosuch{secrets.token_hex(4)}"
    traceparent, trace = ingest.new_traceparent()
    response = await ingest.post_hubspot(
        nobody, [ingest.creation(people["survivor"])], headers={"traceparent": traceparent}
    )
    assert response.status_code == 404
    assert response.json() == {"error": "unknown_tenant", "detail": f"no tenant {nobody!r}"}
    [audited] = [r for r in await ingest.read(AUDIT) if ingest.trace_of(r) == trace]
    assert audited.tenant == "unknown"
    assert audited.body(EventRejected).endpoint == f"/v1/webhooks/hubspot/{nobody}"
    assert audited.body(EventRejected).status_code == 404
    good = ingest.creation(people["survivor"])
    assert (await ingest.post_hubspot(ingest.tenant, [good])).json()["accepted"] == 1
