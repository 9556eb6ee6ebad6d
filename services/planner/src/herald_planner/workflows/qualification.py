"""Workflow `lead_qualification`: score each lead against the tenant's ideal-customer profile and route it by tier.

    ContactCreated (or the first ContactUpdated of a contact known before) ──► scored ──► …
        the score is written to the CRM (`update_crm_record`: lead score and lead status) through the guard, and
        published as `LeadQualified` on the plan topic, feature by feature:
        cold ─► scored     nothing more is done
        warm ─► scored     the sequence works it (`new_lead_sequence` with `start_on: warm_lead` starts on it)
        hot  ─► with_owner ─► handed_off | dismissed | failed
                           the write also sets the contact's next step for its owner, and asks a person
                           (`review_reason`): the hand-off is decided in review like any escalated action

    scored ──(an open, a click, a reply, a meeting; a CRM change)──► scored again: written only when the tier
    changes (a warm lead that books a meeting goes hot), never for a score that moved within its tier
    scored ──(a lifecycle stage past lead)──► ended

The score is pure (`herald_planner.qualification`): the transition decides it, the step only makes the messages.
Nothing a contact writes is read here: a reply counts as a reply, whatever it says.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from herald_core.bus import Outbound
from herald_core.contracts import (
    ActionProposed,
    ContactCreated,
    ContactUpdated,
    Contract,
    EmailEngagement,
    EmailReplied,
    LeadQualified,
    LeadTier,
    MeetingBooked,
    PlanCreated,
    PlanStep,
    ReplyReceived,
    ScoreFeature,
    UpdateCrmRecordInput,
)
from herald_core.envelope import Envelope
from herald_core.topics import PLAN, PROPOSED_ACTION, contact_key
from herald_planner.engine.activity import activity_of
from herald_planner.engine.ports import Ports
from herald_planner.engine.spec import Advance, Context, Propose, Run, StepResult, Transition, Withdraw, WorkflowSpec
from herald_planner.qualification import Engagement, QualificationConfig, Scored, score
from herald_planner.workflows.common import (
    OUTCOME_TYPES,
    SOURCE,
    WAITING_OUTCOMES,
    action_for,
    decided,
    outcome_note,
    outcome_of,
)

NAME = "lead_qualification"
Stage = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class LeadQualificationConfig(QualificationConfig):
    """A tenant's `workflows.lead_qualification` section: the profile, the points and thresholds, and when to stop."""

    exit_lifecycle_stages: tuple[Stage, ...] = Field(
        default=("opportunity", "customer", "evangelist"),
        description="CRM lifecycle stages that end qualification (a salesperson has the lead now).",
    )


TERMINAL = frozenset({"handed_off", "dismissed", "failed", "ended"})
STATES = ("scored", "with_owner", *sorted(TERMINAL))
#: what moves a score (a CRM change moves it too, and may end the run)
ENGAGEMENT: frozenset[type[Contract]] = frozenset({EmailEngagement, ReplyReceived, EmailReplied, MeetingBooked})


def _engagement(run: Run) -> Engagement:
    return Engagement(**run.data.get("engagement", {}))


def _written(run: Run | None, scored: Scored, engagement: Engagement, note: Mapping[str, Any]) -> Advance:
    """Write the score (a first one, or a new tier): hot goes to a person, warm and cold stay scored."""
    commands: list[Propose | Withdraw] = []
    pending = run.data.get("action_id") if run is not None and not run.data.get("settled") else None
    if isinstance(pending, str):  # the last write still waits for a review: this one says more
        commands.append(Withdraw(pending, f"superseded: the lead is now {scored.tier.value}"))
    previous = run.data.get("tier") if run is not None else None
    args = {
        "score": scored.score,
        "tier": scored.tier.value,
        "previous": previous,
        "features": [f.model_dump(mode="json") for f in scored.features],
    }
    commands.append(Propose("qualify", args))
    return Advance(
        "with_owner" if scored.tier is LeadTier.HOT else "scored",
        tuple(commands),
        data={"score": scored.score, "tier": scored.tier.value, "engagement": vars(engagement), "settled": False},
        note={**note, "score": scored.score, "tier": scored.tier.value, "explained": scored.explained()},
    )


def on_lead(event: ContactCreated | ContactUpdated, context: Context[LeadQualificationConfig]) -> Advance:
    """A new lead (or one Herald knew before qualification ran) is scored on its facts."""
    return _written(None, score(event.contact, Engagement(), context.config), Engagement(), {})


def on_activity(run: Run, event: Contract, context: Context[LeadQualificationConfig]) -> Advance | None:
    """Something the contact did, or a change in the CRM: scored again; written only when the tier changes."""
    config = context.config
    contact = run.contact
    if isinstance(event, ContactUpdated):
        if event.contact.contact_id != contact.contact_id:
            return None
        contact = event.contact
        stage = (contact.lifecycle_stage or "").lower()
        if stage in config.exit_lifecycle_stages:
            return Advance("ended", note={"exit": f"became_{stage}"})
    activity = activity_of(context.envelope, event)
    if activity is None or activity.contact_id != contact.contact_id:
        return None  # a colleague's reply is not this lead's engagement
    engagement = _engagement(run).counting(activity)
    scored = score(contact, engagement, config)
    note = {"event": event.TYPE}
    if scored.tier.value == run.data.get("tier"):
        return Advance(
            run.state,
            data={"score": scored.score, "engagement": vars(engagement)},
            note={**note, "score": scored.score, "tier": scored.tier.value, "written": "no: the tier is the same"},
        )
    return _written(run, scored, engagement, note)


def on_outcome(run: Run, event: Contract, context: Context[LeadQualificationConfig]) -> Advance | None:
    """What became of the latest write: for a hot lead, the hand-off's review decides the run's end."""
    if run.state == "with_owner":
        return decided(run, event, done="handed_off", waiting="with_owner")
    outcome = outcome_of(run, event)
    if outcome is None:
        return None
    note = {"outcome": outcome, **outcome_note(event)}
    return Advance(run.state, data={"settled": outcome not in WAITING_OUTCOMES}, note=note)


async def qualify(ports: Ports, run: Run, trigger: Envelope, args: Mapping[str, Any]) -> StepResult:
    """The plan (each feature's points), the CRM write of the score and status (and, for a hot lead, the next step
    for its owner, asked of a person), and the `LeadQualified` the contact's other runs read."""
    config = LeadQualificationConfig.model_validate(run.config)
    contact = run.contact
    tier = LeadTier(str(args["tier"]))
    features = tuple(ScoreFeature.model_validate(f) for f in args["features"])
    scored = Scored(int(args["score"]), tier, features)
    explained = scored.explained()
    properties: dict[str, str | None] = {
        "lead_score": str(scored.score),
        "lead_status": config.lead_status.get(tier, tier.value.upper()),
    }
    review_reason = None
    if tier is LeadTier.HOT:
        owner = f"owner {contact.owner}" if contact.owner else "its owner"
        properties["next_step"] = f"Take up this hot lead (score {scored.score}, {ports.now:%Y-%m-%d})"
        review_reason = f"a hot lead (score {scored.score}, hot from {config.hot_at}): {owner} takes it from here"
    previous = LeadTier(str(args["previous"])) if args.get("previous") else None
    moved = f" (was {previous.value})" if previous is not None else ""
    subject = f"contact/{contact.contact_id}"
    key = contact_key(run.tenant, contact.contact_id)
    plan = PlanCreated(
        workflow_id=run.workflow_id,
        workflow=run.workflow,
        contact_id=contact.contact_id,
        steps=(PlanStep(tool="update_crm_record", purpose=f"write the lead's {explained}{moved}"[:2000]),),
        planner="rules",
        query="",
        evidence=(),
    )
    action = action_for(
        run,
        "update_crm_record",
        UpdateCrmRecordInput(contact_id=contact.contact_id, properties=properties),  # type: ignore[arg-type]
        confidence=1.0,  # a computed score, not a guess
        rationale=f"Lead {explained}{moved}"[:2000],
        review_reason=review_reason,
    )
    qualified = LeadQualified(
        workflow_id=run.workflow_id,
        contact=contact,
        score=scored.score,
        tier=tier,
        previous_tier=previous,
        features=features,
        hot_at=config.hot_at,
        warm_at=config.warm_at,
        qualified_at=ports.now,
    )
    plan_env = trigger.caused(source=SOURCE, type=PlanCreated.TYPE, subject=subject)
    action_env = plan_env.caused(source=SOURCE, type=ActionProposed.TYPE, subject=subject)
    qualified_env = plan_env.caused(source=SOURCE, type=LeadQualified.TYPE, subject=subject)
    outputs = [
        Outbound(PLAN, key, plan_env, plan),
        Outbound(PROPOSED_ACTION, key, action_env, action),
        Outbound(PLAN, key, qualified_env, qualified),
    ]
    return StepResult(
        outputs,
        action_id=action.action_id,
        label="score",
        data={"action_id": action.action_id},
        note={"written": properties},
    )


def _transitions() -> dict[tuple[str, type[Contract]], Transition]:
    table: dict[tuple[str, type[Contract]], Transition] = {}
    for kind in (*ENGAGEMENT, ContactUpdated):
        table[("scored", kind)] = on_activity
    for state in ("scored", "with_owner"):
        for kind in OUTCOME_TYPES:
            table[(state, kind)] = on_outcome
    return table


SPEC = WorkflowSpec(
    name=NAME,
    doc="Each lead is scored against the ideal-customer profile: hot to a person, warm to the sequence, cold kept.",
    config=LeadQualificationConfig,
    starts={ContactCreated: on_lead, ContactUpdated: on_lead},
    states=STATES,
    terminal=TERMINAL,
    transitions=_transitions(),
    steps={"qualify": qualify},
    job="qualification",
)
