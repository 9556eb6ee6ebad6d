"""The planner's task API: `POST /v1/tasks` (a campaign task, defined or free-text) and `GET /v1/tasks/<id>`.

A defined brief is validated, its segment asked of the contact store (refused when empty or over its
`max_contacts`), recorded, and published as `CampaignTaskAccepted` on herald.plan.v1 — the consumer carries it
from there (`tasks.carry`). A free-text task needs the LLM planner; without `ANTHROPIC_API_KEY` it is refused with
that reason and nothing is recorded. Bad input gets a 4xx with `{"error", "detail"}` naming the field; the tenant's
`ingest_token_files`, when it names any, are the bearer tokens these endpoints want, as at ingest's edges.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from herald_core.bus import Outbound, TransactionalProducer
from herald_core.contracts import CampaignBrief, CampaignTaskAccepted, LlmUsageReported, PlanStep, SegmentFilter
from herald_core.control import LlmBudgets
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.observability import get_logger
from herald_core.secret_files import SecretFiles
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.text import JsonRefused, read_json
from herald_core.topics import LLM_USAGE, PLAN, task_key, tenant_key
from herald_planner.adapters.retrieval import RetrievalClient
from herald_planner.adapters.tools import ReadToolError, ReadTools
from herald_planner.tasks.carry import SOURCE, TASKS, audience_of
from herald_planner.tasks.logic import in_segment
from herald_planner.tasks.planning import LlmTaskPlanner, PlanningFailed, Reads
from herald_planner.tasks.segments import IngestSegments, SegmentRefused, SegmentsUnavailable
from herald_planner.tasks.store import TaskStore

log = get_logger("herald.planner.tasks")
NO_LLM = "a free-text task needs the LLM planner (ANTHROPIC_API_KEY is not set); nothing was done"


class TaskRequest(BaseModel):
    """What `POST /v1/tasks` takes."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant: str = Field(min_length=1, max_length=63)
    kind: Literal["defined", "open"] = "defined"
    brief: dict[str, Any] | None = None
    text: str | None = Field(default=None, min_length=3, max_length=2000)
    requested_by: str = Field(default="api", min_length=1, max_length=200)


class Refused(Exception):
    def __init__(self, status: int, error: str, detail: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.status, self.error, self.detail, self.headers = status, error, detail, headers


def _errors(exc: ValidationError, *prefix: str) -> list[dict[str, Any]]:
    return [{"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]} for e in exc.errors()[:20]]


class TaskApi:
    def __init__(
        self,
        tenants: TenantDirectory,
        store: TaskStore,
        segments: IngestSegments,
        producer: TransactionalProducer,
        llm_configured: Callable[[], bool],
        clock: Callable[[], datetime],
        *,
        planner: LlmTaskPlanner | None = None,
        budgets: LlmBudgets | None = None,
        retrieval: RetrievalClient | None = None,
        read_tools: ReadTools | None = None,
    ) -> None:
        self.planner = planner
        self.budgets = budgets
        self.retrieval = retrieval
        self.read_tools = read_tools
        self.tenants = tenants
        self.store = store
        self.segments = segments
        self.producer = producer
        self.llm_configured = llm_configured
        self.clock = clock
        self.token_files = SecretFiles()

    def _authenticate(self, request: Request, tenant: TenantConfig) -> None:
        """The tenant's bearer tokens (`ingest_token_files`), when it names any; compared in constant time."""
        if not tenant.ingest_token_files:
            return
        tokens = []
        for path in tenant.ingest_token_files:
            try:
                tokens.append(self.token_files.read(path))
            except (OSError, UnicodeDecodeError):
                continue
        if not tokens:
            raise Refused(503, "credentials_unavailable", "none of the tenant's token files can be read")
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Refused(
                401, "missing_credentials", "send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
            )
        matches = [hmac.compare_digest(given.strip().encode(), t.encode()) for t in tokens if t]
        if not any(matches):
            raise Refused(403, "bad_credentials", "the token is not one of the tenant's")

    async def submit(self, request: Request) -> JSONResponse:
        try:
            try:
                raw = read_json(await request.body())
            except JsonRefused as exc:
                raise Refused(400, exc.error, exc.detail) from exc
            try:
                asked = TaskRequest.model_validate(raw)
            except ValidationError as exc:
                raise Refused(422, "invalid_request", _errors(exc)) from exc
            tenant = self.tenants.get(asked.tenant)
            if tenant is None:
                raise Refused(404, "unknown_tenant", f"no tenant {asked.tenant!r}")
            structlog.contextvars.bind_contextvars(tenant=tenant.tenant_id)
            self._authenticate(request, tenant)
            if asked.kind == "open":
                if asked.text is None:
                    raise Refused(422, "invalid_request", [{"loc": ["text"], "msg": "a free-text task needs its text"}])
                if not self.llm_configured() or self.planner is None:
                    raise Refused(422, "llm_not_configured", NO_LLM)
                return await self._plan(tenant, asked.text, asked.requested_by)
            if asked.brief is None:
                raise Refused(422, "invalid_request", [{"loc": ["brief"], "msg": "a defined task needs its brief"}])
            try:
                brief = CampaignBrief.model_validate(asked.brief)
            except ValidationError as exc:
                raise Refused(422, "invalid_brief", _errors(exc, "brief")) from exc
            return await self._accept(tenant, brief, asked.requested_by)
        except Refused as refusal:
            TASKS.labels("refused").inc()
            log.info("task refused", error=refusal.error, status=refusal.status)
            return JSONResponse(
                {"error": refusal.error, "detail": refusal.detail}, status_code=refusal.status, headers=refusal.headers
            )

    async def _plan(self, tenant: TenantConfig, text: str, requested_by: str) -> JSONResponse:
        """A free-text task: the LLM plans a defined brief in a bounded number of steps over the read tools; the
        brief is then accepted as any other (its steps kept with it). No brief that holds: refused, nothing done."""
        assert self.planner is not None
        spent = self.budgets.exhausted(tenant.tenant_id) if self.budgets is not None else None
        if spent is not None:
            raise Refused(429, "llm_budget_spent", "the tenant's LLM budget for today is spent; nothing was done")
        reads = Reads(
            search=lambda query: self._search(tenant, query),
            segment=lambda segment: self._segment(tenant, segment),
            stats=lambda campaign: self._stats(tenant, campaign),
        )
        try:
            planned = await self.planner.plan(text, tenant.name, reads)
        except PlanningFailed as exc:
            await self._report(tenant, exc.usage)
            raise Refused(422, "not_planned", f"{exc}; nothing was done") from exc
        except Exception as exc:
            raise Refused(
                503, "llm_unavailable", f"the LLM could not plan it now ({type(exc).__name__}); nothing was done"
            ) from exc
        log.info("free-text task planned", steps=len(planned.steps), campaign_id=planned.brief.campaign_id)
        return await self._accept(
            tenant, planned.brief, requested_by, text=text, planned=planned.steps, usage=planned.usage
        )

    async def _search(self, tenant: TenantConfig, query: str) -> str:
        if self.retrieval is None:
            raise ValueError("no knowledge base to search")
        try:
            found = await self.retrieval.search(tenant.tenant_id, query, 4)
        except Exception as exc:
            raise ValueError(f"the knowledge base could not be searched: {type(exc).__name__}") from exc
        if not found:
            return "no passage"
        return "\n".join(f"[{e.doc_id}] {e.title}: {' '.join(e.quote.split())[:240]}" for e in found)

    async def _segment(self, tenant: TenantConfig, segment: SegmentFilter) -> str:
        try:
            answer = await self.segments.matching(tenant, segment.model_copy(update={"limit": 200}))
        except (SegmentsUnavailable, SegmentRefused) as exc:
            raise ValueError(str(exc)[:300]) from exc
        members = [c for c in answer.contacts if in_segment(c, segment) and c.email]
        shown = "; ".join(f"{c.job_title or 'no title'} at {c.company or 'no company'}" for c in members[:8])
        counted = f"{len(members)}" if not answer.truncated else f"at least {len(members)}"
        return f"{counted} contact(s) can be written to. For example: {shown or 'none'}"

    async def _stats(self, tenant: TenantConfig, campaign_id: str) -> str:
        if self.read_tools is None:
            raise ValueError("campaign statistics are not available here")
        try:
            answer = await self.read_tools.call("fetch_campaign_stats", tenant.tenant_id, {"campaign_id": campaign_id})
        except ReadToolError as exc:
            raise ValueError(exc.reason) from exc
        return json.dumps(answer)[:2000]

    async def _report(self, tenant: TenantConfig, usage: LlmUsageReported | None) -> None:
        """What planning cost, for the tenant's daily budget (also when it gave no brief)."""
        if usage is None:
            return
        env = Envelope.new_chain(source=SOURCE, type=usage.TYPE, tenant=tenant.tenant_id, subject="task/planning")
        try:
            await self.producer.publish([Outbound(LLM_USAGE, tenant_key(tenant.tenant_id), env, usage)])
        except Exception as exc:  # the refusal stands; the usage is logged for the record
            log.warning("LLM usage of a refused task not published", error=repr(exc)[:300], tokens=usage.input_tokens)

    async def _accept(
        self,
        tenant: TenantConfig,
        brief: CampaignBrief,
        requested_by: str,
        *,
        text: str | None = None,
        planned: tuple[PlanStep, ...] = (),
        usage: LlmUsageReported | None = None,
    ) -> JSONResponse:
        try:
            audience = await audience_of(self.segments, tenant, brief)
        except SegmentsUnavailable as exc:
            raise Refused(503, "contact_store_unavailable", f"{exc}; nothing was done, retry") from exc
        except SegmentRefused as exc:
            raise Refused(422, "invalid_segment", exc.detail) from exc
        if audience.matched > brief.max_contacts:
            held = f"more than {audience.matched}" if audience.uncertain else str(audience.matched)
            detail = (
                f"the segment holds {held} contacts, more than the brief's max_contacts ({brief.max_contacts}): "
                "narrow the segment or raise max_contacts (at most 5000); nothing was done"
            )
            raise Refused(422, "too_many_contacts", detail)
        if not audience.contacts:
            raise Refused(422, "empty_segment", "no contact of the segment can be written to (none, or all opted out)")
        task_id = f"task-{new_id()}"
        body = CampaignTaskAccepted(
            task_id=task_id,
            tenant=tenant.tenant_id,
            kind="open" if text is not None else "defined",
            brief=brief,
            text=text,
            planned=planned,
            requested_by=requested_by,
            accepted_at=self.clock(),
        )
        env = Envelope.new_chain(source=SOURCE, type=body.TYPE, tenant=tenant.tenant_id, subject=f"task/{task_id}")
        outbound = [Outbound(PLAN, task_key(tenant.tenant_id, task_id), env, body)]
        if usage is not None:  # in the same transaction: the budget counts what the accepted task cost
            usage_env = env.caused(source=SOURCE, type=usage.TYPE, subject=f"task/{task_id}")
            outbound.append(Outbound(LLM_USAGE, tenant_key(tenant.tenant_id), usage_env, usage))
        structlog.contextvars.bind_contextvars(correlation_id=env.correlation_id, task_id=task_id)
        await self.store.record(
            task_id=task_id,
            tenant=tenant.tenant_id,
            brief=brief,
            requested_by=requested_by,
            correlation_id=env.correlation_id,
            note=f"accepted: {len(audience.contacts)} contact(s) in the segment"
            + (f"; planned by the LLM in {len(planned)} step(s) from the request {text[:200]!r}" if text else ""),
        )
        try:
            await self.producer.publish(outbound)
        except Exception as exc:
            await self.store.forget(task_id)  # never published: nothing of it remains
            raise Refused(
                503, "unavailable", f"the task could not be published now ({exc!r}); nothing was done"
            ) from exc
        TASKS.labels("accepted").inc()
        log.info("campaign task accepted", campaign_id=brief.campaign_id, audience=len(audience.contacts))
        answer: dict[str, Any] = {
            "task_id": task_id,
            "state": "accepted",
            "campaign_id": brief.campaign_id,
            "audience": len(audience.contacts),
            "variants": sorted(brief.variants),
        }
        if text is not None:
            answer |= {"planned": [step.model_dump() for step in planned], "brief": brief.model_dump(mode="json")}
        return JSONResponse(answer, status_code=202)

    async def get(self, request: Request, task_id: str, tenant_id: str) -> JSONResponse:
        try:
            tenant = self.tenants.get(tenant_id)
            if tenant is None:
                raise Refused(404, "unknown_tenant", f"no tenant {tenant_id!r}")
            self._authenticate(request, tenant)
            task = await self.store.get(task_id)
            if task is None or task.tenant != tenant.tenant_id:
                raise Refused(404, "unknown_task", f"no task {task_id!r} of tenant {tenant_id!r}")
        except Refused as refusal:
            return JSONResponse(
                {"error": refusal.error, "detail": refusal.detail}, status_code=refusal.status, headers=refusal.headers
            )
        return JSONResponse(task.summary())


def add_task_routes(http: FastAPI, api: TaskApi) -> None:
    @http.post("/v1/tasks")
    async def submit_task(request: Request) -> JSONResponse:
        with structlog.contextvars.bound_contextvars(endpoint="tasks"):
            return await api.submit(request)

    @http.get("/v1/tasks/{task_id}")
    async def get_task(task_id: str, tenant: str, request: Request) -> JSONResponse:
        with structlog.contextvars.bound_contextvars(endpoint="tasks", tenant=tenant, task_id=task_id):
            return await api.get(request, task_id, tenant)
