"""The review service's JSON API: the queue, decisions, explain, the audit and the kill switch.

Every route knows its caller (`herald_core.auth`: a bearer token or a trusted proxy's header; anonymous → 401)
and checks the caller's role for the tenant concerned (403 otherwise): reviewers and approvers read and decide,
admins set the tenant's kill switch; the global kill switch is the platform admins'. `ROUTE_PERMISSIONS` says
which permission each route (of this API and of the web UI) asks, and a test holds every route to it.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from herald_core.auth.access import AccessDenied, Permission
from herald_core.auth.callers import Authenticated
from herald_core.bus import TransactionalProducer
from herald_core.contracts import ReviewDecision
from herald_core.control import kill_switch_message
from herald_core.observability import get_logger
from herald_review.adapters.audit_index import AuditIndex
from herald_review.decisions import SOURCE, Review, readable_story
from herald_review.errors import ReviewError
from herald_review.explain import render
from herald_review.logic import Approve, KillSwitchRequest, Reject, Resolve

log = get_logger("herald.review")

#: (method, path) → the permission the route asks of its caller for the tenant concerned (the global kill switch:
#: the platform admins). A route missing here fails the route table test.
ROUTE_PERMISSIONS: dict[tuple[str, str], Permission] = {
    ("GET", "/v1/reviews"): Permission.READ,
    ("GET", "/v1/reviews/{review_id}"): Permission.READ,
    ("POST", "/v1/reviews/{review_id}/approve"): Permission.DECIDE,
    ("POST", "/v1/reviews/{review_id}/reject"): Permission.DECIDE,
    ("POST", "/v1/reviews/{review_id}/resolve"): Permission.DECIDE,
    ("GET", "/v1/explain/{action_id}"): Permission.READ,
    ("GET", "/v1/audit"): Permission.READ,
    ("GET", "/v1/audit/proposals"): Permission.READ,
    ("POST", "/v1/kill-switch"): Permission.ADMINISTER,
    ("GET", "/ui"): Permission.READ,
    ("GET", "/ui/reviews/{review_id}"): Permission.READ,
    ("POST", "/ui/reviews/{review_id}/approve"): Permission.DECIDE,
    ("POST", "/ui/reviews/{review_id}/reject"): Permission.DECIDE,
    ("POST", "/ui/reviews/{review_id}/resolve"): Permission.DECIDE,
    ("GET", "/ui/explain/{action_id}"): Permission.READ,
    ("GET", "/ui/audit"): Permission.READ,
}


def add_json_api(
    http: FastAPI,
    review: Review,
    index: AuditIndex,
    producer: TransactionalProducer,
    platform_admins: Collection[str],
) -> None:
    """Serve the JSON API on the service's HTTP app."""

    @http.exception_handler(ReviewError)
    async def review_error(request: Request, error: ReviewError) -> JSONResponse:
        del request
        return JSONResponse({"detail": error.as_detail()}, error.status)

    @http.get("/v1/reviews")
    async def list_reviews(
        caller: Authenticated,
        tenant: str | None = None,
        status: str | None = "pending",
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
        task: str | None = None,
    ) -> list[dict[str, Any]]:
        """The queue, oldest first: of `tenant`, else of every tenant the caller may read; `task` lists one
        campaign task's batch."""
        if tenant is not None:
            review.require(caller, tenant, Permission.READ)
        scope = [tenant] if tenant is not None else review.readable_tenants(caller)
        return await review.queue.list(scope, status, min(max(limit, 1), 1000), kind, max(offset, 0), task)

    @http.get("/v1/reviews/{review_id}")
    async def get_review(caller: Authenticated, review_id: str) -> dict[str, Any]:
        return await review.readable_item(caller, review_id)

    @http.post("/v1/reviews/{review_id}/approve")
    async def approve(caller: Authenticated, review_id: str, body: Approve) -> dict[str, Any]:
        return await review.decide(review_id, ReviewDecision.APPROVED, caller, body.reason, body.edit)

    @http.post("/v1/reviews/{review_id}/reject")
    async def reject(caller: Authenticated, review_id: str, body: Reject) -> dict[str, Any]:
        return await review.decide(review_id, ReviewDecision.REJECTED, caller, body.reason)

    @http.post("/v1/reviews/{review_id}/resolve")
    async def resolve(caller: Authenticated, review_id: str, body: Resolve) -> dict[str, Any]:
        return await review.resolve(review_id, caller, body)

    @http.get("/v1/explain/{action_id}", response_model=None)
    async def explain_action(
        caller: Authenticated, action_id: str, format: str = "json"
    ) -> dict[str, Any] | PlainTextResponse:
        """Why the action was taken, stopped or sent to review: its whole chain, rebuilt from the audit
        (`format=text` for people)."""
        story = await readable_story(review, index, caller, action_id)
        if story is None:
            raise ReviewError(404, "unknown_action", f"no action {action_id!r} in the audit")
        return PlainTextResponse(render(story) + "\n") if format == "text" else story

    @http.get("/v1/audit")
    async def audit_records(
        caller: Authenticated,
        tenant: str,
        contact_id: str | None = None,
        action_id: str | None = None,
        rule: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Audit records of a tenant, by contact, action, rule and time (oldest first)."""
        review.require(caller, tenant, Permission.READ)
        return await index.search(
            tenant=tenant,
            contact_id=contact_id,
            action_id=action_id,
            rule=rule,
            since=since,
            until=until,
            limit=min(max(limit, 1), 1000),
            offset=max(offset, 0),
        )

    @http.get("/v1/audit/proposals")
    async def recorded_proposals(
        caller: Authenticated, tenant: str, since: datetime, until: datetime | None = None, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """A tenant's recorded proposals with the first decision on each (what `herald policy backtest` replays)."""
        review.require(caller, tenant, Permission.READ)
        return await index.proposals(tenant, since, until, min(max(limit, 1), 100_000))

    @http.post("/v1/kill-switch")
    async def kill_switch(caller: Authenticated, body: KillSwitchRequest) -> dict[str, Any]:
        """Stop (or resume) every action of one tenant (its admins), or of all (the platform admins): the guard
        and the executor follow within a second."""
        if body.tenant is not None:
            review.require(caller, body.tenant, Permission.ADMINISTER)
        elif not caller.is_one_of(platform_admins):
            raise AccessDenied(403, "forbidden", f"{caller.subject} is not a platform admin: the global switch")
        out = kill_switch_message(body.tenant, body.engaged, body.reason, caller.subject, SOURCE)
        await producer.publish([out])
        log.warning("kill switch set", scope=body.tenant or "global", engaged=body.engaged, set_by=caller.subject)
        return {"scope": body.tenant or "global", "engaged": body.engaged, "message_id": out.envelope.id}
