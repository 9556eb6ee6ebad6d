"""Guard wiring: proposed actions and review decisions in; signed approvals, blocks and review
requests out. The only path to the executor.

Handlers, by topic:
    herald.proposed-action.v1  → on_proposed_action
    herald.review-decision.v1  → on_review_decision
    herald.llm-usage.v1        → on_llm_usage (the daily LLM budget; says when it is spent)
    herald.consent.v1          → the consent feed (suppression list), caught up before every decision
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

import structlog
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Counter

from herald_core.auth.access import Caller, Permission, require
from herald_core.auth.callers import Authenticated, Authenticator, install_auth
from herald_core.auth.services import ServiceKeys
from herald_core.bus import ConsumerWorker, Inbound, Outbound, Rejected, TransactionalProducer, cancel_and_wait
from herald_core.consent import CONSENT_MIGRATIONS, ConsentFeed
from herald_core.contracts import (
    ActionApproved,
    ActionBlocked,
    ActionDeferred,
    ActionEscalated,
    ActionProposed,
    ActionWithdrawn,
    Approval,
    LlmBudgetChanged,
    LlmUsageReported,
    ReviewDecided,
    ReviewDecision,
    ReviewRequested,
    RuleHit,
)
from herald_core.control import KillSwitch, budget_key
from herald_core.db import create_pool, migrate, readiness
from herald_core.envelope import Envelope
from herald_core.grounding import GroundingClient
from herald_core.ids import new_id
from herald_core.observability import add_ops_routes, get_logger
from herald_core.policy import (
    LONGEST_LIMIT_WINDOW,
    BreakerReading,
    Grounding,
    Policy,
    Verdict,
    evaluate,
    limits_for,
    needs_grounding,
)
from herald_core.runtime import ServiceRuntime
from herald_core.signing import KeyRing, VerificationError, verify_decision
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.topics import (
    APPROVED_ACTION,
    CONTROL,
    DECISION,
    LLM_USAGE,
    PROPOSED_ACTION,
    REVIEW,
    REVIEW_DECISION,
    contact_key,
)
from herald_guard.adapters.policies import PolicyBook
from herald_guard.adapters.store import (
    CapRequest,
    Decision,
    Deferral,
    DeferredActions,
    GuardStore,
    erase_contact,
    forget_old_reservations,
    record_delivery_problem,
)
from herald_guard.logic import action_hash
from herald_guard.settings import Settings

SOURCE = "herald/guard"
DECISIONS = Counter("herald_guard_decisions_total", "Guard decisions.", ["decision", "rule", "stage"])
LLM_TOKENS = Counter("herald_guard_llm_tokens_total", "LLM tokens reported, by tenant.", ["tenant"])
SHADOW_DIFFERENCES = Counter(
    "herald_guard_shadow_differences_total",
    "Decisions a tenant's shadow policy would have made otherwise, by live and shadow outcome.",
    ["live", "shadow"],
)
WITHDRAWN = Counter("herald_guard_withdrawn_total", "Actions their workflow withdrew (blocked at any later decision).")
RELEASED = Counter("herald_guard_released_total", "Held actions decided again when their window opened.")
REFUSED_DECISIONS = Counter(
    "herald_guard_refused_review_decisions_total",
    "Review decisions refused because the review service's signature is missing, wrong or expired, by reason.",
    ["reason"],
)
log = get_logger("herald.guard")


@dataclass(frozen=True)
class Circumstances:
    """Everything a decision reads besides the policy and the action."""

    consent_checked_at: datetime
    suppression_reason: str | None
    kill_switch: str | None
    first_send: bool
    breakers: dict[str, BreakerReading] | None
    llm_tokens_today: int | None
    now: datetime


class Guard:
    def __init__(
        self,
        settings: Settings,
        store: GuardStore,
        feed: ConsentFeed,
        tenants: TenantDirectory,
        policies: PolicyBook,
        grounding: GroundingClient,
        kill_switch: KillSwitch,
        deferred: DeferredActions,
        service_keys: ServiceKeys,
    ) -> None:
        self.settings = settings
        self.service_keys = service_keys
        self.store = store
        self.feed = feed
        self.tenants = tenants
        self.policies = policies
        self.grounding = grounding
        self.kill_switch = kill_switch
        self.deferred = deferred
        self.keys = KeyRing(Path(settings.common.keys_dir), settings.signing_key_id)
        self.keys.signer()  # a guard without its key must not start

    async def on_proposed_action(self, msg: Inbound) -> list[Outbound]:
        if isinstance(msg.body, ActionWithdrawn):
            return await self._withdraw(msg, msg.body)
        action = msg.body_as(ActionProposed)
        structlog.contextvars.bind_contextvars(action_id=action.action_id)
        return await self._decide(msg, action, stage="proposal", approved_by="guard")

    async def _withdraw(self, msg: Inbound, withdrawn: ActionWithdrawn) -> list[Outbound]:
        """Record that the workflow no longer wants the action: a review's approval or a window's opening will
        block it. (A withdrawal can only stop an action, so it needs no more proof than its topic's ACL.)"""
        if withdrawn.tenant != msg.envelope.tenant:
            raise Rejected(f"a withdrawal for tenant {withdrawn.tenant} under tenant {msg.envelope.tenant}'s envelope")
        structlog.contextvars.bind_contextvars(action_id=withdrawn.action_id)
        await self.store.withdraw(withdrawn.action_id, withdrawn.tenant, withdrawn.reason)
        WITHDRAWN.inc()
        log.info("action withdrawn by its workflow", reason=withdrawn.reason)
        return []

    async def on_review_decision(self, msg: Inbound) -> list[Outbound]:
        decided = msg.body_as(ReviewDecided)
        action = decided.action
        structlog.contextvars.bind_contextvars(action_id=action.action_id)
        try:  # a decision counts only if the review service signed exactly it, for its authenticated reviewer
            verify_decision(decided, self.service_keys)
        except VerificationError as exc:
            REFUSED_DECISIONS.labels(exc.reason).inc()
            raise Rejected(f"review decision {decided.review_id} refused ({exc.reason}): {exc.detail}") from exc
        escalated = await self.store.find(action.action_id, "proposal")
        # a review decision only counts for an action this guard sent to review, byte for byte
        if escalated is None or escalated.outcome != "escalate" or escalated.review_id != decided.review_id:
            raise Rejected(f"review {decided.review_id} does not match an escalation of action {action.action_id}")
        if escalated.action_hash != action_hash(action):
            raise Rejected("the reviewed action differs from the escalated one")
        if decided.decision is ReviewDecision.REJECTED:
            hit = RuleHit(
                rule="review.rejected",
                outcome="block",
                detail=f"rejected by {decided.reviewer}: {decided.reason or 'no reason given'}",
            )
            verdict = Decision(
                "block", hit.rule, hit.detail, (hit,), None, None, escalated.action_hash, escalated.policy_version
            )
            return await self._record(msg, action, "review", verdict)
        if decided.edit is not None:  # the reviewer's wording, decided under every hard rule like any draft
            try:
                action = decided.edit.apply(action)
            except ValueError as exc:
                raise Rejected(f"review {decided.review_id}: {exc}") from exc
        approvers = "+".join(decided.approvers) if decided.approvers else decided.reviewer
        return await self._decide(msg, action, stage="review", approved_by=f"review:{approvers}")

    async def on_llm_usage(self, msg: Inbound) -> list[Outbound]:
        """Count an LLM call's tokens; the report that takes the tenant past its budget announces it."""
        usage = msg.body_as(LlmUsageReported)
        tenant = self.tenants.get(msg.envelope.tenant)
        if tenant is None:
            raise Rejected(f"unknown tenant {msg.envelope.tenant!r}")
        day = usage.occurred_at.astimezone(UTC).date()
        tokens = usage.input_tokens + usage.output_tokens
        used = await self.store.record_llm_usage(msg.envelope.id, tenant.tenant_id, day, tokens)
        LLM_TOKENS.labels(tenant.tenant_id).inc(tokens)
        budget = self.policies.for_tenant(tenant).document.llm_budget
        if budget is None or used <= budget.tokens_per_day or used - tokens > budget.tokens_per_day:
            return []  # no budget, still within it, or already announced by an earlier report
        spent = LlmBudgetChanged(
            tenant=tenant.tenant_id, day=day, exhausted=True, used_tokens=used, budget_tokens=budget.tokens_per_day
        )
        envelope = msg.envelope.caused(source=SOURCE, type=LlmBudgetChanged.TYPE, subject=f"llm-budget/{day}")
        log.warning("LLM budget spent", used=used, budget=budget.tokens_per_day, day=str(day))
        return [Outbound(CONTROL, budget_key(tenant.tenant_id), envelope, spent)]

    def now(self) -> datetime:
        """The guard's clock (`clock_offset_seconds` moves it, for drills and tests of held actions)."""
        return datetime.now(UTC) + timedelta(seconds=self.settings.clock_offset_seconds)

    async def _decide(
        self, msg: Inbound, action: ActionProposed, *, stage: str, approved_by: str, held_at: str | None = None
    ) -> list[Outbound]:
        """Decide `action` at `stage`; `held_at` is the stage it was deferred at, when this is its release."""
        tenant = self.tenants.get(msg.envelope.tenant)
        if tenant is None:
            raise Rejected(f"unknown tenant {msg.envelope.tenant!r}")
        policy = self.policies.for_tenant(tenant)
        # a withdrawal follows its proposal on the same partition, so only a later decision (after a review, at a
        # window's opening) can find one: the proposal's own decision never looks
        withdrawn = await self.store.withdrawal(action.action_id) if stage != "proposal" else None
        if withdrawn is not None:  # its workflow no longer wants it: nothing else is asked
            hit = RuleHit(rule="workflow.withdrawn", outcome="block", detail=f"withdrawn by its workflow: {withdrawn}")
            verdict = Decision("block", hit.rule, hit.detail, (hit,), None, None, action_hash(action), policy.version)
            return await self._record(msg, action, stage, verdict)
        shadow = self.policies.shadow(tenant.tenant_id)
        seen = await self._circumstances(action, tenant, [p for p in (policy, shadow) if p is not None])
        grounding = await self.grounding.check(action) if needs_grounding(policy) and not seen.kill_switch else None

        def under(candidate: Policy, grounding: Grounding | None) -> Verdict:
            return evaluate(
                candidate,
                action,
                tenant,
                stage=held_at or stage,  # type: ignore[arg-type]
                suppression_reason=seen.suppression_reason,
                grounding=grounding,
                kill_switch=seen.kill_switch,
                now=seen.now,
                campaign_first_send=seen.first_send,
                breakers=seen.breakers,
                llm_tokens_today=seen.llm_tokens_today,
            )

        verdict = under(policy, grounding)
        if shadow is not None:  # tried beside the live policy, never enforced
            if grounding is None and needs_grounding(shadow) and not seen.kill_switch:
                grounding = await self.grounding.check(action)
            tried = under(shadow, grounding)
            if (tried.outcome, tried.rule) != (verdict.outcome, verdict.rule):
                SHADOW_DIFFERENCES.labels(verdict.outcome, tried.outcome).inc()
                await self.store.record_shadow_difference(action.action_id, stage, action.tenant, verdict, tried)
        if verdict.outcome == "defer" and held_at is not None:
            assert verdict.release_at is not None
            await self.deferred.reschedule(action.action_id, held_at, verdict.release_at)  # still closed: wait on
            return []
        decision = Decision(
            verdict.outcome,
            verdict.rule,
            verdict.reason,
            verdict.rules,
            None,
            new_id() if verdict.outcome == "escalate" else None,
            action_hash(action),
            verdict.policy_version,
            verdict.release_at,
        )
        deferral = None
        if verdict.outcome == "defer":
            assert verdict.release_at is not None
            deferral = Deferral(
                action.action_id,
                stage,
                action.tenant,
                verdict.release_at,
                approved_by,
                action.model_dump_json(),
                msg.envelope.model_dump_json(),
            )

        def approve() -> Approval:
            return self.keys.signer().approve(
                action,
                approved_by=approved_by,
                policy_version=verdict.policy_version,
                ttl=timedelta(seconds=self.settings.approval_ttl_seconds),
            )

        caps = [
            CapRequest(
                limit.id, counter, limit.per, limit.max, limit.describe() + (f" ({limit.reason})" * bool(limit.reason))
            )
            for limit, counter in limits_for(policy, tenant, action)
        ]
        return await self._record(msg, action, stage, decision, caps, approve, deferral, seen.consent_checked_at)

    async def _circumstances(
        self, action: ActionProposed, tenant: TenantConfig, policies: list[Policy]
    ) -> Circumstances:
        """What a decision reads besides the policy and the action, gathered once for the live policy and the
        shadow: consent (fresh up to now), the kill switch, the campaign, the breakers' counts, today's LLM tokens."""
        consent_checked_at = await self.feed.caught_up()
        reason = await self.feed.suppression(
            action.tenant, action.contact.contact_id, action.recipient, action.channel.value
        )
        stop = self.kill_switch.engaged(tenant.tenant_id)
        now = self.now()
        breakers = {b.id: b for p in policies for b in p.document.breakers}
        first_send = action.campaign_id is not None and not await self.store.campaign_launched(
            action.tenant, action.campaign_id
        )
        budgeted = action.drafted_by == "llm" and any(p.document.llm_budget for p in policies)
        return Circumstances(
            consent_checked_at=consent_checked_at,
            suppression_reason=reason,
            kill_switch=f"{stop.reason} (set by {stop.set_by}, {stop.scope})" if stop else None,
            first_send=first_send,
            breakers=await self.store.breaker_readings(action.tenant, list(breakers.values()), action.campaign_id, now)
            if breakers
            else None,
            llm_tokens_today=await self.store.llm_tokens(action.tenant, now.date()) if budgeted else None,
            now=now,
        )

    async def release(self, held: Deferral) -> list[Outbound]:
        """Decide a held action again, now that its window has opened (the same rules, under the live policy)."""
        action = ActionProposed.model_validate_json(held.action_json)
        envelope = Envelope.model_validate_json(held.envelope_json)
        key = contact_key(action.tenant, action.contact.contact_id)
        msg = Inbound(PROPOSED_ACTION, -1, -1, key, envelope, action, ())
        structlog.contextvars.bind_contextvars(action_id=action.action_id)
        return await self._decide(msg, action, stage="release", approved_by=held.approved_by, held_at=held.stage)

    async def _record(
        self,
        msg: Inbound,
        action: ActionProposed,
        stage: str,
        decision: Decision,
        caps: list[CapRequest] | None = None,
        approve: Callable[[], Approval | None] = lambda: None,
        deferral: Deferral | None = None,
        consent_checked_at: datetime | None = None,
    ) -> list[Outbound]:
        """Record the decision (or find the one already made for this action and stage) and say it."""
        final = await self.store.record(
            action_id=action.action_id,
            stage=stage,
            tenant=action.tenant,
            contact_id=action.contact.contact_id,
            decision=decision,
            caps=caps or [],
            approve=approve,
            now=self.now(),
            deferral=deferral,
            consent_checked_at=consent_checked_at,
            campaign_id=action.campaign_id,
        )
        DECISIONS.labels(final.outcome, final.rule or "-", stage).inc()
        log.info("decided", decision=final.outcome, rule=final.rule, stage=stage)
        return self._outputs(msg, action, final, stage)

    def _outputs(self, msg: Inbound, action: ActionProposed, decision: Decision, stage: str) -> list[Outbound]:
        key = contact_key(action.tenant, action.contact.contact_id)

        def env(model: type) -> object:
            return msg.envelope.caused(source=SOURCE, type=model.TYPE, subject=f"contact/{action.contact.contact_id}")

        if decision.outcome == "approve":
            assert decision.approval is not None
            body = ActionApproved(
                action=action,
                approval=decision.approval,
                rules=decision.rules,
                stage=stage,  # type: ignore[arg-type]
            )
            return [Outbound(APPROVED_ACTION, key, env(ActionApproved), body)]  # type: ignore[arg-type]
        if decision.outcome == "defer":
            assert decision.release_at is not None
            deferred = ActionDeferred(
                action_id=action.action_id,
                workflow_id=action.workflow_id,
                contact_id=action.contact.contact_id,
                release_at=decision.release_at,
                reason=decision.reason,
                rules=decision.rules,
                stage=stage,  # type: ignore[arg-type]
                policy_version=decision.policy_version,
            )
            return [Outbound(DECISION, key, env(ActionDeferred), deferred)]  # type: ignore[arg-type]
        if decision.outcome == "escalate":
            assert decision.review_id is not None
            request = ReviewRequested(
                review_id=decision.review_id, action=action, reason=decision.reason, rules=decision.rules
            )
            escalated = ActionEscalated(
                action_id=action.action_id,
                workflow_id=action.workflow_id,
                contact_id=action.contact.contact_id,
                review_id=decision.review_id,
                reason=decision.reason,
                rules=decision.rules,
                policy_version=decision.policy_version,
            )
            return [
                Outbound(REVIEW, key, env(ReviewRequested), request),  # type: ignore[arg-type]
                Outbound(DECISION, key, env(ActionEscalated), escalated),  # type: ignore[arg-type]
            ]
        blocked = ActionBlocked(
            action_id=action.action_id,
            workflow_id=action.workflow_id,
            contact_id=action.contact.contact_id,
            rule=decision.rule or "unknown",
            reason=decision.reason,
            rules=decision.rules,
            stage=stage,
            policy_version=decision.policy_version,
        )  # type: ignore[arg-type]
        return [Outbound(DECISION, key, env(ActionBlocked), blocked)]  # type: ignore[arg-type]


class Releaser:
    """Every `interval` seconds, decides again the held actions whose window has opened, and publishes the
    decisions. Rows are leased, so replicas share the work; a release published twice is harmless (the
    decision is recorded once per action and stage, and its approval carries the same nonce). Every ten
    minutes it also drops cap reservations older than any window."""

    def __init__(self, guard: Guard, producer: TransactionalProducer, interval: float) -> None:
        self.guard = guard
        self.producer = producer
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.producer.start()
        self._task = asyncio.create_task(self._run(), name="guard-releaser")

    async def _run(self) -> None:
        swept = 0.0
        while True:
            try:
                if time.monotonic() - swept > 600:
                    swept = time.monotonic()
                    await forget_old_reservations(self.guard.store.pool, self.guard.now(), LONGEST_LIMIT_WINDOW)
                due = await self.guard.deferred.lease_due(self.guard.now())
                for held in due:
                    outputs = await self.guard.release(held)
                    if outputs:
                        await self.producer.publish(outputs)
                        await self.guard.deferred.remove(held.action_id, held.stage)
                        RELEASED.inc()
                        log.info("held action released", action_id=held.action_id, decision=outputs[0].envelope.type)
            except Exception as exc:  # the lease runs out and the next round tries again
                log.warning("release round failed", error=repr(exc)[:300])
            await asyncio.sleep(self.interval)

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.producer.stop()


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn, max_size=settings.concurrency + 4)
    await migrate(pool, "guard", Path(str(files("herald_guard") / "migrations")), CONSENT_MIGRATIONS)
    feed = ConsentFeed(common, pool, "guard", on_erasure=erase_contact, on_withdrawn=record_delivery_problem)
    policies = PolicyBook(common)
    service_keys = ServiceKeys(common.auth.service_keys_dir, "guard", common.auth.service_token_seconds)
    grounding = GroundingClient(settings.retrieval_target, settings.grounding_timeout_seconds, service_keys)
    kill_switch = KillSwitch(common, "guard")
    guard = Guard(
        settings,
        GuardStore(pool),
        feed,
        TenantDirectory(common.tenants_dir),
        policies,
        grounding,
        kill_switch,
        DeferredActions(pool),
        service_keys,
    )
    releaser = Releaser(guard, TransactionalProducer(common, "guard", name="releaser"), settings.release_poll_seconds)
    worker = ConsumerWorker(
        common,
        "guard",
        "decisions",
        {
            PROPOSED_ACTION: guard.on_proposed_action,
            REVIEW_DECISION: guard.on_review_decision,
            LLM_USAGE: guard.on_llm_usage,
        },
        concurrency=settings.concurrency,
    )

    http = FastAPI(title="herald-guard")
    install_auth(http, Authenticator(common.auth, service_keys))

    def may_read(caller: Caller, tenant: str) -> None:
        config = guard.tenants.get(tenant)
        require(caller, tenant, config.access if config else None, Permission.READ)

    checks = {
        "postgres": readiness(pool),
        "consent_feed": feed.ready,
        "policies": policies.ready,
        "kill_switch": kill_switch.ready,
        "consumer": worker.ready,
    }
    add_ops_routes(http, checks)

    @http.get("/v1/policies/{tenant}")
    async def live_policy(tenant: str, *, caller: Authenticated) -> JSONResponse:
        """The policy this replica decides the tenant's actions under, and the publications it refused (to the
        tenant's people)."""
        may_read(caller, tenant)
        config = guard.tenants.get(tenant)
        if config is None:
            return JSONResponse({"error": "unknown_tenant", "detail": f"no tenant {tenant!r}"}, status_code=404)
        policy = policies.for_tenant(config)
        refused = [vars(r) for r in policies.refusals.get(tenant, [])]
        return JSONResponse(
            {
                "tenant": tenant,
                "version": policy.version,
                "published": policies.published(tenant) is not None,
                "sha256": policy.sha256,
                "source": policy.source,
                "refused": refused,
            }
        )

    @http.get("/v1/policies/{tenant}/shadow")
    async def shadow_report(tenant: str, limit: int = 100, *, caller: Authenticated) -> JSONResponse:
        """The tenant's shadow policy, and the latest decisions it would have made otherwise."""
        may_read(caller, tenant)
        shadow = policies.shadow(tenant)
        differences = await guard.store.shadow_differences(tenant, max(1, min(limit, 1000)))
        return JSONResponse(
            {"tenant": tenant, "shadow": shadow.version if shadow else None, "differences": differences}
        )

    runtime = ServiceRuntime("guard", http, settings.ops_host, settings.ops_port)
    runtime.on_start += [feed.start, policies.start, kill_switch.start, worker.start, releaser.start]
    runtime.on_stop += [
        pool.close,
        grounding.close,
        feed.stop,
        policies.stop,
        kill_switch.stop,
        worker.stop,
        releaser.stop,
    ]
    return runtime
