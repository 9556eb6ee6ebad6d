"""One runner for every workflow: it finds the runs an event concerns, asks the pure `advance` what to do,
carries it out (drafting steps, timers) and writes the step by compare-and-set.

Rules the runner keeps for every workflow, so no spec has to:
- **Once per event.** A step is journalled with the id of the event that caused it and the messages it
  published; the same event read again (its Kafka transaction aborted) publishes exactly those again.
- **Compare-and-set.** A step names the version of the run it was decided on; if another lane of the same
  contact moved the run meanwhile, the step is decided again on the run as it now is.
- **Timers fire once.** A `TimerFired` moves its run only while the timer is pending, and the same write
  marks it fired; a timer published twice, or one for a run that has moved on, changes nothing.
- **What the contact did is kept** (`activity`), so a wait checks what already happened before it sleeps.
- **Erasure** forgets every run of the contact, whatever its workflow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog
from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from herald_core.auth.services import ServiceKeys
from herald_core.bus import Inbound, Outbound, Rejected, TransientError
from herald_core.contracts import (
    MESSAGE_TYPES,
    ActionWithdrawn,
    ContactErased,
    Contract,
    EmailReplied,
    LeadQualified,
    ReplyClassified,
    ReplyReceived,
    ReviewDecided,
    SendEmailInput,
    TimerFired,
    WorkflowEnded,
)
from herald_core.envelope import Envelope, child_traceparent
from herald_core.ids import new_id
from herald_core.observability import get_logger
from herald_core.signing import VerificationError, verify_decision
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.topics import PLAN, PROPOSED_ACTION, TOPICS, TopicSpec, contact_key
from herald_planner.adapters.examples import DraftExamples
from herald_planner.adapters.runs import Change, Conflict, NewTimer, WorkflowRuns
from herald_planner.engine.activity import activity_of, company_domain, contact_id_of, domain_of
from herald_planner.engine.ports import Ports
from herald_planner.engine.spec import (
    Advance,
    CancelTimers,
    Context,
    Propose,
    Run,
    StartTimer,
    Withdraw,
    WorkflowSpec,
    advance,
)
from herald_planner.logic import ReviewerExample, as_addressed, segment_of
from herald_planner.templates import generalize

SOURCE = "herald/planner"
TRANSITIONS = Counter("herald_planner_workflow_transitions_total", "Workflow state changes.", ["workflow", "state"])
CONFLICTS = Counter(
    "herald_planner_run_conflicts_total", "Steps decided again because another lane moved the run.", ["workflow"]
)
log = get_logger("herald.planner")

#: contract types the runner handles itself, for every workflow
BUILT_IN: frozenset[type[Contract]] = frozenset({ContactErased, ReviewDecided})


def topics_for(types: frozenset[type[Contract]]) -> tuple[TopicSpec, ...]:
    """The topics that carry any of `types` (the topic table says which types each carries). Compacted topics
    hold the latest state per key (consent), not a stream of events, and are left to the services that follow
    them: the same facts reach the planner on the events topic."""
    names = {kind.TYPE for kind in types}
    return tuple(spec for spec in TOPICS if names & set(spec.message_types) and not spec.compacted)


def subscriptions(specs: Sequence[WorkflowSpec]) -> tuple[TopicSpec, ...]:
    """What a runner of `specs` subscribes to: every topic carrying a type some workflow (or the runner) handles."""
    return topics_for(frozenset(kind for spec in specs for kind in spec.handles) | BUILT_IN)


class Runner:
    def __init__(
        self,
        specs: Sequence[WorkflowSpec],
        runs: WorkflowRuns,
        tenants: TenantDirectory,
        ports_for: Callable[[TenantConfig], Ports],
        clock: Callable[[], datetime],
        default_workflows: Mapping[str, Mapping[str, Any]],
        examples: DraftExamples,
        decision_keys: ServiceKeys,
        max_conflicts: int = 5,
    ) -> None:
        self.decision_keys = decision_keys  # a reviewer's decision teaches only as the review service signed it
        self.examples = examples
        self.specs = {spec.name: spec for spec in specs}
        self.runs = runs
        self.tenants = tenants
        self.ports_for = ports_for
        self.clock = clock
        self.default_workflows = default_workflows
        self.max_conflicts = max_conflicts
        self.activity_types = frozenset(kind for spec in specs for kind in spec.activity)
        self.handled = frozenset(kind for spec in specs for kind in spec.handles) | BUILT_IN
        unknown = [kind for kind in self.handled if MESSAGE_TYPES.get(kind.TYPE) is not kind]
        if unknown:
            raise ValueError(f"not registered contracts: {unknown}")

    @property
    def topics(self) -> tuple[TopicSpec, ...]:
        """What the runner subscribes to: every topic carrying a type some workflow handles."""
        return subscriptions(list(self.specs.values()))

    # ------------------------------------------------------------ which workflows a tenant runs

    def enabled(self, tenant: TenantConfig) -> list[tuple[WorkflowSpec, BaseModel]]:
        """The tenant's workflows with their configuration, validated against each workflow's model."""
        sections = tenant.workflows if tenant.workflows is not None else self.default_workflows
        enabled: list[tuple[WorkflowSpec, BaseModel]] = []
        jobs: dict[str, str] = {}
        for name, section in sections.items():
            spec = self.specs.get(name)
            if spec is None:
                raise Rejected(f"tenant {tenant.tenant_id} runs workflow {name!r}, which this planner does not know")
            if spec.job in jobs:
                raise Rejected(
                    f"tenant {tenant.tenant_id} runs {jobs[spec.job]} and {name}, which do the same job "
                    f"({spec.job}): a lead would be written to twice"
                )
            jobs[spec.job] = name
            try:
                enabled.append((spec, spec.config.model_validate(section or {})))
            except ValidationError as exc:
                raise Rejected(f"tenant {tenant.tenant_id}'s workflows.{name} is invalid: {exc}"[:2000]) from exc
        return enabled

    # ------------------------------------------------------------ the one handler

    async def on_message(self, msg: Inbound) -> list[Outbound]:
        """Every topic the runner reads comes here: the event starts runs, moves runs, or both."""
        body = msg.body
        tenant = self.tenants.get(msg.envelope.tenant)
        if tenant is None:
            raise Rejected(f"unknown tenant {msg.envelope.tenant!r}")
        if isinstance(body, ContactErased):
            forgotten = await self.runs.forget(tenant.tenant_id, body.contact_id)
            log.info("contact erased: workflow runs forgotten", runs=forgotten)
            return []
        if isinstance(body, ReviewDecided):
            try:  # a forged decision must never become an example the drafter follows
                verify_decision(body, self.decision_keys)
            except VerificationError as exc:
                raise Rejected(f"review decision {body.review_id} refused ({exc.reason}): {exc.detail}") from exc
            await self._learn(tenant, body)
            return []
        if type(body) not in self.handled:
            return []  # another type the topic carries (a plan, a run's end): nothing here reads it
        if type(body) in self.activity_types:
            activity = activity_of(msg.envelope, body)
            if activity is not None:
                await self.runs.record_activity(tenant.tenant_id, activity, domain_of(body))
        outputs: list[Outbound] = []
        touched: set[str] = set()
        starters = [(s, c) for s, c in self.enabled(tenant) if type(body) in s.starts] if self._starts(body) else []
        for spec, config in starters:
            published, workflow_id = await self._start(spec, config, tenant, msg)
            outputs += published
            if workflow_id is not None:
                touched.add(workflow_id)
        for workflow_id in await self._runs_for(tenant, body):
            if workflow_id not in touched:
                touched.add(workflow_id)
                outputs += await self._advance(workflow_id, tenant, msg)
        return outputs

    async def _learn(self, tenant: TenantConfig, decided: ReviewDecided) -> None:
        """A reviewer's edit (or reason for a rejection) of a run's email: an example for later drafts of the same
        workflow, step and segment, with the contact's names as placeholders."""
        action = decided.action
        email = action.input
        if not isinstance(email, SendEmailInput) or action.tenant != tenant.tenant_id:
            return
        if decided.edit is None and not decided.reason:
            return  # a plain approval teaches nothing about wording
        found = await self.runs.step_of_action(action.action_id)
        if found is None:
            return  # not an email a run of this planner drafted
        _, workflow, step = found
        if step is None:
            return  # an action of a run made before steps were recorded
        contact, sender = as_addressed(action.contact), tenant.sender.name
        edit = decided.edit
        example = ReviewerExample(
            review_id=decided.review_id,
            reviewer=decided.reviewer,
            decision=decided.decision.value,
            reason=decided.reason,
            original_subject=generalize(email.subject, contact, sender),
            original_body=generalize(email.body_text, contact, sender),
            edited_subject=generalize(edit.subject, contact, sender) if edit and edit.subject else None,
            edited_body=generalize(edit.body_text, contact, sender) if edit and edit.body_text else None,
            decided_at=decided.decided_at,
        )
        await self.examples.record(
            tenant=tenant.tenant_id, workflow=workflow, step=step, segment=segment_of(action.contact), example=example
        )
        log.info("a reviewer's example kept for later drafts", workflow=workflow, step=step, edited=edit is not None)

    def _starts(self, body: Contract) -> bool:
        return any(type(body) in spec.starts for spec in self.specs.values())

    async def _runs_for(self, tenant: TenantConfig, body: Contract) -> list[str]:
        """The runs an event may move: the one it names, or those of its contact (and, for a reply, of the
        contacts at the replying company, whose workflows decide whether a colleague's reply counts)."""
        if isinstance(body, TimerFired):
            return [body.workflow_id]
        if isinstance(body, ReplyClassified | LeadQualified):  # its own run acts on it; the contact's others react
            return [run.workflow_id for run in await self.runs.of_contact(tenant.tenant_id, str(contact_id_of(body)))]
        workflow_id = getattr(body, "workflow_id", None)
        if isinstance(workflow_id, str):
            return [workflow_id]
        action_id = getattr(body, "action_id", None)
        if isinstance(action_id, str):  # a refusal names only the action
            found = await self.runs.run_of_action(action_id)
            return [found] if found is not None else []
        contact_id = contact_id_of(body)
        if contact_id is None:
            return []
        ids = [run.workflow_id for run in await self.runs.of_contact(tenant.tenant_id, contact_id)]
        domain = domain_of(body) if isinstance(body, EmailReplied | ReplyReceived) else None
        if domain is not None:
            ids += [run.workflow_id for run in await self.runs.at_domain(tenant.tenant_id, domain, contact_id)]
        return ids

    # ------------------------------------------------------------ starting and moving runs

    async def _start(
        self, spec: WorkflowSpec, config: BaseModel, tenant: TenantConfig, msg: Inbound
    ) -> tuple[list[Outbound], str | None]:
        contact = getattr(msg.body, "contact", None)
        if contact is None:
            return [], None
        key = spec.run_key(msg.body) if spec.run_key is not None else ""
        for _ in range(self.max_conflicts):
            existing = await self.runs.find(tenant.tenant_id, contact.contact_id, spec.name, key)
            if existing is not None:
                replay = await self.runs.published_for(existing.workflow_id, msg.envelope.id)
                if replay is None:  # the run exists already: the event may move it, as any other event would
                    return [], None
                # the same event again (its transaction was aborted): publish exactly what it published
                return [Outbound.from_stored(s) for s in replay], existing.workflow_id
            now = self.clock()
            run = Run(
                workflow_id=f"wf-{new_id()}",
                workflow=spec.name,
                tenant=tenant.tenant_id,
                contact=contact,
                state="",
                version=0,
                data={},
                config=config.model_dump(mode="json"),
                started_at=now,
                correlation_id=msg.envelope.correlation_id,
                key=key,
            )
            context = Context(now=now, envelope=msg.envelope, config=config, tenant=tenant)
            decided = advance(spec, None, msg.body, context)
            if decided is None:
                return [], None
            try:
                return await self._carry_out(spec, run, decided, msg, context), run.workflow_id
            except Conflict:
                CONFLICTS.labels(spec.name).inc()  # another lane started it first: take that run
        raise TransientError(f"could not start {spec.name}: the contact's runs kept changing")

    async def _advance(self, workflow_id: str, tenant: TenantConfig, msg: Inbound) -> list[Outbound]:
        body = msg.body
        fired = body.timer_id if isinstance(body, TimerFired) else None
        for _ in range(self.max_conflicts):
            run = await self.runs.load(workflow_id)
            if run is None or run.tenant != tenant.tenant_id:
                return []  # erased meanwhile, or not this tenant's: an event cannot move another tenant's run
            replay = await self.runs.published_for(run.workflow_id, msg.envelope.id)
            if replay is not None:
                return [Outbound.from_stored(s) for s in replay]
            spec = self.specs.get(run.workflow)
            if spec is None:
                log.warning("a run of a workflow this planner no longer knows", workflow=run.workflow)
                return []
            if fired is not None and await self.runs.timer_state(fired) != "pending":
                return []  # fired already (this is a second publication of it), or cancelled
            if run.state in spec.terminal:
                if fired is not None:
                    await self.runs.spend_timer(fired)
                return []
            try:
                config = spec.config.model_validate(run.config)
            except ValidationError as exc:
                raise Rejected(f"run {run.workflow_id}'s pinned configuration no longer reads: {exc}"[:2000]) from exc
            history = (
                await self.runs.history(
                    run.tenant, run.contact.contact_id, company_domain(run.contact.email), run.started_at
                )
                if type(body) in spec.reads_history
                else ()
            )
            context = Context(now=self.clock(), envelope=msg.envelope, config=config, tenant=tenant, history=history)
            decided = advance(spec, run, body, context)
            if decided is None:
                if fired is not None:
                    await self.runs.spend_timer(fired)  # it fired into a run that had moved on: never again
                return []
            try:
                return await self._carry_out(spec, run, decided, msg, context, fired_timer=fired)
            except Conflict:
                CONFLICTS.labels(spec.name).inc()
        raise TransientError(f"run {workflow_id} kept changing under its steps")

    def _withdrawn(self, run: Run, action_id: str, reason: str, msg: Inbound, context: Context[Any]) -> Outbound:
        """The withdrawal of one of the run's actions, for the guard, in the run's chain."""
        body = ActionWithdrawn(
            action_id=action_id,
            tenant=run.tenant,
            workflow_id=run.workflow_id,
            contact_id=run.contact.contact_id,
            reason=reason[:500] or "withdrawn",
            withdrawn_at=context.now,
        )
        return Outbound(
            PROPOSED_ACTION, contact_key(run.tenant, run.contact.contact_id), self._in_run(run, msg, body), body
        )

    @staticmethod
    def _in_run(run: Run, msg: Inbound, body: Contract) -> Envelope:
        """An envelope in the run's own chain (its correlation id), caused by the event being handled."""
        return Envelope(
            source=SOURCE,
            type=body.TYPE,
            subject=f"contact/{run.contact.contact_id}",
            tenant=run.tenant,
            correlation_id=run.correlation_id,
            causation_id=msg.envelope.id,
            traceparent=child_traceparent(msg.envelope.traceparent),
        )

    def _ended(
        self,
        spec: WorkflowSpec,
        run: Run,
        decided: Advance,
        msg: Inbound,
        note: Mapping[str, Any],
        context: Context[Any],
        actions: Sequence[str],
    ) -> Outbound:
        """The run's end, on the plan topic in the run's own chain (its correlation id), caused by the event that
        ended it: what `herald explain` reads to say why a sequence stopped."""
        reason = next((str(note[k]) for k in ("exit", "reason", "rule", "outcome") if note.get(k)), decided.state)
        if decided.state == "completed" and "touches_sent" in note:
            reason = f"touches_sent: {note['touches_sent']}"
        proposed = [*run.data.get("actions", []), *actions]
        body = WorkflowEnded(
            workflow_id=run.workflow_id,
            workflow=spec.name,
            contact_id=run.contact.contact_id,
            state=decided.state,
            reason=reason[:500],
            actions=tuple(proposed[-200:]),
            ended_at=context.now,
        )
        return Outbound(PLAN, contact_key(run.tenant, run.contact.contact_id), self._in_run(run, msg, body), body)

    async def _carry_out(
        self,
        spec: WorkflowSpec,
        run: Run,
        decided: Advance,
        msg: Inbound,
        context: Context[Any],
        fired_timer: str | None = None,
    ) -> list[Outbound]:
        """Run the advance's steps, then write the whole step at once (or raise `Conflict`)."""
        data: dict[str, Any] = {**run.data, **decided.data}
        note: dict[str, Any] = {"event": msg.envelope.type, **decided.note}
        contact = run.contact
        own = getattr(msg.body, "contact", None)
        if own is not None and own.contact_id == contact.contact_id:
            contact = own  # the run keeps the contact as its latest event describes it
        outputs: list[Outbound] = []
        actions: list[tuple[str, str | None]] = []
        timers: list[NewTimer] = []
        ending = decided.state in spec.terminal
        cancel = ending
        for command in decided.commands:
            match command:
                case Propose(step=step, args=args):
                    ports = self.ports_for(context.tenant)
                    result = await spec.steps[step](ports, replace(run, data=data, contact=contact), msg.envelope, args)
                    outputs += result.outputs
                    data.update(result.data)
                    note.update(result.note)
                    if result.action_id is not None:
                        actions.append((result.action_id, result.label))
                        data["actions"] = [*data.get("actions", []), result.action_id]
                case StartTimer(name=name, due_at=due_at):
                    timers.append(NewTimer(new_id(), name, due_at))
                    note.setdefault("timers", []).append({"name": name, "due_at": due_at.isoformat()})
                case CancelTimers():
                    cancel = True
                case Withdraw(action_id=action_id, reason=reason):
                    outputs.append(self._withdrawn(run, action_id, reason, msg, context))
                    note["withdrawn"] = action_id
        if ending:
            outputs.append(self._ended(spec, run, decided, msg, note, context, [a for a, _ in actions]))
        await self.runs.commit(
            Change(
                run=run,
                state=decided.state,
                data=data,
                contact=contact,
                trigger_id=msg.envelope.id,
                event_type=msg.envelope.type,
                note=note,
                outputs=[o.to_stored() for o in outputs],
                actions=actions,
                timers=timers,
                cancel_timers=cancel,
                fired_timer=fired_timer,
            )
        )
        TRANSITIONS.labels(spec.name, decided.state).inc()
        if actions:
            structlog.contextvars.bind_contextvars(action_id=actions[-1][0])
        log.info(
            "workflow step",
            workflow=spec.name,
            workflow_id=run.workflow_id,
            from_state=run.state or "(start)",
            to_state=decided.state,
            proposed=len(actions),
            timers=len(timers),
        )
        return outputs
