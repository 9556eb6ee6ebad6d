"""Backtesting a candidate policy: recorded proposals decided again under it, compared with what the
live policy decided at the time (`herald policy backtest`).

Each recorded proposal is evaluated by the same `evaluate` the guard runs, at the time it was
proposed (so send windows open and close as they did), with the consent and kill-switch state the
live decision saw when that is what stopped it. What a backtest cannot replay is said, not guessed:
caps depend on the order and timing of every other approval, so a proposal the live policy stopped
at a cap keeps that outcome; whether an action was its campaign's first send is not recorded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald_core.contracts import ActionProposed
from herald_core.policy import Grounding, Policy, evaluate, needs_grounding
from herald_core.tenants import TenantConfig

LIVE_OUTCOMES = {
    "herald.action.approved.v1": "approve",
    "herald.action.blocked.v1": "block",
    "herald.action.escalated.v1": "escalate",
    "herald.action.deferred.v1": "defer",
}


@dataclass(frozen=True)
class Replayed:
    action_id: str
    contact_id: str
    proposed_at: datetime
    live_outcome: str  # approve | block | escalate | defer | undecided
    live_rule: str | None
    outcome: str
    rule: str | None
    reason: str
    kept: bool = False  # a cap decision, kept as it was (caps are not replayed)

    @property
    def changed(self) -> bool:
        return (self.live_outcome, self.live_rule) != (self.outcome, self.rule) and self.live_outcome != "undecided"


def _live(record: dict[str, Any]) -> tuple[str, str | None, str]:
    """What the live policy decided first on a recorded proposal: (outcome, rule, reason)."""
    decision = record.get("decision") or {}
    outcome = LIVE_OUTCOMES.get(record.get("decision_type") or "", "undecided")
    if outcome == "approve":
        return outcome, None, "all rules passed"
    fired = [h for h in decision.get("rules", ()) if h.get("outcome") == outcome]
    rule = decision.get("rule") or (fired[0]["rule"] if fired else None)
    return outcome, rule, str(decision.get("reason", ""))


async def replay(
    candidate: Policy,
    tenant: TenantConfig,
    recorded: Sequence[dict[str, Any]],
    grounding: Callable[[ActionProposed], Awaitable[Grounding]] | None = None,
) -> list[Replayed]:
    """Decide each recorded proposal again under `candidate`; `grounding` answers for a grounding rule."""
    results = []
    for record in recorded:
        action = ActionProposed.model_validate(record["action"])
        proposed_at = datetime.fromisoformat(record["occurred_at"])
        live_outcome, live_rule, live_reason = _live(record)
        kept = live_rule is not None and live_rule.startswith("limits.")
        if kept:
            outcome, rule, reason = live_outcome, live_rule, live_reason
        else:
            answer = await grounding(action) if grounding is not None and needs_grounding(candidate) else None
            verdict = evaluate(
                candidate,
                action,
                tenant,
                stage="proposal",
                suppression_reason=live_reason if live_rule == "consent.opt_out" else None,
                kill_switch=live_reason if live_rule == "control.kill_switch" else None,
                grounding=answer,
                now=proposed_at,
            )
            outcome, rule, reason = verdict.outcome, verdict.rule, verdict.reason
        results.append(
            Replayed(
                action.action_id,
                action.contact.contact_id,
                proposed_at,
                live_outcome,
                live_rule,
                outcome,
                rule,
                reason,
                kept=kept,
            )
        )
    return results


def summary(results: Sequence[Replayed]) -> dict[str, Any]:
    """Counts for a report: outcomes live and under the candidate, and every change of outcome."""
    changes = Counter(f"{r.live_outcome} → {r.outcome}" for r in results if r.changed)
    return {
        "proposals": len(results),
        "changed": sum(1 for r in results if r.changed),
        "live": dict(Counter(r.live_outcome for r in results)),
        "candidate": dict(Counter(r.outcome for r in results)),
        "changes": dict(changes),
        "caps_kept": sum(1 for r in results if r.kept),
    }
