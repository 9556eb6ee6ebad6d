"""`make bench` (fourth part): the guard's decision latency through Kafka, with its Postgres work.

One guard process decides proposals published at a steady rate (below saturation, so the figure is
latency, not queueing): consume, consent freshness check, policy (10 and 100 rules), caps reserved
in Postgres (a tenant and a per-contact sliding window, under their advisory locks), the decision
row, the signature, the outputs and offsets in one Kafka transaction — timed from the proposal's
send to the moment the decision is readable (read_committed). The baseline is a plain aiokafka
consume → produce hop at the same rate, timed the same way, in the same run.
Results: bench/results/guard-kafka-<timestamp>.json and .png (and guard-kafka-latest.*).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from bench.guard import policy_source
from bench.results import machine, save
from bench.run import _create, _percentiles, _stage_times, isolated_services
from herald_core.bus import Outbound, TransactionalProducer
from herald_core.contracts import ActionProposed, ContactFacts, EvidenceRef, PolicyPublished, SendEmailInput
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.settings import CommonSettings
from herald_core.topics import APPROVED_ACTION, DECISION, POLICY, PROPOSED_ACTION, contact_key, tenant_key
from herald_stack.cli import up
from herald_stack.config import StackConfig

TENANT = "benchguard"
DIRECTION_P99_MS = 5.0
LIMITS = [
    {"id": "limits.tenant_burst", "max": 1_000_000, "per": "1h"},
    {"id": "limits.contact_weekly", "scope": "contact", "max": 100, "per": "7d"},
]


def _action(n: int, run: str) -> ActionProposed:
    """An action every generated rule lets through, so each decision also reserves its caps."""
    email = f"g-{run}-{n}@buyers.example"
    return ActionProposed(
        action_id=new_id(),
        tenant=TENANT,
        workflow_id=f"wf-{n}",
        tool="send_email",
        input=SendEmailInput(to=email, subject="Carrier exceptions", body_text="Hi Sam,\n\nA short note. " * 8),
        contact=ContactFacts(contact_id=f"{run}{n % 200}", email=email, first_name="Sam"),
        evidence=(EvidenceRef(chunk_id="kb#0", doc_id="kb", title="kb", score=1.0, quote="a passage"),),
        confidence=0.95,
        rationale="bench",
    )


async def _paced(
    bootstrap: str,
    source: str,
    sinks: list[str],
    make: Any,
    rate: float,
    count: int,
    seen: Callable[[str, ConsumerRecord[bytes, bytes], float], None] | None = None,
) -> list[float]:
    """Send `count` messages at `rate`/s to `source`; seconds from each send to its output on a sink.

    `seen` is told of each output matched to a send (its marker, the record, the latency), for a bench that also
    checks what came back."""
    consumer = AIOKafkaConsumer(*sinks, bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=50)
    await consumer.seek_to_end()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    sent_at: dict[str, float] = {}
    latencies: list[float] = []

    async def send() -> None:
        began = time.monotonic()
        for n in range(count):
            key, value, headers, marker = make(n)
            sent_at[marker] = time.monotonic()
            await producer.send(source, value, key=key, headers=headers)
            await asyncio.sleep(max(began + (n + 1) / rate - time.monotonic(), 0))

    sending = asyncio.create_task(send())
    deadline = time.monotonic() + count / rate + 60
    try:
        while len(latencies) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            arrived = time.monotonic()
            for records in batch.values():
                for record in records:
                    marker = dict(record.headers or ()).get("bench_marker", b"").decode() or _action_id(record.value)
                    if marker in sent_at:
                        latencies.append(arrived - sent_at.pop(marker))
                        if seen is not None:
                            seen(marker, record, latencies[-1])
        await sending
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


def _action_id(value: bytes | None) -> str:
    body = json.loads(value or b"{}")
    return str(body.get("action_id") or (body.get("action") or {}).get("action_id") or "")


async def raw_baseline(
    bootstrap: str, prefix: str, rate: float, count: int, payload: bytes | None = None
) -> dict[str, Any]:
    """A plain aiokafka consume → produce hop at `rate`, timed as the services are; `payload` (default: a guard
    proposal) sets the message size, so each service is compared on messages like its own."""
    payload = payload or _action(0, "raw").model_dump_json().encode()
    source, sink = f"{prefix}rawg.in", f"{prefix}rawg.out"
    await _create(bootstrap, [source, sink])
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}rawg",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await consumer.start()
    await producer.start()
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=50)

    async def hop() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            for records in batch.values():
                for r in records:
                    await producer.send(sink, r.value, key=r.key, headers=list(r.headers))
            if batch:
                await producer.flush()
                await consumer.commit()

    hopping = asyncio.create_task(hop())
    try:
        latencies = await _paced(
            bootstrap,
            source,
            [sink],
            lambda n: (str(n).encode(), payload, [("bench_marker", f"m{n}".encode())], f"m{n}"),
            rate,
            count,
        )
    finally:
        hopping.cancel()
        await consumer.stop()
        await producer.stop()
    return {
        "rate_per_second": rate,
        "messages": len(latencies),
        "message_bytes": len(payload),
        "latency_ms": _percentiles(latencies),
    }


async def guard_latency(config: StackConfig, rules_list: list[int], rate: float, count: int) -> dict[str, Any]:
    services = await isolated_services(
        config, TENANT, {"emails_per_hour": 1_000_000, "emails_per_contact_per_day": 1000}, 9400, escalate_vips=False
    )
    common = CommonSettings(
        kafka_bootstrap=config.kafka_bootstrap, topic_prefix=services.topic_prefix, pg_dsn=services.pg_dsn
    )
    prefix = services.topic_prefix
    rows = []
    try:
        services.start_all(services=("guard",))
        (guard,) = services.replicas.values()
        for version, rules in enumerate(rules_list, start=1):
            document = yaml.safe_load(policy_source(rules, random.Random(rules)))
            document.update({"tenant": TENANT, "version": version, "limits": LIMITS})
            await _publish_policy(common, yaml.safe_dump(document, sort_keys=False))
            await _until_live(guard.ops_port, f"v{version}-")
            run = secrets.token_hex(3)
            warmup = max(count // 10, 50)  # decided first and not counted: connections, caches, the new policy
            actions = [_action(n, run) for n in range(count + warmup)]

            def make(n: int, actions: list[ActionProposed] = actions) -> tuple[bytes, bytes, Any, str]:
                action = actions[n]
                env = Envelope(source="bench", type=ActionProposed.TYPE, tenant=TENANT, correlation_id=new_id())
                key = contact_key(TENANT, action.contact.contact_id)
                return key, action.model_dump_json().encode(), env.to_headers(), action.action_id

            sinks = [APPROVED_ACTION.full_name(prefix), DECISION.full_name(prefix)]
            await _paced(config.kafka_bootstrap, PROPOSED_ACTION.full_name(prefix), sinks, make, rate, warmup)
            latencies = await _paced(
                config.kafka_bootstrap,
                PROPOSED_ACTION.full_name(prefix),
                sinks,
                lambda n, first=warmup: make(first + n),
                rate,
                count,
            )
            rows.append(
                {
                    "rules": rules,
                    "limits": len(LIMITS) + 2,
                    "rate_per_second": rate,
                    "decisions": len(latencies),
                    "latency_ms": _percentiles(latencies),
                }
            )
            print(f"  {rules:>4} rules through Kafka at {rate:.0f}/s: {rows[-1]['latency_ms']}")
        stages = _stage_times(services)
    finally:
        services.stop_all()
    return {"rows": rows, "guard_handler": stages}


async def _publish_policy(common: CommonSettings, source: str) -> None:
    document = yaml.safe_load(source)
    body = PolicyPublished(
        tenant=TENANT,
        version=document["version"],
        source=source,
        sha256=hashlib.sha256(source.encode()).hexdigest(),
        published_by="bench",
    )
    env = Envelope.new_chain(source="bench", type=PolicyPublished.TYPE, tenant=TENANT)
    producer = TransactionalProducer(common, "bench", name=f"policy-{new_id()}")
    await producer.start()
    try:
        await producer.publish([Outbound(POLICY, tenant_key(TENANT), env, body)])
    finally:
        await producer.stop()


async def _until_live(ops_port: int, version: str) -> None:
    async with httpx.AsyncClient(timeout=5) as client:
        for _ in range(200):
            live = (await client.get(f"http://127.0.0.1:{ops_port}/v1/policies/{TENANT}")).json()
            if live["version"].startswith(version):
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"policy {version} never became live")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    labels = ["raw hop"] + [f"guard, {r['rules']} rules" for r in result["guard"]["rows"]]
    latencies = [result["raw_hop"]["latency_ms"]] + [r["latency_ms"] for r in result["guard"]["rows"]]
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], [lat["p50"] or 0 for lat in latencies], width=0.4, label="p50", color="#90cdf4")
    bars = ax.bar([x + 0.2 for x in xs], [lat["p99"] or 0 for lat in latencies], width=0.4, label="p99")
    ax.bar_label(bars, labels=[f"{lat['p99']}" for lat in latencies], fontsize=8)
    ax.set_xticks(list(xs), labels)
    ax.set_ylabel("ms, proposal sent → decision readable")
    ax.legend(fontsize=8)
    ax.set_title(f"guard through Kafka + Postgres {result['started_at']} ({result['machine']['cpus']} CPU(s))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=100.0, help="proposals per second (below saturation)")
    parser.add_argument("--count", type=int, default=1000, help="proposals per policy size")
    parser.add_argument("--rules", type=int, nargs="+", default=[10, 100], help="policy sizes, in this order")
    args = parser.parse_args()
    config = StackConfig()
    up(config, topics=False)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = asyncio.run(raw_baseline(config.kafka_bootstrap, f"gb{secrets.token_hex(3)}.", args.rate, args.count))
    print(f"  raw aiokafka hop at {args.rate:.0f}/s: {raw['latency_ms']}")
    guard = asyncio.run(guard_latency(config, args.rules, args.rate, args.count))
    raw_p99 = raw["latency_ms"]["p99"] or 1.0
    result = {
        "started_at": started_at,
        "machine": machine(),
        "raw_hop": raw,
        "guard": guard,
        "ratios_p99_vs_raw": {
            str(r["rules"]): round((r["latency_ms"]["p99"] or 0) / raw_p99, 2) for r in guard["rows"]
        },
        "direction_p99_ms": DIRECTION_P99_MS,
    }
    save(f"guard-kafka-{started_at}", "guard-kafka-latest", result, plot)


if __name__ == "__main__":
    main()
