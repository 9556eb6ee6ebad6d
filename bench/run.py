"""`make bench`: Herald's throughput and latency, as ratios against raw aiokafka in the same run.

1. raw hop     — plain aiokafka consume → produce, no envelope, no transaction (the baseline);
2. Herald hop  — herald_core's ConsumerWorker on the same messages: envelope, pydantic validation,
                 audit copy, outputs + offsets in one Kafka transaction per batch;
3. pipeline    — the six services as processes: `ContactCreated` on herald.events.v1 → planner
                 (retrieval over gRPC, Postgres state) → guard (consent, exact caps, signing) →
                 executor (signature, ledger, SMTP) → `ActionExecuted`; rate and p50/p99 latency.

Results: bench/results/bench-<timestamp>.json and .png (and latest.json / latest.png).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.results import machine, save
from herald_core.bus import ConsumerWorker, Inbound, Outbound, ensure_topics
from herald_core.contracts import ActionExecuted, ActionProposed, ContactCreated, ContactFacts, SendEmailInput
from herald_core.envelope import Envelope, new_traceparent
from herald_core.ids import new_id
from herald_core.settings import CommonSettings
from herald_core.topics import (
    AUDIT,
    EVENTS,
    EXECUTED,
    PLAN,
    PROPOSED_ACTION,
    TopicSpec,
    contact_key,
    dead_letter_topic,
)
from herald_stack.cli import up
from herald_stack.config import REPO_ROOT, StackConfig
from herald_stack.services import ServiceSet


def _sample_action(n: int) -> ActionProposed:
    email = f"bench-{n}@buyers.example"
    return ActionProposed(
        action_id=new_id(),
        tenant="bench",
        workflow_id=f"wf-{n}",
        tool="send_email",
        input=SendEmailInput(
            to=email,
            subject="How logistics teams use Acme Relay",
            body_text="Hi Sam,\n\n" + "Acme Relay cut manual hand-offs by 40%. " * 12,
        ),
        contact=ContactFacts(contact_id=str(n), email=email, first_name="Sam", industry="logistics"),
        evidence=(),
        confidence=0.8,
        rationale="bench",
    )


async def _fill(bootstrap: str, topic: str, count: int, enveloped: bool) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, max_batch_size=512 * 1024)
    await producer.start()
    try:
        for n in range(count):
            action = _sample_action(n)
            env = Envelope(source="bench", type=ActionProposed.TYPE, tenant="bench", correlation_id=new_id())
            await producer.send(
                topic,
                action.model_dump_json().encode(),
                key=str(n % 500).encode(),
                headers=env.to_headers() if enveloped else [],
            )
        await producer.flush()
    finally:
        await producer.stop()


async def raw_hop(bootstrap: str, prefix: str, count: int) -> dict[str, Any]:
    source, sink = f"{prefix}raw.in", f"{prefix}raw.out"
    await _create(bootstrap, [source, sink])
    await _fill(bootstrap, source, count, enveloped=False)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}raw",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=500,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    done = 0
    # both hops are timed from partition assignment, so the consumer-group join is not counted
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=50, max_records=1)  # joins the group
    await consumer.seek_to_beginning()
    started = time.perf_counter()
    try:
        while done < count:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            for records in batch.values():
                for r in records:
                    await producer.send(sink, r.value, key=r.key)
                    done += 1
            if batch:
                await producer.flush()
                await consumer.commit()
        elapsed = time.perf_counter() - started
    finally:
        await consumer.stop()
        await producer.stop()
    return {"messages": count, "seconds": round(elapsed, 3), "per_second": round(count / elapsed, 1)}


async def herald_hop(bootstrap: str, prefix: str, count: int) -> dict[str, Any]:
    common = CommonSettings(kafka_bootstrap=bootstrap, topic_prefix=prefix)
    await ensure_topics(common, [PROPOSED_ACTION, PLAN, AUDIT, dead_letter_topic("bench")])
    await _fill(bootstrap, PROPOSED_ACTION.full_name(prefix), count, enveloped=True)

    async def on_proposed_action(msg: Inbound) -> list[Outbound]:
        action = msg.body_as(ActionProposed)
        # one output per input, as a guard or planner hop makes (the topic is only a sink here)
        return [
            Outbound(
                PLAN_SINK,
                contact_key("bench", action.contact.contact_id),
                msg.envelope.caused(source="bench", type=ActionProposed.TYPE),
                action,
            )
        ]

    PLAN_SINK = TopicSpec(PLAN.name, PLAN.key, (), (), PLAN.partitions)  # accepts any type
    worker = ConsumerWorker(common, "bench", "hop", {PROPOSED_ACTION: on_proposed_action})
    await worker.start()
    while not worker.assigned:  # noqa: ASYNC110 - waiting for the group join, which is not measured
        await asyncio.sleep(0.005)
    started = time.perf_counter()
    already = worker.processed  # a first batch may be done as the join completes: not timed, not counted
    while worker.processed < count:  # noqa: ASYNC110 - polling a counter is the measurement
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    await worker.stop()
    measured = count - already
    return {
        "messages": measured,
        "seconds": round(elapsed, 3),
        "per_second": round(measured / elapsed, 1),
        "note": "from partition assignment; outputs written with audit copies in batch transactions",
    }


async def _create(bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 6, 1) for t in topics])
    finally:
        await admin.close()


async def isolated_services(
    config: StackConfig, tenant: str, limits: dict[str, int], base_port: int, escalate_vips: bool = True
) -> ServiceSet:
    """Services for one bench run, sharing nothing with any other run: a fresh topic prefix, database, Weaviate
    collections and tenant directory (with the one tenant)."""
    session = secrets.token_hex(4)
    prefix = f"b{session}."
    admin = await asyncpg.connect(config.pg_dsn)
    await admin.execute(f'CREATE DATABASE "herald_bench_{session}"')
    await admin.close()
    pg_dsn = config.pg_dsn.rsplit("/", 1)[0] + f"/herald_bench_{session}"
    await ensure_topics(CommonSettings(kafka_bootstrap=config.kafka_bootstrap, topic_prefix=prefix, pg_dsn=pg_dsn))
    workdir = Path(tempfile.mkdtemp(prefix="herald-bench-"))
    tenants = workdir / "tenants"
    tenants.mkdir()
    (tenants / f"{tenant}.yaml").write_text(
        yaml.safe_dump(
            {
                "tenant_id": tenant,
                "name": "Acme Relay",
                "sender": {"name": "Maya from Acme Relay", "address": "maya@acmerelay.example"},
                "unsubscribe_url": "https://acmerelay.example/unsubscribe",
                "limits": limits,
                "escalation": {"vip": escalate_vips},
            }
        )
    )
    return ServiceSet(
        config,
        prefix,
        pg_dsn,
        tenants,
        workdir / "logs",
        base_port=base_port,
        extra_env={
            "HERALD_RETRIEVAL_COLLECTION": f"KbBench{session}",
            "HERALD_RETRIEVAL_MEMORY_COLLECTION": f"MemBench{session}",
            "HERALD_LOG_LEVEL": "WARNING",
        },
    )


async def pipeline(config: StackConfig, count: int) -> dict[str, Any]:
    tenant = "benchco"
    services = await isolated_services(
        config, tenant, {"emails_per_hour": 1_000_000, "emails_per_contact_per_day": 10}, base_port=9300
    )
    prefix = services.topic_prefix
    run = secrets.token_hex(4)  # contact ids of this run
    # events are published straight onto herald.events.v1; the HTTP edge and review are not in this path
    try:
        services.start_all(services=("retrieval", "planner", "guard", "executor"))
        kb = REPO_ROOT / "samples" / "acme" / "kb"
        if kb.is_dir():
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("herald-retrieval")),
                "load-kb",
                "--tenant",
                tenant,
                "--dir",
                str(kb),
                env={**os.environ, **services.common_env()},
                stdout=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()
        cpu_before = _cpu_by_process(services, config)
        burst = await _drive(config, prefix, tenant, f"{run}b", count, rate=None)
        stages = _stage_times(services)
        cpu_after = _cpu_by_process(services, config)
        cpu = {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 2) for k in cpu_after}
        completed = len(burst["latencies"])
        # latency is only meaningful below saturation: pace a second run at half the throughput just measured
        rate = max(burst["per_second"] * 0.5, 1.0)
        paced = await _drive(config, prefix, tenant, f"{run}p", int(rate * 15), rate=rate)
        return {
            "events": count,
            "completed": completed,
            "seconds": burst["seconds"],
            "per_second": burst["per_second"],
            "latency_ms": _percentiles(burst["latencies"]),
            "paced": {
                "rate_per_second": round(rate, 1),
                "events": len(paced["latencies"]),
                "latency_ms": _percentiles(paced["latencies"]),
            },
            "handler_ms_mean_by_service": stages,
            "cpu_ms_per_event_by_process": {k: round(1000 * v / max(completed, 1), 2) for k, v in cpu.items()},
        }
    finally:
        services.stop_all()


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    """p50 (the median), p95 and p99 in ms of latencies in seconds."""
    ordered = sorted(latencies)
    if not ordered:
        return {"p50": None, "p95": None, "p99": None}

    def rank(q: float) -> float:
        return round(ordered[max(int(len(ordered) * q) - 1, 0)] * 1000, 1)

    return {"p50": round(statistics.median(ordered) * 1000, 1), "p95": rank(0.95), "p99": rank(0.99)}


async def _drive(
    config: StackConfig, prefix: str, tenant: str, run: str, count: int, rate: float | None
) -> dict[str, Any]:
    """Publish `count` ContactCreated (all at once, or `rate` per second); time each to its ActionExecuted."""
    sent_at: dict[str, float] = {}
    consumer = AIOKafkaConsumer(
        EXECUTED.full_name(prefix),
        bootstrap_servers=config.kafka_bootstrap,
        auto_offset_reset="latest",
        isolation_level="read_committed",
    )
    await consumer.start()
    await consumer.getmany(timeout_ms=100)  # position at the end before publishing
    producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap, linger_ms=5 if rate is None else 0)
    await producer.start()
    industries = ["logistics", "fintech", "healthcare", "retail", "manufacturing", "saas"]
    latencies: list[float] = []
    started = last = time.time()

    async def publish() -> None:
        for n in range(count):
            contact = ContactFacts(
                contact_id=f"{run}{n}",
                email=f"p-{run}-{n}@buyers.example",
                first_name="Sam",
                company="Northwind",
                industry=industries[n % 6],
                job_title="Head of Operations",
            )
            body = ContactCreated(
                contact=contact, upstream_source="bench", upstream_event_id=f"{run}-{n}", occurred_at=datetime.now(UTC)
            )
            env = Envelope(
                source="herald/ingest",
                type=ContactCreated.TYPE,
                tenant=tenant,
                correlation_id=new_id(),
                traceparent=new_traceparent(),
            )
            sent_at[env.correlation_id] = time.time()
            await producer.send(
                EVENTS.full_name(prefix),
                body.model_dump_json().encode(),
                key=contact_key(tenant, contact.contact_id),
                headers=env.to_headers(),
            )
            if rate is not None:
                await asyncio.sleep(max(started + (n + 1) / rate - time.time(), 0))
        await producer.flush()

    publishing = asyncio.create_task(publish())
    deadline = time.time() + 600
    try:
        while len(latencies) < count and time.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    headers = dict(r.headers or ())
                    correlation = headers.get("ce_correlationid", b"").decode()
                    if headers.get("ce_type") == ActionExecuted.TYPE.encode() and correlation in sent_at:
                        done_at = r.timestamp / 1000
                        latencies.append(done_at - sent_at[correlation])
                        last = max(last, done_at)
        await publishing
    finally:
        await producer.stop()
        await consumer.stop()
    elapsed = last - started
    return {
        "latencies": latencies,
        "seconds": round(elapsed, 3),
        "per_second": round(len(latencies) / elapsed, 1) if elapsed > 0 else 0.0,
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _cpu_by_process(services: ServiceSet, config: StackConfig) -> dict[str, float]:
    usage = {name: _cpu_seconds(r.process.pid) for name, r in services.replicas.items() if r.process}
    for part in ("kafka", "weaviate", "smtp"):
        pid_file = config.state_dir / "run" / f"{part}.pid"
        if pid_file.exists():
            usage[part] = _cpu_seconds(int(pid_file.read_text()))
    postgres = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _is_postgres(int(p.name))]
    usage["postgres"] = sum(_cpu_seconds(pid) for pid in postgres)
    return usage


def _is_postgres(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip() == "postgres"
    except OSError:
        return False


def _stage_times(services: ServiceSet) -> dict[str, dict[str, float]]:
    """Mean handler time and batch size per service, from each replica's own /metrics."""
    import urllib.request

    stages: dict[str, dict[str, float]] = {}
    for replica in services.replicas.values():
        with urllib.request.urlopen(f"http://127.0.0.1:{replica.ops_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        sums: dict[str, float] = {}
        for line in text.splitlines():
            for metric in (
                "herald_handler_seconds_sum",
                "herald_handler_seconds_count",
                "herald_batch_size_sum",
                "herald_batch_size_count",
                "herald_kafka_transaction_seconds_sum",
                "herald_kafka_transaction_seconds_count",
            ):
                if line.startswith(metric):
                    sums[metric] = sums.get(metric, 0.0) + float(line.rsplit(" ", 1)[1])
        if sums.get("herald_handler_seconds_count"):
            stages[replica.name] = {
                "handler_ms": round(
                    1000 * sums["herald_handler_seconds_sum"] / sums["herald_handler_seconds_count"], 2
                ),
                "batch_size": round(sums["herald_batch_size_sum"] / max(sums["herald_batch_size_count"], 1), 1),
                "transaction_ms": round(
                    1000
                    * sums.get("herald_kafka_transaction_seconds_sum", 0)
                    / max(sums.get("herald_kafka_transaction_seconds_count", 1), 1),
                    2,
                ),
            }
    return stages


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = ["raw aiokafka hop", "Herald hop", "pipeline (end to end)"]
    rates = [result["raw_hop"]["per_second"], result["herald_hop"]["per_second"], result["pipeline"]["per_second"]]
    bars = left.bar(names, rates, color=["#888888", "#2b6cb0", "#2f855a"])
    left.bar_label(bars, labels=[f"{r:,.0f}/s" for r in rates])
    left.set_ylabel("messages (events) per second")
    left.set_title(f"Throughput — Herald hop = {result['ratios']['herald_hop_vs_raw']:.2f}× raw")
    paced = result["pipeline"]["paced"]
    latency = paced["latency_ms"]
    right.bar(["p50", "p99"], [latency["p50"] or 0, latency["p99"] or 0], color="#2f855a")
    right.set_ylabel("ms, event published → ActionExecuted committed")
    right.set_title(f"Pipeline latency at {paced['rate_per_second']:.0f} events/s ({paced['events']} events)")
    fig.suptitle(f"herald bench {result['started_at']} on {result['machine']['cpus']} CPU(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hop-messages", type=int, default=20_000)
    parser.add_argument("--pipeline-events", type=int, default=2_000)
    args = parser.parse_args()
    config = StackConfig()
    up(config, topics=False)
    prefix = f"bench{secrets.token_hex(3)}."
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = asyncio.run(raw_hop(config.kafka_bootstrap, prefix, args.hop_messages))
    print(f"raw hop:    {raw['per_second']:>10,.0f} msg/s")
    hop = asyncio.run(herald_hop(config.kafka_bootstrap, prefix, args.hop_messages))
    print(f"Herald hop: {hop['per_second']:>10,.0f} msg/s  ({hop['per_second'] / raw['per_second']:.2f}× raw)")
    pipe = asyncio.run(pipeline(config, args.pipeline_events))
    print(
        f"pipeline:   {pipe['per_second']:>10,.0f} events/s (burst), paced at {pipe['paced']['rate_per_second']}/s: "
        f"p50 {pipe['paced']['latency_ms']['p50']} ms, p99 {pipe['paced']['latency_ms']['p99']} ms; burst "
        f"p50 {pipe['latency_ms']['p50']} ms, "
        f"p99 {pipe['latency_ms']['p99']} ms ({pipe['completed']}/{pipe['events']} completed)"
    )
    print("  CPU per event: " + ", ".join(f"{k} {v} ms" for k, v in pipe["cpu_ms_per_event_by_process"].items()))
    for name, stage in pipe["handler_ms_mean_by_service"].items():
        print(
            f"  {name:12} handler {stage['handler_ms']:7.2f} ms  batch {stage['batch_size']:6.1f}  "
            f"commit {stage['transaction_ms']:6.2f} ms"
        )
    result = {
        "started_at": started_at,
        "machine": machine(),
        "raw_hop": raw,
        "herald_hop": hop,
        "pipeline": pipe,
        "ratios": {
            "herald_hop_vs_raw": round(hop["per_second"] / raw["per_second"], 3),
            "pipeline_vs_raw": round(pipe["per_second"] / raw["per_second"], 3),
        },
    }
    save(f"bench-{started_at}", "latest", result, plot)


if __name__ == "__main__":
    main()
