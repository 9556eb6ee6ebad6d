"""Executor wiring: signed approvals in, side effects exactly once, results out.

Handlers, by topic:
    herald.approved-action.v1  → on_approved_action   (the only topic the executor reads for work)
    herald.consent.v1          → the consent feed, caught up before every send (the last check)
    herald.events.v1           → on_event             (engagement with sent emails, for campaign statistics)
    herald.executed.v1         → on_executed          (a person's finding on an execution in doubt settles the ledger)

HTTP: `POST /v1/tools/<tool>` answers read-only tools (fetch_campaign_stats, find_free_slots) without an approval; every
other tool runs only from a signed approval.

Before any side effect, in this order: the signature and expiry (`herald_core.signing`), the
tenant, consent at this moment, then a claim in the idempotency ledger. Anything refused is
published as `ActionRefused` (and so audited); nothing is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import httpx
import structlog
from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from pydantic import BaseModel, Field

from herald_core.auth.callers import Authenticator, authenticated, install_auth
from herald_core.auth.services import ServiceKeys
from herald_core.bus import ConsumerWorker, Inbound, Outbound, TransientError
from herald_core.consent import CONSENT_MIGRATIONS, ConsentFeed
from herald_core.contracts import (
    ActionApproved,
    ActionExecuted,
    ActionRefused,
    ExecutionResolved,
    ExecutionStatus,
    FailureKind,
    FetchCampaignStatsInput,
    FindFreeSlotsInput,
    ToolFailure,
)
from herald_core.control import KillSwitch
from herald_core.db import create_pool, migrate, readiness
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_core.signing import KeyRing, VerificationError
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.tools import TOOLS, ToolInputInvalid, validate_input
from herald_core.topics import APPROVED_ACTION, EVENTS, EXECUTED, contact_key
from herald_executor.adapters.calendar import MeetingTool
from herald_executor.adapters.campaign_stats import CampaignStats
from herald_executor.adapters.crm import ContactTool, CrmTool, HeraldContacts, HeraldCrm, HubSpotCrm
from herald_executor.adapters.images import AssetStore, HostedImages, ImageTool
from herald_executor.adapters.ledger import Ledger, erase_contact
from herald_executor.adapters.smtp import EmailTool, SmtpSender
from herald_executor.execution import Discipline, Outcome, ToolRunner
from herald_executor.logic import LedgerRow, ToolAdapter, ToolError, ledger_verdict
from herald_executor.settings import Settings

SOURCE = "herald/executor"
OUTCOMES = Counter("herald_executor_actions_total", "Approvals handled, by tool and outcome.", ["tool", "outcome"])
log = get_logger("herald.executor")


class ReadToolRequest(BaseModel):
    tenant: str = Field(description="The tenant asking.")
    input: dict[str, Any] = Field(description="The tool's input (its registry model).")


class Executor:
    def __init__(
        self,
        settings: Settings,
        verifier: KeyRing,
        ledger: Ledger,
        feed: ConsentFeed,
        tools: ToolRunner,
        tenants: TenantDirectory,
        kill_switch: KillSwitch,
        stats: CampaignStats,
        meetings: MeetingTool,
    ) -> None:
        self.stats = stats
        self.meetings = meetings
        self.settings = settings
        self.verifier = verifier
        self.ledger = ledger
        self.feed = feed
        self.tools = tools
        self.tenants = tenants
        self.kill_switch = kill_switch

    async def on_approved_action(self, msg: Inbound) -> list[Outbound]:
        approved = msg.body_as(ActionApproved)
        action = approved.action
        structlog.contextvars.bind_contextvars(action_id=action.action_id)
        stop: tuple[str, str] | None = None  # why nothing new may happen now: (ActionRefused reason, detail)
        try:
            self.verifier.verify(approved)
        except VerificationError as exc:
            if exc.reason != "expired":
                return [self._refused(msg, approved, exc.reason, exc.detail)]
            stop = (exc.reason, exc.detail)  # genuine but late: see below whether a crash cut its call off
        if action.tenant != msg.envelope.tenant:
            return [
                self._refused(
                    msg,
                    approved,
                    "tenant_mismatch",
                    f"approval for tenant {action.tenant} arrived as {msg.envelope.tenant}",
                )
            ]
        tenant = self.tenants.get(action.tenant)
        if tenant is None:
            return [self._refused(msg, approved, "tenant_mismatch", f"unknown tenant {action.tenant}")]
        consent_checked_at = await self.feed.caught_up()
        suppressed = await self.feed.suppression(
            action.tenant, action.contact.contact_id, action.recipient, action.channel.value
        )
        if stop is None and suppressed:
            stop = ("consent_withdrawn", f"contact is suppressed: {suppressed}")
        engaged = self.kill_switch.engaged(action.tenant)
        if stop is None and engaged:
            stop = ("kill_switch", f"kill switch on ({engaged.scope}) by {engaged.set_by}: {engaged.reason}")

        if stop is not None:
            # Nothing new may start. But this very record may have been met before (a crash, a transaction that
            # did not commit) and its call started while the approval held: that one is settled with the downstream.
            prior = await self.ledger.of_record(action.action_id, approved.approval.nonce, msg.partition, msg.offset)
            if prior is not None:
                return await self._answer_again(msg, approved, tenant, prior, stop)
            return [self._refused(msg, approved, *stop)]

        if not self.tools.has(action.tool):
            if TOOLS[action.tool].read_only:
                code, why = "read_only_tool", f"a read tool, answered at POST /v1/tools/{action.tool}, not an action"
            else:
                code, why = "tool_not_available", "this executor has no adapter for it"
            unavailable = ToolFailure(
                kind=FailureKind.PERMANENT, code=code, message=f"{action.tool}: {why}; nothing was done"
            )
            return [self._executed(msg, approved, ExecutionStatus.FAILED, {}, unavailable.message, unavailable)]

        existing = await self.ledger.claim(
            action_id=action.action_id,
            tenant=action.tenant,
            contact_id=action.contact.contact_id,
            tool=action.tool,
            nonce=approved.approval.nonce,
            partition=msg.partition,
            offset=msg.offset,
            consent_checked_at=consent_checked_at,
        )
        if existing is not None:
            return await self._answer_again(msg, approved, tenant, existing, None)
        return await self._settle(msg, approved, await self.tools.run(action, tenant))

    async def _answer_again(
        self,
        msg: Inbound,
        approved: ActionApproved,
        tenant: TenantConfig,
        row: LedgerRow,
        stop: tuple[str, str] | None,
    ) -> list[Outbound]:
        """An action the ledger already holds: report what happened, or settle a call a crash cut off."""
        action = approved.action
        verdict = ledger_verdict(row, nonce=approved.approval.nonce, partition=msg.partition, offset=msg.offset)
        if verdict == "replayed":
            return [self._refused(msg, approved, "replayed", "this approval (or its nonce) was already presented")]
        if verdict == "report_sent":
            return [
                self._executed(msg, approved, ExecutionStatus.SUCCEEDED, await self.ledger.result(action.action_id))
            ]
        if verdict == "report_failed":
            failed = ToolFailure(kind=FailureKind.PERMANENT, code="failed_earlier", message="failed earlier")
            return [self._executed(msg, approved, ExecutionStatus.FAILED, {}, "failed earlier", failed)]
        if verdict == "report_in_doubt":
            return [self._in_doubt(msg, approved, await self.ledger.error(action.action_id))]
        # found claimed: the downstream is asked first; it runs only if it did not happen and nothing stops it now
        outcome = await self.tools.resume(action, tenant, may_run=stop is None)
        if outcome.status == "not_started" and stop is not None:
            reason, detail = stop
            detail = f"{detail}; the call a restart cut off had not happened, and it will not now"
            await self.ledger.finish(action, "failed", None, detail)
            return [self._refused(msg, approved, reason, detail)]
        return await self._settle(msg, approved, outcome)

    async def _settle(self, msg: Inbound, approved: ActionApproved, outcome: Outcome) -> list[Outbound]:
        """Record a tool call's outcome in the ledger and report it."""
        action = approved.action
        match outcome.status:
            case "done":
                await self.ledger.finish(action, "sent", outcome.output, None)
                log.info("action done", tool=action.tool)
                return [self._executed(msg, approved, ExecutionStatus.SUCCEEDED, outcome.output or {})]
            case "not_started":
                # nothing happened downstream: release the claim and read the batch again later
                await self.ledger.release(action.action_id)
                raise TransientError(outcome.failure.message if outcome.failure else "not started")
            case "failed":
                assert outcome.failure is not None
                await self.ledger.finish(action, "failed", None, outcome.failure.message)
                return [
                    self._executed(msg, approved, ExecutionStatus.FAILED, {}, outcome.failure.message, outcome.failure)
                ]
        assert outcome.failure is not None
        await self.ledger.finish(action, "in_doubt", None, outcome.failure.message)
        log.warning("action in doubt; not repeated", tool=action.tool)
        return [self._in_doubt(msg, approved, outcome.failure.message)]

    async def on_event(self, msg: Inbound) -> list[Outbound]:
        """herald.events.v1: what happened to Herald's emails, kept for campaign statistics."""
        await self.stats.record_event(msg.envelope.tenant, msg.body)
        return []

    async def on_executed(self, msg: Inbound) -> list[Outbound]:
        """herald.executed.v1: a person's finding about an execution in doubt settles its ledger row."""
        if isinstance(msg.body, ExecutionResolved):
            structlog.contextvars.bind_contextvars(action_id=msg.body.action_id)
            settled = await self.ledger.resolve(msg.body, message_id_domain=self.settings.message_id_domain)
            log.info("execution in doubt resolved", outcome=msg.body.outcome.value, settled=settled)
        return []

    async def read_tool(self, tool: str, request: ReadToolRequest) -> JSONResponse:
        """A read-only tool's answer (no approval: it changes nothing outside Herald)."""
        spec = TOOLS.get(tool)
        if spec is None:
            return JSONResponse({"error": "unknown_tool", "detail": f"no tool named {tool!r}"}, status_code=404)
        if not spec.read_only:
            detail = f"{tool} changes things outside Herald: it runs only as an action the guard signed"
            return JSONResponse({"error": "needs_approval", "detail": detail}, status_code=403)
        tenant = self.tenants.get(request.tenant)
        if tenant is None:
            return JSONResponse({"error": "unknown_tenant", "detail": f"unknown tenant {request.tenant}"}, 404)
        try:
            query = validate_input(tool, request.input)
        except ToolInputInvalid as exc:
            return JSONResponse({"error": "invalid_input", "failure": exc.failure.model_dump(mode="json")}, 422)
        if isinstance(query, FindFreeSlotsInput):
            try:
                output: BaseModel = await self.meetings.find_free_slots(
                    request.tenant, tenant, query, datetime.now(UTC)
                )
            except ToolError as exc:
                status = 503 if exc.kind is FailureKind.RETRYABLE else 502
                return JSONResponse({"error": exc.code, "failure": exc.failure.model_dump(mode="json")}, status)
        else:
            assert isinstance(query, FetchCampaignStatsInput)
            output = await self.stats.fetch(request.tenant, query)
        OUTCOMES.labels(tool, "read").inc()
        return JSONResponse(output.model_dump(mode="json"))

    def _in_doubt(self, msg: Inbound, approved: ActionApproved, why: str) -> Outbound:
        failure = ToolFailure(kind=FailureKind.NEEDS_HUMAN, code="in_doubt", message=why[:2000])
        return self._executed(msg, approved, ExecutionStatus.IN_DOUBT, {}, why, failure)

    def _executed(
        self,
        msg: Inbound,
        approved: ActionApproved,
        status: ExecutionStatus,
        result: dict[str, object],
        error: str | None = None,
        failure: ToolFailure | None = None,
    ) -> Outbound:
        action = approved.action
        OUTCOMES.labels(action.tool, status.value).inc()
        body = ActionExecuted(
            action_id=action.action_id,
            workflow_id=action.workflow_id,
            contact_id=action.contact.contact_id,
            tool=action.tool,
            status=status,
            result=result,
            error=error,
            failure=failure,
            summary=action.describe()[:500],
        )
        env = msg.envelope.caused(source=SOURCE, type=ActionExecuted.TYPE)
        return Outbound(EXECUTED, contact_key(action.tenant, action.contact.contact_id), env, body)

    def _refused(self, msg: Inbound, approved: ActionApproved, reason: str, detail: str) -> Outbound:
        action = approved.action
        OUTCOMES.labels(action.tool, f"refused_{reason}").inc()
        log.warning("approval refused", reason=reason, detail=detail)
        body = ActionRefused(
            action_id=action.action_id, contact_id=action.contact.contact_id, reason=reason, detail=detail
        )  # type: ignore[arg-type]
        env = msg.envelope.caused(source=SOURCE, type=ActionRefused.TYPE)
        return Outbound(EXECUTED, msg.key or contact_key(msg.envelope.tenant, action.contact.contact_id), env, body)


def discipline(settings: Settings) -> dict[str, Discipline]:
    return {
        tool: Discipline(
            timeout_seconds=settings.tool_timeout_seconds.get(tool, 30.0),
            concurrency=settings.tool_concurrency.get(tool, 2),
            attempts=settings.tool_attempts,
            max_backoff_seconds=settings.tool_max_backoff_seconds,
        )
        for tool in TOOLS
    }


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn, max_size=settings.concurrency + 4)
    migrations = Path(str(files("herald_executor") / "migrations"))
    await migrate(pool, "executor", migrations, CONSENT_MIGRATIONS)
    await migrate(pool, "crm", migrations / "crm")  # Herald's own contact store, written by update_crm_record
    hubspot = httpx.AsyncClient(timeout=settings.tool_timeout_seconds.get("update_crm_record", 15.0))
    images_api = httpx.AsyncClient(timeout=settings.tool_timeout_seconds.get("generate_image", 120.0))
    feed = ConsentFeed(common, pool, "executor", on_erasure=erase_contact)
    sender = SmtpSender(settings, pool_size=settings.concurrency)
    kill_switch = KillSwitch(common, "executor")
    meetings = MeetingTool(settings, sender)
    adapters: list[ToolAdapter] = [
        EmailTool(settings, sender),
        ImageTool(AssetStore(settings.assets_dir), HostedImages(images_api)),
        CrmTool(HeraldCrm(pool), crm_api := HubSpotCrm(hubspot)),
        ContactTool(HeraldContacts(pool), crm_api),
        meetings,
    ]
    tools = ToolRunner({a.tool: a for a in adapters}, discipline(settings))
    executor = Executor(
        settings,
        KeyRing(Path(common.keys_dir)),
        Ledger(pool),
        feed,
        tools,
        TenantDirectory(common.tenants_dir),
        kill_switch,
        CampaignStats(pool),
        meetings,
    )
    # small batches: each email is a side effect, and a crash should leave little to reconcile
    worker = ConsumerWorker(
        common,
        "executor",
        "actions",
        {APPROVED_ACTION: executor.on_approved_action},
        max_batch=100,
        concurrency=settings.concurrency,
    )
    # what happened after a send: engagement (campaign statistics) and people's findings on executions in doubt
    events = ConsumerWorker(
        common, "executor", "stats", {EVENTS: executor.on_event, EXECUTED: executor.on_executed}, max_batch=500
    )

    http = FastAPI(title="herald-executor", description="Ops endpoints and the read-only tools.")

    service_keys = ServiceKeys(common.auth.service_keys_dir, "executor", common.auth.service_token_seconds)
    # the read tools answer Herald's planner (and the operator's CLI), nobody else: they read tenants' data
    install_auth(http, Authenticator(common.auth, service_keys, services=("planner", "cli"), people=False))

    @http.post("/v1/tools/{tool}", dependencies=[Depends(authenticated)])
    async def read_tool(tool: str, request: ReadToolRequest) -> JSONResponse:
        with structlog.contextvars.bound_contextvars(tenant=request.tenant, tool=tool):
            return await executor.read_tool(tool, request)

    checks = {
        "postgres": readiness(pool),
        "consent_feed": feed.ready,
        "kill_switch": kill_switch.ready,
        "consumer": worker.ready,
        "events_consumer": events.ready,
    }
    add_ops_routes(http, checks)
    runtime = ServiceRuntime("executor", http, settings.ops_host, settings.ops_port)
    runtime.on_start += [feed.start, kill_switch.start, worker.start, events.start]
    runtime.on_stop += [
        pool.close,
        sender.close,
        hubspot.aclose,
        images_api.aclose,
        meetings.close,
        feed.stop,
        kill_switch.stop,
        worker.stop,
        events.stop,
    ]
    return runtime
