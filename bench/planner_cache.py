"""`make bench` (planner, prompt cache): the share of the LLM's input tokens read from the prompt cache in a
steady run — the planner (with retrieval, the sample knowledge base and its brand guide) drafting new leads'
first emails with the LLM, against a loopback Messages API that reports usage as the API does with caching
(`herald_stack.messages_api`). Read from the planner's `LlmUsageReported` records on herald.llm-usage.v1.
Direction: at least 80% of input tokens read from the cache once the tenant's prefix is written.

Results: bench/results/planner-cache-<timestamp>.json and .png (and planner-cache-latest.*).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.results import machine, save
from bench.run import isolated_services
from herald_core.contracts import ContactCreated, ContactFacts, LlmUsageReported
from herald_core.envelope import Envelope
from herald_core.topics import EVENTS, LLM_USAGE, contact_key
from herald_stack.cli import up
from herald_stack.config import REPO_ROOT, StackConfig
from herald_stack.messages_api import messages_api

TENANT = "benchcache"
DIRECTION = 0.8
INDUSTRIES = ("logistics", "fintech", "healthcare", "manufacturing", "retail", "saas")


async def _usage(bootstrap: str, topic: str, count: int, timeout: float) -> list[LlmUsageReported]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", isolation_level="read_committed"
    )
    await consumer.start()
    found: list[LlmUsageReported] = []
    deadline = time.monotonic() + timeout
    try:
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            found += [LlmUsageReported.model_validate_json(r.value) for part in batch.values() for r in part]
    finally:
        await consumer.stop()
    return found


async def steady_run(config: StackConfig, leads: int, rate: float) -> dict[str, Any]:
    async with messages_api() as api:
        services = await isolated_services(
            config, TENANT, {"emails_per_hour": 1_000_000, "emails_per_contact_per_day": 10}, base_port=9400
        )
        try:
            services.start_all(services=("retrieval",))
            planner = services.add("planner")  # only the planner drafts with the LLM (retrieval would rerank)
            planner.env.update({"ANTHROPIC_API_KEY": "sk-ant-loopback", "ANTHROPIC_BASE_URL": api.url})
            services.start(planner.name)
            proc = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("herald-retrieval")),
                "load-kb",
                "--tenant",
                TENANT,
                "--dir",
                str(REPO_ROOT / "samples" / "acme" / "kb"),
                env={**os.environ, **services.common_env()},
                stdout=asyncio.subprocess.DEVNULL,
            )
            await proc.wait()
            run = secrets.token_hex(3)

            def created(n: int) -> tuple[bytes, Envelope, ContactCreated]:
                contact = ContactFacts(
                    contact_id=f"{run}{n:04d}",
                    email=f"c-{run}-{n}@buyer{n}.example",
                    first_name="Sam",
                    company=f"Buyer {n}",
                    job_title="Head of Operations",
                    industry=INDUSTRIES[n % len(INDUSTRIES)],
                )
                body = ContactCreated(
                    contact=contact,
                    upstream_source="bench",
                    upstream_event_id=f"{run}-{n}",
                    occurred_at=datetime.now(UTC),
                )
                env = Envelope(source="bench", type=ContactCreated.TYPE, tenant=TENANT, correlation_id=f"c-{run}-{n}")
                return contact_key(TENANT, contact.contact_id), env, body

            producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap)
            await producer.start()
            try:
                for n in range(leads):  # a steady rate: one tenant's new leads as they come
                    key, env, body = created(n)
                    topic = EVENTS.full_name(services.topic_prefix)
                    await producer.send(topic, body.model_dump_json().encode(), key=key, headers=env.to_headers())
                    await asyncio.sleep(1 / rate)
                await producer.flush()
            finally:
                await producer.stop()
            usage = await _usage(config.kafka_bootstrap, LLM_USAGE.full_name(services.topic_prefix), leads, 300)
        finally:
            services.stop_all()
    total = sum(u.input_tokens for u in usage)
    read = sum(u.cache_read_tokens for u in usage)
    written = sum(u.cache_write_tokens for u in usage)
    steady = usage[1:]  # the first draft writes the tenant's prefix
    steady_total = sum(u.input_tokens for u in steady)
    return {
        "drafts": len(usage),
        "messages_api_requests": api.requests,
        "input_tokens": total,
        "cache_read_tokens": read,
        "cache_write_tokens": written,
        "share_read_from_cache": round(read / total, 3) if total else None,
        "share_read_from_cache_after_first": round(sum(u.cache_read_tokens for u in steady) / steady_total, 3)
        if steady_total
        else None,
        "prefix_tokens_per_draft": round((read + written) / max(len(usage), 1), 1),
        "uncached_tokens_per_draft": round((total - read - written) / max(len(usage), 1), 1),
        "rate_per_second": rate,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = result["run"]
    fig, ax = plt.subplots(figsize=(6.5, 4))
    parts = {
        "read from cache": run["cache_read_tokens"],
        "written to cache": run["cache_write_tokens"],
        "not cached": run["input_tokens"] - run["cache_read_tokens"] - run["cache_write_tokens"],
    }
    ax.bar(list(parts), list(parts.values()), color=["#38a169", "#d69e2e", "#a0aec0"])
    ax.axhline(run["input_tokens"] * DIRECTION, color="#e53e3e", linestyle="--", linewidth=1, label="80% of input")
    ax.set_ylabel("input tokens")
    ax.legend(fontsize=8)
    ax.set_title(
        f"prompt cache over {run['drafts']} drafts: {run['share_read_from_cache']:.0%} read "
        f"({result['machine']['cpus']} CPU(s))",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leads", type=int, default=120)
    parser.add_argument("--rate", type=float, default=10.0, help="new leads per second")
    args = parser.parse_args()
    config = StackConfig()
    up(config, topics=False)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = asyncio.run(steady_run(config, args.leads, args.rate))
    print(f"  prompt cache: {run}")
    result = {"started_at": started_at, "machine": machine(), "run": run, "direction_share": DIRECTION}
    save(f"planner-cache-{started_at}", "planner-cache-latest", result, plot)


if __name__ == "__main__":
    main()
