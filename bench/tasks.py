"""`make bench-tasks`: a defined campaign task over 1,000 contacts, from `POST /v1/tasks` to its batch proposed.

A tenant with the sample knowledge base and 1,000 seeded contacts (the segment holds them all); the task is
submitted to the planner and timed from the POST to the last of its `ActionProposed` readable (read_committed) on
herald.proposed-action.v1 — retrieval, the segment read from ingest's contact store, 1,000 drafts, the plans and
proposals with their audit copies in one Kafka transaction. Against, in the same run: a raw aiokafka hop carrying
as many records of the same size (produce them all, one consumer reads them all), seconds from the first send to
the last read. Several runs; the median is reported. Results: bench/results/tasks-<timestamp>.json and .png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.results import machine, save
from bench.run import _create, isolated_services
from herald_core.topics import PROPOSED_ACTION
from herald_stack.cli import up
from herald_stack.config import REPO_ROOT, StackConfig

TENANT = "benchtask"


def _contacts(count: int) -> list[dict[str, Any]]:
    titles = ("COO", "Head of Operations", "Director of Logistics", "VP Supply Chain", "Operations Manager")
    return [
        {
            "contact_id": 8_000_000 + n,
            "email": f"ops{n}@fleet{n % 97}.example",
            "first_name": f"Sam{n}",
            "last_name": "Rivera",
            "company": f"Fleet {n % 97} Logistics",
            "job_title": titles[n % len(titles)],
            "industry": "logistics",
            "lifecycle_stage": "lead",
            "country": "US",
            "timezone": "America/Chicago",
            "vip": False,
            "deal_value_minor": 0,
            "opted_out": False,
        }
        for n in range(count)
    ]


def _brief(run: int, count: int) -> dict[str, Any]:
    return {
        "campaign_id": f"bench-{run}",
        "topic": "approval workflows for operations teams",
        "goal": "book a demo",
        "segment": {"industries": ["logistics"]},
        "variants": {"proof": "lead with a customer result", "question": "open with a question"},
        "max_contacts": count,
    }


async def _command(env: dict[str, str], *args: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name(args[0])),
        *args[1:],
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
    )
    if await proc.wait() != 0:
        raise RuntimeError(f"{' '.join(args)} failed")


async def raw_batch(bootstrap: str, prefix: str, count: int, size: int) -> float:
    """Seconds for `count` records of `size` bytes through plain aiokafka: all produced, all read by one consumer."""
    topic = f"{prefix}rawbatch.{time.time_ns()}"
    await _create(bootstrap, [topic])
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, max_request_size=4 * 1024 * 1024)
    await consumer.start()
    await producer.start()
    try:
        payload = b"x" * size
        started = time.perf_counter()
        for n in range(count):
            await producer.send(topic, payload, key=str(n).encode())
        await producer.flush()
        seen = 0
        while seen < count:
            batch = await consumer.getmany(timeout_ms=200)
            seen += sum(len(records) for records in batch.values())
        return time.perf_counter() - started
    finally:
        await producer.stop()
        await consumer.stop()


async def task_runs(config: StackConfig, contacts: int, runs: int, base_port: int) -> dict[str, Any]:
    services = await isolated_services(
        config, TENANT, {"emails_per_hour": 1_000_000, "emails_per_contact_per_day": 100}, base_port=base_port
    )
    env = services.common_env()
    seeds = services.tenants_dir.parent / "contacts.jsonl"
    seeds.write_text("".join(json.dumps(c) + "\n" for c in _contacts(contacts)))
    seconds: list[float] = []
    raw: list[float] = []
    sizes: list[int] = []
    try:
        services.start_all(services=("retrieval", "ingest", "planner"))
        await _command(
            env, "herald-retrieval", "load-kb", "--tenant", TENANT, "--dir", str(REPO_ROOT / "samples/acme/kb")
        )
        await _command(env, "herald-ingest", "seed", "--tenant", TENANT, "--contacts", str(seeds))
        async with httpx.AsyncClient(base_url=services.planner_url, timeout=120) as client:
            for run in range(runs):
                proposed = AIOKafkaConsumer(
                    PROPOSED_ACTION.full_name(services.topic_prefix),
                    bootstrap_servers=config.kafka_bootstrap,
                    group_id=None,
                    auto_offset_reset="latest",
                    isolation_level="read_committed",
                )
                await proposed.start()
                await proposed.getmany(timeout_ms=500)  # at the end before the task is submitted
                try:
                    started = time.perf_counter()
                    answer = await client.post("/v1/tasks", json={"tenant": TENANT, "brief": _brief(run, contacts)})
                    answer.raise_for_status()
                    task_id = answer.json()["task_id"]
                    found = 0
                    deadline = time.monotonic() + 300
                    while found < contacts and time.monotonic() < deadline:
                        batch = await proposed.getmany(timeout_ms=200)
                        for records in batch.values():
                            for r in records:
                                if task_id.encode() in (r.value or b""):
                                    found += 1
                                    sizes.append(len(r.value or b""))
                    if found < contacts:
                        raise RuntimeError(f"run {run}: {found} of {contacts} proposals within the deadline")
                    seconds.append(time.perf_counter() - started)
                finally:
                    await proposed.stop()
                size = int(statistics.median(sizes))
                # the batch publishes a plan and a proposal per contact: as many records, of the proposals' size
                raw.append(await raw_batch(config.kafka_bootstrap, services.topic_prefix, 2 * contacts, size))
                print(f"  run {run}: batch of {contacts} proposed in {seconds[-1]:.2f}s; raw hop {raw[-1]:.2f}s")
    finally:
        services.stop_all()
    median, raw_median = statistics.median(seconds), statistics.median(raw)
    return {
        "contacts": contacts,
        "runs": runs,
        "seconds_to_batch": [round(s, 3) for s in seconds],
        "seconds_to_batch_median": round(median, 3),
        "proposals_per_second": round(contacts / median, 1),
        "proposal_bytes_median": int(statistics.median(sizes)),
        "raw_hop_seconds": [round(s, 3) for s in raw],
        "raw_hop_seconds_median": round(raw_median, 3),
        "ratio_to_raw": round(median / raw_median, 1),
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = result["run"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.bar(
        ["campaign task → batch proposed", f"raw aiokafka hop ({2 * run['contacts']} records)"],
        [run["seconds_to_batch_median"], run["raw_hop_seconds_median"]],
        color=["#3182ce", "#a0aec0"],
    )
    ax.set_ylabel("seconds (median)")
    ax.set_title(
        f"{run['contacts']} contacts, median of {run['runs']} runs ({result['machine']['cpus']} CPU(s)): "
        f"{run['ratio_to_raw']}× the raw hop",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=9650)
    args = parser.parse_args()
    config = StackConfig()
    up(config, topics=False)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = asyncio.run(task_runs(config, args.contacts, args.runs, args.base_port))
    print(f"  task: {run}")
    save(f"tasks-{started_at}", "tasks-latest", {"started_at": started_at, "machine": machine(), "run": run}, plot)


if __name__ == "__main__":
    main()
