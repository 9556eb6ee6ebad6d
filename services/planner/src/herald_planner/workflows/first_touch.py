"""Workflow `new_lead_first_touch`: a new lead gets one grounded first email, then nothing.

(start) ──► proposed ──► completed            (executed)
   │           │  ├────► blocked              (a guard rule)
   │           │  ├────► failed / in_doubt    (the executor; a person's check settles in_doubt:
   │           │  │                             happened → completed, did_not_happen → failed)
   │           │  ├────► deferred ──► …       (outside the send window; decided again when it opens)
   │           │  └────► awaiting_review ──► completed | blocked
   └─────────► skipped                        (no address to write to)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from herald_core.contracts import ContactCreated, Contract
from herald_core.envelope import Envelope
from herald_planner.engine.ports import Ports
from herald_planner.engine.spec import Advance, Context, Propose, Run, StepResult, Transition, WorkflowSpec
from herald_planner.logic import retrieval_query
from herald_planner.workflows.common import OUTCOME_TYPES, draft_and_propose, outcome_note, outcome_of

NAME = "new_lead_first_touch"


class FirstTouchConfig(BaseModel):
    """Nothing to configure: the campaign and its variants are the tenant's `first_touch`."""

    model_config = ConfigDict(frozen=True, extra="forbid")


# (state, what became of the action) → next state; anything else is ignored as stale or duplicate
OUTCOMES: dict[tuple[str, str], str] = {
    ("proposed", "escalated"): "awaiting_review",
    ("proposed", "blocked"): "blocked",
    ("awaiting_review", "blocked"): "blocked",
    ("proposed", "succeeded"): "completed",
    ("awaiting_review", "succeeded"): "completed",
    ("proposed", "failed"): "failed",
    ("awaiting_review", "failed"): "failed",
    ("proposed", "in_doubt"): "in_doubt",
    ("awaiting_review", "in_doubt"): "in_doubt",
    ("proposed", "refused"): "failed",
    ("awaiting_review", "refused"): "failed",
    ("proposed", "deferred"): "deferred",
    ("awaiting_review", "deferred"): "deferred",
    ("deferred", "succeeded"): "completed",
    ("deferred", "blocked"): "blocked",
    ("deferred", "escalated"): "awaiting_review",
    ("deferred", "failed"): "failed",
    ("deferred", "in_doubt"): "in_doubt",
    ("deferred", "refused"): "failed",
    ("in_doubt", "happened"): "completed",
    ("in_doubt", "did_not_happen"): "failed",
}
STATES = ("proposed", "awaiting_review", "deferred", "in_doubt", "completed", "blocked", "failed", "skipped")
TERMINAL = frozenset({"completed", "blocked", "failed", "skipped"})


def on_new_lead(event: ContactCreated, context: Context[FirstTouchConfig]) -> Advance:
    if event.contact.email is None:
        return Advance("skipped", note={"reason": "no email address"})
    return Advance("proposed", (Propose("first_touch"),))


def _on_outcome(run: Run, event: Contract, context: Context[FirstTouchConfig]) -> Advance | None:
    outcome = outcome_of(run, event)
    new = OUTCOMES.get((run.state, outcome)) if outcome is not None else None
    return Advance(new, note={"event": outcome, **outcome_note(event)}) if new is not None else None


async def first_touch(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """Retrieve passages and memories for the lead, draft (LLM or template), propose the email."""
    tenant = ports.tenant
    drafted = await draft_and_propose(
        ports,
        run,
        trigger,
        step="touch_1",
        query=retrieval_query(run.contact),
        purpose="first-touch email grounded in retrieved passages",
        campaign_id=tenant.first_touch.campaign_id if tenant.first_touch is not None else None,
        brief={"campaign": tenant.first_touch},
    )
    action_id = drafted.action_id
    return StepResult(
        drafted.outputs, action_id=action_id, label="touch_1", data={"action_id": action_id}, note=drafted.note
    )


def _transitions() -> dict[tuple[str, type[Contract]], Transition]:
    sources = {state for state, _ in OUTCOMES}
    return {(state, kind): _on_outcome for state in sorted(sources) for kind in OUTCOME_TYPES}


SPEC = WorkflowSpec(
    name=NAME,
    doc="A new lead gets one grounded first email, then nothing.",
    config=FirstTouchConfig,
    starts={ContactCreated: on_new_lead},
    states=STATES,
    terminal=TERMINAL,
    transitions=_transitions(),
    steps={"first_touch": first_touch},
    job="new_lead",
)
