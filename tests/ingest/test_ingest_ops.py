"""Operating the ingest service: health, readiness, metrics, and what a sender sees when Kafka
cannot take its events (a 503 it retries, with nothing marked seen)."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from herald_core.bus import TransactionalProducer
from herald_ingest.app import create_app
from herald_ingest.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _events_total(client: httpx.AsyncClient) -> dict[tuple[str, str], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.labels["outcome"], sample.labels["reason"]): sample.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "herald_ingest_events"
        for sample in family.samples
        if sample.name == "herald_ingest_events_total"
    }


async def test_health_and_readiness(ingest) -> None:  # type: ignore[no-untyped-def]
    assert (await ingest.client.get("/healthz")).json() == {"status": "ok"}
    ready = await ingest.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"postgres": True, "kafka_producer": True, "consumer": True}}


async def test_events_are_counted_by_outcome_and_reason(ingest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    contact = ingest.contact()
    await ingest.seeded(ingest.tenant, [contact], tmp_path)
    before = await _events_total(ingest.client)
    event = ingest.creation(contact)
    await ingest.post_hubspot(ingest.tenant, [event])
    await ingest.post_hubspot(ingest.tenant, [event])
    await ingest.post_hubspot(ingest.tenant, [event], secret="wrong")
    await ingest.post_hubspot(ingest.tenant, [ingest.creation(ingest.contact())])
    after = await _events_total(ingest.client)

    def grew(outcome: str, reason: str) -> float:
        return after.get((outcome, reason), 0) - before.get((outcome, reason), 0)

    assert grew("accepted", "none") == 1
    assert grew("duplicate", "duplicate") == 1
    assert grew("rejected", "bad_signature") == 1
    assert grew("rejected", "unknown_contact") == 1


async def test_when_kafka_refuses_the_publish_the_sender_gets_503_and_its_retry_is_accepted(ingest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A replica whose transactional producer was fenced (a newer instance took its id) cannot publish:
    it answers 503, records nothing as seen, and the retry to a healthy replica is accepted, not a duplicate."""
    contact = ingest.contact()
    await ingest.seeded(ingest.tenant, [contact], tmp_path)
    common = ingest.settings.common.model_copy(update={"instance_id": "zombie"})
    zombie = await create_app(Settings(common=common))
    await zombie.start()
    successor = TransactionalProducer(common, "ingest")
    await successor.start()  # same transactional id: the zombie's producer is fenced
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=zombie.http), base_url=ingest.base_url)
    try:
        event = ingest.creation(contact)
        refused = await ingest.post_hubspot(ingest.tenant, [event], client=client)
        assert refused.status_code == 503
        assert refused.json()["error"] == "unavailable"
        pool = await ingest.db()
        seen = await pool.fetchval(
            "SELECT count(*) FROM ingest.seen_events WHERE tenant = $1 AND event_id = $2",
            ingest.tenant,
            str(event["eventId"]),
        )
        assert seen == 0
        # a refusal it cannot audit is not answered as a plain refusal either: the sender comes back. (The failed
        # publish made the zombie start a new producer, which fenced the successor in turn: fence it once more.)
        await successor.stop()
        successor = TransactionalProducer(common, "ingest")
        await successor.start()
        unaudited = await ingest.post_hubspot(ingest.tenant, [event], secret="wrong", client=client)
        assert unaudited.status_code == 503

        retried = await ingest.post_hubspot(ingest.tenant, [{**event, "attemptNumber": 1}])
        assert retried.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    finally:
        await client.aclose()
        await zombie.stop()
        await successor.stop()
