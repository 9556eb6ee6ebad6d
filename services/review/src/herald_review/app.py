"""Review wiring: review requests into a queue; reviewers decide over HTTP; decisions back to the guard.

    herald.review.v1 → on_review                        (queue the request)
    herald.executed.v1 → on_executed                    (queue an execution in doubt, for a person to check)
    GET  /v1/reviews?tenant=&status=&kind=              (the queue)
    GET  /v1/reviews/{review_id}                        (one item, with the action and the rules that sent it here)
    POST /v1/reviews/{review_id}/approve  {reviewer, reason?, edit?: {subject?, body_text?}}
    POST /v1/reviews/{review_id}/reject   {reviewer, reason}
    POST /v1/reviews/{review_id}/resolve  {reviewer, outcome: happened|did_not_happen, reason}   (in doubt)
    POST /v1/kill-switch                  {tenant?, engaged, reason, set_by}   (global without a tenant)
    GET  /v1/explain/{action_id}                        (why: the action's chain, rebuilt from the audit)
    GET  /v1/audit?tenant=&contact_id=&action_id=&rule=&since=&until=&offset=   (the audit index)
    /ui …                                               (the reviewers' web UI, web.py: same decisions, as pages)
Decisions are published as `ReviewDecided` on herald.review-decision.v1; the guard re-checks every
hard rule before it signs anything. What a person found about an execution in doubt is published as
`ExecutionResolved` on herald.executed.v1 (the executor, the planner and the audit learn of it). The
audit sealer (adapters/sealer.py) chains every audit record into herald.audit-sealed.v1.
"""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse
from prometheus_client import Counter

from herald_core.bus import ConsumerWorker, Inbound, Outbound, TransactionalProducer
from herald_core.contracts import (
    ActionExecuted,
    ActionProposed,
    DraftEdit,
    ExecutionResolved,
    ExecutionStatus,
    ReviewDecided,
    ReviewDecision,
    ReviewRequested,
)
from herald_core.control import kill_switch_message
from herald_core.db import create_pool, migrate, readiness
from herald_core.envelope import Envelope, child_traceparent
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_core.topics import EXECUTED, REVIEW, REVIEW_DECISION, contact_key
from herald_review.adapters.audit_index import AuditIndex
from herald_review.adapters.queue import ReviewQueue
from herald_review.adapters.sealer import AuditSealer
from herald_review.explain import explain, render
from herald_review.logic import Approve, KillSwitchRequest, Reject, Resolve
from herald_review.settings import Settings
from herald_review.web import add_web_ui

SOURCE = "herald/review"
DECISIONS = Counter("herald_review_decisions_total", "Reviewer decisions.", ["decision"])
IN_DOUBT = Counter("herald_review_in_doubt_total", "Executions in doubt queued for a person to check.")
log = get_logger("herald.review")


class Review:
    def __init__(self, queue: ReviewQueue, producer: TransactionalProducer) -> None:
        self.queue = queue
        self.producer = producer

    async def on_review(self, msg: Inbound) -> list[Outbound]:
        request = msg.body_as(ReviewRequested)
        await self.queue.add(request, msg.envelope)
        log.info("review queued", review_id=request.review_id, action_id=request.action.action_id)
        return []

    async def on_executed(self, msg: Inbound) -> list[Outbound]:
        if isinstance(msg.body, ActionExecuted) and msg.body.status is ExecutionStatus.IN_DOUBT:
            await self.queue.add_in_doubt(msg.body, msg.envelope)
            IN_DOUBT.inc()
            log.warning("execution in doubt queued for a check", action_id=msg.body.action_id)
        return []

    async def resolve(self, review_id: str, body: Resolve) -> dict[str, Any]:
        existing = await self._existing(review_id)
        async with self.queue.answer(review_id, "in_doubt", body.outcome, body.reviewer, body.reason) as item:
            if item is None:
                detail = f"review {review_id} is a {existing['kind']} item, {existing['status']}"
                raise HTTPException(409, {"error": "not_resolvable", "detail": detail})
            executed = ActionExecuted.model_validate(item["action"])
            resolved = ExecutionResolved(
                review_id=review_id,
                action_id=executed.action_id,
                workflow_id=executed.workflow_id,
                contact_id=executed.contact_id,
                tool=executed.tool,
                outcome=body.outcome,
                reviewer=body.reviewer,
                reason=body.reason,
                summary=executed.summary,
                resolved_at=datetime.now(UTC),
            )
            # the item is resolved only if the executor, the planner and the audit hear of it
            await self.producer.publish([self._outbound(item, resolved)])
        DECISIONS.labels(body.outcome).inc()
        log.info(
            "in-doubt execution resolved",
            review_id=review_id,
            outcome=body.outcome,
            reviewer=body.reviewer,
            tenant=item["tenant"],
            action_id=item["action_id"],
            correlation_id=item["correlation_id"],
        )
        return item

    @staticmethod
    def _outbound(item: dict[str, Any], body: ReviewDecided | ExecutionResolved) -> Outbound:
        """A reviewer's answer as a message in the item's chain (its correlation id, caused by what queued it)."""
        envelope = Envelope(
            source=SOURCE,
            type=body.TYPE,
            subject=f"contact/{item['contact_id']}",
            tenant=item["tenant"],
            correlation_id=item["correlation_id"],
            causation_id=item["request_message_id"],
            traceparent=child_traceparent(item["traceparent"]),
        )
        topic = EXECUTED if isinstance(body, ExecutionResolved) else REVIEW_DECISION
        return Outbound(topic, contact_key(item["tenant"], item["contact_id"]), envelope, body)

    @staticmethod
    def _edit_of(action: ActionProposed, decision: ReviewDecision, edit: DraftEdit | None) -> DraftEdit | None:
        """The reviewer's change, if it changes anything; only an approved email draft can be edited."""
        if edit is None:
            return None
        if decision is not ReviewDecision.APPROVED:
            raise HTTPException(422, {"error": "not_editable", "detail": "only an approval carries an edit"})
        try:
            edited = edit.apply(action)
        except ValueError as exc:
            raise HTTPException(422, {"error": "not_editable", "detail": str(exc)}) from exc
        return edit if edited != action else None

    async def _existing(self, review_id: str) -> dict[str, Any]:
        existing = await self.queue.get(review_id)
        if existing is None:
            raise HTTPException(404, {"error": "unknown_review", "detail": f"no review {review_id!r}"})
        return existing

    async def decide(
        self,
        review_id: str,
        decision: ReviewDecision,
        reviewer: str,
        reason: str | None,
        edit: DraftEdit | None = None,
    ) -> dict[str, Any]:
        existing = await self._existing(review_id)
        if existing["kind"] == "in_doubt":
            detail = "an execution in doubt is not approved or rejected: check the downstream, then resolve it"
            raise HTTPException(409, {"error": "resolve_instead", "detail": detail})
        edit = self._edit_of(ActionProposed.model_validate(existing["action"]), decision, edit)
        status = "approved" if decision is ReviewDecision.APPROVED else "rejected"
        async with self.queue.answer(review_id, "approval", status, reviewer, reason, edit) as item:
            if item is None:
                raise HTTPException(
                    409, {"error": "already_decided", "detail": f"review {review_id} is {existing['status']}"}
                )
            body = ReviewDecided(
                review_id=review_id,
                action=ActionProposed.model_validate(item["action"]),
                edit=edit,
                decision=decision,
                reviewer=reviewer,
                reason=reason,
                decided_at=datetime.now(UTC),
            )
            # the queue row commits only if the decision reached Kafka
            await self.producer.publish([self._outbound(item, body)])
        DECISIONS.labels(status).inc()
        log.info(
            "review decided",
            review_id=review_id,
            decision=status,
            reviewer=reviewer,
            tenant=item["tenant"],
            action_id=item["action_id"],
            correlation_id=item["correlation_id"],
        )
        return item


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn)
    await migrate(pool, "review", Path(str(files("herald_review") / "migrations")))
    producer = TransactionalProducer(common, "review")
    queue = ReviewQueue(pool)
    review = Review(queue, producer)
    worker = ConsumerWorker(common, "review", "queue", {REVIEW: review.on_review, EXECUTED: review.on_executed})
    index = AuditIndex(pool, on_erasure=queue.forget)
    sealer = AuditSealer(common, index)
    http = FastAPI(title="herald-review", description="The reviewers' queue and decisions.")

    @http.get("/v1/reviews")
    async def list_reviews(
        tenant: str | None = None,
        status: str | None = "pending",
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
        task: str | None = None,
    ) -> list[dict[str, Any]]:
        """The queue, oldest first; `task` lists one campaign task's batch."""
        return await review.queue.list(tenant, status, min(max(limit, 1), 1000), kind, max(offset, 0), task)

    @http.get("/v1/reviews/{review_id}")
    async def get_review(review_id: str) -> dict[str, Any]:
        item = await review.queue.get(review_id)
        if item is None:
            raise HTTPException(404, {"error": "unknown_review", "detail": f"no review {review_id!r}"})
        return item

    @http.post("/v1/reviews/{review_id}/approve")
    async def approve(review_id: str, body: Approve) -> dict[str, Any]:
        return await review.decide(review_id, ReviewDecision.APPROVED, body.reviewer, body.reason, body.edit)

    @http.post("/v1/reviews/{review_id}/reject")
    async def reject(review_id: str, body: Reject) -> dict[str, Any]:
        return await review.decide(review_id, ReviewDecision.REJECTED, body.reviewer, body.reason)

    @http.post("/v1/reviews/{review_id}/resolve")
    async def resolve(review_id: str, body: Resolve) -> dict[str, Any]:
        return await review.resolve(review_id, body)

    @http.get("/v1/explain/{action_id}", response_model=None)
    async def explain_action(action_id: str, format: str = "json") -> dict[str, Any] | PlainTextResponse:
        """Why the action was taken, stopped or sent to review: its whole chain, rebuilt from the audit
        (`format=text` for people)."""
        story = explain(await index.chain_of_action(action_id), action_id)
        if story is None:
            raise HTTPException(404, {"error": "unknown_action", "detail": f"no action {action_id!r} in the audit"})
        return PlainTextResponse(render(story) + "\n") if format == "text" else story

    @http.get("/v1/audit")
    async def audit_records(
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
        tenant: str, since: datetime, until: datetime | None = None, limit: int = 10_000
    ) -> list[dict[str, Any]]:
        """A tenant's recorded proposals with the first decision on each (what `herald policy backtest` replays)."""
        return await index.proposals(tenant, since, until, min(max(limit, 1), 100_000))

    @http.post("/v1/kill-switch")
    async def kill_switch(body: KillSwitchRequest) -> dict[str, Any]:
        """Stop (or resume) every action of one tenant, or of all: the guard and the executor follow within a second."""
        out = kill_switch_message(body.tenant, body.engaged, body.reason, body.set_by, SOURCE)
        await producer.publish([out])
        log.warning("kill switch set", scope=body.tenant or "global", engaged=body.engaged, set_by=body.set_by)
        return {"scope": body.tenant or "global", "engaged": body.engaged, "message_id": out.envelope.id}

    add_web_ui(http, review, index, settings.reviewer_headers, settings.ui_page_size)

    async def producer_ok() -> bool:
        return producer.started

    checks = {
        "postgres": readiness(pool),
        "kafka_producer": producer_ok,
        "consumer": worker.ready,
        "audit_sealer": sealer.ready,
    }
    add_ops_routes(http, checks)
    runtime = ServiceRuntime("review", http, settings.http_host, settings.http_port)
    runtime.on_start += [producer.start, worker.start, sealer.start]
    runtime.on_stop += [pool.close, producer.stop, worker.stop, sealer.stop]
    return runtime
