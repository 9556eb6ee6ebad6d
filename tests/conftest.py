"""Session fixtures: the real stack, started once (or reused), and isolation by name.

`HERALD_TEST_KAFKA` / `HERALD_TEST_PG_DSN` point the suite at external servers; otherwise
the local stack is started (idempotently) with the same code `make up` uses. Each session gets
its own topic prefix and database, so runs never see each other's messages or rows.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import httpx

# imported first here, at a shallow stack: when hypothesis's pytest plugin first imports it at the end of a long
# session, CPython 3.11.7's parser fails on it ("AST constructor recursion depth mismatch")
import hypothesis  # noqa: F401
import pytest
import yaml

from herald_core.auth.services import ServiceKeys, service_channel
from herald_core.bus import ensure_topics
from herald_core.settings import CommonSettings
from herald_stack.cli import up
from herald_stack.config import REPO_ROOT, StackConfig
from herald_stack.identity import auth_env, mint
from herald_stack.services import ServiceSet
from support import ALL_ROLES, REVIEWER, TEST_ACCESS

# what the test process itself uses, like the services: the stack's service keys and identity provider
os.environ.update(auth_env(StackConfig()))


@dataclass(frozen=True)
class Stack:
    config: StackConfig
    kafka_bootstrap: str
    pg_dsn: str


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    config = StackConfig()
    external_kafka = os.environ.get("HERALD_TEST_KAFKA")
    external_pg = os.environ.get("HERALD_TEST_PG_DSN")
    if not (external_kafka and external_pg):
        up(config, topics=False)
    yield Stack(config, external_kafka or config.kafka_bootstrap, external_pg or config.pg_dsn)


# ---- the six services as real processes, on a fresh topic prefix, database and Weaviate collection


SAMPLE_KB = REPO_ROOT / "samples" / "acme" / "kb"
HUBSPOT_SECRET = "e2e-hubspot-secret"


@dataclass
class Herald:
    services: ServiceSet
    prefix: str
    pg_dsn: str
    bootstrap: str
    tenants_dir: Path
    maildir: Path
    keys_dir: Path

    def topic(self, spec) -> str:  # type: ignore[no-untyped-def]
        return spec.full_name(self.prefix)

    def add_tenant(self, tenant_id: str, **overrides: object) -> str:
        config = {
            "tenant_id": tenant_id,
            "name": "Acme Relay",
            "hubspot_portal_id": 62515,
            "hubspot_app_secret": HUBSPOT_SECRET,
            "sender": {"name": "Maya from Acme Relay", "address": "maya@acmerelay.example"},
            "unsubscribe_url": "https://acmerelay.example/unsubscribe",
            "timezone": "America/New_York",
            "limits": {"emails_per_hour": 1000, "emails_per_contact_per_day": 1},
            "escalation": {"vip": True, "deal_value_minor_at_least": 5_000_000},
            "access": TEST_ACCESS,
            **overrides,
        }
        # written whole, then renamed into place, as a deployment would: a service never reads half a file
        staged = self.tenants_dir / f".{tenant_id}.yaml.partial"
        staged.write_text(yaml.safe_dump(config))
        staged.replace(self.tenants_dir / f"{tenant_id}.yaml")
        return tenant_id

    def token(self, subject: str = REVIEWER, groups: tuple[str, ...] = ALL_ROLES, **claims: object) -> str:
        """A person's token from the stack's identity provider."""
        return mint(self.services.config, subject, groups, **claims)

    def auth_headers(self, subject: str = REVIEWER, groups: tuple[str, ...] = ALL_ROLES) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(subject, groups)}"}

    def review_client(self, subject: str = REVIEWER, groups: tuple[str, ...] = ALL_ROLES) -> httpx.AsyncClient:
        """The review API, as `subject` signed in with `groups`."""
        return httpx.AsyncClient(
            base_url=self.services.review_url, timeout=30, headers=self.auth_headers(subject, groups)
        )

    def service_keys(self, service: str = "cli") -> ServiceKeys:
        return ServiceKeys(self.services.config.service_keys_dir, service)

    def service_headers(self, audience: str, service: str = "cli") -> dict[str, str]:
        """What one of Herald's services (the operator's CLI by default) sends to call `audience`."""
        return {"Authorization": f"Bearer {self.service_keys(service).token(audience)}"}

    def retrieval_channel(self, service: str = "cli") -> grpc.aio.Channel:
        """A channel to the retrieval gRPC API whose calls carry `service`'s token."""
        return service_channel(self.services.retrieval_target, self.service_keys(service), "retrieval")

    def command(self, *args: str) -> str:
        """Run a service's command (`herald-ingest seed …`) with this session's configuration."""
        binary = Path(sys.executable).with_name(args[0])
        result = subprocess.run(
            [str(binary), *args[1:]],
            env={**os.environ, **self.services.common_env()},
            capture_output=True,
            text=True,
            timeout=300,
        )
        if result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def seed_contacts(self, tenant: str, contacts: list[dict[str, object]], directory: Path) -> None:
        path = directory / f"{tenant}-contacts.jsonl"
        path.write_text("".join(json.dumps(c) + "\n" for c in contacts))
        self.command("herald-ingest", "seed", "--tenant", tenant, "--contacts", str(path))

    def retrieval_settings(self):  # type: ignore[no-untyped-def]
        """The retrieval service's settings for this session, for tests that use its code in process."""
        from herald_retrieval.settings import Settings

        config = self.services.config
        return Settings(
            common=CommonSettings(pg_dsn=self.pg_dsn, tenants_dir=self.tenants_dir),
            weaviate_http_port=config.weaviate_http_port,
            weaviate_grpc_port=config.weaviate_grpc_port,
            collection=self.services.extra_env["HERALD_RETRIEVAL_COLLECTION"],
        )

    def load_kb(self, tenant: str, directory: Path = SAMPLE_KB) -> None:
        self.command("herald-retrieval", "load-kb", "--tenant", tenant, "--dir", str(directory))


def _create_database(admin_dsn: str, name: str) -> str:
    async def create() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    return admin_dsn.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def herald(stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Herald]:  # type: ignore[no-untyped-def]
    session = secrets.token_hex(4)
    prefix = f"t{session}."
    pg_dsn = _create_database(stack.pg_dsn, f"herald_e2e_{session}")
    base = tmp_path_factory.mktemp("herald")
    tenants_dir = base / "tenants"
    tenants_dir.mkdir()
    common = CommonSettings(kafka_bootstrap=stack.kafka_bootstrap, topic_prefix=prefix, pg_dsn=pg_dsn)
    asyncio.run(ensure_topics(common))
    services = ServiceSet(
        stack.config,
        prefix,
        pg_dsn,
        tenants_dir,
        base / "logs",
        base_port=int(os.environ.get("HERALD_TEST_BASE_PORT", "9100")),
        extra_env={
            "HERALD_RETRIEVAL_COLLECTION": f"KbE2e{session}",
            "HERALD_RETRIEVAL_MEMORY_COLLECTION": f"MemE2e{session}",
            "HERALD_RETRIEVAL_MEMORY_SWEEP_SECONDS": "1",
            "HERALD_LOG_LEVEL": "INFO",
        },
    )
    herald = Herald(
        services,
        prefix,
        pg_dsn,
        stack.kafka_bootstrap,
        tenants_dir,
        stack.config.maildir,
        stack.config.keys_dir,
    )
    try:
        services.start_all(guards=2)
        yield herald
    finally:
        services.stop_all()
