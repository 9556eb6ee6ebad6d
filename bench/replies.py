"""`make bench` (replies): how well Herald reads a reply without an LLM, and how fast a question is answered.

1. **Reading.** Every raw reply of the project's table (`tests/planner/replies/`, each naming its intent), and
   apart the held-out replies (`replies/held_out/`, written after the rules and never used to tune them), read as
   ingest reads it, then classified three ways: the rules alone, the embeddings alone (retrieval's `Resemble`
   against the planner's examples), and both (what `reply_handling` runs). Accuracy and a per-intent confusion.
2. **Reply → answer proposed.** A steady stream of questions as `ReplyReceived` on herald.events.v1, for a tenant
   running `reply_handling` with the sample knowledge base, no LLM: the time from each reply's publication to its
   answer's `ActionProposed` on herald.proposed-action.v1 (p50/p95/p99), against a raw aiokafka hop (produce,
   consume, produce, consume) at the same rate in the same run.

Results: bench/results/replies-<timestamp>.json and .png (and replies-latest.*).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.results import machine, save
from bench.run import _create, _percentiles, isolated_services
from herald_core.auth.services import ServiceKeys
from herald_core.contracts import ActionProposed, ContactFacts, ReplyMatch, ReplyReceived
from herald_core.envelope import Envelope
from herald_core.settings import CommonSettings
from herald_core.topics import EVENTS, PROPOSED_ACTION, contact_key
from herald_ingest.replies import read_reply
from herald_planner.adapters.retrieval import RetrievalClient
from herald_planner.intents import Intent, classify_offline, examples, with_similarity
from herald_stack.cli import up
from herald_stack.config import REPO_ROOT, StackConfig

TENANT = "benchreply"
REPLIES = REPO_ROOT / "tests" / "planner" / "replies"
HELD_OUT = REPLIES / "held_out"  # written after the rules, never used to tune them
QUESTIONS = (
    "Does your single sign-on work with Okta?",
    "Which plans include the REST API?",
    "How long do you keep audit logs?",
    "Is there a mobile app for approvals?",
    "What does the Growth plan cost per seat?",
)


def _table(directory: Path = REPLIES) -> list[tuple[str, str, Any]]:
    now = datetime(2026, 12, 2, 18, 0, tzinfo=UTC)
    rows = []
    for path in sorted(directory.glob("*.eml")):
        raw = path.read_bytes()
        expected = str(BytesParser(policy=policy.default).parsebytes(raw, headersonly=True)["X-Herald-Expected-Intent"])
        rows.append((path.name, expected, read_reply(raw, now)))
    return rows


async def reading(retrieval_target: str, directory: Path = REPLIES) -> dict[str, Any]:
    # the operator's CLI key: the retrieval API answers only Herald's services
    client = RetrievalClient(retrieval_target, 30, ServiceKeys(CommonSettings().auth.service_keys_dir, "cli"))
    found: dict[str, list[tuple[str, str]]] = {"rules": [], "similarity": [], "rules+similarity": []}
    try:
        for _, expected, reply in _table(directory):
            today = reply.sent_at.date()
            rules = classify_offline(
                reply.text, today=today, out_of_office=reply.out_of_office, returns_on=reply.returns_on
            )
            found["rules"].append((expected, rules.intent.value))
            if reply.out_of_office:  # the headers decide; the embeddings are not asked
                found["similarity"].append((expected, Intent.OUT_OF_OFFICE.value))
                found["rules+similarity"].append((expected, rules.intent.value))
                continue
            scores = await client.resemble(reply.text, examples())
            found["similarity"].append((expected, max(scores, key=lambda label: scores[label])))
            found["rules+similarity"].append((expected, with_similarity(rules, scores).intent.value))
    finally:
        await client.close()
    return {
        name: {
            "replies": len(pairs),
            "accuracy": round(sum(e == f for e, f in pairs) / len(pairs), 3),
            "confusion": {
                expected: dict(Counter(f for e, f in pairs if e == expected))
                for expected in sorted({e for e, _ in pairs})
            },
        }
        for name, pairs in found.items()
    }


async def raw_latency(bootstrap: str, prefix: str, count: int, rate: float) -> dict[str, Any]:
    """Produce, consume, produce, consume with plain aiokafka at `rate`: one hop's latency, per message."""
    source, sink = f"{prefix}rawlat.in", f"{prefix}rawlat.out"
    await _create(bootstrap, [source, sink])
    forwarder = AIOKafkaConsumer(
        source, bootstrap_servers=bootstrap, group_id=f"{prefix}rawlat", auto_offset_reset="latest"
    )
    reader = AIOKafkaConsumer(
        sink, bootstrap_servers=bootstrap, group_id=f"{prefix}rawread", auto_offset_reset="latest"
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=2)
    await forwarder.start()
    await reader.start()
    await producer.start()
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    try:
        for consumer in (forwarder, reader):
            while not consumer.assignment():
                await consumer.getmany(timeout_ms=50)

        async def forward() -> None:
            while True:
                batch = await forwarder.getmany(timeout_ms=100)
                for records in batch.values():
                    for r in records:
                        await producer.send(sink, r.value, key=r.key)

        async def read() -> None:  # arrivals timed as they come, while the stream is still being sent
            while len(latencies) < count:
                batch = await reader.getmany(timeout_ms=100)
                now = time.perf_counter()
                latencies.extend(now - sent[r.key] for records in batch.values() for r in records if r.key in sent)

        forwarding, reading_task = asyncio.create_task(forward()), asyncio.create_task(read())
        for n in range(count):
            key = f"{n}".encode()
            sent[key] = time.perf_counter()
            await producer.send(source, b"x" * 512, key=key)
            await asyncio.sleep(1 / rate)
        try:
            await asyncio.wait_for(reading_task, timeout=60)
        except TimeoutError:
            pass
        forwarding.cancel()
    finally:
        await forwarder.stop()
        await reader.stop()
        await producer.stop()
    return {"messages": len(latencies), **_percentiles(latencies)}


async def answer_latency(config: StackConfig, count: int, rate: float) -> dict[str, Any]:
    services = await isolated_services(
        config, TENANT, {"emails_per_hour": 1_000_000, "emails_per_contact_per_day": 100}, base_port=9600
    )
    path = services.tenants_dir / f"{TENANT}.yaml"
    tenant = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**tenant, "workflows": {"reply_handling": {}}}))
    try:
        services.start_all(services=("retrieval", "planner"))
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
        reading_result = await reading(services.retrieval_target)
        held_out = await reading(services.retrieval_target, HELD_OUT)
        run = secrets.token_hex(3)
        proposed = AIOKafkaConsumer(
            PROPOSED_ACTION.full_name(services.topic_prefix),
            bootstrap_servers=config.kafka_bootstrap,
            group_id=f"bench-{run}",
            auto_offset_reset="latest",
            isolation_level="read_committed",
        )
        await proposed.start()
        while not proposed.assignment():
            await proposed.getmany(timeout_ms=50)
        producer = AIOKafkaProducer(bootstrap_servers=config.kafka_bootstrap, linger_ms=2)
        await producer.start()
        sent: dict[str, float] = {}
        latencies: list[float] = []
        tools: Counter[str] = Counter()

        async def arrivals() -> None:  # answers timed as they come, while replies are still being sent
            while len(latencies) < count:
                batch = await proposed.getmany(timeout_ms=100)
                now = time.perf_counter()
                for records in batch.values():
                    for r in records:
                        headers = {k: v.decode() for k, v in r.headers or ()}
                        started = sent.pop(headers.get("ce_correlationid", ""), None)
                        if started is not None:
                            latencies.append(now - started)
                            tools[ActionProposed.model_validate_json(r.value).tool] += 1

        watching = asyncio.create_task(arrivals())
        try:
            for n in range(count):
                contact = ContactFacts(
                    contact_id=f"{run}{n:05d}", email=f"c{n}@buyer-{run}.example", first_name="Sam", company="Buyer"
                )
                reply = ReplyReceived(
                    contact=contact,
                    message_id=f"<{run}.{n}@mail.buyer.example>",
                    matched_by=ReplyMatch.SENDER,
                    from_address=contact.email or "",
                    subject="Re: Acme Relay for Buyer",
                    text=QUESTIONS[n % len(QUESTIONS)],
                    upstream_source="bench",
                    upstream_event_id=f"{run}-{n}",
                    occurred_at=datetime.now(UTC),
                )
                env = Envelope.new_chain(source="bench", type=ReplyReceived.TYPE, tenant=TENANT)
                sent[env.correlation_id] = time.perf_counter()
                topic = EVENTS.full_name(services.topic_prefix)
                key = contact_key(TENANT, contact.contact_id)
                await producer.send(topic, reply.model_dump_json().encode(), key=key, headers=env.to_headers())
                await asyncio.sleep(1 / rate)
            await producer.flush()
            try:
                await asyncio.wait_for(watching, timeout=120)
            except TimeoutError:
                pass
        finally:
            watching.cancel()
            await producer.stop()
            await proposed.stop()
        raw = await raw_latency(config.kafka_bootstrap, services.topic_prefix, count, rate)
    finally:
        services.stop_all()
    return {
        "reading": reading_result,
        "reading_held_out": held_out,
        "answer": {
            "replies": count,
            "proposed": len(latencies),
            "tools": dict(tools),
            "rate_per_second": rate,
            **_percentiles(latencies),
        },
        "raw_hop": raw,
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = result["run"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(run["reading"])
    held = run.get("reading_held_out", {})
    at = range(len(names))
    left.bar([x - 0.2 for x in at], [run["reading"][n]["accuracy"] for n in names], 0.4, label="table (rules beside)")
    left.bar([x + 0.2 for x in at], [held.get(n, {}).get("accuracy", 0) for n in names], 0.4, label="held out")
    left.set_xticks(list(at), names)
    left.set_ylim(0, 1.05)
    left.set_ylabel("accuracy")
    left.legend(fontsize=8)
    replies = f"{run['reading']['rules']['replies']} + {held.get('rules', {}).get('replies', 0)} held-out replies"
    left.set_title(f"reading {replies} without an LLM", fontsize=10)
    answer, raw = run["answer"], run["raw_hop"]
    labels = ["p50", "p95", "p99"]
    width = 0.38
    xs = range(len(labels))
    right.bar([x - width / 2 for x in xs], [answer[k] or 0 for k in labels], width, label="reply → answer proposed")
    right.bar([x + width / 2 for x in xs], [raw[k] or 0 for k in labels], width, label="raw aiokafka hop")
    right.set_xticks(list(xs), labels)
    right.set_ylabel("ms")
    right.legend(fontsize=8)
    right.set_title(
        f"{answer['proposed']} answers at {answer['rate_per_second']}/s ({result['machine']['cpus']} CPU(s))",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replies", type=int, default=200)
    parser.add_argument("--rate", type=float, default=10.0, help="replies per second")
    args = parser.parse_args()
    config = StackConfig()
    up(config, topics=False)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run = asyncio.run(answer_latency(config, args.replies, args.rate))
    print(f"  reading: { {n: r['accuracy'] for n, r in run['reading'].items()} }")
    print(f"  reading (held out): { {n: r['accuracy'] for n, r in run['reading_held_out'].items()} }")
    print(f"  answer: {run['answer']}")
    print(f"  raw hop: {run['raw_hop']}")
    save(f"replies-{started_at}", "replies-latest", {"started_at": started_at, "machine": machine(), "run": run}, plot)


if __name__ == "__main__":
    main()
