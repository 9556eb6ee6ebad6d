"""Planner wiring: upstream events start workflows; guard decisions and execution results advance them.

Handlers, by topic:
    herald.events.v1    → on_events     (ContactCreated starts `new_lead_first_touch`)
    herald.decision.v1  → on_decision   (blocked / escalated)
    herald.executed.v1  → on_executed   (succeeded / failed / in doubt / refused; a person's check of one in doubt)
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from importlib.resources import files
from pathlib import Path

import structlog
from fastapi import FastAPI
from prometheus_client import Counter

from herald_core.bus import ConsumerWorker, Inbound, Outbound, Rejected, TransientError, is_transient, reason_of
from herald_core.contracts import (
    ActionBlocked,
    ActionDeferred,
    ActionEscalated,
    ActionExecuted,
    ActionProposed,
    ActionRefused,
    ContactCreated,
    ContactErased,
    ContactFacts,
    EvidenceRef,
    ExecutionResolved,
    LlmUsageReported,
    MemoryRef,
    PlanCreated,
    PlanStep,
    SendEmailInput,
)
from herald_core.control import LlmBudgets
from herald_core.db import create_pool, migrate, readiness
from herald_core.ids import new_id
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_core.tenants import FirstTouch, TenantDirectory
from herald_core.tools import TOOLS
from herald_core.topics import DECISION, EVENTS, EXECUTED, LLM_USAGE, PLAN, PROPOSED_ACTION, contact_key, tenant_key
from herald_planner.adapters.llm import DraftingFailed, LlmDrafter, llm_configured
from herald_planner.adapters.retrieval import RetrievalClient
from herald_planner.adapters.runs import WorkflowRuns
from herald_planner.adapters.tools import ReadTools
from herald_planner.logic import (
    WORKFLOW,
    Draft,
    as_addressed,
    memory_query,
    next_state,
    one_line,
    recipient_name,
    retrieval_query,
    template_draft,
)
from herald_planner.settings import Settings

SOURCE = "herald/planner"
WORKFLOWS = Counter("herald_planner_workflow_transitions_total", "Workflow state changes.", ["workflow", "state"])
log = get_logger("herald.planner")


def plan_steps(draft: Draft) -> tuple[PlanStep, ...]:
    """What the plan did and will do: the read tools the LLM consulted (only those it called), then the email."""
    consulted = [
        PlanStep(tool=name, purpose=f"read before drafting, no approval needed: {TOOLS[name].description}")
        for name in dict.fromkeys(draft.consulted)
    ]
    purpose = "first-touch email grounded in retrieved passages"
    if draft.variant is not None:
        purpose += f", variant {draft.variant}"
    return (*consulted, PlanStep(tool="send_email", purpose=purpose))


class Planner:
    def __init__(
        self,
        settings: Settings,
        runs: WorkflowRuns,
        retrieval: RetrievalClient,
        tenants: TenantDirectory,
        llm: LlmDrafter | None,
        budgets: LlmBudgets,
    ) -> None:
        self.settings = settings
        self.runs = runs
        self.retrieval = retrieval
        self.tenants = tenants
        self.llm = llm
        self.budgets = budgets

    async def on_events(self, msg: Inbound) -> list[Outbound]:
        if isinstance(msg.body, ContactErased):
            forgotten = await self.runs.forget(msg.envelope.tenant, msg.body.contact_id)
            log.info("contact erased: workflow runs forgotten", runs=forgotten)
            return []
        if not isinstance(msg.body, ContactCreated):
            return []  # updates and consent changes start nothing here; the guard enforces consent
        contact = msg.body.contact
        tenant = self.tenants.get(msg.envelope.tenant)
        if tenant is None:
            raise Rejected(f"unknown tenant {msg.envelope.tenant!r}")
        run = await self.runs.start(
            workflow_id=f"wf-{new_id()}",
            tenant=tenant.tenant_id,
            contact_id=contact.contact_id,
            workflow=WORKFLOW,
            correlation_id=msg.envelope.correlation_id,
            trigger_id=msg.envelope.id,
        )
        if not run.created:
            if run.trigger_id != msg.envelope.id:
                log.info("workflow already running for this contact; event ignored")
                return []
            if run.outputs is not None:
                # this event was handled, but the transaction carrying the result was aborted: publish it again
                return [Outbound.from_stored(stored) for stored in run.outputs]
        workflow_id = run.workflow_id
        WORKFLOWS.labels(WORKFLOW, "started").inc()
        if contact.email is None:
            await self.runs.set_state(workflow_id, "skipped", note={"reason": "no email address"})
            return []
        query = retrieval_query(contact)
        try:
            evidence, memories = await asyncio.gather(
                self.retrieval.search(tenant.tenant_id, query, self.settings.evidence_k, ["customers", "product"]),
                self.retrieval.recall(
                    tenant.tenant_id, contact.contact_id, memory_query(contact), self.settings.memory_k
                ),
            )
        except Exception as exc:
            if not is_transient(exc):
                raise  # retrieval refused the request itself (INVALID_ARGUMENT …): the event is dead-lettered
            # the run stays `started` with this event as its trigger; the batch is read again later
            raise TransientError(f"retrieval unavailable: {reason_of(exc)}") from exc
        addressed = as_addressed(contact)
        draft, planner_kind = await self._draft(
            tenant.tenant_id, addressed, evidence, memories, tenant.name, tenant.sender.name, tenant.first_touch
        )
        action_id = new_id()
        key = contact_key(tenant.tenant_id, contact.contact_id)
        subject = f"contact/{contact.contact_id}"
        plan = PlanCreated(
            workflow_id=workflow_id,
            workflow=WORKFLOW,
            contact_id=contact.contact_id,
            steps=plan_steps(draft),
            planner=planner_kind,
            query=query,
            evidence=tuple(evidence),
            memories=tuple(memories),
        )
        action = ActionProposed(
            action_id=action_id,
            tenant=tenant.tenant_id,
            workflow_id=workflow_id,
            tool="send_email",
            input=SendEmailInput(
                to=contact.email,
                to_name=recipient_name(addressed),
                subject=one_line(draft.subject, 200) or "Hello",
                body_text=draft.body_text,
            ),
            contact=contact,
            evidence=tuple(evidence),
            confidence=draft.confidence,
            rationale=draft.rationale,
            drafted_by=planner_kind,  # type: ignore[arg-type]
            campaign_id=tenant.first_touch.campaign_id if tenant.first_touch is not None else None,
            variant=draft.variant,
        )
        plan_env = msg.envelope.caused(source=SOURCE, type=PlanCreated.TYPE, subject=subject)
        action_env = plan_env.caused(source=SOURCE, type=ActionProposed.TYPE, subject=subject)
        outputs = [Outbound(PLAN, key, plan_env, plan), Outbound(PROPOSED_ACTION, key, action_env, action)]
        if draft.usage is not None:  # the guard counts it against the tenant's daily LLM budget
            usage_env = plan_env.caused(source=SOURCE, type=LlmUsageReported.TYPE, subject=subject)
            usage = draft.usage.model_copy(update={"workflow_id": workflow_id})
            outputs.append(Outbound(LLM_USAGE, tenant_key(tenant.tenant_id), usage_env, usage))
        await self.runs.set_state(
            workflow_id,
            "proposed",
            action_id=action_id,
            note={
                "planner": planner_kind,
                "evidence": [e.chunk_id for e in evidence],
                "memories": [m.memory_id for m in memories],
            },
            outputs=[o.to_stored() for o in outputs],
        )
        WORKFLOWS.labels(WORKFLOW, "proposed").inc()
        structlog.contextvars.bind_contextvars(action_id=action_id)
        log.info(
            "first touch proposed",
            workflow_id=workflow_id,
            planner=planner_kind,
            evidence=len(evidence),
            memories=len(memories),
        )
        return outputs

    async def _draft(
        self,
        tenant_id: str,
        contact: ContactFacts,
        evidence: list[EvidenceRef],
        memories: list[MemoryRef],
        company_name: str,
        sender: str,
        first_touch: FirstTouch | None = None,
    ) -> tuple[Draft, str]:
        spent = self.budgets.exhausted(tenant_id) if self.llm is not None else None
        if spent is not None:
            log.info("LLM budget for today spent; drafting from the template", used=spent.used_tokens)
        usage: LlmUsageReported | None = None
        if self.llm is not None and spent is None:
            try:
                draft = await self.llm.draft(
                    contact,
                    evidence,
                    memories,
                    company_name=company_name,
                    sender=sender,
                    tenant=tenant_id,
                    first_touch=first_touch,
                )
                return draft, "llm"
            except Exception as exc:
                log.warning("LLM drafting failed; using the template", error=repr(exc)[:300])
                # calls that led to no draft still cost tokens: the daily budget counts them
                usage = exc.usage if isinstance(exc, DraftingFailed) else None
        draft = template_draft(contact, evidence, company_name=company_name, sender=sender, memories=memories)
        return replace(draft, usage=usage), "template"

    async def on_decision(self, msg: Inbound) -> list[Outbound]:
        body = msg.body
        if isinstance(body, ActionBlocked):
            await self._advance(body.workflow_id, "blocked", {"rule": body.rule, "reason": body.reason})
        elif isinstance(body, ActionEscalated):
            await self._advance(body.workflow_id, "escalated", {"review_id": body.review_id, "reason": body.reason})
        elif isinstance(body, ActionDeferred):
            await self._advance(body.workflow_id, "deferred", {"release_at": body.release_at.isoformat()})
        return []

    async def on_executed(self, msg: Inbound) -> list[Outbound]:
        body = msg.body
        if isinstance(body, ActionExecuted):
            await self._advance(body.workflow_id, body.status.value, {"result": body.result, "error": body.error})
        elif isinstance(body, ExecutionResolved):
            note = {"review_id": body.review_id, "reviewer": body.reviewer, "reason": body.reason}
            await self._advance(body.workflow_id, body.outcome.value, note)
        elif isinstance(body, ActionRefused) and body.action_id:
            workflow_id = await self.runs.workflow_of_action(body.action_id)
            if workflow_id is not None:
                await self._advance(workflow_id, "refused", {"reason": body.reason, "detail": body.detail})
        return []

    async def _advance(self, workflow_id: str, event: str, note: dict[str, object]) -> None:
        state = await self.runs.state(workflow_id)
        if state is None:
            return
        new = next_state(state, event)
        if new is None:
            return
        await self.runs.set_state(workflow_id, new, note={"event": event, **note})
        WORKFLOWS.labels(WORKFLOW, new).inc()


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn, max_size=settings.concurrency + 4)
    await migrate(pool, "planner", Path(str(files("herald_planner") / "migrations")))
    retrieval = RetrievalClient(settings.retrieval_target, settings.retrieval_timeout_seconds)
    # read-only tools the LLM may consult while drafting, answered by the executor's read API
    reads = bool(settings.executor_url) and llm_configured()
    read_tools = ReadTools(settings.executor_url, settings.executor_timeout_seconds) if reads else None
    llm = (
        LlmDrafter(settings.anthropic_model, settings.anthropic_max_tokens, read_tools, settings.max_tool_rounds)
        if llm_configured()
        else None
    )
    if llm is None:
        log.info("ANTHROPIC_API_KEY not set: drafting from templates")
    budgets = LlmBudgets(common, "planner")
    planner = Planner(settings, WorkflowRuns(pool), retrieval, TenantDirectory(common.tenants_dir), llm, budgets)
    worker = ConsumerWorker(
        common,
        "planner",
        "workflows",
        {
            EVENTS: planner.on_events,
            DECISION: planner.on_decision,
            EXECUTED: planner.on_executed,
        },
        concurrency=settings.concurrency,
    )

    http = FastAPI(title="herald-planner")
    add_ops_routes(http, {"postgres": readiness(pool), "llm_budgets": budgets.ready, "consumer": worker.ready})
    runtime = ServiceRuntime("planner", http, settings.ops_host, settings.ops_port)
    runtime.on_start += [budgets.start, worker.start]
    runtime.on_stop += [pool.close, retrieval.close, budgets.stop, worker.stop]
    if read_tools is not None:
        runtime.on_stop.append(read_tools.close)
    return runtime
