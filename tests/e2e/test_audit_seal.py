"""The tamper-evident audit: every audit record sealed into a per-partition hash chain by the review
service; `herald audit verify` holds on the live topic and names the record where an exported copy was
altered, cut or reordered; and no record on the audit topic, however malformed, stops the sealing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from herald_core.audit import SealedRecord, verify
from herald_core.envelope import Envelope
from herald_core.topics import AUDIT, AUDIT_SEALED, PROPOSED_ACTION, contact_key
from support import email_action, envelope, eventually, herald_command, publish_many

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


def exported(herald, path: Path) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    result = herald_command(herald, "audit", "export", "--out", str(path))
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in path.read_text().splitlines()]


def tenant_of(line: dict[str, object]) -> str:
    headers = dict(line["headers"])  # type: ignore[arg-type]
    return base64.b64decode(headers.get("ce_tenant") or b"").decode()


async def test_the_sealed_audit_verifies_and_names_an_altered_removed_or_moved_record(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"seal{os.urandom(3).hex()}")
    proposals = []
    for n in range(12):
        action = email_action(tenant, contact_id=f"s{n}", email=f"s{n}@{tenant}.example")
        proposals.append((contact_key(tenant, f"s{n}"), envelope(tenant, action, source="test/planner"), action))
    await publish_many(herald.bootstrap, herald.topic(PROPOSED_ACTION), proposals)

    def sealed_enough() -> list[dict[str, object]] | None:
        lines = exported(herald, tmp_path / "audit.jsonl")
        mine = [line for line in lines if tenant_of(line) == tenant]
        return lines if len(mine) >= 24 else None  # each proposal's decision and its approval or execution

    lines = await eventually(sealed_enough, timeout=60, interval=1.0, what="the tenant's records sealed")
    live = herald_command(herald, "audit", "verify")
    assert live.returncode == 0 and "every seal and link holds" in live.stdout + live.stderr, live.stderr

    clean = tmp_path / "clean.jsonl"
    clean.write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert herald_command(herald, "audit", "verify", "--file", str(clean)).returncode == 0

    # a partition with at least three records, to alter, cut and swap in its middle
    by_partition: dict[int, list[int]] = {}
    for index, line in enumerate(lines):
        by_partition.setdefault(int(line["partition"]), []).append(index)  # type: ignore[call-overload]
    rows = next(indexes for indexes in by_partition.values() if len(indexes) >= 3)
    middle = lines[rows[1]]
    following = lines[rows[2]]

    def verify(name: str, changed: list[dict[str, object]]) -> str:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in changed))
        result = herald_command(herald, "audit", "verify", "--file", str(path))
        assert result.returncode == 1, (name, result.stdout, result.stderr)
        return result.stdout + result.stderr

    altered = [dict(line) for line in lines]
    body = base64.b64decode(str(middle["value"])).replace(b'"', b"'", 1)
    altered[rows[1]] = {**middle, "value": base64.b64encode(body).decode()}
    said = verify("altered", altered)
    assert f"position {middle['position']}" in said and "altered" in said

    removed = [line for index, line in enumerate(lines) if index != rows[1]]
    said = verify("removed", removed)
    assert f"position {following['position']}" in said and "removed, altered or moved" in said

    swapped = list(lines)
    swapped[rows[1]], swapped[rows[2]] = swapped[rows[2]], swapped[rows[1]]
    said = verify("swapped", swapped)
    assert "removed, altered or moved" in said


async def sealed_partition(bootstrap: str, topic: str, partition: int) -> list[SealedRecord]:
    """Every committed record of one partition of the sealed topic, read with a plain consumer."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    tp = TopicPartition(topic, partition)
    records: list[SealedRecord] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            for r in (await consumer.getmany(tp, timeout_ms=500)).get(tp, []):
                records.append(SealedRecord(r.partition, r.offset, r.key, r.value, tuple(r.headers or ())))
    finally:
        await consumer.stop()
    return records


async def test_no_record_on_the_audit_stops_the_sealing_and_each_is_indexed_as_it_can_be(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = f"odd{os.urandom(3).hex()}"

    def headers(**changed: bytes) -> list[tuple[str, bytes]]:
        env = Envelope.new_chain(source="test/upstream", type="herald.test.probe.v1", tenant=tenant)
        return [*((k, v) for k, v in env.to_headers() if k not in changed), *changed.items()]

    written = {  # in this order, onto one partition of the audit topic
        "nul": (b'{"action_id": "nul-1", "note": "a\\u0000b"}', headers()),
        "surrogate": (b'{"action_id": "sur-1", "note": "\\ud800"}', headers()),
        "tenant nul": (b'{"action_id": "tn-1"}', headers(ce_tenant=f"{tenant}\x00x".encode())),
        "not json": (b"\x89PNG\r\n not json", headers()),
        "huge numbers": (b'{"action_id": 1180591620717411303424, "contact_id": 1180591620717411303424}', headers()),
        "normal": (b'{"action_id": "normal-1", "contact_id": "c-normal"}', headers()),
    }
    ids = {name: dict(h)["ce_id"].decode() for name, (_, h) in written.items()}
    producer = AIOKafkaProducer(bootstrap_servers=herald.bootstrap)
    await producer.start()
    try:
        offsets = [
            (await producer.send_and_wait(herald.topic(AUDIT), value, key=b"odd", headers=h, partition=0)).offset
            for value, h in written.values()
        ]
    finally:
        await producer.stop()

    async def sealed() -> list[SealedRecord] | None:
        records = await sealed_partition(herald.bootstrap, herald.topic(AUDIT_SEALED), 0)
        return records if ids["normal"] in {r.message_id for r in records} else None

    records = await eventually(sealed, timeout=60, interval=1.0, what="the record after the odd ones sealed")
    # every one sealed, in its order, and the chain over the whole partition holds
    mine = [r for r in records if r.message_id in ids.values()]
    assert [r.message_id for r in mine] == list(ids.values())
    assert [int(r.header("herald_audit_offset")) for r in mine] == offsets
    assert [r.value for r in mine] == [value for value, _ in written.values()]
    assert verify(records)[1] == []
    live = herald_command(herald, "audit", "verify")
    assert live.returncode == 0, live.stdout + live.stderr

    # the index, read with a plain connection: the normal one as it is, the odd ones escaped or hashed, noted
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        found = await conn.fetch(
            "SELECT message_id, tenant, action_id, contact_id, body::text AS body, body_note FROM review.audit_index "
            "WHERE message_id = ANY($1::text[])",
            list(ids.values()),
        )
    finally:
        await conn.close()
    by_id: dict[str, dict[str, Any]] = {r["message_id"]: {**dict(r), "body": json.loads(r["body"])} for r in found}
    row = {name: by_id[message_id] for name, message_id in ids.items()}
    assert row["normal"]["body_note"] is None and row["normal"]["contact_id"] == "c-normal"
    assert row["normal"]["body"] == {"action_id": "normal-1", "contact_id": "c-normal"}
    assert row["nul"]["body"]["note"] == "a\\u0000b" and row["nul"]["body_note"].startswith("body escaped")
    assert row["surrogate"]["body"]["note"] == "\\ud800" and "lone surrogates" in row["surrogate"]["body_note"]
    assert row["tenant nul"]["tenant"] == f"{tenant}\\u0000x" and "tenant escaped" in row["tenant nul"]["body_note"]
    assert row["not json"]["body"]["sha256"] == hashlib.sha256(written["not json"][0]).hexdigest()
    assert row["not json"]["body_note"].startswith("body hashed")
    assert (row["huge numbers"]["action_id"], row["huge numbers"]["contact_id"]) == (None, None)
    assert row["huge numbers"]["body"]["contact_id"] == 2**70 and "nulled" in row["huge numbers"]["body_note"]

    # the sealer is still ready, counted what it did, and logged each one (JSON lines)
    async with httpx.AsyncClient(timeout=10) as client:
        ready = await client.get(f"{herald.services.review_url}/readyz")
        metrics = (await client.get(f"{herald.services.review_url}/metrics")).text
    assert ready.status_code == 200 and ready.json()["checks"]["audit_sealer"], ready.text
    for stored, reason in (
        ("escaped", "nul"),
        ("escaped", "lone_surrogate"),
        ("hashed", "not_json"),
        ("nulled", "not_text"),
    ):
        assert f'herald_review_audit_index_repaired_total{{reason="{reason}",stored="{stored}"}}' in metrics, reason
    logged = [json.loads(line) for line in herald.services.replicas["review-0"].log.read_text().splitlines()
              if line.startswith("{") and "indexed other than as it is" in line]  # fmt: skip
    assert {line["message_id"] for line in logged} >= {ids[name] for name in written if name != "normal"}
