"""`make bench` (fifth part): the executor's tools through Kafka, each against a raw aiokafka hop at its own rate.

One executor process runs signed approvals published at a steady rate per tool (below saturation, so the figure is
latency, not queueing): the signature and expiry, the tenant, consent at that moment, the ledger claim in Postgres,
the tool's side effect, the ledger row, and ActionExecuted with its audit copy in one Kafka transaction. Every
downstream is the local stack's, on loopback:

    send_email         the SMTP server (delivery confirmed by counting the Maildir);
    update_crm_record  Herald's contact store in Postgres (confirmed by counting `crm.writes`);
    generate_image     the brand template drawn with Pillow (confirmed by counting the stored PNGs);
    schedule_meeting   Radicale over CalDAV, then the emailed invite — at a lower rate, as a calendar is written
                       one meeting at a time per tenant (confirmed by the calendar's events and the Maildir).

Approvals are signed with the local guard key, as the guard signs them, and published on the approved-action topic
in the guard's envelope, by a plain producer (the raw hop's, so both sides start alike; no audit copy). Latency is
read on this process's monotonic clock, from the approval being handed to the producer to its ActionExecuted being
read (read_committed), by the same code that times the raw hop (`bench.guard_kafka._paced`). Broker timestamps
are not used: an ActionExecuted's timestamp is when the executor produced it, before its transaction committed, so
it would leave out the commit a reader waits for.
The baseline, per tool: a plain aiokafka consume → produce hop at the same rate, on messages of the same size
(that tool's approval), in the same run. The ratios, not the milliseconds, are what compare across machines.
Results: bench/results/executor-<timestamp>.json and .png (and executor.json / executor.png); `--quick` is a
smoke run of a few approvals per tool, written as executor-quick-*.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import ConsumerRecord

from bench.guard_kafka import _paced, raw_baseline
from bench.results import machine, save
from bench.run import _percentiles, isolated_services
from herald_core.contracts import ActionApproved, ActionExecuted, ActionProposed
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.signing import Signer, load_signer
from herald_core.topics import APPROVED_ACTION, EXECUTED, contact_key
from herald_stack.cli import up
from herald_stack.config import StackConfig
from herald_stack.samples import tool_input
from herald_stack.services import ServiceSet

# the first free half hour of a fresh calendar; each meeting takes the next one, so none is refused as busy
# the local part of each tool's contacts, so a delivered message says which tool sent it
SHORT = {"send_email": "mail", "update_crm_record": "crm", "generate_image": "img", "schedule_meeting": "meet"}


@dataclass(frozen=True)
class Load:
    tool: str
    rate: float  # approvals per second
    count: int  # measured approvals (after the warm-up)


FULL = (
    Load("send_email", 50, 1000),
    Load("update_crm_record", 50, 1000),
    Load("generate_image", 10, 300),
    Load("schedule_meeting", 5, 150),
)
QUICK = (
    Load("send_email", 20, 40),
    Load("update_crm_record", 20, 40),
    Load("generate_image", 10, 20),
    Load("schedule_meeting", 5, 10),
)


def approved(signer: Signer, tenant: str, tool: str, run: str, n: int) -> ActionApproved:
    """The n-th action of a tool, for a contact of its own, signed as the guard signs it."""
    contact_id = f"{SHORT[tool]}-{run}-{n}"
    action = ActionProposed.model_validate(
        {
            "action_id": new_id(),
            "tenant": tenant,
            "workflow_id": f"wf-{run}-{n}",
            "tool": tool,
            "input": tool_input(tool, contact_id, n),
            "contact": {"contact_id": contact_id, "email": f"{contact_id}@buyers.example", "first_name": "Sam"},
            "evidence": [],
            "confidence": 0.9,
            "rationale": "bench",
        }
    )
    approval = signer.approve(action, approved_by="guard", policy_version="bench", ttl=timedelta(minutes=10))
    return ActionApproved(action=action, approval=approval, rules=())


def _mail_files(maildir: Path) -> set[Path]:
    return {path for folder in ("new", "cur") if (maildir / folder).is_dir() for path in (maildir / folder).iterdir()}


def _delivered(maildir: Path, before: set[Path], local_part: str) -> int:
    """Messages delivered since `before` to recipients whose address starts with `local_part`."""
    found = 0
    for path in _mail_files(maildir) - before:
        with path.open("rb") as handle:
            recipients = BytesParser().parse(handle, headersonly=True).get("X-Herald-Rcpt-To") or ""
        found += recipients.lower().startswith(local_part)
    return found


def _calendar_events(config: StackConfig, tenant: str) -> int:
    """Events in the tenant's meeting calendar, as any CalDAV client lists them (PROPFIND, depth 1)."""
    url = f"{config.caldav_url}{config.caldav_user}/{tenant}-meetings/"
    with httpx.Client(auth=(config.caldav_user, config.caldav_password), timeout=30) as client:
        listing = client.request("PROPFIND", url, headers={"Depth": "1"})
    if listing.status_code == 404:
        return 0
    listing.raise_for_status()
    hrefs = [node.text or "" for node in ET.fromstring(listing.content).iter("{DAV:}href")]  # noqa: S314 - loopback
    return sum(href.endswith(".ics") for href in hrefs)


async def _effects(
    config: StackConfig, services: ServiceSet, tenant: str, tool: str, run: str, mail_before: set[Path]
) -> dict[str, int]:
    """What the tool left downstream, read back through each downstream's own interface."""
    prefix = f"{SHORT[tool]}-{run}-"
    match tool:
        case "send_email":
            return {"emails_delivered": _delivered(config.maildir, mail_before, prefix)}
        case "update_crm_record":
            conn = await asyncpg.connect(services.pg_dsn)
            try:
                rows = await conn.fetchval("SELECT count(*) FROM crm.writes WHERE tenant = $1", tenant)
            finally:
                await conn.close()
            return {"crm_writes": int(rows)}
        case "generate_image":
            images = config.state_dir / "assets" / tenant / "images"
            return {"images_stored": len(list(images.glob("*.png"))) if images.is_dir() else 0}
        case "schedule_meeting":
            return {
                "calendar_events": _calendar_events(config, tenant),
                "invites_delivered": _delivered(config.maildir, mail_before, prefix),
            }
    return {}


def _outcome(record: ConsumerRecord[bytes, bytes]) -> str:
    """`succeeded`, `failed` or `in_doubt` for an ActionExecuted; `refused: <reason>` for an ActionRefused."""
    body = json.loads(record.value or b"{}")
    if dict(record.headers or ()).get("ce_type", b"").decode() == ActionExecuted.TYPE:
        return str(body.get("status"))
    return f"refused: {body.get('reason')}"


async def tool_latency(
    config: StackConfig, services: ServiceSet, tenant: str, signer: Signer, load: Load, warmup: int
) -> dict[str, Any]:
    """One tool: a raw hop at its rate on its message size, then the warm-up, then the measured approvals."""
    prefix = services.topic_prefix
    run = secrets.token_hex(3)
    sample = approved(signer, tenant, load.tool, run, 0).model_dump_json().encode()
    raw = await raw_baseline(
        config.kafka_bootstrap, f"xb{secrets.token_hex(3)}.", load.rate, load.count, payload=sample
    )
    # signed just before they are sent: approvals expire, and signing is the guard's work, not the executor's
    approvals = [approved(signer, tenant, load.tool, run, n) for n in range(warmup + load.count)]
    mail_before = _mail_files(config.maildir)

    def make(n: int) -> tuple[bytes, bytes, Any, str]:
        approval = approvals[n]
        action = approval.action
        env = Envelope.new_chain(source="herald/guard", type=ActionApproved.TYPE, tenant=tenant)
        key = contact_key(tenant, action.contact.contact_id)
        return key, approval.model_dump_json().encode(), env.to_headers(), action.action_id

    source, sinks = APPROVED_ACTION.full_name(prefix), [EXECUTED.full_name(prefix)]
    warmed: Counter[str] = Counter()
    await _paced(
        config.kafka_bootstrap,
        source,
        sinks,
        make,
        load.rate,
        warmup,
        seen=lambda _, r, __: warmed.update([_outcome(r)]),
    )
    outcomes: Counter[str] = Counter()
    first_sent: list[float] = []
    arrivals: list[float] = []
    succeeded: list[float] = []

    def measured(n: int) -> tuple[bytes, bytes, Any, str]:
        if not first_sent:
            first_sent.append(time.monotonic())
        return make(warmup + n)

    def seen(marker: str, record: ConsumerRecord[bytes, bytes], latency: float) -> None:
        outcome = _outcome(record)
        outcomes[outcome] += 1
        arrivals.append(time.monotonic())
        if outcome == "succeeded":
            succeeded.append(latency)

    timers = _timer_sums(services)
    answered = await _paced(config.kafka_bootstrap, source, sinks, measured, load.rate, load.count, seen=seen)
    timed = _timer_sums(services)
    elapsed = max(arrivals) - first_sent[0] if arrivals else 0.0
    effects = await _effects(config, services, tenant, load.tool, run, mail_before)
    latency = _percentiles(succeeded)
    raw_latency = raw["latency_ms"]
    row: dict[str, Any] = {
        "rate_per_second": load.rate,
        "count": load.count,
        "warmup": warmup,
        "answered": len(answered),
        "outcomes": dict(outcomes),
        "warmup_outcomes": dict(warmed),
        "latency_ms": latency,
        "throughput_per_second": round(len(succeeded) / elapsed, 1) if elapsed > 0 else 0.0,
        "downstream": {**effects, "expected": warmup + load.count},
        # inside the executor, means over the measured approvals: the whole handling, and the tool's call in it
        "handler_ms_mean": _mean_ms(timers, timed, "approval"),
        "tool_call_ms_mean": _mean_ms(timers, timed, load.tool),
        "raw_hop": raw,
        "ratios_vs_raw": {
            q: round(latency[q] / raw_latency[q], 2) if latency[q] and raw_latency[q] else None for q in ("p50", "p99")
        },
    }
    print(
        f"  {load.tool:18} {load.rate:>4.0f}/s × {load.count}: p50 {latency['p50']} p95 {latency['p95']} "
        f"p99 {latency['p99']} ms ({dict(outcomes)}), {row['throughput_per_second']}/s; raw hop p50 "
        f"{raw_latency['p50']} p99 {raw_latency['p99']} ms → ×{row['ratios_vs_raw']['p50']} / "
        f"×{row['ratios_vs_raw']['p99']}; handler {row['handler_ms_mean']} ms (tool {row['tool_call_ms_mean']} ms); "
        f"downstream {effects}"
    )
    return row


def _timer_sums(services: ServiceSet) -> dict[tuple[str, str], float]:
    """The executor's own timers, read from its /metrics: (tool, sum|count) for each tool's calls, and
    ("approval", sum|count) for the handling of an approval (its other consumer, engagement and findings, apart)."""
    (replica,) = services.replicas.values()
    with urllib.request.urlopen(f"http://127.0.0.1:{replica.ops_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    sums: dict[tuple[str, str], float] = {}
    for name, labels, value in re.findall(r"^(herald_\w+_seconds_(?:sum|count))\{([^}]*)\} (\S+)$", text, re.M):
        label = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if name.startswith("herald_executor_tool_seconds"):
            sums[(label["tool"], name.rsplit("_", 1)[1])] = float(value)
        elif name.startswith("herald_handler_seconds") and label.get("topic") == APPROVED_ACTION.name:
            sums[("approval", name.rsplit("_", 1)[1])] = float(value)
    return sums


def _mean_ms(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], what: str) -> float | None:
    count = after.get((what, "count"), 0.0) - before.get((what, "count"), 0.0)
    total = after.get((what, "sum"), 0.0) - before.get((what, "sum"), 0.0)
    return round(1000 * total / count, 2) if count else None


async def executor_latency(config: StackConfig, loads: tuple[Load, ...], base_port: int, warmup: int) -> dict[str, Any]:
    tenant = f"benchexec{secrets.token_hex(3)}"  # a fresh calendar: every meeting slot free
    services = await isolated_services(
        config, tenant, {"emails_per_hour": 1_000_000, "emails_per_contact_per_day": 1000}, base_port
    )
    signer = load_signer(config.keys_dir / "guard-local-1.pem", "guard-local-1")
    try:
        services.start_all(services=("executor",))
        tools = {load.tool: await tool_latency(config, services, tenant, signer, load, warmup) for load in loads}
    finally:
        services.stop_all()
    return {"tenant": tenant, "tools": tools}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tools = result["tools"]
    fig, ax = plt.subplots(figsize=(9, 4.6))
    width = 0.16
    series: list[tuple[str, Callable[[dict[str, Any]], float | None], str]] = [
        ("raw hop p50", lambda row: row["raw_hop"]["latency_ms"]["p50"], "#d9d9d9"),
        ("raw hop p99", lambda row: row["raw_hop"]["latency_ms"]["p99"], "#888888"),
        ("tool p50", lambda row: row["latency_ms"]["p50"], "#90cdf4"),
        ("tool p95", lambda row: row["latency_ms"]["p95"], "#4299e1"),
        ("tool p99", lambda row: row["latency_ms"]["p99"], "#2b6cb0"),
    ]
    xs = range(len(tools))
    for i, (label, value, colour) in enumerate(series):
        heights = [value(row) or 0 for row in tools.values()]
        bars = ax.bar([x + (i - 2) * width for x in xs], heights, width=width, label=label, color=colour)
        if label == "tool p99":
            ax.bar_label(bars, labels=[f"{h:g}" for h in heights], fontsize=7)
    ax.set_xticks(
        list(xs),
        [
            f"{tool}\n{row['rate_per_second']:g}/s × {row['count']}\np99 ×{row['ratios_vs_raw']['p99']} raw"
            for tool, row in tools.items()
        ],
        fontsize=8,
    )
    ax.set_yscale("log")
    tallest = max((row["latency_ms"]["p99"] or 1) for row in tools.values())
    ax.set_ylim(top=tallest * 6)  # room for the legend above the bars
    ax.set_ylabel("ms, approval sent → ActionExecuted read")
    ax.legend(fontsize=7, ncols=5, loc="upper left")
    quick = " (quick)" if result["quick"] else ""
    ax.set_title(f"executor tools through Kafka{quick} {result['started_at']} ({result['machine']['cpus']} CPU(s))")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run: a few approvals per tool")
    parser.add_argument(
        "--base-port",
        type=int,
        default=int(os.environ.get("HERALD_BENCH_EXECUTOR_BASE_PORT", "9900")),
        help="the services' port block (env HERALD_BENCH_EXECUTOR_BASE_PORT; the executor listens on base + 60)",
    )
    parser.add_argument("--tools", nargs="+", choices=list(SHORT), help="only these tools (default: all four)")
    args = parser.parse_args()
    loads = tuple(load for load in (QUICK if args.quick else FULL) if not args.tools or load.tool in args.tools)
    warmup = 3 if args.quick else 20  # handled first and not counted: connections, the calendar, fonts
    config = StackConfig()
    up(config, topics=False)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    measured = asyncio.run(executor_latency(config, loads, args.base_port, warmup))
    result = {
        "started_at": started_at,
        "machine": machine(),
        "quick": args.quick,
        "timing": "monotonic clock of the bench process: approval handed to the producer → ActionExecuted read "
        "(read_committed); the raw hop is timed by the same code at the same rate and message size",
        **measured,
    }
    stem = "executor-quick" if args.quick else "executor"
    save(f"{stem}-{started_at}", stem, result, plot)


if __name__ == "__main__":
    main()
