"""No record stops the audit sealer: whatever `herald.audit.v1` holds — text Postgres refuses, headers without a
value, a body that is not JSON, numbers where ids belong, a record with neither key nor value, one too large to
copy — it is sealed in order, the chain verifies, the index stores what it can and says what it did, and the
records after it are sealed and indexed. Only an outage is retried, and an outage leaves no placeholder rows.

The escaping and the index rows are checked as pure functions; the rest runs the sealer in process against the
real Kafka and PostgreSQL (a fresh topic prefix and database), written to with a plain producer and read back
with a plain consumer and a plain connection."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import REGISTRY

import herald_review
from herald_core.audit import STAND_IN, SealedRecord, seal, verify
from herald_core.bus import ensure_topics
from herald_core.db import create_pool, migrate
from herald_core.envelope import Envelope
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, AUDIT_SEALED, TopicSpec
from herald_review.adapters.audit_index import (
    LONE_SURROGATE,
    NUL,
    AuditIndex,
    IndexRow,
    escape_text,
    index_row,
    storable_json,
)
from herald_review.adapters.sealer import AuditSealer
from support import eventually

MIGRATIONS = Path(herald_review.__file__).parent / "migrations"
PARTITION = 1  # every record of a test goes to this partition of the audit topic, so their order is defined


def headers_of(tenant: str = "acme", **changed: bytes | None) -> list[tuple[str, bytes | None]]:
    """A new chain's envelope headers, with `changed` ones replaced (None: a header without a value)."""
    env = Envelope.new_chain(source="test/audit", type="herald.test.probe.v1", tenant=tenant)
    headers: list[tuple[str, bytes | None]] = [(k, v) for k, v in env.to_headers() if k not in changed]
    return [*headers, *changed.items()]


def consumer_record(
    value: bytes | None, headers: list[tuple[str, bytes | None]] | None = None, key: bytes | None = b"k"
) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(
        "audit",
        0,
        7,
        0,
        0,
        key,
        value,
        None,
        len(key or b""),
        len(value or b""),
        headers,  # type: ignore[arg-type]
    )


# ---------------------------------------------------------------- the escaping, pure


def test_nul_and_lone_surrogates_are_escaped_visibly_and_named() -> None:
    assert escape_text("a\x00b") == ("a\\u0000b", {NUL})
    assert len(escape_text("\x00")[0]) == 6
    assert escape_text("x\ud800y\udfffz") == ("x\\ud800y\\udfffz", {LONE_SURROGATE})
    assert escape_text("\x00\udc00") == ("\\u0000\\udc00", {NUL, LONE_SURROGATE})
    for fine in ("", "plain", "héllo 😀 \\u0000 already text", "tab\tand\nline"):
        assert escape_text(fine) == (fine, set())


def test_every_string_of_a_json_body_keys_too_is_made_storable() -> None:
    parsed = json.loads('{"a\\u0000": ["x\\ud800", {"n": NaN, "i": Infinity, "m": -1e999}], "ok": "😀", "big": 1e2}')
    stored, found = storable_json(parsed)
    assert stored == {
        "a\\u0000": ["x\\ud800", {"n": "NaN", "i": "Infinity", "m": "-Infinity"}],
        "ok": "😀",
        "big": 100.0,
    }
    assert found == {NUL, LONE_SURROGATE, "non_finite_number"}
    json.dumps(stored, ensure_ascii=False, allow_nan=False).encode()  # UTF-8 and standard JSON: what jsonb takes
    untouched = {"a": [1, 2**70, None, True, "text"], "b": {"c": 1.5}}
    assert storable_json(untouched) == (untouched, set())


# ---------------------------------------------------------------- the index row, pure: it never raises


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def assert_storable(row: IndexRow) -> None:
    """What Postgres takes: text without NUL or surrogates, ids as text or NULL, a body of standard JSON."""
    for name in ("message_id", "type", "topic", "tenant", "correlation_id", "causation_id", "action_id",
                 "contact_id", "rule", "body_note"):  # fmt: skip
        value = getattr(row, name)
        assert value is None or isinstance(value, str), (name, value)
        if value is not None:
            assert escape_text(value) == (value, set()), (name, value)
    assert all(escape_text(rule) == (rule, set()) for rule in row.rules)
    if row.body is not None:

        def refuse(constant: str) -> None:
            raise AssertionError(f"{constant} is not JSON")

        body = json.loads(row.body, parse_constant=refuse)
        assert all(escape_text(s) == (s, set()) for s in _strings(body))


SHAPES: dict[str, tuple[bytes | None, list[tuple[str, bytes | None]] | None, bytes | None]] = {
    "a header without a value": (b'{"action_id": "a1"}', headers_of(x_trace=None), b"k"),
    "a CloudEvents header without a value": (b"{}", headers_of(ce_causationid=None), b"k"),
    "a tenant that is not UTF-8": (b"{}", headers_of(ce_tenant=b"\xff\xfe"), b"k"),
    "no headers at all": (b"{}", None, b"k"),
    "a body that is not UTF-8": (b"\xff\xfe{", headers_of(), b"k"),
    "a body that is not JSON": (b"not json", headers_of(), None),
    "a JSON list": (b"[1, 2]", headers_of(), b"k"),
    "a JSON string": (b'"a\\u0000"', headers_of(), b"k"),
    "a JSON number": (b"1180591620717411303424", headers_of(), b"k"),
    "JSON null": (b"null", headers_of(), b"k"),
    "no value": (None, headers_of(), None),
    "an empty value": (b"", headers_of(), b"k"),
    "ids that are numbers": (
        b'{"action_id": 1180591620717411303424, "contact_id": 2, "rule": 3.5}',
        headers_of(),
        b"k",
    ),
    "ids that are lists": (
        b'{"contact_id": ["c1"], "action": {"action_id": {"x": 1}}, "rule": ["r"]}',
        headers_of(),
        b"k",
    ),
    "an action whose contact is a list": (b'{"action": {"action_id": "a", "contact": [1]}}', headers_of(), b"k"),
    "rules that are not rule hits": (
        b'{"rules": [1, "x", {"rule": 1180591620717411303424}, {"rule": "\\u0000"}]}',
        headers_of(),
        b"k",
    ),
    "a NUL in the tenant": (b"{}", headers_of(ce_tenant=b"acme\x00x"), b"k"),
    "a NUL in the body": (b'{"action_id": "a\\u0000", "note": "\\u0000"}', headers_of(), b"k"),
    "a lone surrogate in the body": (b'{"contact_id": "\\ud800", "\\udfff": 1}', headers_of(), b"k"),
    "a surrogate as raw bytes": (b'{"note": "\xed\xa0\x80"}', headers_of(), b"k"),  # json reads it, surrogatepass
    "NaN in the body": (b'{"score": NaN, "x": 1e999}', headers_of(), b"k"),
    "a body nested too deeply": (b"[" * 100_000 + b"]" * 100_000, headers_of(), b"k"),
    "a huge number": (b'{"n": ' + b"9" * 5000 + b"}", headers_of(), b"k"),
}


@pytest.mark.parametrize("shape", SHAPES)
def test_an_index_row_is_made_of_any_record_without_raising(shape: str) -> None:
    value, headers, key = SHAPES[shape]
    row = index_row(consumer_record(value, headers, key))
    if row is not None:
        assert_storable(row)


def test_what_was_done_to_a_record_is_noted_on_its_row() -> None:
    def row_of(shape: str) -> IndexRow:
        value, headers, key = SHAPES[shape]
        row = index_row(consumer_record(value, headers or headers_of(), key))
        assert row is not None, shape
        return row

    nul = row_of("a NUL in the body")
    assert nul.action_id == "a\\u0000" and json.loads(nul.body or "")["note"] == "\\u0000"
    assert nul.body_note is not None and nul.body_note.startswith("body escaped") and "NUL" in nul.body_note

    tenant = row_of("a NUL in the tenant")
    assert tenant.tenant == "acme\\u0000x" and "tenant escaped" in (tenant.body_note or "")

    numbers = row_of("ids that are numbers")
    assert (numbers.action_id, numbers.contact_id, numbers.rule) == (None, None, None)
    assert json.loads(numbers.body or "")["action_id"] == 2**70  # the body keeps the number itself
    assert "action_id nulled" in (numbers.body_note or "") and "contact_id nulled" in (numbers.body_note or "")

    not_json = row_of("a body that is not JSON")
    assert json.loads(not_json.body or "") == {
        "sha256": hashlib.sha256(b"not json").hexdigest(),
        "reason": "body hashed: the value is not JSON",
    }
    assert (not_json.body_note or "").startswith("body hashed")

    assert row_of("a header without a value").body_note is None  # nothing to change: stored as it is
    assert row_of("no value").body is None and row_of("no value").body_note is None
    assert index_row(consumer_record(b"{}", headers_of(ce_causationid=None))) is None  # no envelope: no row


# ---------------------------------------------------------------- against the real PostgreSQL and Kafka


async def _admin(stack, sql: str) -> None:  # type: ignore[no-untyped-def]
    admin = await asyncpg.connect(stack.pg_dsn)
    try:
        await admin.execute(sql)
    finally:
        await admin.close()


@pytest.fixture(scope="module")
async def review_template(stack) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A database with the review service's schema, migrated as the service migrates it: each test's template."""
    name = f"herald_sealer_{secrets.token_hex(4)}"
    await _admin(stack, f'CREATE DATABASE "{name}"')
    pool = await create_pool(stack.pg_dsn.rsplit("/", 1)[0] + f"/{name}")
    try:
        await migrate(pool, "review", MIGRATIONS)
    finally:
        await pool.close()
    yield name
    await _admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def review_dsn(stack, review_template: str) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    """A fresh database for one test: index rows are keyed by their place on the audit topic, and every sealer
    here starts on a fresh topic prefix, at offset 0."""
    name = f"{review_template}_{secrets.token_hex(3)}"
    await _admin(stack, f'CREATE DATABASE "{name}" TEMPLATE "{review_template}"')
    yield stack.pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    await _admin(stack, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def index_rows(dsn: str, message_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The index rows of these messages, read with a plain connection."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT message_id, tenant, action_id, contact_id, rule, rules, body::text AS body, body_note "
            "FROM review.audit_index WHERE message_id = ANY($1::text[])",
            message_ids,
        )
    finally:
        await conn.close()
    return {r["message_id"]: {**dict(r), "body": json.loads(r["body"]) if r["body"] else None} for r in rows}


@contextlib.asynccontextmanager
async def database_down(stack, dsn: str) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    """The database refuses every connection (its open ones ended), as in an outage, until the block ends."""
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(stack.pg_dsn)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
        yield
    finally:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        await admin.close()


def repaired(stored: str, reason: str) -> float:
    labels = {"stored": stored, "reason": reason}
    return REGISTRY.get_sample_value("herald_review_audit_index_repaired_total", labels) or 0.0


@pytest.mark.postgres
async def test_refused_rows_are_stored_escaped_or_hashed_and_never_fail_the_rest_of_the_batch(review_dsn) -> None:  # type: ignore[no-untyped-def]
    unindexable = secrets.token_hex(6000)  # too large for the index on contact_id (and incompressible)
    batch = {
        "first": (b'{"action_id": "ok-1", "contact_id": "c1"}', headers_of()),
        "nul": (b'{"action_id": "nul-1", "note": "a\\u0000b"}', headers_of()),
        "surrogate": (b'{"action_id": "sur-1", "note": "\\ud800"}', headers_of()),
        "tenant": (b'{"action_id": "ten-1"}', headers_of(ce_tenant=b"acme\x00x")),
        "not json": (b"\x00\x01 not json", headers_of()),
        "numbers": (b'{"action_id": 1180591620717411303424, "contact_id": 1180591620717411303424}', headers_of()),
        "too large to index": (json.dumps({"contact_id": unindexable}).encode(), headers_of()),
        "last": (b'{"action_id": "ok-2", "contact_id": "c2"}', headers_of()),
    }
    records = [
        ConsumerRecord("audit", 0, 1000 + n, 0, 0, b"k", value, None, 1, len(value), headers)  # type: ignore[arg-type]
        for n, (value, headers) in enumerate(batch.values())
    ]
    ids = {name: dict(headers)["ce_id"].decode() for name, (_, headers) in batch.items()}  # type: ignore[union-attr]
    before = repaired("truncated", "ProgramLimitExceededError")
    pool = await create_pool(review_dsn)
    try:
        await AuditIndex(pool).add(records)
    finally:
        await pool.close()

    rows = await index_rows(review_dsn, list(ids.values()))
    assert set(rows) == set(ids.values())  # every record has its row
    row = {name: rows[message_id] for name, message_id in ids.items()}
    for name in ("first", "last"):
        assert row[name]["body_note"] is None and row[name]["body"] == json.loads(batch[name][0])
    assert row["nul"]["body"]["note"] == "a\\u0000b" and row["nul"]["body_note"].startswith("body escaped")
    assert row["surrogate"]["body"]["note"] == "\\ud800" and "lone surrogate" in row["surrogate"]["body_note"]
    assert row["tenant"]["tenant"] == "acme\\u0000x" and "tenant escaped" in row["tenant"]["body_note"]
    assert row["not json"]["body"]["sha256"] == hashlib.sha256(batch["not json"][0]).hexdigest()
    assert row["numbers"]["action_id"] is None and row["numbers"]["body"]["action_id"] == 2**70
    large = row["too large to index"]
    assert large["body"]["sha256"] == hashlib.sha256(batch["too large to index"][0]).hexdigest()
    assert large["body_note"].startswith("body hashed") and "row truncated" in large["body_note"]
    assert large["contact_id"] is None
    assert repaired("truncated", "ProgramLimitExceededError") == before + 1


@pytest.mark.postgres
async def test_an_outage_is_raised_to_be_retried_and_leaves_no_placeholder_rows(stack, review_dsn) -> None:  # type: ignore[no-untyped-def]
    headers = headers_of()
    record = consumer_record(b'{"action_id": "during-outage"}', headers)
    record = ConsumerRecord("audit", 0, 5000, 0, 0, b"k", record.value, None, 1, 1, headers)  # type: ignore[arg-type]
    message_id = dict(headers)["ce_id"].decode()  # type: ignore[union-attr]
    pool = await create_pool(review_dsn)
    index = AuditIndex(pool)
    try:
        async with database_down(stack, review_dsn):
            with pytest.raises(Exception) as raised:
                await index.add([record])
            assert not isinstance(raised.value, asyncpg.DataError), raised.value
        assert await index_rows(review_dsn, [message_id]) == {}  # nothing stored in its place

        await eventually(lambda: _stored(index, record), timeout=30, what="the record indexed once Postgres is back")
        (row,) = (await index_rows(review_dsn, [message_id])).values()
        assert row["body"] == {"action_id": "during-outage"} and row["body_note"] is None
    finally:
        await pool.close()


async def _stored(index: AuditIndex, record: ConsumerRecord[bytes, bytes]) -> bool:
    try:
        await index.add([record])
    except Exception:
        return False
    return True


# ---------------------------------------------------------------- the sealer itself, in process


@dataclass
class Sealing:
    common: CommonSettings
    sealer: AuditSealer
    dsn: str

    def topic(self, spec: TopicSpec) -> str:
        return spec.full_name(self.common.topic_prefix)


@contextlib.asynccontextmanager
async def running_sealer(bootstrap: str, dsn: str) -> AsyncIterator[Sealing]:
    """The review service's sealer on a fresh topic prefix, filling the index in `dsn`."""
    common = CommonSettings(kafka_bootstrap=bootstrap, topic_prefix=f"s{secrets.token_hex(4)}.", pg_dsn=dsn)
    await ensure_topics(common, [AUDIT, AUDIT_SEALED])
    pool = await create_pool(dsn)
    sealer = AuditSealer(common, AuditIndex(pool))
    await sealer.start()
    try:
        yield Sealing(common, sealer, dsn)
    finally:
        await sealer.stop()
        await pool.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([spec.full_name(common.topic_prefix) for spec in (AUDIT, AUDIT_SEALED)])
        finally:
            await admin.close()


async def read_partition(
    bootstrap: str, topic: str, partition: int, *, count: int, timeout: float = 60.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """The committed records of one partition, from its start, once there are at least `count` of them."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    tp = TopicPartition(topic, partition)
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            records += (await consumer.getmany(tp, timeout_ms=500)).get(tp, [])
    finally:
        await consumer.stop()
    assert len(records) >= count, f"{topic}[{partition}] holds {len(records)} committed record(s), not {count}"
    return records


@pytest.mark.kafka
@pytest.mark.postgres
async def test_no_record_stops_the_sealer_and_each_is_sealed_in_order_and_indexed_as_it_can_be(  # type: ignore[no-untyped-def]
    stack, review_dsn
) -> None:
    tenant = f"robust{secrets.token_hex(3)}"
    huge = json.dumps({"action_id": "huge-1", "padding": "x" * 6_000_000}).encode()  # fits gzip'd, not as a copy
    written = {  # name → (key, value, headers), in the order they are written
        "nul": (b"k1", b'{"action_id": "nul-1", "note": "a\\u0000b"}', headers_of(tenant)),
        "surrogate": (b"k2", b'{"action_id": "sur-1", "note": "x\\ud800y"}', headers_of(tenant)),
        "null header": (b"k3", b'{"action_id": "nh-1"}', headers_of(tenant, x_trace=None)),
        "null envelope header": (b"k4", b'{"action_id": "nh-2"}', headers_of(tenant, ce_causationid=None)),
        "tenant nul": (b"k5", b'{"action_id": "tn-1"}', headers_of(tenant, ce_tenant=f"{tenant}\x00x".encode())),
        "not json": (b"k6", b"\x89PNG not json", headers_of(tenant)),
        "numbers": (
            b"k7",
            b'{"action_id": 1180591620717411303424, "contact_id": 1180591620717411303424}',
            headers_of(tenant),
        ),
        "no key, no value": (None, None, headers_of(tenant)),
        "too large to copy": (b"k9", huge, headers_of(tenant)),
        "normal": (b"k10", b'{"action_id": "normal-1", "contact_id": "c-normal"}', headers_of(tenant)),
    }
    ids = {name: dict(h)["ce_id"].decode() for name, (_, _, h) in written.items()}  # type: ignore[union-attr, misc]

    async with running_sealer(stack.kafka_bootstrap, review_dsn) as sealing:
        await eventually(sealing.sealer.ready, timeout=30, what="the sealer assigned its partitions")
        producer = AIOKafkaProducer(
            bootstrap_servers=stack.kafka_bootstrap, compression_type="gzip", max_request_size=16 * 1024 * 1024
        )
        await producer.start()
        try:
            for key, value, headers in written.values():
                if key is None and value is None:  # aiokafka's send() refuses it; Kafka (and other clients) do not
                    batch = producer.create_batch()
                    batch.append(key=None, value=None, timestamp=None, headers=headers)
                    await (await producer.send_batch(batch, sealing.topic(AUDIT), partition=PARTITION))
                else:
                    await producer.send_and_wait(
                        sealing.topic(AUDIT), value=value, key=key, headers=headers, partition=PARTITION
                    )
        finally:
            await producer.stop()

        originals = await read_partition(stack.kafka_bootstrap, sealing.topic(AUDIT), PARTITION, count=len(written))
        sealed = await read_partition(stack.kafka_bootstrap, sealing.topic(AUDIT_SEALED), PARTITION, count=len(written))
        ready = await sealing.sealer.ready()

    # every record on the sealed topic, in its original order, and the chain holds over the whole partition
    chain = [SealedRecord(r.partition, r.offset, r.key, r.value, tuple(r.headers)) for r in sealed]
    assert [int(s.header("herald_audit_offset")) for s in chain] == [r.offset for r in originals]
    assert [s.message_id for s in chain] == list(ids.values())
    assert verify(chain) == (len(written), [])
    assert verify([SealedRecord.from_json(s.to_json()) for s in chain]) == (len(written), [])  # and as exported
    by_name = dict(zip(written, chain, strict=True))
    original = dict(zip(written, originals, strict=True))

    # copied unchanged, null header values kept null
    for name in written:
        if name not in ("too large to copy", "no key, no value"):
            record, copy = original[name], by_name[name]
            assert (copy.key, copy.value, copy.content_headers) == (record.key, record.value, tuple(record.headers))
    assert ("x_trace", None) in by_name["null header"].headers
    assert by_name["no key, no value"].key is None and not by_name["no key, no value"].value
    # the one too large to copy stands in with the seal the original would have had at its place
    stand_in = by_name["too large to copy"]
    described = json.loads(stand_in.value or b"")
    record = original["too large to copy"]
    prev = stand_in.header("herald_prev_hash")
    assert described["original_seal"] == seal(prev, PARTITION, record.offset, record.key, record.headers, record.value)
    assert described["value_sha256"] == hashlib.sha256(huge).hexdigest()
    assert stand_in.header(STAND_IN).startswith("too large") and stand_in.header("ce_tenant") == tenant

    # the index: the normal record after them as it is, the bad ones escaped or hashed with a note
    rows = await index_rows(review_dsn, list(ids.values()))
    row = {name: rows.get(message_id) for name, message_id in ids.items()}
    assert row["normal"] is not None
    assert row["normal"]["body_note"] is None and row["normal"]["contact_id"] == "c-normal"
    assert row["nul"] and row["nul"]["body"]["note"] == "a\\u0000b" and "NUL" in row["nul"]["body_note"]
    assert row["surrogate"] and row["surrogate"]["body"]["note"] == "x\\ud800y"
    assert "body escaped" in row["surrogate"]["body_note"]
    assert row["tenant nul"] and row["tenant nul"]["tenant"] == f"{tenant}\\u0000x"
    assert "tenant escaped" in row["tenant nul"]["body_note"]
    assert row["not json"] and row["not json"]["body_note"].startswith("body hashed")
    assert row["not json"]["body"]["sha256"] == hashlib.sha256(b"\x89PNG not json").hexdigest()
    assert row["numbers"] and row["numbers"]["action_id"] is None and "nulled" in row["numbers"]["body_note"]
    assert row["null header"] and row["null header"]["body_note"] is None
    assert row["null envelope header"] is None  # its envelope cannot be read: sealed, not indexed
    assert row["no key, no value"] and row["no key, no value"]["body"] is None
    assert row["too large to copy"] and row["too large to copy"]["action_id"] == "huge-1"
    assert ready


@pytest.mark.kafka
@pytest.mark.postgres
async def test_a_postgres_outage_holds_the_sealer_back_until_it_heals_without_placeholder_rows(  # type: ignore[no-untyped-def]
    stack, review_dsn
) -> None:
    tenant = f"outage{secrets.token_hex(3)}"
    headers = [headers_of(tenant) for _ in range(3)]
    ids = [dict(h)["ce_id"].decode() for h in headers]  # type: ignore[union-attr]
    async with running_sealer(stack.kafka_bootstrap, review_dsn) as sealing:
        await eventually(sealing.sealer.ready, timeout=30, what="the sealer assigned its partitions")
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
        await producer.start()
        try:
            async with database_down(stack, review_dsn):
                for n, h in enumerate(headers):
                    value = json.dumps({"action_id": f"out-{n}"}).encode()
                    await producer.send_and_wait(sealing.topic(AUDIT), value, key=b"k", headers=h, partition=PARTITION)
                # the index comes first: while Postgres is away nothing is sealed (and nothing is skipped)
                consumer = AIOKafkaConsumer(bootstrap_servers=stack.kafka_bootstrap, isolation_level="read_committed")
                await consumer.start()
                try:
                    tp = TopicPartition(sealing.topic(AUDIT_SEALED), PARTITION)
                    for _ in range(6):
                        await asyncio.sleep(1)
                        assert (await consumer.end_offsets([tp]))[tp] == 0
                finally:
                    await consumer.stop()
        finally:
            await producer.stop()
        sealed = await read_partition(stack.kafka_bootstrap, sealing.topic(AUDIT_SEALED), PARTITION, count=3)
        await eventually(sealing.sealer.ready, timeout=30, what="the sealer ready again")

    chain = [SealedRecord(r.partition, r.offset, r.key, r.value, tuple(r.headers)) for r in sealed]
    assert [s.message_id for s in chain] == ids and verify(chain) == (3, [])
    rows = await index_rows(review_dsn, ids)
    assert [rows[i]["body"] for i in ids] == [{"action_id": f"out-{n}"} for n in range(3)]
    assert all(rows[i]["body_note"] is None for i in ids)  # stored as they are, once Postgres was back
