"""Events for the table-driven workflow tests: one factory per kind of event, each made about a given run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from herald_core.contracts import (
    ActionBlocked,
    ActionDeferred,
    ActionEscalated,
    ActionExecuted,
    ActionRefused,
    ConsentReason,
    ConsentWithdrawn,
    ContactCreated,
    ContactFacts,
    ContactUpdated,
    Contract,
    EmailEngagement,
    EmailReplied,
    EngagementKind,
    ExecutionResolved,
    ExecutionStatus,
    LeadQualified,
    LeadTier,
    MeetingBooked,
    ReplyClassified,
    ReplyIntent,
    ReplyMatch,
    ReplyReceived,
    ResolutionOutcome,
    ScoreFeature,
    TimerFired,
)
from herald_core.envelope import Envelope
from herald_core.tenants import TenantConfig
from herald_planner.engine.spec import Activity, Context, Run, WorkflowSpec, advance

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)  # a Monday
TENANT = TenantConfig.model_validate(
    {
        "tenant_id": "acme",
        "name": "Acme Relay",
        "sender": {"name": "Maya", "address": "maya@acmerelay.example"},
        "unsubscribe_url": "https://acmerelay.example/u",
        "timezone": "America/New_York",
    }
)
CONTACT = ContactFacts(
    contact_id="501",
    email="jordan@northwind.example",
    first_name="Jordan",
    company="Northwind Freight",
    industry="logistics",
    timezone="Europe/Berlin",
)
ACTION = "01ACTION"
OTHER_ACTION = "01EARLIER"
TIMER = "01TIMER"


def run_in(spec: WorkflowSpec, state: str, **data: Any) -> Run:
    return Run(
        workflow_id="wf-1",
        workflow=spec.name,
        tenant="acme",
        contact=CONTACT,
        state=state,
        version=3,
        data={"action_id": ACTION, "touch": 1, "timer": TIMER, **data},
        config={},
        started_at=NOW - timedelta(days=1),
        correlation_id="corr",
    )


def context(
    spec: WorkflowSpec, event: Contract, config: Mapping[str, Any] | None = None, history: tuple[Activity, ...] = ()
) -> Context[Any]:
    envelope = Envelope(source="test", type=event.TYPE, tenant="acme", correlation_id="corr", time=NOW)
    return Context(
        now=NOW, envelope=envelope, config=spec.config.model_validate(config or {}), tenant=TENANT, history=history
    )


def _upstream() -> dict[str, Any]:
    return {"upstream_source": "test", "upstream_event_id": "u1", "occurred_at": NOW}


def _decided(kind: type[Contract], action_id: str = ACTION, **fields: Any) -> Contract:
    return kind.model_validate(
        {"action_id": action_id, "workflow_id": "wf-1", "contact_id": CONTACT.contact_id, "rules": (), **fields}
    )


def executed(status: ExecutionStatus, action_id: str = ACTION) -> ActionExecuted:
    result = {"message_id": f"<{action_id.lower()}@herald.local>"} if status is ExecutionStatus.SUCCEEDED else {}
    return ActionExecuted(
        action_id=action_id,
        workflow_id="wf-1",
        contact_id=CONTACT.contact_id,
        tool="send_email",
        status=status,
        result=result,
    )


def resolved(outcome: ResolutionOutcome) -> ExecutionResolved:
    return ExecutionResolved(
        review_id="r1",
        action_id=ACTION,
        workflow_id="wf-1",
        contact_id=CONTACT.contact_id,
        tool="send_email",
        outcome=outcome,
        reviewer="ann",
        reason="checked the mailbox",
        resolved_at=NOW,
    )


def blocked(rule: str = "consent.opt_out", action_id: str = ACTION) -> Contract:
    return _decided(ActionBlocked, action_id, rule=rule, reason=f"{rule} said no", stage="proposal")


def timer_fired(timer_id: str = TIMER, name: str = "touch_2", due: datetime = NOW) -> TimerFired:
    return TimerFired(
        timer_id=timer_id,
        workflow_id="wf-1",
        workflow="new_lead_sequence",
        contact_id=CONTACT.contact_id,
        name=name,
        due_at=due,
        fired_at=NOW,
    )


def updated(stage: str) -> ContactUpdated:
    return ContactUpdated(
        contact=CONTACT.model_copy(update={"lifecycle_stage": stage}),
        changed_property="lifecyclestage",
        new_value=stage,
        **_upstream(),
    )


REPLY_ID = "<reply.1@mail.northwind.example>"


def classified(intent: str, until: date | None = None, reply_id: str = REPLY_ID) -> ReplyClassified:
    """Reply handling's reading of the contact's reply."""
    return ReplyClassified(
        workflow_id="wf-reply",
        contact_id=CONTACT.contact_id,
        reply_message_id=reply_id,
        intent=ReplyIntent(intent),
        confidence=0.9,
        classifier="rules",
        until=until,
        classified_at=NOW,
    )


def reply(text: str = "Sounds good, tell me more.", *, away_until: date | None = None, **fields: Any) -> ReplyReceived:
    """A reply read at Herald's inbound edge, to the run's email; `away_until`: an out-of-office reply."""
    values: dict[str, Any] = {
        "contact": CONTACT,
        "message_id": REPLY_ID,
        "matched_by": ReplyMatch.IN_REPLY_TO,
        "in_reply_to": f"<{ACTION.lower()}@herald.local>",
        "answers_action_id": ACTION,
        "answers_workflow_id": "wf-1",
        "from_address": CONTACT.email,
        "subject": "Re: hello",
        "text": text,
        "out_of_office": away_until is not None or bool(fields.pop("away", False)),
        "returns_on": away_until,
        "upstream_source": "herald-inbound",
        "upstream_event_id": "<reply.1@mail.northwind.example>",
        "occurred_at": NOW,
    }
    return ReplyReceived.model_validate({**values, **fields})


def qualified(tier: LeadTier, score: int) -> LeadQualified:
    """Lead qualification's score of the run's contact."""
    return LeadQualified(
        workflow_id="wf-qualify",
        contact=CONTACT,
        score=score,
        tier=tier,
        features=(ScoreFeature(name="seniority", seen="'COO' → c_level", points=30),),
        hot_at=70,
        warm_at=40,
        qualified_at=NOW,
    )


#: every kind of event a workflow may be handed, by a name the tables use
EVENTS: dict[str, Callable[[], Contract]] = {
    "created": lambda: ContactCreated(contact=CONTACT, **_upstream()),
    "created:no_email": lambda: ContactCreated(contact=CONTACT.model_copy(update={"email": None}), **_upstream()),
    "escalated": lambda: _decided(ActionEscalated, review_id="r1", reason="VIP"),
    "escalated:other_action": lambda: _decided(ActionEscalated, OTHER_ACTION, review_id="r1", reason="VIP"),
    "deferred": lambda: _decided(
        ActionDeferred, release_at=NOW + timedelta(hours=10), reason="quiet hours", stage="proposal"
    ),
    "blocked": lambda: blocked("consent.opt_out"),
    "blocked:content": lambda: blocked("content.banned_phrases"),
    "blocked:grounding": lambda: blocked("grounding.unsupported"),
    "blocked:review": lambda: blocked("review.rejected"),
    "blocked:cap": lambda: blocked("limits.per_contact"),
    "blocked:other_action": lambda: blocked("consent.opt_out", OTHER_ACTION),
    "succeeded": lambda: executed(ExecutionStatus.SUCCEEDED),
    "succeeded:other_action": lambda: executed(ExecutionStatus.SUCCEEDED, OTHER_ACTION),
    "failed": lambda: executed(ExecutionStatus.FAILED),
    "in_doubt": lambda: executed(ExecutionStatus.IN_DOUBT),
    "refused": lambda: ActionRefused(
        action_id=ACTION, contact_id=CONTACT.contact_id, reason="kill_switch", detail="stopped"
    ),
    "happened": lambda: resolved(ResolutionOutcome.HAPPENED),
    "did_not_happen": lambda: resolved(ResolutionOutcome.DID_NOT_HAPPEN),
    "timer": lambda: timer_fired(),
    "timer:other": lambda: timer_fired("01OLDTIMER", name="touch_3"),
    "replied": lambda: EmailReplied(contact_id=CONTACT.contact_id, subject="Re: hello", **_upstream()),
    "replied:colleague": lambda: EmailReplied(
        contact_id="777", subject="Re: hello", from_address="sam@northwind.example", **_upstream()
    ),
    "reply": lambda: reply(),
    "reply:colleague": lambda: reply(
        "Jordan left, I look after this.",
        contact=CONTACT.model_copy(update={"contact_id": "777", "email": "sam@northwind.example"}),
        from_address="sam@northwind.example",
    ),
    "reply:away": lambda: reply("I am out of the office.", away_until=date(2026, 3, 16)),
    "reply:away_no_date": lambda: reply("I am out of the office.", away=True),
    "classified:not_now": lambda: classified("not_now", date(2026, 4, 1)),
    "classified:not_now_no_day": lambda: classified("not_now"),
    "classified:not_interested": lambda: classified("not_interested"),
    "classified:other_reply": lambda: classified("not_now", date(2026, 4, 1), "<another@mail.example>"),
    "meeting": lambda: MeetingBooked(
        contact_id=CONTACT.contact_id, title="Intro", starts_at=NOW + timedelta(days=2), **_upstream()
    ),
    "unsubscribed": lambda: ConsentWithdrawn(
        contact_id=CONTACT.contact_id, reason=ConsentReason.UNSUBSCRIBE, **_upstream()
    ),
    "bounced": lambda: EmailEngagement(
        contact_id=CONTACT.contact_id,
        kind=EngagementKind.BOUNCED,
        message_id="<x@herald.local>",
        permanent=True,
        **_upstream(),
    ),
    "bounced:soft": lambda: EmailEngagement(
        contact_id=CONTACT.contact_id,
        kind=EngagementKind.BOUNCED,
        message_id="<x@herald.local>",
        permanent=False,
        **_upstream(),
    ),
    "complained": lambda: EmailEngagement(
        contact_id=CONTACT.contact_id, kind=EngagementKind.COMPLAINED, message_id="<x@herald.local>", **_upstream()
    ),
    "opened": lambda: EmailEngagement(
        contact_id=CONTACT.contact_id, kind=EngagementKind.OPENED, message_id="<x@herald.local>", **_upstream()
    ),
    "clicked": lambda: EmailEngagement(
        contact_id=CONTACT.contact_id, kind=EngagementKind.CLICKED, message_id="<x@herald.local>", **_upstream()
    ),
    "qualified:hot": lambda: qualified(LeadTier.HOT, 82),
    "qualified:warm": lambda: qualified(LeadTier.WARM, 55),
    "qualified:cold": lambda: qualified(LeadTier.COLD, 20),
    "became_opportunity": lambda: updated("opportunity"),
    "became_customer": lambda: updated("customer"),
    "updated:title": lambda: updated("lead"),
}


def kinds_named() -> dict[type[Contract], list[str]]:
    """Each contract type and the names of the events of that type."""
    by_kind: dict[type[Contract], list[str]] = {}
    for name, make in EVENTS.items():
        by_kind.setdefault(type(make()), []).append(name)
    return by_kind


def rows_of(table: str) -> dict[tuple[str, str], str | None]:
    """A spec's table as (state, event) → the state it moves to; `-` is None (ignored). The header names the
    states, each line an event (a name of `EVENTS`) and its cell per state."""
    header, *lines = [line.split() for line in table.strip().splitlines()]
    return {
        (state, line[0]): (None if cell == "-" else cell)
        for line in lines
        for state, cell in zip(header[1:], line[1:], strict=True)
    }


def assert_rows_cover(spec: WorkflowSpec, rows: Mapping[tuple[str, str], object]) -> None:
    """Every active state of `spec` has a row for every contract type it handles (a new state or event type
    without one fails)."""
    named = kinds_named()
    for state in spec.active:
        for kind in spec.handles - set(spec.starts):
            assert any((state, name) in rows for name in named[kind]), (state, kind.__name__)


def assert_terminal_states_take_nothing(spec: WorkflowSpec, run_of: Callable[[str], Run]) -> None:
    for state in spec.terminal:
        for name, make in EVENTS.items():
            made = make()
            assert advance(spec, run_of(state), made, context(spec, made)) is None, (state, name)
