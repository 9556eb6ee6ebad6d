"""The ingest service in-process against the real Kafka and PostgreSQL, isolated by name.

Once per session: a fresh topic prefix (its topics created from the topic table, deleted at the
end), a fresh database (dropped at the end), a tenants directory with the tenants the tests use,
and the app from `create_app()` started as `herald-ingest` would start it. Tests drive it over
HTTP through httpx's ASGI transport and read Kafka back with a plain `read_committed` consumer.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from herald_core.bus import ensure_topics
from herald_core.contracts import Contract, EventRejected
from herald_core.runtime import ServiceRuntime
from herald_core.settings import CommonSettings
from herald_core.topics import AUDIT, TopicSpec, all_topics
from herald_ingest.app import create_app
from herald_ingest.settings import Settings
from support import Record, contact_record, hubspot_signature

PORTAL = 62515
SECRET = "ingest-test-hubspot-secret"
BASE_URL = "http://ingest.test"
C = TypeVar("C", bound=Contract)


# ---------------------------------------------------------------- reading Kafka back


async def _settled_end_offsets(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    ends = await consumer.end_offsets(tps)
    for _ in range(50):
        await asyncio.sleep(0.15)
        again = await consumer.end_offsets(tps)
        if again == ends:
            return ends
        ends = again
    return ends


async def read_committed(bootstrap: str, topic: str, partitions: int, *, timeout: float = 20.0) -> list[Record]:
    """Every committed record on `topic`, up to its last stable offset once that offset has settled.

    The service answers only after its Kafka transaction committed; but the broker writes the commit
    markers to the data partitions just after it answers the commit, so a partition's last stable
    offset can trail the answer by a moment. Read up to end offsets that hold still for a little while.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await _settled_end_offsets(consumer, tps)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while True:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                return records
            if time.monotonic() > deadline:
                raise AssertionError(f"could not read {topic} up to {ends} within {timeout}s")
            batch = await consumer.getmany(*behind, timeout_ms=500)
            for part in batch.values():
                for r in part:
                    headers = {k: v.decode(errors="replace") for k, v in (r.headers or ())}
                    records.append(Record(r.topic, r.partition, r.offset, r.key, r.value, headers))
    finally:
        await consumer.stop()


# ---------------------------------------------------------------- HubSpot requests


def now_ms() -> int:
    return int(time.time() * 1000)


def new_traceparent() -> tuple[str, str]:
    """(traceparent, its trace id): a marker that follows a request onto the audit."""
    trace = secrets.token_hex(16)
    return f"00-{trace}-{secrets.token_hex(8)}-01", trace


def trace_of(record: Record) -> str | None:
    parent = record.headers.get("ce_traceparent")
    return parent.split("-")[1] if parent else None


_ids = iter(range(1, 10**9))


def unique_int(base: int = 0) -> int:
    """Distinct across the session (contact ids, HubSpot event ids)."""
    return base + int(time.time() * 1000) % 10**9 * 1000 + next(_ids)


@dataclass
class Harness:
    """What a test needs: the running app, an HTTP client, the session's names, helpers."""

    runtime: ServiceRuntime
    client: httpx.AsyncClient
    settings: Settings
    prefix: str
    bootstrap: str
    pg_dsn: str
    tenants_dir: Path
    tenant: str
    other_portal_tenant: str
    _pool: asyncpg.Pool | None = field(default=None, repr=False)

    # helpers the tests use, reached through the fixture
    portal = PORTAL
    secret = SECRET
    base_url = BASE_URL
    sign = staticmethod(hubspot_signature)  # tests/support: HubSpot's scheme, independent of the service
    now_ms = staticmethod(now_ms)
    new_traceparent = staticmethod(new_traceparent)
    trace_of = staticmethod(trace_of)
    unique_int = staticmethod(unique_int)

    def topic(self, spec: TopicSpec) -> str:
        return spec.full_name(self.prefix)

    async def read(self, spec: TopicSpec) -> list[Record]:
        return await read_committed(self.bootstrap, self.topic(spec), spec.partitions)

    async def assert_refused(
        self, response: httpx.Response, trace: str, *, status: int, error: str, tenant: str, endpoint: str
    ) -> None:
        """The answer names the error and a reason, and the audit holds the refusal (found by its trace)."""
        assert response.status_code == status, response.text
        assert response.json()["error"] == error
        assert response.json()["detail"]
        [audited] = [r for r in await self.read(AUDIT) if trace_of(r) == trace]
        rejected = audited.body(EventRejected)
        assert audited.tenant == tenant
        assert (rejected.status_code, rejected.endpoint) == (status, endpoint)
        assert rejected.reason.startswith(error)

    async def db(self) -> asyncpg.Pool:
        if self._pool is None:
            self._pool = await asyncpg.create_pool(self.pg_dsn, min_size=1, max_size=2)
        return self._pool

    # -- contacts

    @staticmethod
    def contact(**extra: Any) -> dict[str, Any]:
        contact_id = unique_int(5_000_000_000)
        fields = {
            "email": f"lead-{contact_id}@northwind.example",
            "deal_value_minor": 125_000,
            "created_at": "2026-10-07T23:04:00Z",
            **extra,
        }
        return contact_record(contact_id, **fields)

    def contacts_file(self, directory: Path, contacts: list[dict[str, Any]]) -> Path:
        path = directory / f"contacts-{secrets.token_hex(4)}.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in contacts))
        return path

    async def seed(self, tenant: str, path: Path) -> tuple[int, str, str]:
        """`herald-ingest seed`, the real command, with this session's configuration: (exit code, stdout, stderr)."""
        binary = Path(sys.executable).with_name("herald-ingest")
        env = {
            **os.environ,
            "HERALD_KAFKA_BOOTSTRAP": self.bootstrap,
            "HERALD_TOPIC_PREFIX": self.prefix,
            "HERALD_PG_DSN": self.pg_dsn,
            "HERALD_TENANTS_DIR": str(self.tenants_dir),
            "HERALD_INSTANCE_ID": "seed-test",
        }
        process = await asyncio.create_subprocess_exec(
            str(binary),
            "seed",
            "--tenant",
            tenant,
            "--contacts",
            str(path),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode is not None
        return process.returncode, stdout.decode(), stderr.decode()

    async def seeded(self, tenant: str, contacts: list[dict[str, Any]], directory: Path) -> str:
        code, stdout, stderr = await self.seed(tenant, self.contacts_file(directory, contacts))
        assert code == 0, f"seed failed ({code}):\n{stdout}\n{stderr}"
        return stdout

    # -- HubSpot

    @staticmethod
    def creation(contact: dict[str, Any], event_id: int | None = None, *, portal: int = PORTAL) -> dict[str, Any]:
        return {
            "eventId": event_id if event_id is not None else unique_int(),
            "subscriptionId": 101,
            "portalId": portal,
            "appId": 9001,
            "occurredAt": now_ms(),
            "subscriptionType": "contact.creation",
            "attemptNumber": 0,
            "objectId": contact["contact_id"],
            "changeFlag": "NEW",
            "changeSource": "CRM",
        }

    @staticmethod
    def property_change(contact: dict[str, Any], name: str, value: str, event_id: int | None = None) -> dict[str, Any]:
        return {
            "eventId": event_id if event_id is not None else unique_int(),
            "subscriptionId": 102,
            "portalId": PORTAL,
            "appId": 9001,
            "occurredAt": now_ms(),
            "subscriptionType": "contact.propertyChange",
            "attemptNumber": 0,
            "objectId": contact["contact_id"],
            "propertyName": name,
            "propertyValue": value,
            "changeSource": "CRM_UI",
        }

    async def post_hubspot(
        self,
        tenant: str,
        batch: list[dict[str, Any]] | None = None,
        *,
        raw: bytes | None = None,
        secret: str = SECRET,
        timestamp_ms: int | None = None,
        headers: dict[str, str] | None = None,
        signed: bool = True,
        client: httpx.AsyncClient | None = None,
    ) -> httpx.Response:
        path = f"/v1/webhooks/hubspot/{tenant}"
        body = raw if raw is not None else json.dumps(batch or []).encode()
        timestamp = timestamp_ms if timestamp_ms is not None else now_ms()
        sent = httpx.Headers({"Content-Type": "application/json"})
        sent.update(headers or {})
        if signed:
            # the signature covers the full URI: sign exactly the URL called
            sent["X-HubSpot-Request-Timestamp"] = str(timestamp)
            sent["X-HubSpot-Signature-v3"] = hubspot_signature(secret, "POST", f"{BASE_URL}{path}", body, timestamp)
        return await (client or self.client).post(path, content=body, headers=sent)

    # -- CloudEvents

    async def post_cloudevent(
        self, event: dict[str, Any] | None = None, *, raw: bytes | None = None, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = raw if raw is not None else json.dumps(event).encode()
        sent = httpx.Headers({"Content-Type": "application/cloudevents+json"})
        sent.update(headers or {})  # case-insensitively: a caller's content-type replaces the default
        return await self.client.post("/v1/events", content=body, headers=sent)


def tenant_config(tenant_id: str, **overrides: Any) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "name": "Acme Relay",
        "hubspot_portal_id": PORTAL,
        "hubspot_app_secret": SECRET,
        "sender": {"name": "Maya from Acme Relay", "address": "maya@acmerelay.example"},
        "unsubscribe_url": "https://acmerelay.example/unsubscribe",
        "timezone": "America/New_York",
        **overrides,
    }


def write_tenant(directory: Path, tenant_id: str, **overrides: Any) -> str:
    (directory / f"{tenant_id}.yaml").write_text(yaml.safe_dump(tenant_config(tenant_id, **overrides)))
    return tenant_id


# ---------------------------------------------------------------- session fixtures


@dataclass(frozen=True)
class Names:
    prefix: str
    database: str
    pg_dsn: str
    admin_dsn: str
    bootstrap: str


@pytest.fixture(scope="session")
def ingest_names(stack) -> Iterator[Names]:  # type: ignore[no-untyped-def]
    """A topic prefix and a database of this session's own; both removed afterwards."""
    session = secrets.token_hex(4)
    names = Names(
        prefix=f"ti{session}.",
        database=f"herald_ingest_{session}",
        pg_dsn=stack.pg_dsn.rsplit("/", 1)[0] + f"/herald_ingest_{session}",
        admin_dsn=stack.pg_dsn,
        bootstrap=stack.kafka_bootstrap,
    )

    async def create() -> None:
        conn = await asyncpg.connect(names.admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{names.database}"')
        finally:
            await conn.close()
        await ensure_topics(CommonSettings(kafka_bootstrap=names.bootstrap, topic_prefix=names.prefix))

    async def remove() -> None:
        conn = await asyncpg.connect(names.admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{names.database}" WITH (FORCE)')
        finally:
            await conn.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=names.bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([spec.full_name(names.prefix) for spec in all_topics()])
        finally:
            await admin.close()

    asyncio.run(create())
    try:
        yield names
    finally:
        asyncio.run(remove())


@pytest.fixture(scope="session")
async def ingest(ingest_names: Names, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    tenants_dir = tmp_path_factory.mktemp("tenants")
    # every tenant exists before the app starts: the tenant directory re-reads at most once a second
    tenant = write_tenant(tenants_dir, f"acme{secrets.token_hex(3)}")
    other_portal = write_tenant(tenants_dir, f"other{secrets.token_hex(3)}", hubspot_portal_id=99999)
    common = CommonSettings(
        kafka_bootstrap=ingest_names.bootstrap,
        topic_prefix=ingest_names.prefix,
        pg_dsn=ingest_names.pg_dsn,
        tenants_dir=tenants_dir,
    )
    settings = Settings(common=common, signature_max_age_seconds=300)
    runtime = await create_app(settings)
    await runtime.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=runtime.http), base_url=BASE_URL, timeout=30)
    # as a deployment would, wait until it is ready (its consumer of what Herald sent has its partitions)
    deadline = time.monotonic() + 60
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, "ingest never became ready"
        await asyncio.sleep(0.2)
    harness = Harness(
        runtime,
        client,
        settings,
        ingest_names.prefix,
        ingest_names.bootstrap,
        ingest_names.pg_dsn,
        tenants_dir,
        tenant,
        other_portal,
    )
    try:
        yield harness
    finally:
        await client.aclose()
        if harness._pool is not None:
            await harness._pool.close()
        await runtime.stop()
