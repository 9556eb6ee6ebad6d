"""Helpers the tests share: read Kafka back with a plain consumer, read the mailbox, sign webhooks."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import asyncpg
import httpx
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI, Request
from icalendar import Calendar, Component

from herald_core.auth.services import ServiceKeys, generate_service_keys
from herald_core.bus import Outbound, TransactionalProducer
from herald_core.contracts import (
    ActionApproved,
    ActionBlocked,
    ActionDeferred,
    ActionEscalated,
    ActionExecuted,
    ActionProposed,
    ActionRefused,
    ConsentReason,
    ConsentWithdrawn,
    ContactFacts,
    Contract,
    ExecutionStatus,
    FailureKind,
    SendEmailInput,
    ToolFailure,
)
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.settings import CommonSettings
from herald_core.signing import load_signer
from herald_core.tenants import TenantConfig
from herald_core.topics import APPROVED_ACTION, CONSENT, DECISION, EXECUTED, TopicSpec, contact_key
from herald_stack.config import StackConfig
from herald_stack.loopback import free_port as free_port
from herald_stack.loopback import loopback as loopback  # re-exported: tests take them from here
from herald_stack.samples import FIRST_MEETING_SLOT as FIRST_MEETING_SLOT  # re-exported: tests take them from here
from herald_stack.samples import tool_input as tool_input

C = TypeVar("C", bound=Contract)


def throwaway_service_keys(service: str) -> ServiceKeys:
    """A service's keys made for one test (for a loopback stand-in of another service, which checks nothing)."""
    directory = Path(tempfile.mkdtemp(prefix="herald-keys-"))
    generate_service_keys(directory, [service])
    return ServiceKeys(directory, service)


#: who holds which role in a test tenant, unless a test says otherwise
TEST_ACCESS = {
    "reviewer": ["group:reviewers"],
    "approver": ["group:approvers"],
    "admin": ["group:admins"],
    "owner": "owner@acmerelay.example",
}
#: the test's reviewer: signed in with every role of every test tenant
REVIEWER = "dana@acme.example"
ALL_ROLES = ("reviewers", "approvers", "admins")


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    timestamp: int = 0  # ms since the epoch, as the record carries it

    @property
    def type(self) -> str | None:
        return self.headers.get("ce_type")

    @property
    def id(self) -> str | None:
        return self.headers.get("ce_id")

    @property
    def tenant(self) -> str | None:
        return self.headers.get("ce_tenant")

    def body(self, model: type[C]) -> C:
        assert self.value is not None
        return model.model_validate_json(self.value)

    def json(self) -> dict[str, Any]:
        assert self.value is not None
        loaded: dict[str, Any] = json.loads(self.value)
        return loaded


def bodies(records: Iterable[Record], model: type[C], *ids: str) -> list[C]:
    """The records of `model`'s type that name one of `ids`, read as `model`. Records that name none are not
    parsed: other tests put malformed records with real types on the topics, as an attacker would."""
    wanted = [i.encode() for i in ids]
    return [r.body(model) for r in records if r.type == model.TYPE and any(w in (r.value or b"") for w in wanted)]


async def read_topic(
    bootstrap: str, topic: str, *, timeout: float = 5.0, until: Callable[[list[Record]], bool] | None = None
) -> list[Record]:
    """Everything committed on `topic` (read_committed), read until `until` holds or no more arrives."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[Record] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                for r in part:
                    headers = {k: (v or b"").decode(errors="replace") for k, v in (r.headers or ())}
                    records.append(Record(r.topic, r.partition, r.offset, r.key, r.value, headers, r.timestamp))
            if until is not None and until(records):
                break
            if until is None and not batch and records:
                break
    finally:
        await consumer.stop()
    return records


async def publish_raw(
    bootstrap: str,
    topic: str,
    value: bytes | None,
    *,
    key: bytes | None = None,
    headers: list[tuple[str, bytes]] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key, headers=headers or [])
    finally:
        await producer.stop()


async def publish(bootstrap: str, prefix: str, spec: TopicSpec, key: bytes, envelope: Envelope, body: Contract) -> None:
    await publish_raw(
        bootstrap, spec.full_name(prefix), body.model_dump_json().encode(), key=key, headers=envelope.to_headers()
    )


async def publish_audited(
    bootstrap: str, prefix: str, spec: TopicSpec, key: bytes, envelope: Envelope, body: Contract
) -> None:
    """Publish as a Herald service does: the message and its audit copy in one Kafka transaction."""
    common = CommonSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    producer = TransactionalProducer(common, "test", name=f"test-{new_id()}")
    await producer.start()
    try:
        await producer.publish([Outbound(spec, key, envelope, body)])
    finally:
        await producer.stop()


async def post_event(
    herald, tenant: str, type_: str, data: dict[str, Any], source: str = "test/upstream"
) -> httpx.Response:  # type: ignore[no-untyped-def]
    """One structured CloudEvent to the ingest edge (`POST /v1/events`), as an upstream system sends it."""
    event = {
        "specversion": "1.0",
        "id": f"ce-{os.urandom(6).hex()}",
        "source": source,
        "type": type_,
        "tenant": tenant,
        "datacontenttype": "application/json",
        "data": data,
    }
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{herald.services.ingest_url}/v1/events",
            content=json.dumps(event),
            headers={"Content-Type": "application/cloudevents+json"},
        )


async def guard_answer(herald, tenant: str, action_id: str, timeout: float = 30) -> Contract:  # type: ignore[no-untyped-def]
    """The guard's decision on an action once it is on Kafka: approved, blocked, escalated or deferred."""
    models = {m.TYPE: m for m in (ActionApproved, ActionBlocked, ActionEscalated, ActionDeferred)}

    async def look() -> Contract | None:
        for spec in (DECISION, APPROVED_ACTION):
            for r in await read_topic(herald.bootstrap, herald.topic(spec), timeout=2):
                if r.tenant != tenant or (r.type or "") not in models:
                    continue
                body = r.json()
                if action_id in (body.get("action_id"), (body.get("action") or {}).get("action_id")):
                    return r.body(models[r.type or ""])
        return None

    return await eventually(look, timeout=timeout, what=f"the guard's decision on {action_id}")


_recipients: dict[Path, str] = {}  # message file → its envelope recipients; files never change once delivered


def _recipients_of(path: Path) -> str:
    if path not in _recipients:
        with path.open("rb") as handle:
            headers = BytesParser().parse(handle, headersonly=True)
        _recipients[path] = (headers.get("X-Herald-Rcpt-To") or "").lower()
    return _recipients[path]


def recipients(maildir: Path) -> list[str]:
    """The envelope recipients of every delivered message (one entry per message)."""
    return [
        _recipients_of(path)
        for folder in ("new", "cur")
        if (maildir / folder).is_dir()
        for path in (maildir / folder).iterdir()
    ]


def contact_record(contact_id: int, **extra: Any) -> dict[str, Any]:
    """One line of a contacts file (`herald-ingest seed`): a logistics lead unless `extra` says otherwise."""
    return {
        "contact_id": contact_id,
        "email": f"lead-{contact_id}@northwind.example",
        "first_name": "Jordan",
        "last_name": "Reyes",
        "company": "Northwind Freight",
        "job_title": "Head of Operations",
        "industry": "logistics",
        "lifecycle_stage": "lead",
        "country": "US",
        "timezone": "America/Chicago",
        "vip": False,
        "deal_value_minor": 0,
        "opted_out": False,
        **extra,
    }


def email_action(
    tenant: str,
    *,
    contact_id: str,
    email: str,
    subject: str = "Hello",
    body_text: str = "A short note.",
    rationale: str = "test",
    **contact: Any,
) -> ActionProposed:
    """A `send_email` proposal for one contact, as the planner would make it."""
    return ActionProposed(
        action_id=new_id(),
        tenant=tenant,
        workflow_id=f"wf-{new_id()}",
        tool="send_email",
        input=SendEmailInput(to=email, subject=subject, body_text=body_text),
        contact=ContactFacts(contact_id=contact_id, email=email, **contact),
        evidence=(),
        confidence=0.9,
        rationale=rationale,
    )


def calendar_events(config: StackConfig, tenant: str) -> list[Component]:
    """The events in the tenant's meeting calendar, read as any CalDAV client would: PROPFIND, then GET each."""
    url = f"{config.caldav_url}{config.caldav_user}/{tenant}-meetings/"
    with httpx.Client(auth=(config.caldav_user, config.caldav_password), timeout=10) as client:
        listing = client.request("PROPFIND", url, headers={"Depth": "1"})
        if listing.status_code == 404:
            return []
        assert listing.status_code == 207, listing.text
        hrefs = [node.text or "" for node in ET.fromstring(listing.content).iter("{DAV:}href")]  # noqa: S314
        events: list[Component] = []
        for href in (h for h in hrefs if h.endswith(".ics")):
            response = client.get(urljoin(url, href))
            assert response.status_code == 200, response.text
            events += Calendar.from_ical(response.content).walk("VEVENT")
        return events


def acme_tenant(tenant_id: str, **fields: Any) -> TenantConfig:
    """A tenant's configuration as the executor reads it (Acme Relay's sender), `fields` overriding."""
    base: dict[str, Any] = {
        "tenant_id": tenant_id,
        "name": "Acme Relay",
        "sender": {"name": "Maya from Acme Relay", "address": "maya@acmerelay.example"},
        "unsubscribe_url": "https://acmerelay.example/unsubscribe",
        "timezone": "America/New_York",
    }
    return TenantConfig.model_validate({**base, **fields})


def tool_action(
    tenant: str, tool: str, tool_input: dict[str, Any], *, contact_id: str, **fields: Any
) -> ActionProposed:
    """A proposal of any registry tool for one contact, as the planner would make it."""
    base = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@buyers.example")
    return ActionProposed.model_validate({**base.model_dump(mode="json"), "tool": tool, "input": tool_input, **fields})


def approve(herald, action: ActionProposed, ttl: timedelta = timedelta(minutes=10)) -> ActionApproved:  # type: ignore[no-untyped-def]
    """The action signed as the guard signs it (the local guard key)."""
    signer = load_signer(herald.keys_dir / "guard-local-1.pem", "guard-local-1")
    approval = signer.approve(action, approved_by="guard", policy_version="test", ttl=ttl)
    return ActionApproved(action=action, approval=approval, rules=())


async def present(herald, approved: ActionApproved) -> None:  # type: ignore[no-untyped-def]
    """Publish an approval on the approved-action topic, as the guard does."""
    action = approved.action
    env = envelope(action.tenant, approved, source="herald/guard")
    await publish(
        herald.bootstrap,
        herald.prefix,
        APPROVED_ACTION,
        contact_key(action.tenant, action.contact.contact_id),
        env,
        approved,
    )


async def reported_in_doubt(herald, tenant: str, contact_id: str, why: str) -> ActionExecuted:  # type: ignore[no-untyped-def]
    """An email the executor reports in doubt (published as the executor publishes it, with its audit copy)."""
    executed = ActionExecuted(
        action_id=new_id(),
        workflow_id=f"wf-{new_id()}",
        contact_id=contact_id,
        tool="send_email",
        status=ExecutionStatus.IN_DOUBT,
        error=why,
        failure=ToolFailure(kind=FailureKind.NEEDS_HUMAN, code="in_doubt", message=why),
        summary="email “Hello” to someone@buyers.example",
    )
    env = envelope(tenant, executed, source="herald/executor")
    await publish_audited(herald.bootstrap, herald.prefix, EXECUTED, contact_key(tenant, contact_id), env, executed)
    return executed


async def cut_off_by_a_crash(herald, approvals: Sequence[ActionApproved]) -> None:  # type: ignore[no-untyped-def]
    """Present approvals the way a crash right after the claim leaves them: each record read and claimed in
    the executor's ledger (its nonce, partition and offset) but never answered. The executor is stopped while
    the state is laid down, and started again to find it."""
    ids = {a.action.action_id for a in approvals}
    herald.services.stop("executor-0")
    try:
        for approved in approvals:
            await present(herald, approved)

        def places(records: list[Record]) -> dict[str, tuple[int, int]]:
            return {a: (r.partition, r.offset) for r in records for a in ids if a.encode() in (r.value or b"")}

        placed = await read_topic(
            herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=30, until=lambda rs: len(places(rs)) == len(ids)
        )
        where = places(placed)
        conn = await asyncpg.connect(herald.pg_dsn)
        try:
            for approved in approvals:
                action, (partition, offset) = approved.action, where[approved.action.action_id]
                await conn.execute(
                    "INSERT INTO executor.seen_nonces(nonce, action_id, source_partition, source_offset) "
                    "VALUES ($1, $2, $3, $4)",
                    approved.approval.nonce,
                    action.action_id,
                    partition,
                    offset,
                )
                await conn.execute(
                    "INSERT INTO executor.ledger(action_id, tenant, contact_id, tool, nonce, source_partition, "
                    "source_offset, state) VALUES ($1, $2, $3, $4, $5, $6, $7, 'claimed')",
                    action.action_id,
                    action.tenant,
                    action.contact.contact_id,
                    action.tool,
                    approved.approval.nonce,
                    partition,
                    offset,
                )
        finally:
            await conn.close()
    finally:
        herald.services.start("executor-0")


async def executor_answers(  # type: ignore[no-untyped-def]
    herald, action_id: str, *, count: int = 1, timeout: float = 60
) -> list[ActionExecuted | ActionRefused]:
    """The executor's answers (ActionExecuted / ActionRefused) about one action, once there are `count`."""

    def about(records):  # type: ignore[no-untyped-def]
        return [
            (ActionExecuted if r.type == ActionExecuted.TYPE else ActionRefused).model_validate_json(r.value)
            for r in records
            if r.type in (ActionExecuted.TYPE, ActionRefused.TYPE) and action_id.encode() in (r.value or b"")
        ]

    records = await read_topic(
        herald.bootstrap, herald.topic(EXECUTED), timeout=timeout, until=lambda rs: len(about(rs)) >= count
    )
    return about(records)


async def execution_of(herald, action_id: str) -> ActionExecuted:  # type: ignore[no-untyped-def]
    """The executor's one answer about an action, which must be an execution report (not a refusal)."""
    (answer,) = await executor_answers(herald, action_id)
    assert isinstance(answer, ActionExecuted), answer
    return answer


def executions(records: Iterable[Record], tenant: str) -> dict[str, list[ActionExecuted]]:
    """The tenant's execution reports among the executed topic's records, by action id."""
    found: dict[str, list[ActionExecuted]] = {}
    for r in records:
        if r.type == ActionExecuted.TYPE and r.headers.get("ce_tenant") == tenant:
            executed = ActionExecuted.model_validate_json(r.value)
            found.setdefault(executed.action_id, []).append(executed)
    return found


def envelope(tenant: str, body: Contract, *, source: str, subject: str | None = None) -> Envelope:
    """A new chain's envelope for `body`, from a test standing in for `source`."""
    return Envelope.new_chain(source=source, type=body.TYPE, tenant=tenant, subject=subject)


async def publish_many(bootstrap: str, topic: str, messages: Iterable[tuple[bytes, Envelope, Contract]]) -> None:
    """Write (key, envelope, body) messages straight onto a topic with a plain producer."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        for key, env, body in messages:
            await producer.send(topic, body.model_dump_json().encode(), key=key, headers=env.to_headers())
        await producer.flush()
    finally:
        await producer.stop()


def part_of(mail: Message, subtype: str) -> str:
    """The decoded text of a delivered message's `text/<subtype>` part."""
    for part in mail.walk():
        if part.get_content_type() == f"text/{subtype}":
            return bytes(part.get_payload(decode=True)).decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part in {mail.get_content_type()}")


def mails_to(maildir: Path, address: str) -> list[Message]:
    """Messages the SMTP server delivered to `address`, read back from its Maildir, in the order they arrived."""
    wanted = address.lower()
    paths = []
    for folder in ("new", "cur"):
        directory = maildir / folder
        if directory.is_dir():
            paths += [path for path in directory.iterdir() if wanted in _recipients_of(path)]
    found = []
    for path in sorted(paths, key=lambda p: (p.stat().st_mtime_ns, p.name)):
        with path.open("rb") as handle:
            found.append(BytesParser().parse(handle))
    return found


async def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.25, what: str = "condition"
) -> Any:
    """Poll `check` (sync or async) until it returns something truthy; fail with `what` otherwise."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """HubSpot's v3 webhook signature: base64(HMAC-SHA256(secret, method + uri + body + timestamp))."""
    message = method.encode() + uri.encode() + body + str(timestamp_ms).encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def herald_command(herald, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """Run the `herald` command with the session's settings (Kafka, topic prefix), as an operator would (signed
    in as the test's reviewer)."""
    binary = Path(sys.executable).with_name("herald")
    return subprocess.run(
        [str(binary), *args],
        env={**os.environ, **herald.services.common_env(), "COLUMNS": "200", "HERALD_TOKEN": herald.token()},
        capture_output=True,
        text=True,
        timeout=300,
    )


def from_every_guard(herald, path: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Each guard replica's JSON answer at `path` on its ops port."""
    answers = []
    for replica in herald.services.replicas.values():
        if replica.service == "guard":
            request = urllib.request.Request(
                f"http://127.0.0.1:{replica.ops_port}{path}", headers=herald.auth_headers()
            )
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback http
                answers.append(json.loads(response.read()))
    return answers


def live_policies(herald, tenant: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """What each guard replica says is the tenant's live policy (its own `/v1/policies` view)."""
    return from_every_guard(herald, f"/v1/policies/{tenant}")


async def on_every_guard(herald, tenant: str, version_prefix: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    def check() -> list[dict[str, Any]] | None:
        answers = live_policies(herald, tenant)
        return answers if answers and all(a["version"].startswith(version_prefix) for a in answers) else None

    return await eventually(check, timeout=20, what=f"policy {version_prefix} on every guard")


async def tenant_with_policy(herald, name: str, policy: str, directory: Path, **tenant: object) -> str:  # type: ignore[no-untyped-def]
    """A new tenant (`name` + a random suffix, `tenant` overriding its file) whose policy — `policy` with
    `{tenant}` filled in — is applied with `herald policy apply` and live on every guard."""
    tenant_id = herald.add_tenant(f"{name}{os.urandom(3).hex()}", **tenant)
    source = policy.replace("{tenant}", tenant_id)
    path = directory / f"{tenant_id}-policy.yaml"
    path.write_text(source)
    applied = herald_command(herald, "policy", "apply", str(path))
    assert applied.returncode == 0, applied.stderr
    version = yaml.safe_load(source)["version"]
    await on_every_guard(herald, tenant_id, f"v{version}-")
    return tenant_id


# ---- a loopback server speaking Anthropic's Messages API, for the real `anthropic` SDK


@contextlib.asynccontextmanager
async def restarted_with(herald, name: str, env: dict[str, str]) -> AsyncIterator[None]:  # type: ignore[no-untyped-def]
    """The replica `name` restarted with `env` added to its environment, and restarted as it was afterwards."""
    replica = herald.services.replicas[name]
    saved = dict(replica.env)
    herald.services.stop(name)
    replica.env.update(env)
    herald.services.start(name)
    try:
        yield
    finally:
        herald.services.stop(name)
        replica.env.clear()
        replica.env.update(saved)
        herald.services.start(name)


def planner_drafting_with(herald, url: str) -> contextlib.AbstractAsyncContextManager[None]:  # type: ignore[no-untyped-def]
    """The first planner replica drafting with an LLM at `url` (a loopback Messages API)."""
    return restarted_with(herald, "planner-0", {"ANTHROPIC_API_KEY": "sk-ant-loopback", "ANTHROPIC_BASE_URL": url})


async def opt_out(herald, tenant: str, contact: ContactFacts) -> None:  # type: ignore[no-untyped-def]
    """The contact unsubscribes from email, as ingest records it on the consent topic (and the audit)."""
    withdrawn = ConsentWithdrawn(
        contact_id=contact.contact_id,
        email=contact.email,
        reason=ConsentReason.UNSUBSCRIBE,
        upstream_source="test",
        upstream_event_id=new_id(),
        occurred_at=datetime.now(UTC),
    )
    key = f"{tenant}:{contact.contact_id}:email".encode()
    env = envelope(tenant, withdrawn, source="herald/ingest")
    await publish_audited(herald.bootstrap, herald.prefix, CONSENT, key, env, withdrawn)


@contextlib.asynccontextmanager
async def messages_api(
    reply: dict[str, Any] | list[dict[str, Any]],
) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A Messages API on loopback: every request is recorded (body and headers) and answered with `reply`, or,
    given a list, the n-th request with the n-th reply (the last one again once the list is used up) — a
    conversation of several turns, such as a model that calls a tool before it answers."""
    replies = reply if isinstance(reply, list) else [reply]
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages(request: Request) -> dict[str, Any]:
        body = await request.json()
        received.append({"body": body, "headers": dict(request.headers)})
        answer = replies[min(len(received), len(replies)) - 1]
        return {
            "id": f"msg_loopback_{len(received)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": answer["content"],
            "stop_reason": answer.get("stop_reason", "tool_use"),
            "stop_sequence": None,
            "usage": answer.get("usage", {"input_tokens": 321, "output_tokens": 87}),
        }

    async with loopback(app) as url:
        yield url, received
