"""The topology declared once in herald-core: what the generated deploy files promise."""

from __future__ import annotations

from herald_core.contracts import MESSAGE_TYPES
from herald_core.generate import asyncapi, kafka_topics, kafka_users
from herald_core.topics import APPROVED_ACTION, AUDIT, TOPICS


def _writers(topic: str) -> set[str]:
    return {
        user["metadata"]["name"]
        for user in kafka_users()
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"] == {"type": "topic", "name": topic, "patternType": "literal"}
        and "Write" in acl["operations"]
    }


def test_only_the_guard_may_write_approvals() -> None:
    assert _writers(APPROVED_ACTION.name) == {"herald-guard"}


def test_every_producer_may_write_its_audit_copies() -> None:
    producers = {f"herald-{p}" for spec in TOPICS for p in spec.producers if p != "*"}
    assert producers <= _writers(AUDIT.name)


def test_pipeline_topics_have_at_least_six_partitions() -> None:
    for spec in TOPICS:
        if spec.pipeline:
            assert spec.partitions >= 6, spec.name
    assert {t["spec"]["topicName"] for t in kafka_topics()} >= {s.name for s in TOPICS}


def test_every_message_type_travels_on_a_declared_topic_or_the_audit() -> None:
    carried = {t for spec in TOPICS for t in spec.message_types}
    audit_only = {"herald.event.rejected.v1", "herald.dead-lettered.v1"}
    assert set(MESSAGE_TYPES) == carried | audit_only


def test_asyncapi_lists_every_channel_and_message() -> None:
    document = asyncapi()
    assert {c["address"] for c in document["channels"].values()} == {s.name for s in TOPICS}
    assert {m["name"] for m in document["components"]["messages"].values()} == set(MESSAGE_TYPES)
