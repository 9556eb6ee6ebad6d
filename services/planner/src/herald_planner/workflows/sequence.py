"""Workflow `new_lead_sequence`: follow a new lead up until it answers.

    (start) ──► touching(1) ──► … sent ──► waiting ──(timer)──► touching(2) ──► … ──► touching(last) ──► completed
       │            │                        │
       │            ├─ escalated ─► awaiting_review ─┐        every active state, on the contact's reply (or a
       │            ├─ deferred ──► deferred ────────┤        colleague's, when the tenant opts in), a booked
       │            ├─ in_doubt ──► in_doubt ────────┤        meeting, an opt-out, a hard bounce or complaint, or
       │            │   (a person's check settles it)│        a CRM stage past lead ─────────────────► exited
       │            └─ blocked: content or grounding, or a reviewer's rejection → drafted again with the reason
       │                        (at most `reflection_attempts` times), else skipped or ended per `on_block`
       └──► skipped (no address)

Each touch is an `ActionProposed` through the guard like any other. Waits are in business days in the
contact's time zone (the tenant's when the contact has none), counted from when the touch was sent (a
deferral moves the whole sequence). Touches 2+ go in the thread of touch 1 (In-Reply-To, References).

**Deadline and event race.** When a wait's timer fires, the contact's recorded activity is checked first:
an exit recorded (at Herald's edge) before the deadline wins over the timer, even if the planner reads it
after. An exit recorded after the deadline still ends the sequence before any further touch.

**Out of office.** An automatic reply (`ReplyReceived.out_of_office`) is not an answer: the sequence goes on,
but no touch goes before the contact is back: the next one waits until 09:00 in the contact's zone on the first
business day from the return day the reply gives (no day given: the wait stays as it was).

**Edits while runs are in flight.** A run keeps the configuration it started with (pinned in the run), so
an edit of the tenant's sequence changes only runs started after it; a touch is identified by its number in
the run, and the run moves past a number once: no edit makes a run send a touch twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from herald_core.contracts import (
    ConsentWithdrawn,
    ContactCreated,
    ContactFacts,
    ContactUpdated,
    Contract,
    EmailEngagement,
    EmailReplied,
    LeadQualified,
    LeadTier,
    MeetingBooked,
    ReplyClassified,
    ReplyIntent,
    ReplyReceived,
    TimerFired,
)
from herald_core.envelope import Envelope
from herald_core.tenants import zone_named
from herald_planner.engine.activity import activity_of, company_domain
from herald_planner.engine.calendar import add_business_days
from herald_planner.engine.ports import Ports
from herald_planner.engine.spec import (
    Activity,
    Advance,
    CancelTimers,
    Context,
    Propose,
    Run,
    StartTimer,
    StepResult,
    Transition,
    Withdraw,
    WorkflowSpec,
)
from herald_planner.logic import (
    EarlierTouch,
    touch_query,
)
from herald_planner.workflows.common import OUTCOME_TYPES, draft_and_propose, outcome_note, outcome_of

NAME = "new_lead_sequence"

Stage = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class SequenceConfig(BaseModel):
    """A tenant's `workflows.new_lead_sequence` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    waits_business_days: tuple[Annotated[int, Field(ge=1, le=30)], ...] = Field(
        default=(3, 4),
        max_length=5,
        description="The wait before each touch after the first, in business days: (3, 4) is touch 1, three "
        "business days, touch 2, four more, touch 3 (the last, short one).",
    )
    campaign_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] | None = Field(
        default=None, description="The campaign the touches are counted under (none: the tenant's first_touch one)."
    )
    exit_on_company_reply: bool = Field(
        default=False, description="A reply from anyone at the contact's company domain ends the sequence too."
    )
    exit_lifecycle_stages: tuple[Stage, ...] = Field(
        default=("opportunity", "customer", "evangelist"),
        description="CRM lifecycle stages that end the sequence (a salesperson has the lead now).",
    )
    on_block: Literal["end", "skip"] = Field(
        default="end",
        description="What a touch the guard blocks does (after any redrafts): end the sequence, or skip to the "
        "next touch. A consent block always ends it.",
    )
    start_on: Literal["new_lead", "warm_lead"] = Field(
        default="new_lead",
        description="What starts a sequence: every new lead, or (`warm_lead`, with `lead_qualification`) a lead "
        "qualification scores warm; a tenant that does not run qualification starts one for every new lead.",
    )
    reflection_attempts: int = Field(
        default=2,
        ge=0,
        le=5,
        description="How many times a touch blocked for its content or grounding, or rejected by a reviewer, is "
        "drafted again with the reason before `on_block` applies.",
    )

    @property
    def touches(self) -> int:
        return len(self.waits_business_days) + 1


ACTIVE = ("touching", "awaiting_review", "deferred", "in_doubt", "waiting", "answered")
IN_FLIGHT = ("touching", "awaiting_review", "deferred")
TERMINAL = frozenset({"completed", "exited", "blocked", "failed", "skipped"})
STATES = (*ACTIVE, *sorted(TERMINAL))

#: what the planner keeps of the contact (what a wait checks before it sleeps)
ACTIVITY: frozenset[type[Contract]] = frozenset(
    {EmailReplied, ReplyReceived, MeetingBooked, ConsentWithdrawn, EmailEngagement, ContactUpdated}
)

#: the block rules a redraft can answer (the words were wrong); anything else is about the lead or the limits
REFLECTABLE_PREFIXES = ("content.", "grounding.")
REFLECTABLE_RULES = frozenset({"review.rejected"})


def reflectable(rule: str) -> bool:
    return rule in REFLECTABLE_RULES or rule.startswith(REFLECTABLE_PREFIXES)


# ---------------------------------------------------------------- exits


def exit_reason(run: Run, activity: Activity, config: SequenceConfig) -> str | None:
    """Why this activity ends the sequence, or None. A colleague's activity counts only for a reply, and only
    when the tenant opts in."""
    own = activity.contact_id == run.contact.contact_id
    facts = activity.facts
    if activity.type in (EmailReplied.TYPE, ReplyReceived.TYPE):
        if facts.get("out_of_office"):
            return None  # an autoresponder did not answer: the sequence only waits (`on_activity`)
        if own:
            return "replied"
        domain = company_domain(run.contact.email)
        same_company = domain is not None and facts.get("from_domain") == domain
        return "colleague_replied" if config.exit_on_company_reply and same_company else None
    if not own:
        return None
    if activity.type == MeetingBooked.TYPE:
        return "meeting_booked"
    if activity.type == ConsentWithdrawn.TYPE:
        return f"opted_out ({facts.get('reason')})"
    if activity.type == EmailEngagement.TYPE:
        if facts.get("kind") == "complained":
            return "complained"
        if facts.get("kind") == "bounced" and facts.get("permanent"):
            return "hard_bounce"
        return None
    if activity.type == ContactUpdated.TYPE:
        stage = (facts.get("lifecycle_stage") or "").lower()
        return f"became_{stage}" if stage in config.exit_lifecycle_stages else None
    return None


def _exit(reason: str, **note: Any) -> Advance:
    return Advance("exited", data={"exit": reason}, note={"exit": reason, **note})


def on_activity(run: Run, event: Contract, context: Context[SequenceConfig]) -> Advance | None:
    """An event of the contact (or a colleague) in any active state: an exit ends the run; a CRM change that
    is not one keeps the run where it is, with the contact as it now is."""
    activity = activity_of(context.envelope, event)
    if activity is None:
        return None
    reason = exit_reason(run, activity, context.config)
    if reason is not None:
        ended = _answered(run, event, context) if reason == "replied" else None
        ended = ended or _exit(reason)
        in_flight = run.data.get("action_id") if run.state in IN_FLIGHT else None
        if isinstance(in_flight, str):  # a touch waiting for a review or a window: the guard is told to drop it
            commands = (*ended.commands, Withdraw(in_flight, reason))
            return Advance(ended.state, commands, data=ended.data, note=ended.note)
        return ended
    if isinstance(event, ContactUpdated) and event.contact.contact_id == run.contact.contact_id:
        return Advance(run.state, note={"contact_updated": event.changed_property})
    if isinstance(event, ReplyReceived) and event.out_of_office and activity.contact_id == run.contact.contact_id:
        return _away(run, event, context)
    return None


# ---------------------------------------------------------------- a reply that reply handling reads


def hands_replies_over(context: Context[SequenceConfig]) -> bool:
    """Whether the tenant runs `reply_handling`, which reads each reply and says what it means."""
    return "reply_handling" in (context.tenant.workflows or {})


def _answered(run: Run, event: Contract, context: Context[SequenceConfig]) -> Advance | None:
    """The contact answered, and reply handling reads what it means: no touch goes meanwhile; its reading ends
    the sequence, or (a "not now" with a day) sets it waiting until then. None: the reply simply ends it."""
    if not isinstance(event, ReplyReceived) or not hands_replies_over(context):
        return None
    if run.state == "answered":
        resume = int(run.data.get("resume_touch", 0))
    elif run.state == "waiting":
        resume = int(run.data.get("waiting_for", 0))
    else:  # a touch in flight (withdrawn) is sent again on resuming; one in doubt counts as sent
        resume = int(run.data.get("touch", 1)) + (1 if run.state == "in_doubt" else 0)
    return Advance(
        "answered",
        (CancelTimers(),),
        data={"answered_by": event.message_id, "resume_touch": resume},
        note={"replied": "reply handling reads it", "reply": event.message_id},
    )


def on_reading(run: Run, event: ReplyClassified, context: Context[SequenceConfig]) -> Advance | None:
    """What reply handling read the contact's answer to mean: a "not now" with a day waits until then, resuming
    at the touch the answer interrupted; anything else ends the sequence."""
    if event.reply_message_id != run.data.get("answered_by"):
        return None  # a reading of another reply
    note = {"intent": event.intent.value, "confidence": event.confidence}
    if event.intent is not ReplyIntent.NOT_NOW or event.until is None:
        return _exit(f"replied ({event.intent.value})", **note)
    touch = int(run.data.get("resume_touch", 1))
    if touch > context.config.touches:
        return Advance("completed", note={**note, "touches_sent": len(run.data.get("sent", []))})
    due = max(back_at(event.until, run, context), context.now)
    return Advance(
        "waiting",
        (StartTimer(f"touch_{touch}", due),),
        data={"waiting_for": touch, "due_at": due.isoformat()},
        note={**note, "not_before": event.until.isoformat(), "resumes_at": due.isoformat()},
    )


def back_at(returns_on: date, run: Run, context: Context[SequenceConfig]) -> datetime:
    """09:00 in the contact's zone (else the tenant's) on the first business day from `returns_on`."""
    zone = zone_named(run.contact.timezone) or zone_named(context.tenant.timezone) or UTC
    day = datetime.combine(returns_on, time(9, 0), tzinfo=zone)
    if day.weekday() >= 5:
        return add_business_days(day, 1, run.contact.timezone, context.tenant.timezone)
    return day.astimezone(UTC)


def _away(run: Run, event: ReplyReceived, context: Context[SequenceConfig]) -> Advance:
    """The contact is out of office: no touch before it is back. A wait that would end sooner is moved; a touch
    in flight keeps going, and the wait after it ends no sooner than the contact's return."""
    if event.returns_on is None:
        return Advance(run.state, note={"out_of_office": True, "returns_on": None})
    back = max(back_at(event.returns_on, run, context), context.now)
    note = {"out_of_office": True, "returns_on": event.returns_on.isoformat(), "back_at": back.isoformat()}
    data = {"back_at": back.isoformat()}
    if run.state != "waiting":
        return Advance(run.state, data=data, note=note)
    due = _moment(run.data.get("due_at")) or back
    if back <= due:
        return Advance(run.state, data=data, note={**note, "wait_unchanged": due.isoformat()})
    name = f"touch_{int(run.data.get('waiting_for', 0))}"
    return Advance(
        "waiting", (CancelTimers(), StartTimer(name, back)), data={**data, "due_at": back.isoformat()}, note=note
    )


def _moment(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


# ---------------------------------------------------------------- the touches


def waits_for_qualification(context: Context[SequenceConfig]) -> bool:
    """Whether a sequence starts only for warm leads: configured so, and the tenant runs `lead_qualification`."""
    return context.config.start_on == "warm_lead" and "lead_qualification" in (context.tenant.workflows or {})


def _first_touch(contact: ContactFacts, context: Context[SequenceConfig], note: Mapping[str, Any]) -> Advance:
    if contact.email is None:
        return Advance("skipped", note={**note, "reason": "no email address"})
    return Advance(
        "touching",
        (Propose("touch", {"touch": 1}),),
        data={"touch": 1, "attempt": 1, "touches": context.config.touches, "sent": []},
        note=note,
    )


def on_new_lead(event: ContactCreated, context: Context[SequenceConfig]) -> Advance | None:
    if waits_for_qualification(context):
        return None  # qualification decides: a warm lead's `LeadQualified` starts it
    return _first_touch(event.contact, context, {})


def on_warm_lead(event: LeadQualified, context: Context[SequenceConfig]) -> Advance | None:
    if not waits_for_qualification(context) or event.tier is not LeadTier.WARM:
        return None
    return _first_touch(event.contact, context, {"qualified": f"warm (score {event.score})"})


def on_qualified(run: Run, event: LeadQualified, context: Context[SequenceConfig]) -> Advance | None:
    """The lead went hot: a person takes it from here, and no further touch goes (one in flight is withdrawn)."""
    if event.contact.contact_id != run.contact.contact_id or event.tier is not LeadTier.HOT:
        return None
    reason = f"hot_lead (score {event.score}): handed to a person"
    in_flight = run.data.get("action_id") if run.state in IN_FLIGHT else None
    commands = (Withdraw(in_flight, reason),) if isinstance(in_flight, str) else ()
    return Advance("exited", commands, data={"exit": "hot_lead"}, note={"exit": reason})


def _wait_for(run: Run, context: Context[SequenceConfig], after_touch: int) -> Advance:
    """Touch `after_touch` is done (sent or skipped): wait for the next, or finish."""
    config = context.config
    if after_touch >= config.touches:
        return Advance("completed", note={"touches_sent": len(run.data.get("sent", []))})
    days = config.waits_business_days[after_touch - 1]
    due = add_business_days(context.now, days, run.contact.timezone, context.tenant.timezone)
    note: dict[str, Any] = {"wait_business_days": days, "zone": run.contact.timezone or context.tenant.timezone}
    back = _moment(run.data.get("back_at"))
    if back is not None and back > due:  # the contact said it is away until then
        due, note["until_back"] = back, back.isoformat()
    name = f"touch_{after_touch + 1}"
    return Advance(
        "waiting", (StartTimer(name, due),), data={"waiting_for": after_touch + 1, "due_at": due.isoformat()}, note=note
    )


def on_outcome(run: Run, event: Contract, context: Context[SequenceConfig]) -> Advance | None:
    """What became of the current touch's action."""
    outcome = outcome_of(run, event)
    if outcome is None:
        return None  # about an earlier attempt's action: stale
    touch = int(run.data.get("touch", 1))
    note = {"outcome": outcome, "touch": touch, **outcome_note(event)}
    state = run.state
    if outcome == "escalated" and state in ("touching", "deferred"):
        return Advance("awaiting_review", note=note)
    if outcome == "deferred" and state in ("touching", "awaiting_review"):
        return Advance("deferred", note=note)
    if outcome == "in_doubt" and state in IN_FLIGHT:
        return Advance("in_doubt", note=note)
    if (outcome == "succeeded" and state in IN_FLIGHT) or (outcome == "happened" and state == "in_doubt"):
        message_id = getattr(event, "result", {}).get("message_id") if outcome == "succeeded" else None
        sent = [*run.data.get("sent", []), {"touch": touch, "action_id": run.data.get("action_id")}]
        thread = [*run.data.get("thread", []), *([message_id] if isinstance(message_id, str) else [])]
        waited = _wait_for(run, context, touch)
        return Advance(waited.state, waited.commands, data={**waited.data, "sent": sent, "thread": thread}, note=note)
    if (outcome in ("failed", "refused") and state in IN_FLIGHT) or (
        outcome == "did_not_happen" and state == "in_doubt"
    ):
        return Advance("failed", note=note)
    if outcome == "blocked" and state in IN_FLIGHT:
        return _on_block(run, event, context, touch, note)
    return None


def _on_block(run: Run, event: Contract, context: Context[SequenceConfig], touch: int, note: dict[str, Any]) -> Advance:
    rule = str(getattr(event, "rule", ""))
    reason = str(getattr(event, "reason", ""))
    attempt = int(run.data.get("attempt", 1))
    if reflectable(rule) and attempt <= context.config.reflection_attempts:
        feedback = [*run.data.get("feedback", []), f"{rule}: {reason}"[:1000]]
        return Advance(
            "touching",
            (Propose("touch", {"touch": touch}),),
            data={"attempt": attempt + 1, "feedback": feedback},
            note={**note, "redraft": attempt + 1},
        )
    if rule.startswith("consent.") or context.config.on_block == "end":
        return Advance("blocked", note=note)
    skipped = _wait_for(run, context, touch)  # skip: on to the next touch, if any
    return Advance(skipped.state, skipped.commands, data=skipped.data, note={**note, "skipped_touch": touch})


def on_timer(run: Run, event: TimerFired, context: Context[SequenceConfig]) -> Advance | None:
    """A wait ended. Before the touch, what the contact did is checked: an exit recorded before the deadline
    wins over it (the planner may read such an event after the timer)."""
    touch = int(run.data.get("waiting_for", 0))
    if event.name != f"touch_{touch}":
        return None
    for activity in context.history:
        reason = exit_reason(run, activity, context.config)
        if reason is not None:
            if reason == "replied" and activity.type == ReplyReceived.TYPE and hands_replies_over(context):
                resume = int(run.data.get("waiting_for", 0))  # the answer came first: hold for its reading
                held = {"answered_by": activity.facts.get("message_id"), "resume_touch": resume}
                return Advance(
                    "answered", data=held, note={"replied": "before the deadline", "decided_at_deadline": True}
                )
            return _exit(reason, decided_at_deadline=True, recorded_at=activity.recorded_at.isoformat())
    if run.contact.email is None:
        return _exit("no_address")
    return Advance(
        "touching",
        (Propose("touch", {"touch": touch}),),
        data={"touch": touch, "attempt": 1, "feedback": []},
        note={"timer": event.name, "due_at": event.due_at.isoformat()},
    )


async def touch(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """Draft touch n (knowing the touches already sent and why earlier attempts were refused), propose it in
    the thread of the first."""
    number = int(args["touch"])
    touches = int(run.data.get("touches", 1))
    contact = run.contact
    tenant = ports.tenant
    config = SequenceConfig.model_validate(run.config)
    drafts: dict[str, Any] = dict(run.data.get("drafts", {}))
    sent_numbers = [int(s["touch"]) for s in run.data.get("sent", [])]
    earlier = tuple(
        EarlierTouch(n, drafts[str(n)]["subject"], drafts[str(n)]["body_text"], tuple(drafts[str(n)]["chunks"]))
        for n in sent_numbers
        if str(n) in drafts
    )
    thread: Sequence[str] = run.data.get("thread", [])
    campaign = config.campaign_id or (tenant.first_touch.campaign_id if tenant.first_touch is not None else None)
    kind = "first touch" if number == 1 else ("last, short touch" if number >= touches else "follow-up")
    attempt = int(run.data.get("attempt", 1))
    purpose = f"{kind} ({number} of {touches}) grounded in retrieved passages"
    if attempt > 1:
        purpose += f", attempt {attempt} after a refusal"
    brief = {
        "campaign": tenant.first_touch if number == 1 else None,
        "touch": number,
        "touches": touches,
        "earlier": earlier,
        "feedback": tuple(run.data.get("feedback", [])),
    }
    drafted = await draft_and_propose(
        ports,
        run,
        trigger,
        step=f"touch_{number}",
        query=touch_query(contact, number, touches),
        purpose=purpose,
        campaign_id=campaign,
        brief=brief,
        in_reply_to=thread[-1] if number > 1 and thread else None,
        references=list(thread) if number > 1 else [],
    )
    draft = drafted.draft
    chunks = draft.chunks or tuple(e.chunk_id for e in drafted.evidence)
    drafts[str(number)] = {"subject": draft.subject, "body_text": draft.body_text[:3000], "chunks": list(chunks)}
    action_id = drafted.action_id
    return StepResult(
        drafted.outputs,
        action_id=action_id,
        label=f"touch_{number}",
        data={"action_id": action_id, "drafts": drafts},
        note={**drafted.note, "touch": number, "attempt": attempt},
    )


def _transitions() -> dict[tuple[str, type[Contract]], Transition]:
    table: dict[tuple[str, type[Contract]], Transition] = {}
    for state in ACTIVE:
        for kind in ACTIVITY:
            table[(state, kind)] = on_activity
    for state in ("touching", "awaiting_review", "deferred", "in_doubt"):
        for kind in OUTCOME_TYPES:
            table[(state, kind)] = on_outcome
    table[("waiting", TimerFired)] = on_timer
    table[("answered", ReplyClassified)] = on_reading
    for state in ACTIVE:
        table[(state, LeadQualified)] = on_qualified
    return table


SPEC = WorkflowSpec(
    name=NAME,
    doc="A new lead is followed up, in one thread, until it answers (or books, opts out, becomes an opportunity).",
    config=SequenceConfig,
    starts={ContactCreated: on_new_lead, LeadQualified: on_warm_lead},
    states=STATES,
    terminal=TERMINAL,
    transitions=_transitions(),
    steps={"touch": touch},
    job="new_lead",
    activity=ACTIVITY,
    reads_history=frozenset({TimerFired}),  # a wait checks what the contact did before it acts
)
