"""What the fuzz tests share: mutations of valid inputs (JSON values, raw bytes, MIME messages, Kafka headers) as
hypothesis strategies, the run's size, and reading Kafka and the consumers' positions back.

Every mutation says in words what it did (`Case.what`), so a failure names the input that caused it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from herald_core.contracts import MESSAGE_TYPES
from herald_core.topics import TopicSpec
from support import Record

# ---------------------------------------------------------------- the run's size

#: the bounded run of `make test`; `make fuzz` sets these higher
HTTP_CASES = int(os.environ.get("HERALD_FUZZ_HTTP_CASES", "300"))
TOPIC_RECORDS = int(os.environ.get("HERALD_FUZZ_TOPIC_RECORDS", "200"))
#: how long the consumers get to move past every record (seconds)
SETTLE_SECONDS = float(os.environ.get("HERALD_FUZZ_SETTLE_SECONDS", "90"))


#: the run's seed: the same cases on every run; another value explores other ones (`make fuzz HERALD_FUZZ_SEED=7`)
SEED = os.environ.get("HERALD_FUZZ_SEED", "0")


def generate(strategy: st.SearchStrategy[Any], count: int, name: str) -> list[Any]:
    """`count` examples of `strategy`, the same on every run: a fixed seed per `name` (and `HERALD_FUZZ_SEED`),
    no example database. Hypothesis only generates here; the tests send what it made and judge every answer, so
    one bad answer does not hide the rest, and each failure is reported with its input."""
    made: list[Any] = []

    @seed(int(hashlib.sha256(f"{SEED}:{name}".encode()).hexdigest()[:12], 16))
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(example: Any) -> None:
        made.append(example)

    collect()
    return made


# ---------------------------------------------------------------- JSON values


class Raw:
    """A JSON token written as it is: a number no parser keeps, nesting deeper than any serialiser goes."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return f"Raw({self.token[:40]!r}{'…' if len(self.token) > 40 else ''})"


def dumps(value: Any) -> bytes:
    """JSON with lone surrogates as `\\ud800` escapes (ASCII only) and `Raw` tokens spliced in."""
    raws: list[str] = []

    def prepare(item: Any) -> Any:
        if isinstance(item, Raw):
            raws.append(item.token)
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(item, dict):
            return {k: prepare(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [prepare(v) for v in item]
        return item

    text = json.dumps(prepare(value), ensure_ascii=True)
    for index, token in enumerate(raws):
        text = text.replace(f'"@@raw{index}@@"', token, 1)
    return text.encode()


NASTY_STRINGS = [
    "\x00",
    "VP\x00Operations",
    "\ud800",
    "tail\udfff",
    "\ud83d",
    "",
    " ",
    "\u202eevil",
    "\ufeff",
    "\U0010ffff",
    "a\u0301\u0301\u0301",
    "💥" * 40,
    "\r\nBcc: someone@elsewhere.example",
    "<script>alert(1)</script>",
    "'; DROP TABLE contacts; --",
    "%s%n%x",
    "../../etc/passwd",
    "\\",
    '"',
    "=?utf-8?b?////?=",
    "null",
    "1e309",
]
NASTY_NUMBERS: list[Any] = [
    2**63,
    2**63 - 1,
    -(2**63) - 1,
    2**64,
    10**30,
    -1,
    -(2**31),
    0,
    1.5,
    -0.0,
    1e308,
    5e-324,
    True,
    False,
]
RAW_TOKENS = ["1e400", "-1e400", "NaN", "Infinity", "-Infinity", "1" * 400, "1.0e-400", "-0"]
LONG_LENGTHS = [10_001, 65_536, 300_000]
DEPTHS = [33, 64, 1_000, 20_000]


def positions(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every node of a JSON value, the root first."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from positions(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from positions(item, (*path, index))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        value = value[step]
    return value


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _nested(depth: int, inner: str, brackets: tuple[str, str]) -> Raw:
    opening, closing = brackets
    return Raw(opening * depth + inner + closing * depth)


@st.composite
def replacement(draw: st.DrawFn, old: Any) -> tuple[str, Any]:
    """A value to put where `old` was, and what it is in words."""
    kind = draw(
        st.sampled_from(
            [
                "nul",
                "surrogate",
                "nasty",
                "long",
                "number",
                "raw",
                "null",
                "as_list",
                "as_object",
                "scalar",
                "deep",
                "text",
                "empty",
            ]
        )
    )
    if kind == "nul":
        text = old if isinstance(old, str) and old else "x"
        at = draw(st.integers(0, len(text)))
        return "NUL inserted", text[:at] + "\x00" + text[at:]
    if kind == "surrogate":
        text = old if isinstance(old, str) else ""
        return "lone surrogate", text + draw(st.sampled_from(["\ud800", "\udbff", "\udc00", "\udfff"]))
    if kind == "nasty":
        return "nasty string", draw(st.sampled_from(NASTY_STRINGS))
    if kind == "long":
        length = draw(st.sampled_from(LONG_LENGTHS))
        return f"string of {length} characters", draw(st.sampled_from(["x", "é", "\U0001f4a5"])) * length
    if kind == "number":
        return "nasty number", draw(st.sampled_from(NASTY_NUMBERS))
    if kind == "raw":
        token = draw(st.sampled_from(RAW_TOKENS))
        return f"raw token {token[:12]}", Raw(token)
    if kind == "null":
        return "null", None
    if kind == "as_list":
        return "wrapped in a list", [old]
    if kind == "as_object":
        return "wrapped in an object", {"value": old}
    if kind == "scalar":
        return "scalar instead", draw(st.sampled_from(["x", 0, True]))
    if kind == "deep":
        depth = draw(st.sampled_from(DEPTHS))
        brackets = draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        return f"nested {depth} deep", _nested(depth, "1", brackets)
    if kind == "text":
        return "arbitrary text", draw(st.text(max_size=30))
    return "empty", draw(st.sampled_from(["", [], {}]))


@st.composite
def mutated_json(draw: st.DrawFn, base: Any, *, most: int = 3) -> tuple[Any, list[str]]:
    """`base` with one to `most` mutations (a value replaced, a field dropped or added), and what each was."""
    value = _copy(base)
    done: list[str] = []
    for _ in range(draw(st.integers(1, most))):
        paths = list(positions(value))
        path = draw(st.sampled_from(paths))
        where = ".".join(str(p) for p in path) or "(root)"
        target = _get(value, path)
        action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "extra"]))
        if action == "drop" and path:
            parent = _get(value, path[:-1])
            del parent[path[-1]]
            done.append(f"{where}: dropped")
            continue
        if action == "extra" and isinstance(target, dict | list):
            what, extra = draw(replacement(None))
            if isinstance(target, dict):
                name = draw(st.sampled_from(["unexpected", "\ud800", "\x00", "", "k" * 300]))
                target[name] = extra
            else:
                target.append(extra)
            done.append(f"{where}: extra item ({what})")
            continue
        what, new = draw(replacement(target))
        if path:
            _get(value, path[:-1])[path[-1]] = new
        else:
            value = new
        done.append(f"{where}: {what}")
    return value, done


#: strings every store can hold that still test a handler: markup, injections, RTL, emoji, just under the limit
ODD_STRINGS = [
    "\U0001f4a5" * 100,
    "\u202eevil",
    "<script>alert(1)</script>",
    "'; DROP TABLE contacts; --",
    "%s%n%x{0}",
    "\r\nBcc: someone@elsewhere.example",
    "a" * 9_999,
    "ß" * 4_999,
    "\ufeff",
    "\U0010ffff",
    " ",
    "null",
    "../../etc/passwd",
]
#: times at the edges of what a datetime, a store or a time zone conversion takes
ODD_TIMES = [
    "9999-12-31T23:59:59.999999+00:00",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59",
    "0001-01-01T00:00:00Z",
    "1970-01-01T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2026-13-01T00:00:00Z",
    "2026-06-01T00:00:00",
]
#: numbers a store holds (within bigint), and milliseconds since the epoch past year 9999 or before year 1
ODD_INTS = [2**63 - 1, 2**62, 0, -1, 10**15]
ODD_MILLIS = [253_402_300_800_000, 2**63 - 1, 32_503_680_000_000, 0]


def _looks_like_time(text: str) -> bool:
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return len(text) >= 10


@st.composite
def reworded_json(draw: st.DrawFn, base: Any, *, most: int = 3) -> tuple[Any, list[str]]:
    """`base` with one to `most` of its strings and numbers replaced by values of the same kind that a contract
    may well accept: odd text, times at the edges, big numbers (a millisecond timestamp by one past year 9999)."""
    value = _copy(base)
    leaves = [
        path
        for path in positions(value)
        if path and isinstance(_get(value, path), str | int) and not isinstance(_get(value, path), bool)
    ]
    done: list[str] = []
    for _ in range(draw(st.integers(1, most)) if leaves else 0):
        path = draw(st.sampled_from(leaves))
        old = _get(value, path)
        if isinstance(old, str):
            new: Any = draw(st.sampled_from(ODD_TIMES if _looks_like_time(old) else ODD_STRINGS))
        else:
            new = draw(st.sampled_from(ODD_MILLIS if old > 10**12 else ODD_INTS))
        _get(value, path[:-1])[path[-1]] = new
        done.append(f"{'.'.join(str(p) for p in path)}: {str(new)[:40]!r}")
    return value, done


def changed_json(base: Any) -> st.SearchStrategy[tuple[Any, list[str]]]:
    """`base` broken (`mutated_json`) or reworded within its kinds (`reworded_json`), one or the other."""
    return st.one_of(mutated_json(base), reworded_json(base))


# ---------------------------------------------------------------- bytes


@st.composite
def mutated_bytes(draw: st.DrawFn, body: bytes) -> tuple[bytes, str]:
    """`body` damaged as a wire can damage it: cut short, bytes that are no UTF-8, a BOM, garbage."""
    kind = draw(st.sampled_from(["truncate", "non_utf8", "raw_nul", "bom", "utf16", "garbage", "empty", "trailing"]))
    if kind == "truncate":
        at = draw(st.integers(0, max(len(body) - 1, 0)))
        return body[:at], f"truncated at byte {at} of {len(body)}"
    if kind in ("non_utf8", "raw_nul"):
        at = draw(st.integers(0, len(body)))
        inserted = (
            b"\x00" if kind == "raw_nul" else draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]))
        )
        return body[:at] + inserted + body[at:], f"{inserted!r} inserted at byte {at}"
    if kind == "bom":
        return b"\xef\xbb\xbf" + body, "UTF-8 BOM first"
    if kind == "utf16":
        return body.decode("utf-8", errors="replace").encode("utf-16"), "UTF-16"
    if kind == "garbage":
        return draw(st.binary(max_size=200)), "random bytes"
    if kind == "empty":
        return b"", "empty"
    return body + b'}]"\xff garbage', "garbage after the document"


# ---------------------------------------------------------------- Kafka records


@dataclass
class Sent:
    """A record the test wrote to a topic, where it landed, and what the consumers must do with it."""

    spec: TopicSpec
    topic: str
    marker: bytes
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    what: list[str]
    unreadable: str | None  # why no consumer can read it (then every one dead-letters it); None: readable
    partition: int = -1
    offset: int = -1

    def mine(self, record: Record) -> bool:
        return self.marker in (record.value or b"") or self.marker in (record.key or b"")

    def describe(self) -> str:
        value = (self.value or b"")[:300]
        return (
            f"{self.topic}[{self.partition}]@{self.offset} ({'; '.join(self.what) or 'valid'}; "
            f"{'unreadable: ' + self.unreadable if self.unreadable else 'readable'}) key={(self.key or b'')[:80]!r} "
            f"value={value!r} headers={[(k, (v or b'')[:60] if v is not None else None) for k, v in self.headers]}"
        )


_ENVELOPE_ATTRS = ("id", "source", "type", "time", "subject", "tenant", "correlationid", "causationid", "traceparent")
_REQUIRED_ATTRS = ("id", "source", "type", "tenant", "correlationid")


def envelope_of(headers: Sequence[tuple[str, bytes | None]]) -> tuple[dict[str, str], str | None]:
    """The CloudEvents attributes of a record (Kafka binding, binary mode: `ce_<attr>` headers), and why they
    cannot be read, if they cannot."""
    if any(value is None for _, value in headers):
        return {}, "a header without a value"
    found: dict[str, str] = {}
    for name, value in headers:
        attr = name[3:] if name.startswith("ce_") else None
        if attr in _ENVELOPE_ATTRS:
            assert value is not None
            try:
                found[attr] = value.decode()
            except UnicodeDecodeError:
                return found, f"header {name} is not UTF-8"
    missing = [a for a in _REQUIRED_ATTRS if a not in found]
    if missing:
        return found, f"missing {', '.join(missing)}"
    if "time" in found:
        try:
            datetime.fromisoformat(found["time"])
        except ValueError:
            return found, "ce_time is no time"
    return found, None


def why_unreadable(spec: TopicSpec, headers: Sequence[tuple[str, bytes | None]], value: bytes | None) -> str | None:
    """Why no consumer can read this record, by the envelope's binding and the contracts; None if one can."""
    attrs, problem = envelope_of(headers)
    if problem is not None:
        return f"envelope: {problem}"
    kind = attrs["type"]
    if spec.message_types and kind not in spec.message_types:
        return f"type {kind[:40]!r} is not carried on {spec.name}"
    model = MESSAGE_TYPES.get(kind)
    if model is None:
        return f"unknown type {kind[:40]!r}"
    if value is None:
        return "no value"
    try:
        model.model_validate_json(value)
    except ValidationError:
        return "body breaks the contract"
    return None


def tenants_named(value: Any) -> Iterator[Any]:
    """Every value of a `tenant` field anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "tenant":
                yield item
            yield from tenants_named(item)
    elif isinstance(value, list):
        for item in value:
            yield from tenants_named(item)


def acts_beyond(sent: Sent, tenant: str, tenant_scoped: bool) -> bool:
    """Would this readable record act for anyone but `tenant`? (A kill switch without a tenant stops everyone.)"""
    attrs, _ = envelope_of(sent.headers)
    if attrs.get("tenant") != tenant:
        return True
    try:
        body = json.loads(sent.value or b"null")
    except ValueError:
        return False
    if any(named != tenant for named in tenants_named(body)):
        return True
    return tenant_scoped and not (isinstance(body, dict) and body.get("tenant") == tenant)


async def publish_all(bootstrap: str, records: Sequence[Sent]) -> list[tuple[Sent, str]]:
    """Write the records straight to Kafka (a plain producer, as `support.publish_raw`, kept open for the run),
    one at a time so that a record the broker refuses fails alone, and note where each landed. The refused ones
    (larger than the topic takes, no key on a compacted topic) are returned with the broker's answer: no
    consumer can ever meet them."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 * 1024 * 1024)
    await producer.start()
    refused: list[tuple[Sent, str]] = []
    try:
        for record in records:
            try:
                metadata = await producer.send_and_wait(
                    record.topic,
                    value=record.value,
                    key=record.key,
                    headers=record.headers,  # type: ignore[arg-type]
                    partition=record.partition if record.partition >= 0 else None,
                )
            except KafkaError as exc:
                refused.append((record, type(exc).__name__))
                continue
            record.partition, record.offset = metadata.partition, metadata.offset
    finally:
        await producer.stop()
    return refused


async def end_offsets(bootstrap: str, topics: Iterable[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            await consumer._client.force_metadata_update()  # the first look at a topic may not know it yet
            partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        return dict(await consumer.end_offsets(partitions)) if partitions else {}
    finally:
        await consumer.stop()


@dataclass(frozen=True)
class Read(Record):
    """A record as read, with its headers as they came (a value may be missing, a name repeated)."""

    raw_headers: tuple[tuple[str, bytes | None], ...] = ()


async def read_since(bootstrap: str, starts: dict[TopicPartition, int], *, timeout: float = 20.0) -> list[Read]:
    """Every committed record from `starts` up to the partitions' present ends (read_committed)."""
    if not starts:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False, group_id=None
    )
    await consumer.start()
    records: list[Read] = []
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        ends = await consumer.end_offsets(list(starts))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = [tp for tp in starts if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            batch = await consumer.getmany(*behind, timeout_ms=300)
            for part in batch.values():
                for r in part:
                    headers = {k: (v or b"").decode(errors="replace") for k, v in (r.headers or ())}
                    raw = tuple(r.headers or ())
                    records.append(Read(r.topic, r.partition, r.offset, r.key, r.value, headers, r.timestamp, raw))
    finally:
        await consumer.stop()
    return records


async def committed(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """A consumer group's committed offsets, as Kafka holds them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def consent_positions(pg_dsn: str, schema: str) -> dict[int, int]:
    """How far a service's consent feed has applied each partition of the consent topic (its own table)."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        rows = await conn.fetch(f'SELECT partition, next_offset FROM "{schema}".consent_offsets')
    finally:
        await conn.close()
    return {r["partition"]: r["next_offset"] for r in rows}


async def poll(check: Callable[[], Any], *, timeout: float, interval: float = 1.0) -> Any:
    """Call `check` (async) until what it returns is empty or `timeout` passes; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        left = await check()
        if not left or time.monotonic() > deadline:
            return left
        await asyncio.sleep(interval)


async def not_ready(herald) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The replicas whose `/readyz` does not answer 200, with what they said."""
    failing: dict[str, str] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for name, replica in herald.services.replicas.items():
            try:
                answer = await client.get(f"http://127.0.0.1:{replica.ops_port}/readyz")
            except httpx.HTTPError as exc:
                failing[name] = repr(exc)
                continue
            if answer.status_code != 200:
                failing[name] = f"{answer.status_code} {answer.text[:500]}"
    return failing


# ---------------------------------------------------------------- the summary `make fuzz` writes


@dataclass
class Summary:
    """What a run did and found, per edge and per service."""

    http_cases: Counter[str] = field(default_factory=Counter)
    http_requests: Counter[str] = field(default_factory=Counter)
    status_codes: dict[str, Counter[str]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    broken_answers: list[str] = field(default_factory=list)
    topic_records: Counter[str] = field(default_factory=Counter)
    unreadable_records: int = 0
    skipped_records: int = 0
    refused_by_kafka: Counter[str] = field(default_factory=Counter)
    wedged: list[str] = field(default_factory=list)
    missing_dead_letters: list[str] = field(default_factory=list)
    dead_letters: dict[str, Counter[str]] = field(default_factory=dict)
    invalid_downstream: list[str] = field(default_factory=list)
    not_ready: dict[str, str] = field(default_factory=dict)
    sealed: int = 0

    def answered(self, edge: str, status: int) -> None:
        self.http_requests[edge] += 1
        self.status_codes.setdefault(edge, Counter())[str(status)] += 1

    def dead_lettered(self, service: str, reason: str) -> None:
        self.dead_letters.setdefault(service, Counter())[reason_label(reason)] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "http": {
                "cases_per_edge": dict(self.http_cases),
                "requests_per_edge": dict(self.http_requests),
                "status_codes": {edge: dict(sorted(c.items())) for edge, c in sorted(self.status_codes.items())},
                "5xx": len(self.server_errors),
                "5xx_examples": self.server_errors[:20],
                "broken_answers": len(self.broken_answers),
                "broken_answer_examples": self.broken_answers[:20],
            },
            "topics": {
                "records_per_topic": dict(sorted(self.topic_records.items())),
                "unreadable_records": self.unreadable_records,
                "readable_records_skipped_as_acting_beyond_the_tenant": self.skipped_records,
                "records_kafka_refused": dict(self.refused_by_kafka),
                "wedged_consumers": len(self.wedged),
                "wedged": self.wedged[:20],
                "missing_dead_letters": len(self.missing_dead_letters),
                "missing_dead_letter_examples": self.missing_dead_letters[:20],
                "dead_letters_per_service_and_reason": {
                    service: dict(sorted(c.items())) for service, c in sorted(self.dead_letters.items())
                },
                "audit_records_sealed": self.sealed,
                "invalid_downstream_records": len(self.invalid_downstream),
                "invalid_downstream_examples": self.invalid_downstream[:20],
            },
            "not_ready": self.not_ready,
        }


def reason_label(reason: str) -> str:
    """A dead letter's reason without its particulars (values, topic names, field paths): `invalid body`,
    `invalid envelope: missing CloudEvents header(s)`, `invalid envelope: type … is not carried on …`."""
    head, _, rest = reason.partition(":")
    if head != "invalid envelope":
        return head[:40]
    detail = rest.split(":", 1)[0].strip()
    detail = re.sub(r"'[^']*'|\S*herald\.\S+", "…", detail)
    return f"{head}: {detail[:60]}"
