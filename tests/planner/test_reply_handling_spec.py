"""`reply_handling` as a table: a reply starts its own run (one per reply), which reads it; the reading it
publishes moves that run, and only that run, to the branch the workflow declares for the intent; a reading less
sure than `min_confidence` goes to a person. Decided by the pure `advance`, no Kafka, no Postgres."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from cases import (
    ACTION,
    CONTACT,
    EVENTS,
    NOW,
    REPLY_ID,
    assert_rows_cover,
    assert_terminal_states_take_nothing,
    classified,
    context,
    reply,
    run_in,
)

from herald_core.contracts import ActionProposed, ReplyIntent, UpdateCrmRecordInput
from herald_planner.engine.spec import Propose, advance
from herald_planner.workflows.replies import SPEC, hand_off


def _run(state: str, **data: object):  # type: ignore[no-untyped-def]
    run = run_in(SPEC, state, reply=REPLY_ID, **data)
    return run.__class__(**{**run.__dict__, "workflow_id": "wf-reply", "key": REPLY_ID})


HAND_OFF_WHY = "the reply was read as unsubscribe with confidence 0.55: a person decides"
BRANCH = {
    "unsubscribe": "opted_out",
    "not_now": "done",
    "not_interested": "done",
    "out_of_office": "done",
    "interested": "with_a_person",
    "question": "answering",
    "meeting_request": "scheduling",
    "wrong_person": "with_a_person",
    "unclear": "with_a_person",
}


def test_a_reply_starts_a_run_of_its_own_that_reads_it() -> None:
    received = reply("Please stop emailing me.")
    started = advance(SPEC, None, received, context(SPEC, received))
    assert started is not None and started.state == "reading" and started.commands == (Propose("read"),)
    assert started.data["received"]["text"] == "Please stop emailing me."
    assert SPEC.run_key is not None and SPEC.run_key(received) == REPLY_ID  # one run per reply


@pytest.mark.parametrize("intent", sorted(BRANCH))
def test_each_intent_takes_its_branch(intent: str) -> None:
    reading = classified(intent)
    reading = reading.model_copy(update={"workflow_id": "wf-reply"})
    decided = advance(SPEC, _run("reading"), reading, context(SPEC, reading))
    assert decided is not None and decided.state == BRANCH[intent]
    steps = [command.step for command in decided.commands if isinstance(command, Propose)]
    assert (
        steps
        == {
            "opted_out": ["opt_out"],
            "done": [],
            "with_a_person": ["hand_off"],
            "answering": ["answer"],
            "scheduling": ["schedule"],
        }[BRANCH[intent]]
    )


def test_a_reading_not_sure_enough_goes_to_a_person_and_another_runs_reading_is_not_this_ones() -> None:
    unsure = classified("unsubscribe").model_copy(update={"workflow_id": "wf-reply", "confidence": 0.55})
    handed = advance(SPEC, _run("reading"), unsure, context(SPEC, unsure))
    assert handed is not None and handed.state == "with_a_person"
    assert handed.commands == (Propose("hand_off", {"why": HAND_OFF_WHY, "unsure": True}),)
    stricter = context(SPEC, unsure, {"min_confidence": 0.5})
    assert advance(SPEC, _run("reading"), unsure, stricter).state == "opted_out"  # type: ignore[union-attr]
    other = classified("unsubscribe").model_copy(update={"workflow_id": "wf-other"})
    assert advance(SPEC, _run("reading"), other, context(SPEC, other)) is None
    assert {i.value for i in ReplyIntent} == set(BRANCH)


# the hand-off's outcomes, in the state that waits for them
OUTCOMES = {
    "escalated": "with_a_person",
    "escalated:other_action": None,
    "deferred": "with_a_person",
    "succeeded": "handed_off",
    "succeeded:other_action": None,
    "blocked": "dismissed",
    "blocked:review": "dismissed",
    "failed": "failed",
    "refused": "failed",
    "in_doubt": "with_a_person",
    "happened": "handed_off",
    "did_not_happen": "failed",
}


# the answer's outcomes: sent, or blocked and handed to a person
ANSWER_OUTCOMES = {
    **OUTCOMES,
    "succeeded": "answered",
    "happened": "answered",
    "blocked": "with_a_person",
    "blocked:review": "with_a_person",
    "escalated": "answering",
    "deferred": "answering",
    "in_doubt": "answering",
}

# the meeting's outcomes: booked, or blocked or failed and handed to a person
MEETING_OUTCOMES = {
    **ANSWER_OUTCOMES,
    "succeeded": "scheduled",
    "happened": "scheduled",
    "failed": "with_a_person",
    "refused": "with_a_person",
    "did_not_happen": "with_a_person",
    "escalated": "scheduling",
    "deferred": "scheduling",
    "in_doubt": "scheduling",
}

# the referral's outcomes: a person made the new lead, or did not
REFERRAL_OUTCOMES = {
    **OUTCOMES,
    "succeeded": "referred",
    "happened": "referred",
    "escalated": "referring",
    "deferred": "referring",
    "in_doubt": "referring",
}

# (state, event) → the state it moves to; None: ignored (a reading is only read, an outcome only awaited)
ROWS = {
    ("reading", "classified:not_now"): "done",
    ("with_a_person", "classified:not_now"): None,
    ("answering", "classified:not_now"): None,
    ("scheduling", "classified:not_now"): None,
    **{("reading", event): None for event in OUTCOMES},
    **{("with_a_person", event): state for event, state in OUTCOMES.items()},
    **{("answering", event): state for event, state in ANSWER_OUTCOMES.items()},
    **{("scheduling", event): state for event, state in MEETING_OUTCOMES.items()},
    **{("referring", event): state for event, state in REFERRAL_OUTCOMES.items()},
    ("referring", "classified:not_now"): None,
}


def test_a_wrong_person_naming_an_address_refers_it_and_one_naming_none_goes_to_a_person() -> None:
    reading = classified("wrong_person").model_copy(update={"workflow_id": "wf-reply"})
    named = advance(SPEC, _run("reading", referral="sam@northwind.example"), reading, context(SPEC, reading))
    assert named is not None and named.state == "referring" and named.commands == (Propose("refer"),)
    unnamed = advance(SPEC, _run("reading"), reading, context(SPEC, reading))
    assert unnamed is not None and unnamed.state == "with_a_person"


def test_a_meeting_that_could_not_be_booked_goes_to_a_person_with_the_reason() -> None:
    failed = EVENTS["failed"]()
    decided = advance(SPEC, _run("scheduling", action_id=ACTION), failed, context(SPEC, failed))
    assert decided is not None and decided.state == "with_a_person"
    [command] = decided.commands
    assert isinstance(command, Propose) and command.step == "hand_off"
    assert command.args["why"].startswith("the meeting could not be booked (failed")
    handed = advance(SPEC, _run("scheduling", action_id=ACTION, handed_off=True), failed, context(SPEC, failed))
    assert handed is not None and handed.state == "failed"  # the hand-off itself failed: nothing more to try


def test_a_blocked_answer_goes_to_a_person_and_a_hand_off_instead_of_an_answer_ends_as_one() -> None:
    blocked = EVENTS["blocked:grounding"]()
    decided = advance(SPEC, _run("answering", action_id=ACTION), blocked, context(SPEC, blocked))
    assert decided is not None and decided.state == "with_a_person"
    [command] = decided.commands
    assert isinstance(command, Propose) and command.step == "hand_off" and "grounding" in command.args["why"]
    sent = EVENTS["succeeded"]()
    handed = advance(SPEC, _run("answering", action_id=ACTION, handed_off=True), sent, context(SPEC, sent))
    assert handed is not None and handed.state == "handed_off"


@pytest.mark.parametrize(("state", "event"), sorted(ROWS))
def test_each_state_and_event(state: str, event: str) -> None:
    made = EVENTS[event]()
    reading = made.model_copy(update={"workflow_id": "wf-reply"}) if event.startswith("classified") else made
    decided = advance(SPEC, _run(state, action_id=ACTION), reading, context(SPEC, reading))
    assert (decided.state if decided else None) == ROWS[(state, event)]


def test_every_active_state_and_handled_event_type_has_a_row() -> None:
    assert_rows_cover(SPEC, ROWS)


def test_terminal_states_take_nothing() -> None:
    assert_terminal_states_take_nothing(SPEC, _run)


def test_an_interested_contacts_hand_off_sets_its_stage_and_names_its_owner() -> None:
    received = reply("Sounds great, tell me more!")
    started = advance(SPEC, None, received, context(SPEC, received))
    assert started is not None
    run = replace(
        _run("with_a_person", received=started.data["received"], intent="interested", confidence=0.9),
        contact=CONTACT.model_copy(update={"owner": "ana.ortiz@acmerelay.example"}),
    )
    ports = type("Ports", (), {"now": NOW})()
    result = asyncio.run(hand_off(ports, run, context(SPEC, received).envelope, {"why": "they are interested"}))  # type: ignore[arg-type]
    (out,) = result.outputs
    action = out.body
    assert isinstance(action, ActionProposed) and isinstance(action.input, UpdateCrmRecordInput)
    assert action.input.properties["lifecycle_stage"] == "salesqualifiedlead"
    assert str(action.input.properties["next_step"]).startswith("Follow up: they are interested")
    assert action.review_reason == "they are interested; for its owner, ana.ortiz@acmerelay.example"
