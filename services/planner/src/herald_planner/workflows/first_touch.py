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
from herald_planner.logic import DraftRequest, as_addressed, house_rules, memory_query, retrieval_query, segment_of
from herald_planner.workflows.common import OUTCOME_TYPES, email_proposal, outcome_note, outcome_of, retrieve

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
    contact = run.contact
    tenant = ports.tenant
    query = retrieval_query(contact)
    evidence, memories = await retrieve(ports, contact.contact_id, query, memory_query(contact))
    examples = await ports.examples.recent(tenant.tenant_id, run.workflow, "touch_1", segment_of(contact))
    request = DraftRequest(
        tenant_id=tenant.tenant_id,
        contact=as_addressed(contact),
        evidence=evidence,
        memories=memories,
        company_name=tenant.name,
        sender=tenant.sender.name,
        campaign=tenant.first_touch,
        examples=tuple(examples),
        house_rules=house_rules(tenant.products, tenant.competitors),
    )
    draft, planner_kind = await ports.drafter.draft(request)
    outputs, action_id = email_proposal(
        run=run,
        trigger=trigger,
        draft=draft,
        planner_kind=planner_kind,
        query=query,
        evidence=evidence,
        memories=memories,
        purpose="first-touch email grounded in retrieved passages",
        campaign_id=tenant.first_touch.campaign_id if tenant.first_touch is not None else None,
    )
    note = {
        "planner": planner_kind,
        "action_id": action_id,
        "evidence": [e.chunk_id for e in evidence],
        "memories": [m.memory_id for m in memories],
    }
    return StepResult(outputs, action_id=action_id, label="touch_1", data={"action_id": action_id}, note=note)


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
