"""One edge transaction carries many requests' messages: a message Kafka cannot carry fails its own request
only, before it is queued, and the requests batched with it are published all the same."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime

import pytest

from herald_core.bus import Outbound, TransactionalProducer, UnpublishableError, ensure_topics
from herald_core.contracts import ContactCreated, ContactFacts
from herald_core.envelope import Envelope
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, EVENTS
from support import read_topic

pytestmark = [pytest.mark.kafka]


def _created(tenant: str, contact_id: str, first_name: str, *, validated: bool = True) -> Outbound:
    if validated:
        contact = ContactFacts(contact_id=contact_id, first_name=first_name)
    else:  # what a bug elsewhere could build: a body that bypassed validation
        contact = ContactFacts.model_construct(contact_id=contact_id, first_name=first_name)
    body = ContactCreated.model_construct(
        contact=contact, upstream_source="test", upstream_event_id=contact_id, occurred_at=datetime.now(UTC)
    )
    envelope = Envelope.new_chain(source="test/edge", type=ContactCreated.TYPE, tenant=tenant)
    return Outbound(EVENTS, f"{tenant}:{contact_id}".encode(), envelope, body)


async def test_a_bad_message_beside_good_ones_fails_alone(stack) -> None:  # type: ignore[no-untyped-def]
    prefix = f"p{secrets.token_hex(4)}."
    common = CommonSettings(kafka_bootstrap=stack.kafka_bootstrap, topic_prefix=prefix)
    await ensure_topics(common, [EVENTS, AUDIT])
    producer = TransactionalProducer(common, "ingest", name="shared")
    await producer.start()
    tenant = "shared"
    try:
        outcomes = await asyncio.gather(
            producer.publish([_created(tenant, "c1", "Ann")]),
            producer.publish([_created(tenant, "c2", "Bad \ud800", validated=False)]),
            producer.publish([_created(tenant, "c3", "Cy")]),
            return_exceptions=True,
        )
        assert outcomes[0] is None and outcomes[2] is None, outcomes
        assert isinstance(outcomes[1], UnpublishableError), outcomes
        assert producer.started  # the producer was never disturbed
        await producer.publish([_created(tenant, "c4", "Dee")])
    finally:
        await producer.stop()
    events = await read_topic(stack.kafka_bootstrap, EVENTS.full_name(prefix), timeout=10)
    assert sorted(r.key.decode() for r in events if r.key) == [f"{tenant}:c1", f"{tenant}:c3", f"{tenant}:c4"]
    audit = await read_topic(stack.kafka_bootstrap, AUDIT.full_name(prefix), timeout=10)
    assert len(audit) == 3  # every published message with its audit copy, the refused one with neither
