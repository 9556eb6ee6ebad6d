"""The review use case: queue what the guard and the executor ask of people; record a person's answer and tell
the guard, the executor and the audit. Both doors (the JSON API in app.py, the web UI in web.py) decide here.

Who answers is the authenticated caller, never a name in a request body; what they may answer follows their
role for the item's tenant. A high-risk item (escalated by one of the tenant's `review.high_risk_rules`) needs
two distinct approvers: the first approval is recorded and the item stays pending; the second, by someone else,
decides it. Every decision is signed by the review service's key before it is published: the guard acts on no
decision it cannot verify.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter

from herald_core.auth.access import Access, Caller, Permission, may, require
from herald_core.auth.services import ServiceKeys
from herald_core.bus import Inbound, Outbound, TransactionalProducer
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
from herald_core.envelope import Envelope, child_traceparent
from herald_core.observability import get_logger
from herald_core.signing import sign_decision
from herald_core.tenants import TenantDirectory
from herald_core.topics import EXECUTED, REVIEW_DECISION, contact_key
from herald_review.adapters.audit_index import AuditIndex
from herald_review.adapters.queue import ReviewQueue
from herald_review.errors import ReviewError, unknown_review
from herald_review.explain import explain
from herald_review.logic import Resolve

SOURCE = "herald/review"
DECISIONS = Counter("herald_review_decisions_total", "Reviewer decisions.", ["decision"])
FIRST_APPROVALS = Counter(
    "herald_review_first_approvals_total", "First approvals of high-risk items (a second approver must follow)."
)
IN_DOUBT = Counter("herald_review_in_doubt_total", "Executions in doubt queued for a person to check.")
log = get_logger("herald.review")


class Review:
    def __init__(
        self,
        queue: ReviewQueue,
        producer: TransactionalProducer,
        tenants: TenantDirectory,
        keys: ServiceKeys,
        decision_ttl: timedelta,
    ) -> None:
        self.queue = queue
        self.producer = producer
        self.tenants = tenants
        self.keys = keys
        self.decision_ttl = decision_ttl

    # ---- who may

    def access_of(self, tenant: str) -> Access | None:
        config = self.tenants.get(tenant)
        return config.access if config is not None else None

    def require(self, caller: Caller, tenant: str, permission: Permission) -> None:
        require(caller, tenant, self.access_of(tenant), permission)

    def readable_tenants(self, caller: Caller) -> list[str]:
        return sorted(t.tenant_id for t in self.tenants.all() if may(caller, t.access, Permission.READ))

    async def readable_item(self, caller: Caller, review_id: str) -> dict[str, Any]:
        item = await self.queue.get(review_id)
        if item is None:
            raise unknown_review(review_id)
        self.require(caller, item["tenant"], Permission.READ)
        return item

    # ---- queueing (consumers)

    async def on_review(self, msg: Inbound) -> list[Outbound]:
        request = msg.body_as(ReviewRequested)
        config = self.tenants.get(msg.envelope.tenant)
        high_risk = set(config.review.high_risk_rules) if config is not None else set()
        escalating = {r.rule for r in request.rules if r.outcome == "escalate"}
        await self.queue.add(request, msg.envelope, approvals_needed=2 if escalating & high_risk else 1)
        log.info("review queued", review_id=request.review_id, action_id=request.action.action_id)
        return []

    async def on_executed(self, msg: Inbound) -> list[Outbound]:
        if isinstance(msg.body, ActionExecuted) and msg.body.status is ExecutionStatus.IN_DOUBT:
            await self.queue.add_in_doubt(msg.body, msg.envelope)
            IN_DOUBT.inc()
            log.warning("execution in doubt queued for a check", action_id=msg.body.action_id)
        return []

    # ---- answers (people)

    async def resolve(self, review_id: str, caller: Caller, body: Resolve) -> dict[str, Any]:
        existing = await self.readable_item(caller, review_id)
        self.require(caller, existing["tenant"], Permission.DECIDE)
        async with self.queue.answer(review_id, "in_doubt", body.outcome, caller.subject, body.reason) as item:
            if item is None:
                detail = f"review {review_id} is a {existing['kind']} item, {existing['status']}"
                raise ReviewError(409, "not_resolvable", detail)
            executed = ActionExecuted.model_validate(item["action"])
            resolved = ExecutionResolved(
                review_id=review_id,
                action_id=executed.action_id,
                workflow_id=executed.workflow_id,
                contact_id=executed.contact_id,
                tool=executed.tool,
                outcome=body.outcome,
                reviewer=caller.subject,
                reason=body.reason,
                summary=executed.summary,
                resolved_at=datetime.now(UTC),
            )
            # the item is resolved only if the executor, the planner and the audit hear of it
            await self.producer.publish([self._outbound(item, resolved)])
        _recorded(body.outcome, caller, item)
        return item

    async def decide(
        self,
        review_id: str,
        decision: ReviewDecision,
        caller: Caller,
        reason: str | None,
        edit: DraftEdit | None = None,
    ) -> dict[str, Any]:
        existing = await self.readable_item(caller, review_id)
        self.require(caller, existing["tenant"], Permission.DECIDE)
        if existing["kind"] == "in_doubt":
            detail = "an execution in doubt is not approved or rejected: check the downstream, then resolve it"
            raise ReviewError(409, "resolve_instead", detail)
        if existing["status"] != "pending":
            raise ReviewError(409, "already_decided", f"review {review_id} is {existing['status']}")
        edit = self._edit_of(ActionProposed.model_validate(existing["action"]), decision, edit)
        approvers: tuple[str, ...] = ()
        if decision is ReviewDecision.APPROVED and existing["approvals_needed"] > 1:
            self.require(caller, existing["tenant"], Permission.DECIDE_HIGH_RISK)
            edit, approvers = self._four_eyes(existing, caller, edit)
            if len(approvers) < existing["approvals_needed"]:
                return await self._first_approval(existing, caller, reason, edit)
        status = "approved" if decision is ReviewDecision.APPROVED else "rejected"
        async with self.queue.answer(
            review_id,
            "approval",
            status,
            caller.subject,
            reason,
            edit,
            prior_approvals=len(approvers) - 1 if approvers else None,
        ) as item:
            if item is None:
                raise ReviewError(409, "already_decided", f"review {review_id} was decided meanwhile")
            body = ReviewDecided(
                review_id=review_id,
                action=ActionProposed.model_validate(item["action"]),
                edit=edit,
                decision=decision,
                reviewer=caller.subject,
                reason=reason,
                decided_at=datetime.now(UTC),
                approvers=approvers if decision is ReviewDecision.APPROVED else (),
            )
            signed = sign_decision(body, self.keys, self.decision_ttl)
            # the queue row commits only if the decision reached Kafka
            await self.producer.publish([self._outbound(item, signed)])
        _recorded(status, caller, item)
        return item

    @staticmethod
    def _four_eyes(
        existing: dict[str, Any], caller: Caller, edit: DraftEdit | None
    ) -> tuple[DraftEdit | None, tuple[str, ...]]:
        """The wording approved and every approver so far with this one; the same person twice, or a second
        approver changing what the first approved, is refused."""
        earlier = tuple(a["reviewer"] for a in existing["approvals"])
        if caller.subject in earlier:
            raise ReviewError(
                409, "second_approver_needed", "you approved this high-risk item already: a second approver must"
            )
        first_edit = DraftEdit.model_validate(existing["edit"]) if existing["edit"] else None
        if earlier and edit is not None and edit != first_edit:
            detail = "the first approver approved other wording: approve it as it is, or reject it"
            raise ReviewError(409, "edit_differs", detail)
        return (edit or first_edit), (*earlier, caller.subject)

    async def _first_approval(
        self, existing: dict[str, Any], caller: Caller, reason: str | None, edit: DraftEdit | None
    ) -> dict[str, Any]:
        item = await self.queue.add_approval(existing["review_id"], caller.subject, reason, edit)
        if item is None:
            raise ReviewError(409, "already_decided", f"review {existing['review_id']} changed meanwhile")
        FIRST_APPROVALS.inc()
        log.info(
            "high-risk item approved once; a second approver must follow",
            review_id=item["review_id"],
            reviewer=caller.subject,
            tenant=item["tenant"],
            action_id=item["action_id"],
            correlation_id=item["correlation_id"],
        )
        return item

    @staticmethod
    def _edit_of(action: ActionProposed, decision: ReviewDecision, edit: DraftEdit | None) -> DraftEdit | None:
        """The reviewer's change, if it changes anything; only an approved email draft can be edited."""
        if edit is None:
            return None
        if decision is not ReviewDecision.APPROVED:
            raise ReviewError(422, "not_editable", "only an approval carries an edit")
        try:
            edited = edit.apply(action)
        except ValueError as exc:
            raise ReviewError(422, "not_editable", str(exc)) from exc
        return edit if edited != action else None

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


async def readable_story(review: Review, index: AuditIndex, caller: Caller, action_id: str) -> dict[str, Any] | None:
    """The explanation of an action, if every tenant its records name is one the caller may read."""
    records = await index.chain_of_action(action_id)
    for tenant in sorted({r["tenant"] for r in records if r.get("action_id") == action_id}):
        review.require(caller, tenant, Permission.READ)
    return explain(records, action_id)


def _recorded(status: str, caller: Caller, item: dict[str, Any]) -> None:
    DECISIONS.labels(status).inc()
    log.info(
        "review decided",
        review_id=item["review_id"],
        decision=status,
        reviewer=caller.subject,
        via=caller.via,
        tenant=item["tenant"],
        action_id=item["action_id"],
        correlation_id=item["correlation_id"],
    )
