"""Carrying a campaign task through its steps: the consumer of `CampaignTaskAccepted` on herald.plan.v1.

    accepted → retrieving (the topic's passages) → drafting (each variant's passages) → selecting (the segment
    from ingest's contact store, split between the variants) → proposed (one `ActionProposed` per contact, each
    escalated to review as one batch; the batch as `CampaignTaskProposed`) — or failed, with the reason.

Rules it keeps, as the workflow runner does for runs:
- **Once per task.** What a carry publishes is written with the task's last step, under the id of the message that
  carried it; the same message read again (its Kafka transaction aborted) publishes exactly that again (the same
  action ids, which the guard decides once), and any other message for a task past `accepted` publishes nothing.
- **Nothing published half-way.** The steps before `proposed` publish nothing; a carry cut off by a crash starts
  again from the first step when the message is read again.
- **Compare-and-set.** Each step names the version it read; a task another replica moved is read again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram

from herald_core.bus import Inbound, Outbound, Rejected, TransientError, is_transient, reason_of
from herald_core.contracts import (
    ActionProposed,
    CampaignBrief,
    CampaignTaskAccepted,
    CampaignTaskFailed,
    CampaignTaskProposed,
    ContactFacts,
    EvidenceRef,
    PlanCreated,
    PlanStep,
    SendEmailInput,
)
from herald_core.envelope import Envelope, child_traceparent
from herald_core.ids import new_id
from herald_core.observability import get_logger
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.topics import PLAN, PROPOSED_ACTION, contact_key, task_key
from herald_planner.engine.ports import Retrieval
from herald_planner.logic import as_addressed, bounded_query, recipient_name
from herald_planner.tasks.drafts import campaign_draft, variant_passages
from herald_planner.tasks.logic import (
    IN_FLIGHT,
    Member,
    TaskState,
    in_segment,
    rationale,
    review_reason,
    split,
    step,
)
from herald_planner.tasks.segments import IngestSegments, SegmentRefused, SegmentsUnavailable
from herald_planner.tasks.store import Task, TaskConflict, TaskStore

SOURCE = "herald/planner"
WORKFLOW = "campaign_task"
TASKS = Counter(
    "herald_planner_tasks_total", "Campaign tasks by outcome (accepted, proposed, refused, failed).", ["outcome"]
)
TASK_PROPOSALS = Counter("herald_planner_task_proposals_total", "Sends proposed by campaign tasks.")
SECONDS_TO_BATCH = Histogram(
    "herald_planner_task_seconds_to_batch",
    "Seconds from a campaign task's acceptance to its batch proposed.",
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
)
log = get_logger("herald.planner.tasks")


class Audience:
    """A segment as a task speaks to it: ingest's answer, less the contacts outside its seniorities."""

    def __init__(self, matched: int, contacts: list[ContactFacts], uncertain: bool) -> None:
        self.matched = matched  # contacts of the segment (seniority applied when the answer held them all)
        self.contacts = contacts  # those the task would write to, by id
        self.uncertain = uncertain  # the store held more than it answered and seniority narrows: `matched` is high


async def audience_of(segments: IngestSegments, tenant: TenantConfig, brief: CampaignBrief) -> Audience:
    """Who the brief's segment is: at most `max_contacts` contacts, by id. `SegmentsUnavailable`, `SegmentRefused`."""
    wanted = brief.segment.model_copy(update={"limit": brief.max_contacts})
    if brief.segment.seniorities:  # seniority is read here, from the title: ask the store for as many as it gives
        wanted = brief.segment.model_copy(update={"limit": 5000})
    answer = await segments.matching(tenant, wanted)
    contacts = [c for c in answer.contacts if in_segment(c, brief.segment) and c.email]
    if brief.segment.seniorities:
        matched = len(contacts) if not answer.truncated else answer.matched
        return Audience(matched, contacts[: brief.max_contacts], answer.truncated)
    return Audience(answer.matched, contacts[: brief.max_contacts], False)


def _planned(msg: Inbound) -> tuple[PlanStep, ...]:
    """The LLM's planning steps of a free-text task (none for a defined brief)."""
    body = msg.body
    return body.planned if isinstance(body, CampaignTaskAccepted) else ()


class TaskRunner:
    def __init__(
        self,
        store: TaskStore,
        segments: IngestSegments,
        retrieval: Retrieval,
        tenants: TenantDirectory,
        clock: Callable[[], datetime],
        evidence_k: int = 6,
        max_conflicts: int = 5,
    ) -> None:
        self.store = store
        self.segments = segments
        self.retrieval = retrieval
        self.tenants = tenants
        self.clock = clock
        self.evidence_k = evidence_k
        self.max_conflicts = max_conflicts

    async def on_message(self, msg: Inbound) -> list[Outbound]:
        """herald.plan.v1: a `CampaignTaskAccepted` is carried through; the topic's other types are not for here."""
        body = msg.body
        if not isinstance(body, CampaignTaskAccepted):
            return []
        tenant = self.tenants.get(msg.envelope.tenant)
        if tenant is None:
            raise Rejected(f"unknown tenant {msg.envelope.tenant!r}")
        if body.tenant != tenant.tenant_id:
            raise Rejected(f"task {body.task_id} names tenant {body.tenant!r} under tenant {tenant.tenant_id!r}")
        for _ in range(self.max_conflicts):
            task = await self.store.get(body.task_id)
            if task is None:  # accepted, but its row is gone (or was never written): the message holds the brief
                await self.store.record(
                    task_id=body.task_id,
                    tenant=body.tenant,
                    brief=body.brief,
                    requested_by=body.requested_by,
                    correlation_id=msg.envelope.correlation_id,
                    note="recorded from its message",
                )
                continue
            if task.tenant != tenant.tenant_id:
                raise Rejected(f"task {body.task_id} belongs to another tenant")
            if task.trigger_id == msg.envelope.id and task.outputs is not None:
                log.info("task message read again: its messages published again", task_id=task.task_id)
                return [Outbound.from_stored(s) for s in task.outputs]
            if task.state not in IN_FLIGHT:
                log.info("task already carried; nothing more", task_id=task.task_id, state=task.state)
                return []
            try:
                return await self._carry(task, tenant, msg)
            except TaskConflict:
                continue
        raise TransientError(f"task {body.task_id} kept changing under its steps")

    async def _carry(self, task: Task, tenant: TenantConfig, msg: Inbound) -> list[Outbound]:
        brief = task.brief
        started = time.perf_counter()
        if task.state != "accepted":
            note = f"carried again from the start (an earlier carry stopped at {task.state}; it published nothing)"
            task = await self.store.move(task, step(task.state, "retrieving"), {"note": note})
        else:
            task = await self.store.move(task, step("accepted", "retrieving"), {"note": "search the knowledge base"})
        query = bounded_query(f"{brief.topic} {brief.goal}".strip())
        try:
            evidence = await self.retrieval.search(tenant.tenant_id, query, self.evidence_k)
        except Exception as exc:
            if not is_transient(exc):
                return await self._failed(task, msg, f"the knowledge base refused the search: {reason_of(exc)}")
            raise TransientError(f"retrieval unavailable: {reason_of(exc)}") from exc
        if not evidence:
            return await self._failed(task, msg, f"no passage of the knowledge base is about {brief.topic!r}")
        passages = variant_passages(evidence, brief.variants)
        task = await self.store.move(
            task,
            step("retrieving", "drafting"),
            {"note": f"{len(evidence)} passage(s) for {query!r}", "passages": [e.chunk_id for e in evidence]},
        )
        task = await self.store.move(
            task,
            step("drafting", "selecting"),
            {
                "note": f"{len(passages)} variant(s), each leading with another passage",
                "variants": {name: [e.chunk_id for e in chosen[:3]] for name, chosen in passages.items()},
            },
        )
        try:
            audience = await audience_of(self.segments, tenant, brief)
        except SegmentsUnavailable as exc:
            raise TransientError(str(exc)) from exc
        except SegmentRefused as exc:
            return await self._failed(task, msg, str(exc))
        if not audience.contacts:
            return await self._failed(task, msg, "no contact of the segment can be written to (none, or all opted out)")
        variants = split(brief.campaign_id, audience.contacts, brief.variants)
        outputs, members = self._proposals(task, tenant, msg, evidence, passages, audience.contacts, variants)
        counts: dict[str, int] = {}
        for member in members:
            counts[member.variant] = counts.get(member.variant, 0) + 1
        batch = CampaignTaskProposed(
            task_id=task.task_id,
            campaign_id=brief.campaign_id,
            steps=self._steps(brief, evidence, len(members), counts, _planned(msg)),
            query=query,
            evidence=tuple(evidence[:20]),
            audience=len(members),
            variants=counts,
            actions=tuple(m.action_id for m in members),
            review_reason=review_reason(task.task_id, len(members)),
            proposed_at=self.clock(),
        )
        outputs.append(self._task_message(task, msg, batch))
        note = {"note": f"{len(members)} send(s) proposed as one batch for review", "variants": counts}
        await self.store.finish(
            task,
            step("selecting", "proposed"),
            note,
            trigger_id=msg.envelope.id,
            outputs=[o.to_stored() for o in outputs],
            members=members,
        )
        TASKS.labels("proposed").inc()
        TASK_PROPOSALS.inc(len(members))
        SECONDS_TO_BATCH.observe(max(0.0, (self.clock() - msg.envelope.time).total_seconds()))
        log.info(
            "campaign task proposed",
            task_id=task.task_id,
            campaign_id=brief.campaign_id,
            sends=len(members),
            variants=counts,
            seconds=round(time.perf_counter() - started, 3),
        )
        return outputs

    def _steps(
        self,
        brief: CampaignBrief,
        evidence: list[EvidenceRef],
        sends: int,
        counts: dict[str, int],
        planned: tuple[PlanStep, ...] = (),
    ) -> tuple[PlanStep, ...]:
        """The task's plan, as `herald explain` and reviewers read it."""
        split_words = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        segment = brief.segment.model_dump(mode="json", exclude_defaults=True)
        segment.pop("limit", None)
        return (
            *planned[-14:],  # a free-text task: how the LLM planned the brief
            PlanStep(tool="search_knowledge_base", purpose=f"passages about {brief.topic!r}: {len(evidence)} found"),
            PlanStep(
                tool="draft_variants",
                purpose=f"{len(brief.variants)} variant(s) from the template, every claim quoted from a passage: "
                + "; ".join(f"{name}: {angle}" for name, angle in sorted(brief.variants.items())),
            ),
            PlanStep(
                tool="list_segment",
                purpose=f"{sends} contact(s) of the segment {segment or 'everyone'} from the contact store "
                f"(opted-out excluded), split by contact: {split_words}",
            ),
            PlanStep(
                tool="send_email",
                purpose=f"one email per contact under campaign {brief.campaign_id}, reviewed as one batch",
            ),
        )

    def _proposals(
        self,
        task: Task,
        tenant: TenantConfig,
        msg: Inbound,
        evidence: list[EvidenceRef],
        passages: dict[str, list[EvidenceRef]],
        contacts: list[ContactFacts],
        variants: dict[str, str],
    ) -> tuple[list[Outbound], list[Member]]:
        """Per contact: its plan and its email, in a chain of its own (caused by the task's message), so `herald
        explain` of one send reads that send's story, not the whole batch's."""
        brief = task.brief
        steps = self._steps(brief, evidence, len(contacts), _counts(variants), _planned(msg))
        reason = review_reason(task.task_id, len(contacts))
        outputs: list[Outbound] = []
        members: list[Member] = []
        for contact in contacts:
            assert contact.email is not None
            variant = variants[contact.contact_id]
            addressed = as_addressed(contact)
            draft = campaign_draft(
                addressed,
                passages[variant],
                topic=brief.topic,
                company_name=tenant.name,
                sender=tenant.sender.name,
            )
            quoted = [e for e in passages[variant] if e.chunk_id in set(draft.chunks)]
            action_id = new_id()
            subject = f"contact/{contact.contact_id}"
            plan_env = Envelope(
                source=SOURCE,
                type=PlanCreated.TYPE,
                subject=subject,
                tenant=tenant.tenant_id,
                correlation_id=new_id(),
                causation_id=msg.envelope.id,
                traceparent=child_traceparent(msg.envelope.traceparent),
            )
            plan = PlanCreated(
                workflow_id=task.task_id,
                workflow=WORKFLOW,
                contact_id=contact.contact_id,
                steps=steps,
                planner="template",
                query=bounded_query(f"{brief.topic} {brief.goal}".strip()),
                evidence=tuple(quoted),
            )
            action = ActionProposed(
                action_id=action_id,
                tenant=tenant.tenant_id,
                workflow_id=task.task_id,
                campaign_id=brief.campaign_id,
                tool="send_email",
                input=SendEmailInput(
                    to=contact.email,  # the contact store's address, never the brief's words
                    to_name=recipient_name(addressed),
                    subject=draft.subject,
                    body_text=draft.body_text,
                ),
                contact=contact,
                evidence=tuple(quoted),
                confidence=draft.confidence,
                rationale=rationale(task.task_id, brief, variant, draft.rationale),
                variant=variant,
                drafted_by="template",
                review_reason=reason,
                task_id=task.task_id,
            )
            key = contact_key(tenant.tenant_id, contact.contact_id)
            action_env = plan_env.caused(source=SOURCE, type=ActionProposed.TYPE, subject=subject)
            outputs += [Outbound(PLAN, key, plan_env, plan), Outbound(PROPOSED_ACTION, key, action_env, action)]
            members.append(Member(contact.contact_id, variant, action_id))
        return outputs, members

    def _task_message(self, task: Task, msg: Inbound, body: Any) -> Outbound:
        env = msg.envelope.caused(source=SOURCE, type=body.TYPE, subject=f"task/{task.task_id}")
        return Outbound(PLAN, task_key(task.tenant, task.task_id), env, body)

    async def _failed(self, task: Task, msg: Inbound, reason: str) -> list[Outbound]:
        body = CampaignTaskFailed(task_id=task.task_id, reason=reason[:1000], failed_at=self.clock())
        outputs = [self._task_message(task, msg, body)]
        current: TaskState = task.state
        await self.store.finish(
            task,
            step(current, "failed"),
            {"note": reason[:1000]},
            trigger_id=msg.envelope.id,
            outputs=[o.to_stored() for o in outputs],
            reason=reason[:1000],
        )
        TASKS.labels("failed").inc()
        log.warning("campaign task failed", task_id=task.task_id, reason=reason[:300])
        return outputs


def _counts(variants: dict[str, str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in variants.values():
        counts[name] = counts.get(name, 0) + 1
    return counts
