"""`make bench` (planner): the workflow engine's timers and transitions, against raw aiokafka in the same run.

1. timer lateness — 10,000 pending timers in Postgres, due over a 20 s window; the planner's firer (leases
   `FOR UPDATE SKIP LOCKED`, one Kafka transaction per round with audit copies) publishes them; lateness is
   the broker's append time of each `TimerFired` minus its deadline (p50/p95/p99), at the default poll
   interval and a short one;
2. engine transitions — `TimerFired` records for runs waiting on them, taken by the planner's runner in a
   ConsumerWorker (read the run, decide, compare-and-set the run, journal the step, mark the timer fired,
   publish the run's end with its audit copy, offsets in the same transaction), per second, against the raw
   aiokafka consume → produce hop on as many records;
3. prompt cache — see `bench.planner_cache` (the share of LLM input tokens read from the cache).

Results: bench/results/planner-<timestamp>.json and .png (and planner-latest.*).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from typing import Any

import asyncpg
import yaml
from aiokafka import AIOKafkaConsumer
from pydantic import BaseModel

from bench.results import machine, save
from bench.run import _percentiles, raw_hop
from herald_core.bus import ConsumerWorker, TransactionalProducer, ensure_topics
from herald_core.contracts import ContactFacts, TimerFired
from herald_core.db import create_pool, migrate
from herald_core.observability import configure_logging
from herald_core.settings import CommonSettings
from herald_core.tenants import TenantDirectory
from herald_core.topics import AUDIT, PLAN, TIMERS, dead_letter_topic
from herald_planner.adapters.examples import DraftExamples
from herald_planner.adapters.runs import Change, NewTimer, WorkflowRuns
from herald_planner.engine.firer import TimerFirer, fired
from herald_planner.engine.runner import Runner
from herald_planner.engine.spec import Advance, Context, Run, WorkflowSpec
from herald_stack.cli import up
from herald_stack.config import StackConfig

TENANT = "benchplan"


class _NoConfig(BaseModel):
    pass


def _done(run: Run, event: TimerFired, context: Context[Any]) -> Advance:
    return Advance("done", note={"timer": event.name})


#: a workflow that only waits: what is measured is the engine (Postgres and Kafka), not drafting
WAIT = WorkflowSpec(
    name="bench_wait",
    doc="waits for one timer, then ends",
    config=_NoConfig,
    starts={},
    states=("waiting", "done"),
    terminal=frozenset({"done"}),
    transitions={("waiting", TimerFired): _done},
    steps={},
    job="bench",
)


async def _database(config: StackConfig) -> tuple[asyncpg.Pool, str]:
    name = f"herald_bench_planner_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(config.pg_dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    dsn = config.pg_dsn.rsplit("/", 1)[0] + f"/{name}"
    pool = await create_pool(dsn, max_size=8)
    await migrate(pool, "planner", Path(str(files("herald_planner") / "migrations")))
    return pool, dsn


async def _waiting_runs(runs: WorkflowRuns, count: int, due: list[datetime], run_tag: str) -> None:
    """`count` runs of `bench_wait`, each waiting on one timer (written through the engine's own commit)."""
    now = datetime.now(UTC)
    for n in range(count):
        run = Run(
            workflow_id=f"wf-{run_tag}-{n}",
            workflow=WAIT.name,
            tenant=TENANT,
            contact=ContactFacts(contact_id=f"{run_tag}{n}", email=f"b{n}@buyers.example"),
            state="",
            version=0,
            data={},
            config={},
            started_at=now,
            correlation_id=f"corr-{run_tag}-{n}",
        )
        await runs.commit(
            Change(
                run=run,
                state="waiting",
                data={},
                contact=run.contact,
                trigger_id=f"start-{run_tag}-{n}",
                event_type="bench.start",
                note={},
                outputs=[],
                timers=[NewTimer(f"t-{run_tag}-{n}", "wake", due[n])],
            )
        )


async def timer_lateness(config: StackConfig, count: int, window: float, intervals: list[float]) -> dict[str, Any]:
    rows = []
    for interval in intervals:
        pool, dsn = await _database(config)
        prefix = f"bp{secrets.token_hex(3)}."
        common = CommonSettings(kafka_bootstrap=config.kafka_bootstrap, topic_prefix=prefix, pg_dsn=dsn)
        await ensure_topics(common, [TIMERS, AUDIT])
        runs = WorkflowRuns(pool)
        start = datetime.now(UTC) + timedelta(seconds=60)  # inserting 10,000 takes a while: due after that
        due = [start + timedelta(seconds=window * n / count) for n in range(count)]
        await _waiting_runs(runs, count, due, "lat")
        pending = (await runs.timer_counts(datetime.now(UTC))).pending
        consumer = AIOKafkaConsumer(
            TIMERS.full_name(prefix),
            bootstrap_servers=config.kafka_bootstrap,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
        )
        await consumer.start()
        firer = TimerFirer(
            runs,
            TransactionalProducer(common, "bench", name="timers"),
            lambda: datetime.now(UTC),
            interval=interval,
            lease_seconds=120,
        )
        await firer.start()
        lateness: list[float] = []
        seen: set[str] = set()
        try:
            deadline = time.monotonic() + 60 + window + 60
            while len(seen) < count and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for r in records:
                        fired = TimerFired.model_validate_json(r.value)
                        if fired.timer_id not in seen:
                            seen.add(fired.timer_id)
                            lateness.append(r.timestamp / 1000 - fired.due_at.timestamp())
        finally:
            await firer.stop()
            await consumer.stop()
            await pool.close()
        rows.append(
            {
                "poll_seconds": interval,
                "pending_at_start": pending,
                "published": len(seen),
                "lateness_ms": _percentiles([max(x, 0.0) for x in lateness]),
            }
        )
        print(f"  timers at a {interval}s poll: {rows[-1]}")
    return {"timers": count, "due_over_seconds": window, "rows": rows}


async def engine_transitions(config: StackConfig, count: int) -> dict[str, Any]:
    pool, dsn = await _database(config)
    prefix = f"be{secrets.token_hex(3)}."
    common = CommonSettings(kafka_bootstrap=config.kafka_bootstrap, topic_prefix=prefix, pg_dsn=dsn)
    await ensure_topics(common, [TIMERS, PLAN, AUDIT, dead_letter_topic("bench")])
    runs = WorkflowRuns(pool)
    due = [datetime.now(UTC) - timedelta(seconds=1)] * count
    await _waiting_runs(runs, count, due, "eng")
    # every timer is due: publish them all first, then time the runner taking them
    producer = TransactionalProducer(common, "bench", name="fill")
    await producer.start()
    leased = await runs.lease_due(datetime.now(UTC), count, 600)
    for start in range(0, len(leased), 500):
        await producer.publish([fired(t, datetime.now(UTC)) for t in leased[start : start + 500]])
    await producer.stop()
    tenants = Path(tempfile.mkdtemp(prefix="herald-bench-planner-"))
    (tenants / f"{TENANT}.yaml").write_text(
        yaml.safe_dump(
            {
                "tenant_id": TENANT,
                "name": "Bench",
                "sender": {"name": "Bench", "address": "bench@bench.example"},
                "unsubscribe_url": "https://bench.example/u",
                "workflows": {},
            }
        )
    )

    def no_ports(tenant: Any) -> Any:
        raise AssertionError("bench_wait has no steps")

    runner = Runner(
        [WAIT], runs, TenantDirectory(tenants), no_ports, lambda: datetime.now(UTC), {}, DraftExamples(pool)
    )
    worker = ConsumerWorker(common, "bench", "engine", {TIMERS: runner.on_message}, concurrency=16)
    await worker.start()
    while not worker.assigned:  # noqa: ASYNC110 - the group join is not measured
        await asyncio.sleep(0.005)
    started = time.perf_counter()
    already = worker.processed
    while worker.processed < count:  # noqa: ASYNC110 - polling a counter is the measurement
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    await worker.stop()
    done = await pool.fetchval("SELECT count(*) FROM planner.workflow_runs WHERE state = 'done'")
    fired_once = await pool.fetchval("SELECT count(*) FROM planner.timers WHERE state = 'fired'")
    await pool.close()
    measured = count - already
    return {
        "transitions": measured,
        "seconds": round(elapsed, 3),
        "per_second": round(measured / elapsed, 1),
        "runs_done": done,
        "timers_fired": fired_once,
        "note": "TimerFired → compare-and-set of the run, journal, timer marked fired, WorkflowEnded published "
        "with its audit copy; outputs and offsets in one transaction per batch; 16 lanes",
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    rows = result["timers"]["rows"]
    labels = [f"poll {r['poll_seconds']}s" for r in rows]
    xs = range(len(rows))
    left.bar([x - 0.2 for x in xs], [r["lateness_ms"]["p50"] or 0 for r in rows], width=0.4, label="p50")
    bars = left.bar([x + 0.2 for x in xs], [r["lateness_ms"]["p99"] or 0 for r in rows], width=0.4, label="p99")
    left.bar_label(bars, labels=[str(r["lateness_ms"]["p99"]) for r in rows], fontsize=8)
    left.set_xticks(list(xs), labels)
    left.set_ylabel("ms after the deadline (broker append time)")
    left.set_title(f"{result['timers']['timers']:,} pending timers", fontsize=10)
    left.legend(fontsize=8)
    names = ["raw aiokafka hop", "engine transitions"]
    values = [result["raw_hop"]["per_second"], result["engine"]["per_second"]]
    bars = right.bar(names, values, color=["#cbd5e0", "#3182ce"])
    right.bar_label(bars, labels=[f"{v:,.0f}/s" for v in values], fontsize=8)
    right.set_title(f"through Kafka, same run (ratio {result['ratio_engine_vs_raw']})", fontsize=10)
    fig.suptitle(f"planner engine {result['started_at']} ({result['machine']['cpus']} CPU(s))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--timers", type=int, default=10_000, help="pending timers")
    parser.add_argument("--window", type=float, default=20.0, help="seconds the deadlines are spread over")
    parser.add_argument("--polls", type=float, nargs="+", default=[0.5, 0.1], help="firer poll intervals")
    parser.add_argument("--transitions", type=int, default=5_000, help="runs taking one timer each")
    args = parser.parse_args()
    configure_logging("bench-planner", "WARNING")  # the runner's INFO lines would be the bench's cost
    config = StackConfig()
    up(config, topics=False)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    timers = asyncio.run(timer_lateness(config, args.timers, args.window, args.polls))
    raw = asyncio.run(raw_hop(config.kafka_bootstrap, f"bpr{secrets.token_hex(3)}.", args.transitions))
    print(f"  raw aiokafka hop: {raw}")
    engine = asyncio.run(engine_transitions(config, args.transitions))
    print(f"  engine transitions: {engine}")
    result = {
        "started_at": started_at,
        "machine": machine(),
        "timers": timers,
        "raw_hop": raw,
        "engine": engine,
        "ratio_engine_vs_raw": round(engine["per_second"] / raw["per_second"], 3),
    }
    save(f"planner-{started_at}", "planner-latest", result, plot)


if __name__ == "__main__":
    main()
