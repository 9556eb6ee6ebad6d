"""The planner's task API: `POST /v1/tasks` (a campaign task, defined or free-text) and `GET /v1/tasks/<id>`.

A defined brief is validated, its segment asked of the contact store (refused when empty or over its
`max_contacts`), recorded, and published as `CampaignTaskAccepted` on herald.plan.v1 — the consumer carries it
from there (`tasks.carry`). A free-text task needs the LLM planner; without `ANTHROPIC_API_KEY` it is refused with
that reason and nothing is recorded. Bad input gets a 4xx with `{"error", "detail"}` naming the field; the tenant's
`ingest_token_files`, when it names any, are the bearer tokens these endpoints want, as at ingest's edges.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from herald_core.bus import Outbound, TransactionalProducer
from herald_core.contracts import CampaignBrief, CampaignTaskAccepted
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.observability import get_logger
from herald_core.secret_files import SecretFiles
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.text import JsonRefused, read_json
from herald_core.topics import PLAN, task_key
from herald_planner.tasks.carry import SOURCE, TASKS, audience_of
from herald_planner.tasks.segments import IngestSegments, SegmentRefused, SegmentsUnavailable
from herald_planner.tasks.store import TaskStore

log = get_logger("herald.planner.tasks")
NO_LLM = "a free-text task needs the LLM planner (ANTHROPIC_API_KEY is not set); nothing was done"
NOT_YET = (
    "free-text tasks are not planned by this planner yet: give a defined brief (segment, topic, goal, variants); "
    "nothing was done"
)


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
    ) -> None:
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
                if not self.llm_configured():
                    raise Refused(422, "llm_not_configured", NO_LLM)
                raise Refused(501, "open_tasks_not_planned", NOT_YET)
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

    async def _accept(self, tenant: TenantConfig, brief: CampaignBrief, requested_by: str) -> JSONResponse:
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
            task_id=task_id, tenant=tenant.tenant_id, brief=brief, requested_by=requested_by, accepted_at=self.clock()
        )
        env = Envelope.new_chain(source=SOURCE, type=body.TYPE, tenant=tenant.tenant_id, subject=f"task/{task_id}")
        structlog.contextvars.bind_contextvars(correlation_id=env.correlation_id, task_id=task_id)
        await self.store.record(
            task_id=task_id,
            tenant=tenant.tenant_id,
            brief=brief,
            requested_by=requested_by,
            correlation_id=env.correlation_id,
            note=f"accepted: {len(audience.contacts)} contact(s) in the segment",
        )
        try:
            await self.producer.publish([Outbound(PLAN, task_key(tenant.tenant_id, task_id), env, body)])
        except Exception as exc:
            await self.store.forget(task_id)  # never published: nothing of it remains
            raise Refused(
                503, "unavailable", f"the task could not be published now ({exc!r}); nothing was done"
            ) from exc
        TASKS.labels("accepted").inc()
        log.info("campaign task accepted", campaign_id=brief.campaign_id, audience=len(audience.contacts))
        return JSONResponse(
            {
                "task_id": task_id,
                "state": "accepted",
                "campaign_id": brief.campaign_id,
                "audience": len(audience.contacts),
                "variants": sorted(brief.variants),
            },
            status_code=202,
        )

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
