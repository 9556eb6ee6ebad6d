"""Workflow `reply_handling`: read what each reply means, then take the branch the workflow declares for it.

    ReplyReceived ──► reading ──(ReplyClassified, its own)──► a branch:
        question           ─► answering ─► answered   an answer in the reply's thread, drafted from the passages
                                                       retrieved for the question and decided by the guard like
                                                       any email (grounding included); none found, or the answer
                                                       blocked: handed to a person (below)
        meeting_request    ─► scheduling ─► scheduled  a `schedule_meeting` in the first free slot of the tenant's
                                                       calendar (the executor's `find_free_slots`, within its
                                                       meeting hours), with the contact's CRM address; no free
                                                       slot, or the meeting blocked or failed: a person (below)
        unsubscribe        ─► opted_out   consent withdrawn for email (herald.consent.v1), as the unsubscribe link
                                           would: a reply saying "stop emailing me" is an opt-out
        not_now            ─► done        the contact's sequence waits until the day the reply names (its own run
        not_interested     ─► done        reads the `ReplyClassified`; a "no" ends it)
        out_of_office      ─► done        the sequence already waits for the return (`ReplyReceived`)
        wrong_person, naming an address
                           ─► referring ─► referred | dismissed | failed
                              the contact's record notes it (fixed words), and a `create_contact` for the address
                              the reply names, escalated: a person confirms before anyone writes to it; approved,
                              the new contact becomes a lead (ingest announces it as `ContactCreated`)
        interested, wrong_person without an address, unclear, or below `min_confidence`
                           ─► with_a_person ─► handed_off | dismissed | failed
                              a hand-off for a reviewer: `update_crm_record` setting the contact's next step
                              (and, for interested, its lifecycle stage), escalated by the guard
                              (`review_reason`), written to the CRM when a person approves it

One run per reply (its key is the reply's Message-ID). The reply is untrusted text: it selects one of these
branches and, for `not_now`, a day; nothing it says becomes a recipient, a price or a tool input (a meeting's
time is the calendar's first free slot, not the one the reply asks for; its title and length are the tenant's).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from herald_core.bus import Outbound, TransientError, is_transient
from herald_core.contracts import (
    ConsentChannel,
    ConsentReason,
    ConsentWithdrawn,
    Contract,
    CreateContactInput,
    LlmUsageReported,
    ReplyClassified,
    ReplyIntent,
    ReplyReceived,
    ScheduleMeetingInput,
    UpdateCrmRecordInput,
)
from herald_core.envelope import Envelope
from herald_core.observability import get_logger
from herald_core.tools import FindFreeSlotsOutput
from herald_core.topics import CONSENT, LLM_USAGE, PLAN, consent_key, contact_key, tenant_key
from herald_planner.adapters.tools import ReadToolError
from herald_planner.engine.ports import Ports
from herald_planner.engine.spec import Advance, Context, Propose, Run, StepResult, Transition, WorkflowSpec
from herald_planner.intents import Classification, classify_offline, examples, questions_of, with_similarity
from herald_planner.logic import as_addressed, one_line, recipient_name
from herald_planner.workflows.common import (
    OUTCOME_TYPES,
    WAITING_OUTCOMES,
    action_for,
    decided,
    draft_and_propose,
    outcome_note,
    outcome_of,
    proposed,
)

NAME = "reply_handling"
SOURCE = "herald/planner"
log = get_logger("herald.planner.replies")
Stage = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ReplyHandlingConfig(BaseModel):
    """A tenant's `workflows.reply_handling` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    interested_lifecycle_stage: Stage | None = Field(
        default="salesqualifiedlead", description="The CRM lifecycle stage an interested contact's hand-off sets."
    )
    min_confidence: float = Field(
        default=0.7, ge=0, le=1, description="A reading less sure than this goes to a person, whatever its intent."
    )
    similarity: bool = Field(
        default=True, description="Weigh the rules with the reply's similarity to each intent's examples."
    )
    meeting_minutes: int = Field(default=30, ge=15, le=240, description="How long a meeting asked for by reply is.")
    meeting_within_business_days: int = Field(
        default=5, ge=1, le=20, description="How far ahead a free slot is looked for (none found: a person books it)."
    )


TERMINAL = frozenset({"opted_out", "done", "answered", "scheduled", "referred", "handed_off", "dismissed", "failed"})
STATES = ("reading", "answering", "scheduling", "referring", "with_a_person", *sorted(TERMINAL))

#: where an answer to a contact's question is looked for
ANSWER_COLLECTIONS = ("product", "pricing", "customers")

#: what the hand-off asks the contact's owner to do, by intent (fixed words: nothing of the reply is a tool input)
NEXT_STEPS: Mapping[ReplyIntent, str] = {
    ReplyIntent.INTERESTED: "Follow up: they are interested",
    ReplyIntent.QUESTION: "Answer their question",
    ReplyIntent.MEETING_REQUEST: "Book the meeting they asked for",
    ReplyIntent.WRONG_PERSON: "They point to someone else: confirm the referral",
    ReplyIntent.UNCLEAR: "Read their reply and decide",
}

#: what each intent does, when the reading is sure enough
BRANCHES: Mapping[ReplyIntent, str] = {
    ReplyIntent.UNSUBSCRIBE: "opted_out",
    ReplyIntent.NOT_NOW: "done",
    ReplyIntent.NOT_INTERESTED: "done",
    ReplyIntent.OUT_OF_OFFICE: "done",
}


def on_classified(run: Run, event: ReplyClassified, context: Context[ReplyHandlingConfig]) -> Advance | None:
    """The run's own reading is in: take its branch."""
    if event.workflow_id != run.workflow_id:
        return None  # another reply's reading
    note: dict[str, Any] = {"intent": event.intent.value, "confidence": event.confidence, "by": event.classifier}
    data = {"intent": event.intent.value, "confidence": event.confidence}
    if event.confidence < context.config.min_confidence and event.intent is not ReplyIntent.OUT_OF_OFFICE:
        why = f"the reply was read as {event.intent.value} with confidence {event.confidence:.2f}: a person decides"
        return Advance("with_a_person", (Propose("hand_off", {"why": why, "unsure": True}),), data=data, note=note)
    if event.intent is ReplyIntent.QUESTION:
        return Advance("answering", (Propose("answer"),), data=data, note=note)
    if event.intent is ReplyIntent.MEETING_REQUEST:
        return Advance("scheduling", (Propose("schedule"),), data=data, note=note)
    if event.intent is ReplyIntent.WRONG_PERSON and run.data.get("referral"):
        return Advance("referring", (Propose("refer"),), data=data, note=note)
    branch = BRANCHES.get(event.intent)
    if branch is None:
        why = f"the contact's reply ({event.intent.value}) is for a person to take up"
        return Advance("with_a_person", (Propose("hand_off", {"why": why}),), data=data, note=note)
    if branch == "opted_out":
        return Advance("opted_out", (Propose("opt_out"),), note={**note, "reason": "asked by reply to stop"})
    return Advance(branch, note={**note, "reason": event.intent.value})


async def read(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """Read the reply (rules, then similarity through retrieval) and publish what it means."""
    reply = trigger_reply(run)
    config = ReplyHandlingConfig.model_validate(run.config)
    found = classify_offline(
        reply["text"],
        today=ports.now.date(),
        out_of_office=reply["out_of_office"],
        returns_on=date.fromisoformat(reply["returns_on"]) if reply["returns_on"] else None,
        sender=reply["from_address"],
    )
    note: dict[str, Any] = {}
    outputs: list[Outbound] = []
    subject = f"contact/{run.contact.contact_id}"
    if ports.reader is not None and reply["text"].strip() and found.intent is not ReplyIntent.OUT_OF_OFFICE:
        read_by_llm, usage, why_not = await ports.reader.read(
            run.tenant, str(reply["text"]), str(reply["subject"]), ports.now.date()
        )
        if usage is not None:  # the guard counts it against the tenant's daily LLM budget
            usage_env = trigger.caused(source=SOURCE, type=LlmUsageReported.TYPE, subject=subject)
            counted = usage.model_copy(update={"workflow_id": run.workflow_id})
            outputs.append(Outbound(LLM_USAGE, tenant_key(run.tenant), usage_env, counted))
        if read_by_llm is not None:
            return _published(run, reply, read_by_llm, ports, trigger, outputs, note)
        if why_not != "no LLM configured":
            note["llm"] = why_not
    if config.similarity and reply["text"].strip() and found.intent is not ReplyIntent.OUT_OF_OFFICE:
        try:
            found = with_similarity(found, await ports.retrieval.resemble(reply["text"], examples()))
        except Exception as exc:  # the rules' reading stands; a person sees it was read without similarity
            if not is_transient(exc):
                raise
            note["similarity"] = f"unavailable: {type(exc).__name__}"
            log.warning("similarity unavailable; the rules' reading stands", error=repr(exc)[:300])
    return _published(run, reply, found, ports, trigger, outputs, note)


def _published(
    run: Run,
    reply: Mapping[str, Any],
    found: Classification,
    ports: Ports,
    trigger: Envelope,
    outputs: list[Outbound],
    note: dict[str, Any],
) -> StepResult:
    """The reading, published as `ReplyClassified` for this run's branch and the contact's other runs."""
    classified = classified_of(run, reply, found, ports)
    envelope = trigger.caused(source=SOURCE, type=ReplyClassified.TYPE, subject=f"contact/{run.contact.contact_id}")
    out = Outbound(PLAN, contact_key(run.tenant, run.contact.contact_id), envelope, classified)
    note |= {
        "intent": found.intent.value,
        "confidence": found.confidence,
        "by": found.classifier,
        "evidence": list(found.evidence),
    }
    return StepResult([*outputs, out], data={"intent": found.intent.value, "referral": found.referral}, note=note)


async def opt_out(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """The contact asked by reply to stop: its email consent is withdrawn, for the guard and the executor."""
    contact = run.contact
    withdrawn = ConsentWithdrawn(
        contact_id=contact.contact_id,
        email=contact.email,
        channel=ConsentChannel.EMAIL,
        reason=ConsentReason.UNSUBSCRIBE,
        upstream_source="herald-reply",
        upstream_event_id=str(run.data.get("reply", run.workflow_id)),
        occurred_at=ports.now,
    )
    envelope = trigger.caused(source=SOURCE, type=ConsentWithdrawn.TYPE, subject=f"contact/{contact.contact_id}")
    key = consent_key(run.tenant, contact.contact_id, ConsentChannel.EMAIL.value)
    return StepResult([Outbound(CONSENT, key, envelope, withdrawn)], note={"consent": "withdrawn (email)"})


def on_outcome(run: Run, event: Contract, context: Context[ReplyHandlingConfig]) -> Advance | None:
    """What became of the hand-off: written when a person approved it, dropped when they rejected it."""
    return decided(run, event, done="handed_off", waiting="with_a_person")


def on_answer(run: Run, event: Contract, context: Context[ReplyHandlingConfig]) -> Advance | None:
    """What became of the answer: sent; or blocked (its words, its grounding, a reviewer) and handed to a person."""
    if run.data.get("handed_off"):  # no answer was found: the action is the hand-off
        return on_outcome(run, event, context)
    outcome = outcome_of(run, event)
    note = {"outcome": outcome, **outcome_note(event)} if outcome else {}
    if outcome in ("succeeded", "happened"):
        return Advance("answered", note=note)
    if outcome == "blocked":
        why = f"the answer was blocked ({getattr(event, 'rule', '')}: {getattr(event, 'reason', '')})"[:500]
        return Advance("with_a_person", (Propose("hand_off", {"why": why}),), note=note)
    if outcome in ("failed", "refused", "did_not_happen"):
        return Advance("failed", note=note)
    if outcome in WAITING_OUTCOMES:
        return Advance("answering", note=note)
    return None


async def answer(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """Answer the question in the reply's thread from the passages retrieved for it; the contact's words choose
    the passages (a search query), never the recipient or anything the email promises. No passage that shares
    the question's words: a person answers instead."""
    reply = trigger_reply(run)
    own_id = str(reply["message_id"])
    thread = [*reply.get("references", []), *([own_id] if own_id.startswith("<") else [])]
    query = questions_of(str(reply["text"]))
    try:
        verdict = await ports.retrieval.search_with_verdict(
            ports.tenant.tenant_id, query, ports.settings.evidence_k, list(ANSWER_COLLECTIONS)
        )
    except Exception as exc:
        if not is_transient(exc):
            raise  # retrieval refused the request itself: the event is dead-lettered
        raise TransientError(f"retrieval unavailable: {exc!r}"[:300]) from exc
    if not verdict.answerable:  # the knowledge base does not say: a person answers, nothing is made up
        why = f"the knowledge base does not answer it ({verdict.score:.2f} < {verdict.threshold:.2f}: {verdict.reason})"
        handed = await hand_off(ports, run, trigger, {"why": why[:500]})
        data = {**handed.data, "handed_off": True}
        note = {**handed.note, "answer": "none", "answerable": verdict.score}
        return StepResult(handed.outputs, handed.action_id, "hand_off", data, note)
    drafted = await draft_and_propose(
        ports,
        run,
        trigger,
        step="answer",
        query=query,
        purpose="answer the contact's question in its thread, grounded in retrieved passages",
        campaign_id=None,
        brief={"question": str(reply["text"]), "thread_subject": str(reply["subject"])},
        in_reply_to=thread[-1] if thread else None,
        references=list(dict.fromkeys(thread))[-20:],
        collections=ANSWER_COLLECTIONS,
        evidence=verdict.evidence,  # the passages the verdict was given: searched once
    )
    if not drafted.draft.chunks or drafted.draft.confidence < 0.5:
        handed = await hand_off(ports, run, trigger, {"why": "the knowledge base holds no passage that answers it"})
        data = {**handed.data, "handed_off": True}
        return StepResult(handed.outputs, handed.action_id, "hand_off", data, {**handed.note, "answer": "none"})
    return StepResult(
        drafted.outputs,
        action_id=drafted.action_id,
        label="answer",
        data={"action_id": drafted.action_id},
        note=drafted.note,
    )


def on_scheduled(run: Run, event: Contract, context: Context[ReplyHandlingConfig]) -> Advance | None:
    """What became of the meeting: booked (its invite sent); or blocked or failed, and handed to a person."""
    if run.data.get("handed_off"):  # no free slot was found: the action is the hand-off
        return on_outcome(run, event, context)
    outcome = outcome_of(run, event)
    note = {"outcome": outcome, **outcome_note(event)} if outcome else {}
    if outcome in ("succeeded", "happened"):
        return Advance("scheduled", note=note)
    if outcome in ("blocked", "failed", "refused", "did_not_happen"):
        said = getattr(event, "reason", None) or getattr(event, "error", None) or outcome
        why = f"the meeting could not be booked ({outcome}: {said})"[:500]
        return Advance("with_a_person", (Propose("hand_off", {"why": why}),), note=note)
    if outcome in WAITING_OUTCOMES:
        return Advance("scheduling", note=note)
    return None


async def schedule(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """Book the meeting the contact asked for in the first free slot of the tenant's calendar: the time is the
    calendar's, the attendee the contact's CRM address, the title and length the tenant's; the reply chooses none."""
    config = ReplyHandlingConfig.model_validate(run.config)
    contact = run.contact
    slot = None
    why = "no calendar to read free slots from (the planner has no executor URL): a person books it"
    if ports.tools is not None and contact.email is not None:
        query = {
            "duration_minutes": config.meeting_minutes,
            "after": ports.now.isoformat(),
            "business_days": config.meeting_within_business_days,
            "count": 1,
        }
        try:
            found = FindFreeSlotsOutput.model_validate(await ports.tools.call("find_free_slots", run.tenant, query))
        except ReadToolError as exc:
            if exc.status is None or exc.status >= 500:
                raise TransientError(f"free slots unavailable: {exc}") from exc  # the event is read again later
            raise
        slot = found.slots[0] if found.slots else None
        within = config.meeting_within_business_days
        why = f"no free {config.meeting_minutes}-minute slot in the next {within} business days ({found.hours})"
    elif contact.email is None:
        why = "the contact has no address to invite"
    if slot is None:
        handed = await hand_off(ports, run, trigger, {"why": why[:500]})
        return StepResult(
            handed.outputs, handed.action_id, "hand_off", {**handed.data, "handed_off": True}, handed.note
        )
    reply = trigger_reply(run)
    tenant = ports.tenant
    company = f" × {contact.company}" if contact.company else ""
    said = " ".join(str(reply["text"]).split())[:600]
    action = action_for(
        run,
        "schedule_meeting",
        ScheduleMeetingInput(
            contact_id=contact.contact_id,
            attendee_email=contact.email,  # type: ignore[arg-type]
            attendee_name=recipient_name(as_addressed(contact)),
            title=one_line(f"{tenant.name}{company}: intro call", 200),
            starts_at=slot.starts_at,
            duration_minutes=config.meeting_minutes,
            description=f"Booked because you asked to meet in your reply to “{one_line(str(reply['subject']), 200)}”.",
        ),
        confidence=_confidence(run),
        rationale=f"{contact.first_name or 'The contact'} asked to meet, replying to “{reply['subject']}”: “{said}”. "
        f"Booked into the first free slot of the calendar: {slot.starts_at:%Y-%m-%d %H:%M} UTC.",
    )
    return StepResult(
        [proposed(run, trigger, action)],
        action_id=action.action_id,
        label="schedule",
        data={"action_id": action.action_id, "slot": slot.starts_at.isoformat()},
        note={"slot": slot.starts_at.isoformat(), "free_slots": "find_free_slots"},
    )


def on_referred(run: Run, event: Contract, context: Context[ReplyHandlingConfig]) -> Advance | None:
    """What a person decided of the referral: the new lead made, or not."""
    return decided(run, event, done="referred", waiting="referring")


async def refer(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """The contact points to someone else, by address: its record says so (fixed words, no address), and the
    person it names is proposed as a new lead — which a reviewer confirms before anyone writes to that address
    (the address is the reply's, untrusted: `review_reason`). Approved, the CRM holds the new contact and ingest
    makes it a lead like any other."""
    reply = trigger_reply(run)
    contact = run.contact
    referral = str(run.data["referral"])
    noted = action_for(
        run,
        "update_crm_record",
        UpdateCrmRecordInput(
            contact_id=contact.contact_id,
            properties={"next_step": f"Not the right person: their referral is in review ({ports.now:%Y-%m-%d})"},
        ),
        confidence=_confidence(run),
        rationale=_replied(run, reply),
    )
    lead = action_for(
        run,
        "create_contact",
        CreateContactInput(email=referral, company=contact.company, referred_by=contact.contact_id),
        confidence=_confidence(run),
        rationale=f"{_replied(run, reply)} — a new lead for {referral}, at {contact.company or 'their company'}.",
        review_reason=f"a referral named in a reply ({referral}): a person confirms before Herald writes to them",
    )
    return StepResult(
        [proposed(run, trigger, noted), proposed(run, trigger, lead)],
        action_id=lead.action_id,
        label="refer",
        data={"action_id": lead.action_id, "noted": noted.action_id},
        note={"referral": "in review", "noted": noted.action_id},
    )


async def hand_off(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """Propose the contact's next step for its owner (the CRM's words are fixed per intent), which the guard
    escalates: the reviewer reads the reply in the rationale and approves the hand-off, or rejects it."""
    reply = trigger_reply(run)
    config = ReplyHandlingConfig.model_validate(run.config)
    intent = ReplyIntent(str(run.data.get("intent", ReplyIntent.UNCLEAR.value)))
    if args.get("unsure"):
        intent = ReplyIntent.UNCLEAR
    step = NEXT_STEPS.get(intent, NEXT_STEPS[ReplyIntent.UNCLEAR])
    properties: dict[str, str | None] = {"next_step": f"{step} (reply of {ports.now:%Y-%m-%d})"}
    if intent is ReplyIntent.INTERESTED and config.interested_lifecycle_stage:
        properties["lifecycle_stage"] = config.interested_lifecycle_stage
    contact = run.contact
    referral = run.data.get("referral") if intent is ReplyIntent.WRONG_PERSON else None
    pointed = f" They point to {referral}: confirm before anyone writes to that address." if referral else ""
    action = action_for(
        run,
        "update_crm_record",
        UpdateCrmRecordInput(contact_id=contact.contact_id, properties=properties),  # type: ignore[arg-type]
        confidence=_confidence(run),
        rationale=f"{_replied(run, reply)}{pointed}",
        review_reason=(f"{args['why']}; for its owner, {contact.owner}" if contact.owner else str(args["why"]))[:500],
    )
    return StepResult(
        [proposed(run, trigger, action)],
        action_id=action.action_id,
        label="hand_off",
        data={"action_id": action.action_id},
        note={"next_step": step},
    )


def _replied(run: Run, reply: Mapping[str, Any]) -> str:
    """What a reviewer reads first of a reply's action: who replied, to what, in their words (one line, clipped)."""
    said = " ".join(str(reply["text"]).split())[:600]
    return f"{run.contact.first_name or 'The contact'} replied to “{reply['subject']}”: “{said}”"


def _confidence(run: Run) -> float:
    return float(run.data.get("confidence", 0.0))


def trigger_reply(run: Run) -> dict[str, Any]:
    """The reply the run reads, as its start kept it."""
    reply = run.data.get("received")
    if not isinstance(reply, dict):
        raise ValueError(f"run {run.workflow_id} holds no reply")
    return reply


def classified_of(run: Run, reply: Mapping[str, Any], found: Classification, ports: Ports) -> ReplyClassified:
    return ReplyClassified(
        workflow_id=run.workflow_id,
        contact_id=run.contact.contact_id,
        reply_message_id=str(reply["message_id"]),
        answers_workflow_id=reply.get("answers_workflow_id"),
        intent=found.intent,
        confidence=round(found.confidence, 2),
        classifier=found.classifier,  # type: ignore[arg-type]
        until=found.until,
        evidence=tuple(e[:300] for e in found.evidence[:4]),
        classified_at=ports.now,
    )


def _kept(event: ReplyReceived) -> dict[str, Any]:
    return {
        "message_id": event.message_id,
        "text": event.text,
        "subject": event.subject,
        "from_address": event.from_address,
        "out_of_office": event.out_of_office,
        "returns_on": event.returns_on.isoformat() if event.returns_on else None,
        "answers_workflow_id": event.answers_workflow_id,
        "references": list(event.references),
    }


def on_reply(event: ReplyReceived, context: Context[ReplyHandlingConfig]) -> Advance:
    return Advance("reading", (Propose("read"),), data={"reply": event.message_id, "received": _kept(event)})


def _run_key(event: Contract) -> str:
    return event.message_id if isinstance(event, ReplyReceived) else ""


_TRANSITIONS: dict[tuple[str, type[Contract]], Transition] = {
    ("reading", ReplyClassified): on_classified,
    **{("with_a_person", kind): on_outcome for kind in OUTCOME_TYPES},
    **{("answering", kind): on_answer for kind in OUTCOME_TYPES},
    **{("scheduling", kind): on_scheduled for kind in OUTCOME_TYPES},
    **{("referring", kind): on_referred for kind in OUTCOME_TYPES},
}

SPEC = WorkflowSpec(
    name=NAME,
    doc="Each reply is read for what it means, and the branch the workflow declares for that meaning is taken.",
    config=ReplyHandlingConfig,
    starts={ReplyReceived: on_reply},
    states=STATES,
    terminal=TERMINAL,
    transitions=_TRANSITIONS,
    steps={
        "read": read,
        "opt_out": opt_out,
        "answer": answer,
        "schedule": schedule,
        "refer": refer,
        "hand_off": hand_off,
    },
    job="replies",
    run_key=_run_key,
)
