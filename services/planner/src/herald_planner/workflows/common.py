"""What workflows share: reading a guard decision or an execution as the outcome of the run's current action,
and the messages an email proposal is made of (the plan, the action, the LLM usage)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from herald_core.bus import Outbound, TransientError, is_transient, reason_of
from herald_core.contracts import (
    ActionBlocked,
    ActionDeferred,
    ActionEscalated,
    ActionExecuted,
    ActionProposed,
    ActionRefused,
    Contract,
    EvidenceRef,
    ExecutionResolved,
    LlmUsageReported,
    MemoryRef,
    PlanCreated,
    PlanStep,
    SendEmailInput,
    ToolInput,
    ToolName,
)
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.tools import TOOLS
from herald_core.topics import LLM_USAGE, PLAN, PROPOSED_ACTION, contact_key, tenant_key
from herald_planner.engine.ports import Ports
from herald_planner.engine.spec import Advance, Run
from herald_planner.logic import (
    Draft,
    DraftRequest,
    as_addressed,
    house_rules,
    memory_query,
    one_line,
    recipient_name,
    segment_of,
)

SOURCE = "herald/planner"

#: the contract types that say what became of a proposed action
OUTCOME_TYPES: tuple[type[Contract], ...] = (
    ActionEscalated,
    ActionBlocked,
    ActionDeferred,
    ActionExecuted,
    ActionRefused,
    ExecutionResolved,
)


def outcome_of(run: Run, event: Contract) -> str | None:
    """What `event` says of the run's current action: escalated, blocked, deferred, succeeded, failed, in_doubt,
    refused, happened or did_not_happen. None when it is about another action (an earlier attempt's, stale)."""
    action_id = getattr(event, "action_id", None)
    if action_id is None or action_id != run.data.get("action_id"):
        return None
    match event:
        case ActionEscalated():
            return "escalated"
        case ActionBlocked():
            return "blocked"
        case ActionDeferred():
            return "deferred"
        case ActionExecuted():
            return str(event.status.value)
        case ActionRefused():
            return "refused"
        case ExecutionResolved():
            return str(event.outcome.value)
    return None


#: what an outcome says of a decision a person is asked for: done, still waiting, or over without it
WAITING_OUTCOMES = frozenset({"escalated", "deferred", "in_doubt"})
FAILED_OUTCOMES = frozenset({"failed", "refused", "did_not_happen"})


def decided(run: Run, event: Contract, *, done: str, waiting: str) -> Advance | None:
    """A run waiting on one action a person decides (a hand-off, a referral): `done` when it ran, `dismissed` when
    it was blocked (a reviewer's rejection), `failed`, or still `waiting`; None for another action's outcome."""
    outcome = outcome_of(run, event)
    if outcome is None:
        return None
    note = {"outcome": outcome, **outcome_note(event)}
    if outcome in ("succeeded", "happened"):
        return Advance(done, note=note)
    if outcome == "blocked":
        return Advance("dismissed", note=note)
    if outcome in FAILED_OUTCOMES:
        return Advance("failed", note=note)
    return Advance(waiting, note=note)


def action_for(
    run: Run,
    tool: ToolName,
    tool_input: ToolInput,
    *,
    confidence: float,
    rationale: str,
    review_reason: str | None = None,
) -> ActionProposed:
    """An action of the run for its contact (one that quotes no passage: a CRM write, a meeting, a contact)."""
    return ActionProposed(
        action_id=new_id(),
        tenant=run.tenant,
        workflow_id=run.workflow_id,
        tool=tool,
        input=tool_input,
        contact=run.contact,
        evidence=(),
        confidence=confidence,
        rationale=rationale,
        review_reason=review_reason,
    )


def proposed(run: Run, trigger: Envelope, action: ActionProposed) -> Outbound:
    """The action, proposed for the run's contact, caused by `trigger`."""
    subject = f"contact/{run.contact.contact_id}"
    envelope = trigger.caused(source=SOURCE, type=ActionProposed.TYPE, subject=subject)
    return Outbound(PROPOSED_ACTION, contact_key(run.tenant, run.contact.contact_id), envelope, action)


def outcome_note(event: Contract) -> dict[str, object]:
    """What the run's history keeps of an outcome."""
    match event:
        case ActionBlocked():
            return {"rule": event.rule, "reason": event.reason}
        case ActionEscalated():
            return {"review_id": event.review_id, "reason": event.reason}
        case ActionDeferred():
            return {"release_at": event.release_at.isoformat()}
        case ActionExecuted():
            return {"result": event.result, "error": event.error}
        case ActionRefused():
            return {"reason": event.reason, "detail": event.detail}
        case ExecutionResolved():
            return {"review_id": event.review_id, "reviewer": event.reviewer, "reason": event.reason}
    return {}


def plan_steps(draft: Draft, purpose: str) -> tuple[PlanStep, ...]:
    """What the plan did and will do: the read tools the LLM consulted (only those it called), then the email."""
    consulted = [
        PlanStep(tool=name, purpose=f"read before drafting, no approval needed: {TOOLS[name].description}")
        for name in dict.fromkeys(draft.consulted)
    ]
    if draft.variant is not None:
        purpose += f", variant {draft.variant}"
    return (*consulted, PlanStep(tool="send_email", purpose=purpose))


def email_proposal(
    *,
    run: Run,
    trigger: Envelope,
    draft: Draft,
    planner_kind: str,
    query: str,
    evidence: Sequence[EvidenceRef],
    memories: Sequence[MemoryRef],
    purpose: str,
    campaign_id: str | None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
) -> tuple[list[Outbound], str]:
    """The plan, the email proposed to the run's contact (its address is the contact's, never the draft's) and
    the LLM usage of the draft, as messages caused by `trigger`; and the action's id."""
    contact = run.contact
    assert contact.email is not None, "a run writes only to a contact with an address"
    addressed = as_addressed(contact)
    action_id = new_id()
    key = contact_key(run.tenant, contact.contact_id)
    subject = f"contact/{contact.contact_id}"
    plan = PlanCreated(
        workflow_id=run.workflow_id,
        workflow=run.workflow,
        contact_id=contact.contact_id,
        steps=plan_steps(draft, purpose),
        planner=planner_kind,  # type: ignore[arg-type]
        query=query,
        evidence=tuple(evidence),
        memories=tuple(memories),
    )
    action = ActionProposed(
        action_id=action_id,
        tenant=run.tenant,
        workflow_id=run.workflow_id,
        tool="send_email",
        input=SendEmailInput(
            to=contact.email,
            to_name=recipient_name(addressed),
            subject=one_line(draft.subject, 200) or "Hello",
            body_text=draft.body_text,
            in_reply_to=in_reply_to,
            references=tuple(references),
        ),
        contact=contact,
        evidence=tuple(evidence),
        confidence=draft.confidence,
        rationale=draft.rationale,
        drafted_by=planner_kind,  # type: ignore[arg-type]
        campaign_id=campaign_id,
        variant=draft.variant,
    )
    plan_env = trigger.caused(source=SOURCE, type=PlanCreated.TYPE, subject=subject)
    action_env = plan_env.caused(source=SOURCE, type=ActionProposed.TYPE, subject=subject)
    outputs = [Outbound(PLAN, key, plan_env, plan), Outbound(PROPOSED_ACTION, key, action_env, action)]
    if draft.usage is not None:  # the guard counts it against the tenant's daily LLM budget
        usage_env = plan_env.caused(source=SOURCE, type=LlmUsageReported.TYPE, subject=subject)
        usage = draft.usage.model_copy(update={"workflow_id": run.workflow_id})
        outputs.append(Outbound(LLM_USAGE, tenant_key(run.tenant), usage_env, usage))
    return outputs, action_id


async def retrieve(
    ports: Ports,
    contact_id: str,
    query: str,
    memory_query: str,
    collections: Sequence[str] = ("customers", "product"),
    evidence: Sequence[EvidenceRef] | None = None,
) -> tuple[list[EvidenceRef], list[MemoryRef]]:
    """Passages for the draft (unless a step searched already: `evidence`) and what memory holds of the contact.
    An outage is a `TransientError` (the event is read again later); a refusal of the request itself is not, and
    dead-letters the event."""
    tenant = ports.tenant.tenant_id

    async def passages() -> list[EvidenceRef]:
        if evidence is not None:
            return list(evidence)
        return await ports.retrieval.search(tenant, query, ports.settings.evidence_k, list(collections))

    try:
        found, memories = await asyncio.gather(
            passages(), ports.retrieval.recall(tenant, contact_id, memory_query, ports.settings.memory_k)
        )
    except Exception as exc:
        if not is_transient(exc):
            raise  # retrieval refused the request itself (INVALID_ARGUMENT …): the event is dead-lettered
        raise TransientError(f"retrieval unavailable: {reason_of(exc)}") from exc
    return found, memories


@dataclass(frozen=True)
class Drafted:
    """An email a step drafted and proposed: the messages to publish, the action, and what it was made of."""

    outputs: list[Outbound]
    action_id: str
    draft: Draft
    planner_kind: str
    evidence: list[EvidenceRef]
    memories: list[MemoryRef]

    @property
    def note(self) -> dict[str, Any]:
        """What the run's journal keeps of the step."""
        return {
            "planner": self.planner_kind,
            "action_id": self.action_id,
            "evidence": [e.chunk_id for e in self.evidence],
            "memories": [m.memory_id for m in self.memories],
        }


async def draft_and_propose(
    ports: Ports,
    run: Run,
    trigger: Envelope,
    *,
    step: str,
    query: str,
    purpose: str,
    campaign_id: str | None,
    brief: Mapping[str, Any] | None = None,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    collections: Sequence[str] = ("customers", "product"),
    evidence: Sequence[EvidenceRef] | None = None,
) -> Drafted:
    """The email step every workflow shares: retrieve passages and memories, gather reviewers' examples for the
    step and the contact's segment, draft (LLM or template), propose it to the run's contact. `brief` adds what
    the draft must know of its place (`touch`, `touches`, `earlier`, `feedback`, `campaign`)."""
    contact = run.contact
    tenant = ports.tenant
    found, memories = await retrieve(ports, contact.contact_id, query, memory_query(contact), collections, evidence)
    examples = await ports.examples.recent(tenant.tenant_id, run.workflow, step, segment_of(contact))
    request = DraftRequest(
        tenant_id=tenant.tenant_id,
        contact=as_addressed(contact),
        evidence=found,
        memories=memories,
        company_name=tenant.name,
        sender=tenant.sender.name,
        examples=tuple(examples),
        house_rules=house_rules(tenant.products, tenant.competitors),
        **dict(brief or {}),
    )
    draft, planner_kind = await ports.drafter.draft(request)
    outputs, action_id = email_proposal(
        run=run,
        trigger=trigger,
        draft=draft,
        planner_kind=planner_kind,
        query=query,
        evidence=found,
        memories=memories,
        purpose=purpose,
        campaign_id=campaign_id,
        in_reply_to=in_reply_to,
        references=references,
    )
    return Drafted(outputs, action_id, draft, planner_kind, found, memories)
