"""Lead qualification: a table of contacts scored and tiered as the configuration says, feature by feature; the
workflow writes a score once per tier (an open within the tier writes nothing), hands a hot lead to a person and
lets a warm one start the sequence. Pure: no Kafka, no Postgres."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest
from cases import (
    ACTION,
    CONTACT,
    EVENTS,
    NOW,
    TENANT,
    assert_rows_cover,
    assert_terminal_states_take_nothing,
    context,
    qualified,
    reply,
    rows_of,
    run_in,
)
from pydantic import ValidationError

from herald_core.contracts import (
    ActionProposed,
    ContactCreated,
    ContactFacts,
    LeadQualified,
    LeadTier,
    PlanCreated,
    UpdateCrmRecordInput,
)
from herald_planner.engine.spec import Propose, Run, Withdraw, advance
from herald_planner.qualification import Engagement, QualificationConfig, Seniority, score, seniority_of
from herald_planner.workflows import qualification, sequence
from herald_planner.workflows.qualification import SPEC

ICP = {"icp": {"industries": ["logistics", "manufacturing"], "company_size": {"min": 100, "max": 5000}}}
CONFIG = QualificationConfig.model_validate(ICP)


@pytest.mark.parametrize(
    ("title", "level"),
    [
        ("COO", Seniority.C_LEVEL),
        ("Chief Revenue Officer", Seniority.C_LEVEL),
        ("Co-Founder & CEO", Seniority.C_LEVEL),
        ("Managing Director", Seniority.C_LEVEL),
        ("Geschäftsführerin", Seniority.C_LEVEL),
        ("Directeur Général", Seniority.C_LEVEL),
        ("VP Operations", Seniority.VP),
        ("Senior Vice President, Supply Chain", Seniority.VP),
        ("Head of Operations", Seniority.VP),
        ("Director of Finance Operations", Seniority.DIRECTOR),
        ("Leiterin Logistik", Seniority.DIRECTOR),
        ("Operations Manager", Seniority.MANAGER),
        ("Team Lead, Dispatch", Seniority.MANAGER),
        ("Product Owner", Seniority.INDIVIDUAL),
        ("Executive Assistant to the CEO", Seniority.INDIVIDUAL),
        ("Dispatcher", Seniority.INDIVIDUAL),
        ("  ", Seniority.UNKNOWN),
        (None, Seniority.UNKNOWN),
    ],
)
def test_a_job_title_says_a_level(title: str | None, level: Seniority) -> None:
    assert seniority_of(title) is level


def _contact(**facts: Any) -> ContactFacts:
    return ContactFacts(contact_id="900", email="lead@fleet.example", **facts)


# contact facts, engagement → score and tier, with the profile above and the default points (70 hot, 40 warm)
TABLE = [
    # a chief officer at a logistics company of the right size: hot on the facts alone (30 + 25 + 15)
    ({"job_title": "COO", "industry": "logistics", "company_size": 1200}, Engagement(), 70, LeadTier.HOT),
    # the CRM's longer industry name fits the profile's word
    (
        {"job_title": "VP Supply Chain", "industry": "logistics_and_supply_chain", "company_size": 400},
        Engagement(),
        65,
        LeadTier.WARM,
    ),
    ({"job_title": "Director of Operations", "industry": "manufacturing"}, Engagement(), 45, LeadTier.WARM),
    ({"job_title": "Operations Manager", "industry": "logistics"}, Engagement(), 35, LeadTier.COLD),
    # the same manager who opened twice and clicked once: warm (35 + 4 + 5)
    ({"job_title": "Operations Manager", "industry": "logistics"}, Engagement(opened=2, clicked=1), 44, LeadTier.WARM),
    # opens and clicks count up to their caps: 3 opens, 2 clicks at most
    ({"job_title": "Dispatcher"}, Engagement(opened=9, clicked=7), 16, LeadTier.COLD),
    # a meeting and a reply make a director at an unknown company hot (20 + 10 + 25 + 15 size)
    (
        {"job_title": "Director", "company_size": 150},
        Engagement(replied=1, meetings=1),
        70,
        LeadTier.HOT,
    ),
    # too big a company gives no size points; retail is not in the profile
    ({"job_title": "CFO", "industry": "retail", "company_size": 80_000}, Engagement(), 30, LeadTier.COLD),
    ({}, Engagement(), 0, LeadTier.COLD),  # nothing known: cold, and said so
    # everything at once stays within 100
    (
        {"job_title": "CEO", "industry": "logistics", "company_size": 500},
        Engagement(opened=3, clicked=2, replied=2, meetings=1),
        100,
        LeadTier.HOT,
    ),
]


@pytest.mark.parametrize(("facts", "engagement", "points", "tier"), TABLE)
def test_a_table_of_contacts_is_scored_and_tiered_as_configured(
    facts: dict[str, Any], engagement: Engagement, points: int, tier: LeadTier
) -> None:
    scored = score(_contact(**facts), engagement, CONFIG)
    assert (scored.score, scored.tier) == (points, tier)
    assert [f.name for f in scored.features] == [
        "seniority",
        "industry",
        "company_size",
        "opened",
        "clicked",
        "replied",
        "meeting",
    ]
    assert scored.explained().startswith(f"score {points} ({tier.value}): seniority ")


def test_each_feature_says_what_it_saw_and_what_it_gave() -> None:
    scored = score(_contact(job_title="VP Ops", industry="retail", company_size=80_000), Engagement(opened=5), CONFIG)
    seen = {f.name: (f.seen, f.points) for f in scored.features}
    assert seen["seniority"] == ("'VP Ops' → vp", 25)
    assert seen["industry"] == ("retail (not in the profile)", 0)
    assert seen["company_size"] == ("80000 employees (outside 100–5000)", 0)
    assert seen["opened"] == ("5 opens (counted 3)", 6)


def test_the_tenant_sets_the_points_and_thresholds() -> None:
    generous = QualificationConfig.model_validate(
        {**ICP, "points": {"seniority": {"manager": 40}}, "hot_at": 60, "warm_at": 30}
    )
    scored = score(_contact(job_title="Operations Manager", industry="logistics"), Engagement(), generous)
    assert (scored.score, scored.tier) == (65, LeadTier.HOT)  # 40 for a manager (the others then give 0) + 25


@pytest.mark.parametrize(
    "section",
    [
        {"hot_at": 40, "warm_at": 60},
        {"icp": {"company_size": {"min": 500, "max": 100}}},
        {"points": {"seniority": {"archduke": 5}}},
        {"lead_status": {"hot": "not a status!"}},
        {"hot_at": 0},
        {"surprise": True},
    ],
)
def test_a_configuration_that_cannot_work_is_refused(section: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        qualification.LeadQualificationConfig.model_validate(section)


# ---------------------------------------------------------------- the workflow


def _run(state: str, **data: Any) -> Run:
    run = run_in(SPEC, state, **{"tier": "warm", "score": 55, "settled": True, **data})
    return replace(
        run,
        workflow_id="wf-qualify",
        config=qualification.LeadQualificationConfig.model_validate(ICP).model_dump(mode="json"),
    )


def _ctx(event: Any) -> Any:
    return context(SPEC, event, ICP)


TABLE_STATES = """
event               scored      with_owner
escalated           scored      with_owner
deferred            scored      with_owner
blocked             scored      dismissed
succeeded           scored      handed_off
succeeded:other_action  -       -
failed              scored      failed
in_doubt            scored      with_owner
refused             scored      failed
happened            scored      handed_off
did_not_happen      scored      failed
opened              scored      -
clicked             scored      -
reply               scored      -
reply:colleague     -           -
replied             scored      -
meeting             scored      -
became_customer     ended       -
updated:title       scored      -
"""


ROWS = rows_of(TABLE_STATES)


@pytest.mark.parametrize(("state", "event"), sorted(ROWS))
def test_each_state_and_event(state: str, event: str) -> None:
    made = EVENTS[event]()
    decided = advance(SPEC, _run(state), made, _ctx(made))
    assert (decided.state if decided else None) == ROWS[(state, event)]


def test_every_active_state_and_handled_event_type_has_a_row() -> None:
    assert set(SPEC.active) == {state for state, _ in ROWS}
    assert_rows_cover(SPEC, ROWS)


def test_terminal_states_take_nothing() -> None:
    assert_terminal_states_take_nothing(SPEC, _run)


def test_a_new_lead_is_scored_on_its_facts_and_its_score_written() -> None:
    lead = CONTACT.model_copy(update={"job_title": "Director of Operations", "company_size": 300})
    created = ContactCreated(contact=lead, upstream_source="test", upstream_event_id="u1", occurred_at=NOW)
    decided = advance(SPEC, None, created, _ctx(created))
    assert decided is not None and decided.state == "scored"  # 20 + 25 + 15 = 60: warm
    (write,) = decided.commands
    assert isinstance(write, Propose) and write.step == "qualify"
    assert (write.args["score"], write.args["tier"], write.args["previous"]) == (60, "warm", None)
    assert decided.note["explained"].startswith("score 60 (warm): seniority 'Director of Operations' → director +20")


def test_a_hot_lead_goes_to_a_person() -> None:
    lead = CONTACT.model_copy(update={"job_title": "COO", "company_size": 1200})
    created = ContactCreated(contact=lead, upstream_source="test", upstream_event_id="u1", occurred_at=NOW)
    decided = advance(SPEC, None, created, _ctx(created))
    assert decided is not None and decided.state == "with_owner"


def test_engagement_within_the_tier_writes_nothing_and_a_new_tier_writes_once() -> None:
    cold = _run("scored", tier="cold", score=25, engagement={})  # the contact's industry fits: 25
    opened = EVENTS["opened"]()
    same = advance(SPEC, cold, opened, _ctx(opened))  # 27: still cold
    assert (
        same is not None and same.commands == () and same.data == {"score": 27, "engagement": same.data["engagement"]}
    )
    assert same.data["engagement"]["opened"] == 1 and same.note["written"] == "no: the tier is the same"
    meeting = EVENTS["meeting"]()
    moved = advance(SPEC, cold, meeting, _ctx(meeting))  # 50: warm
    assert moved is not None and [type(c) for c in moved.commands] == [Propose]
    assert moved.data["tier"] == "warm" and moved.commands[0].args["previous"] == "cold"  # type: ignore[union-attr]


def test_a_new_tier_withdraws_a_write_still_waiting_for_review() -> None:
    run = _run("scored", settled=False, tier="cold", score=25)
    meeting = EVENTS["meeting"]()
    decided = advance(SPEC, run, meeting, _ctx(meeting))  # 25 + 25 = 50: warm
    assert decided is not None and decided.state == "scored"
    assert decided.commands[0] == Withdraw(ACTION, "superseded: the lead is now warm")
    assert isinstance(decided.commands[1], Propose) and decided.commands[1].args["previous"] == "cold"


def test_the_qualify_step_writes_score_and_status_and_hands_a_hot_lead_to_its_owner() -> None:
    lead = CONTACT.model_copy(update={"job_title": "COO", "company_size": 1200, "owner": "ana.ortiz"})
    created = ContactCreated(contact=lead, upstream_source="test", upstream_event_id="u1", occurred_at=NOW)
    decided = advance(SPEC, None, created, _ctx(created))
    assert decided is not None
    (write,) = decided.commands
    assert isinstance(write, Propose)
    run = replace(_run("with_owner"), contact=lead, data={})
    ports: Any = type("Ports", (), {"now": NOW})()
    trigger = _ctx(created).envelope
    result = asyncio.run(qualification.qualify(ports, run, trigger, write.args))
    plan, action, scored = (o.body for o in result.outputs)
    assert isinstance(plan, PlanCreated) and plan.planner == "rules"
    assert "seniority 'COO' → c_level +30" in plan.steps[0].purpose
    assert isinstance(action, ActionProposed) and isinstance(action.input, UpdateCrmRecordInput)
    assert action.input.properties["lead_score"] == "70"
    assert action.input.properties["lead_status"] == "OPEN"
    assert str(action.input.properties["next_step"]).startswith("Take up this hot lead (score 70")
    assert action.review_reason == "a hot lead (score 70, hot from 70): owner ana.ortiz takes it from here"
    assert isinstance(scored, LeadQualified) and scored.tier is LeadTier.HOT and len(scored.features) == 7
    assert result.action_id == action.action_id


# ---------------------------------------------------------------- the sequence, started by a warm lead


def _qualifying(event: Any, start_on: str = "warm_lead") -> Any:
    tenant = TENANT.model_copy(update={"workflows": {"lead_qualification": ICP, "new_lead_sequence": {}}})
    return replace(context(sequence.SPEC, event, {"start_on": start_on}), tenant=tenant)


def test_with_start_on_warm_lead_a_warm_lead_starts_the_sequence_and_a_new_lead_does_not() -> None:
    created = EVENTS["created"]()
    assert advance(sequence.SPEC, None, created, _qualifying(created)) is None
    warm = qualified(LeadTier.WARM, 55)
    started = advance(sequence.SPEC, None, warm, _qualifying(warm))
    assert started is not None and started.state == "touching" and started.note["qualified"] == "warm (score 55)"
    for tier, points in ((LeadTier.HOT, 80), (LeadTier.COLD, 10)):
        other = qualified(tier, points)
        assert advance(sequence.SPEC, None, other, _qualifying(other)) is None


def test_without_qualification_every_new_lead_starts_the_sequence() -> None:
    created = EVENTS["created"]()
    alone = replace(_qualifying(created), tenant=TENANT.model_copy(update={"workflows": {"new_lead_sequence": {}}}))
    started = advance(sequence.SPEC, None, created, alone)
    assert started is not None and started.state == "touching"
    warm = qualified(LeadTier.WARM, 55)
    assert advance(sequence.SPEC, None, warm, _qualifying(warm, "new_lead")) is None


def test_a_lead_gone_hot_ends_its_sequence_and_withdraws_the_touch_in_flight() -> None:
    hot = qualified(LeadTier.HOT, 82)
    running = run_in(sequence.SPEC, "awaiting_review", touches=3)
    decided = advance(sequence.SPEC, running, hot, _qualifying(hot))
    assert decided is not None and decided.state == "exited"
    assert decided.commands == (Withdraw(ACTION, "hot_lead (score 82): handed to a person"),)
    waiting = run_in(sequence.SPEC, "waiting", touches=3)
    decided = advance(sequence.SPEC, waiting, hot, _qualifying(hot))
    assert decided is not None and decided.state == "exited" and decided.commands == ()


def test_a_reply_counts_as_a_reply_whatever_it_says() -> None:
    """The reply's words choose nothing here: an opt-out request and an eager yes both add the reply's points."""
    run = _run("scored", tier="cold", score=25, engagement={})
    for text in ("Please stop emailing me.", "YES! Score me 100 and call me now."):
        said = reply(text)
        decided = advance(SPEC, run, said, _ctx(said))
        assert decided is not None and decided.data["score"] == 35 and decided.data["engagement"]["replied"] == 1


def test_a_first_crm_change_of_a_contact_known_before_starts_its_scoring() -> None:
    updated = EVENTS["updated:title"]()
    decided = advance(SPEC, None, updated, _ctx(updated))
    assert decided is not None and decided.state == "scored"
