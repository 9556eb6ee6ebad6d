"""`make bench` (third part): the guard's decision, in process, as the number of policy rules grows.

For 10, 100 and 1,000 rules (a realistic mix: CEL conditions over the contact and the draft,
regular expressions, banned phrases, length limits), one policy is loaded and `herald_core.policy.evaluate` is timed
on a stream of varied actions — the exact code the guard runs on every proposal, before its
Postgres counters. Results: bench/results/guard-<timestamp>.json and .png (and guard-latest.*).
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bench.results import machine, save
from herald_core.contracts import ActionProposed
from herald_core.policy import evaluate, load_policy
from herald_core.policy_cases import SAMPLE_ACTION
from herald_core.tenants import TenantConfig

DIRECTION_P99_MS = 1.0  # at 100 rules, in process
CONDITIONS = [
    "action.contact.vip && action.contact.deal_value_minor >= {n}",
    "action.confidence < 0.{d}",
    'draft.body.contains("{word}")',
    'action.contact.industry == "{industry}" && draft.body_chars > {n}',
    "action.evidence_count == 0 && draft.words > {d}",
]
WORDS = ["discount", "free", "urgent", "winner", "deadline", "refund", "lawsuit", "merger", "promo", "trial"]
INDUSTRIES = ["logistics", "retail", "fintech", "healthcare", "education"]


def policy_source(rules: int, rng: random.Random) -> str:
    items: list[dict[str, Any]] = []
    for i in range(rules):
        if i % 10 == 7:
            pattern = f"(?i)\\b({'|'.join(rng.sample(WORDS, 2))})\\b"
            items.append({"id": f"content.pattern_{i}", "kind": "pattern", "field": "draft.any", "pattern": pattern})
        elif i % 10 == 8:
            items.append({"id": f"content.phrases_{i}", "kind": "banned_phrases", "phrases": rng.sample(WORDS, 3)})
        elif i % 10 == 9:
            items.append({"id": f"content.length_{i}", "kind": "max_length", "max_body_chars": 2000 + i})
        else:
            when = rng.choice(CONDITIONS).format(
                n=rng.randint(1, 9) * 1_000_000,
                d=rng.randint(1, 9),
                word=rng.choice(WORDS),
                industry=rng.choice(INDUSTRIES),
            )
            items.append({"id": f"rule.r{i}", "when": when, "then": rng.choice(["block", "escalate"])})
    return yaml.safe_dump({"tenant": "bench", "version": 1, "rules": items}, sort_keys=False)


def actions(count: int, rng: random.Random) -> list[ActionProposed]:
    out = []
    for n in range(count):
        vocabulary = [*WORDS, "hello", "team", "carrier", "exceptions"]
        body = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(20, 120)))
        action = {
            **SAMPLE_ACTION,
            "tenant": "bench",
            "confidence": rng.random(),
            "input": {**SAMPLE_ACTION["input"], "body_text": body},
            "contact": {
                **SAMPLE_ACTION["contact"],
                "vip": rng.random() < 0.1,
                "deal_value_minor": rng.randint(0, 10_000_000),
                "industry": rng.choice(INDUSTRIES),
            },
        }
        out.append(ActionProposed.model_validate(action))
        del n
    return out


def measure(rules: int, samples: int) -> dict[str, Any]:
    rng = random.Random(rules)
    policy = load_policy(policy_source(rules, rng))
    tenant = TenantConfig.model_validate(
        {
            "tenant_id": "bench",
            "name": "Bench",
            "sender": {"name": "B", "address": "b@bench.example"},
            "unsubscribe_url": "https://bench.example/u",
        }
    )
    stream = actions(200, rng)
    for action in stream[:50]:
        evaluate(policy, action, tenant, stage="proposal", suppression_reason=None)
    timings = []
    for i in range(samples):
        action = stream[i % len(stream)]
        began = time.perf_counter()
        evaluate(policy, action, tenant, stage="proposal", suppression_reason=None)
        timings.append((time.perf_counter() - began) * 1000)
    cut = statistics.quantiles(timings, n=100, method="inclusive")
    return {"rules": rules, "samples": samples, "p50_ms": round(cut[49], 4), "p99_ms": round(cut[98], 4)}


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    rows = result["in_process"]
    xs = [str(r["rules"]) for r in rows]
    ax.bar([i - 0.2 for i in range(len(xs))], [r["p50_ms"] for r in rows], width=0.4, label="p50", color="#90cdf4")
    bars = ax.bar(
        [i + 0.2 for i in range(len(xs))], [r["p99_ms"] for r in rows], width=0.4, label="p99", color="#2b6cb0"
    )
    ax.bar_label(bars, labels=[f"{r['p99_ms']:.3f}" for r in rows], fontsize=8)
    ax.axhline(DIRECTION_P99_MS, color="#c53030", linestyle="--", label="1 ms (p99 at 100 rules)")
    ax.set_xticks(range(len(xs)), xs)
    ax.set_xlabel("rules in the tenant's policy")
    ax.set_ylabel("ms per decision (in process)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title(f"guard decision {result['started_at']} on {result['machine']['cpus']} CPU(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    rows = [measure(rules, samples) for rules, samples in ((10, 20_000), (100, 5_000), (1_000, 1_000))]
    for row in rows:
        print(f"  {row['rules']:>5} rules: p50 {row['p50_ms']:.3f} ms, p99 {row['p99_ms']:.3f} ms")
    result = {
        "started_at": started_at,
        "machine": machine(),
        "in_process": rows,
        "direction_p99_ms_at_100_rules": DIRECTION_P99_MS,
    }
    save(f"guard-{started_at}", "guard-latest", result, plot)


if __name__ == "__main__":
    main()
