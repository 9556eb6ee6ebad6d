"""`new_lead_sequence` as a table: every active state against every kind of event it handles, decided by the
pure `advance` (no Kafka, no Postgres); then the rules a table cannot show: business days in the contact's
zone, the thread, redrafts and their bound, skipping, a colleague's reply, and a deadline racing an event."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from cases import (
    ACTION,
    EVENTS,
    NOW,
    REPLY_ID,
    assert_rows_cover,
    assert_terminal_states_take_nothing,
    context,
    reply,
    rows_of,
    run_in,
    timer_fired,
)

from herald_core.contracts import EmailReplied
from herald_planner.engine.activity import activity_of
from herald_planner.engine.spec import Activity, CancelTimers, Propose, StartTimer, Withdraw, advance
from herald_planner.workflows.sequence import SPEC

# rows: events; columns: the active states; "-": ignored (stale, a duplicate, or nothing to do)
TABLE = """
event                      touching         awaiting_review  deferred         in_doubt  waiting   answered
escalated                  awaiting_review  -                awaiting_review  -         -         -
escalated:other_action     -                -                -                -         -         -
deferred                   deferred         deferred         -                -         -         -
blocked                    blocked          blocked          blocked          -         -         -
blocked:content            touching         touching         touching         -         -         -
blocked:grounding          touching         touching         touching         -         -         -
blocked:review             touching         touching         touching         -         -         -
blocked:cap                blocked          blocked          blocked          -         -         -
blocked:other_action       -                -                -                -         -         -
succeeded                  waiting          waiting          waiting          -         -         -
succeeded:other_action     -                -                -                -         -         -
failed                     failed           failed           failed           -         -         -
in_doubt                   in_doubt         in_doubt         in_doubt         -         -         -
refused                    failed           failed           failed           -         -         -
happened                   -                -                -                waiting   -         -
did_not_happen             -                -                -                failed    -         -
timer                      -                -                -                -         touching  -
timer:other                -                -                -                -         -         -
replied                    exited           exited           exited           exited    exited    exited
replied:colleague          -                -                -                -         -         -
reply                      exited           exited           exited           exited    exited    exited
reply:colleague            -                -                -                -         -         -
reply:away                 touching         awaiting_review  deferred         in_doubt  waiting   answered
reply:away_no_date         touching         awaiting_review  deferred         in_doubt  waiting   answered
meeting                    exited           exited           exited           exited    exited    exited
unsubscribed               exited           exited           exited           exited    exited    exited
bounced                    exited           exited           exited           exited    exited    exited
bounced:soft               -                -                -                -         -         -
complained                 exited           exited           exited           exited    exited    exited
opened                     -                -                -                -         -         -
became_opportunity         exited           exited           exited           exited    exited    exited
became_customer            exited           exited           exited           exited    exited    exited
updated:title              touching         awaiting_review  deferred         in_doubt  waiting   answered
classified:not_now         -                -                -                -         -         waiting
classified:not_now_no_day  -                -                -                -         -         exited
classified:not_interested  -                -                -                -         -         exited
classified:other_reply     -                -                -                -         -         -
qualified:hot              exited           exited           exited           exited    exited    exited
qualified:warm             -                -                -                -         -         -
qualified:cold             -                -                -                -         -         -
clicked                    -                -                -                -         -         -
"""


ROWS = rows_of(TABLE)


def _run(state: str, **data: object):  # type: ignore[no-untyped-def]
    return run_in(SPEC, state, **{"waiting_for": 2, "touches": 3, "answered_by": REPLY_ID, "resume_touch": 2, **data})


@pytest.mark.parametrize(("state", "event"), sorted(ROWS))
def test_each_state_and_event(state: str, event: str) -> None:
    made = EVENTS[event]()
    decided = advance(SPEC, _run(state), made, context(SPEC, made))
    assert (decided.state if decided else None) == ROWS[(state, event)]


def test_every_active_state_and_handled_event_type_has_a_row() -> None:
    assert set(SPEC.active) == {state for state, _ in ROWS}
    assert_rows_cover(SPEC, ROWS)


def test_terminal_states_take_nothing() -> None:
    assert_terminal_states_take_nothing(SPEC, _run)


def test_a_new_lead_gets_touch_one_and_one_without_an_address_is_skipped() -> None:
    created = EVENTS["created"]()
    started = advance(SPEC, None, created, context(SPEC, created))
    assert started is not None and started.state == "touching"
    assert started.commands == (Propose("touch", {"touch": 1}),)
    assert started.data["touches"] == 3
    bare = EVENTS["created:no_email"]()
    assert advance(SPEC, None, bare, context(SPEC, bare)).state == "skipped"  # type: ignore[union-attr]
    shorter = advance(SPEC, None, created, context(SPEC, created, {"waits_business_days": [2]}))
    assert shorter is not None and shorter.data["touches"] == 2


def test_a_sent_touch_waits_business_days_in_the_contacts_zone_and_keeps_the_thread() -> None:
    sent = EVENTS["succeeded"]()
    decided = advance(SPEC, _run("touching"), sent, context(SPEC, sent))
    assert decided is not None and decided.state == "waiting"
    # Monday 16:00 in Berlin, three business days: Thursday 16:00 in Berlin (15:00 UTC)
    assert decided.commands == (StartTimer("touch_2", datetime(2026, 3, 5, 15, 0, tzinfo=UTC)),)
    assert decided.data["thread"] == ["<01action@herald.local>"]
    assert decided.data["waiting_for"] == 2
    # from a Friday afternoon, over the weekend: Wednesday
    friday = context(SPEC, sent)
    friday = type(friday)(
        now=NOW + timedelta(days=4), envelope=friday.envelope, config=friday.config, tenant=friday.tenant
    )
    later = advance(SPEC, _run("touching"), sent, friday)
    assert later is not None and later.commands == (StartTimer("touch_2", datetime(2026, 3, 11, 15, 0, tzinfo=UTC)),)


def test_the_second_touch_waits_the_second_wait_and_the_last_touch_completes() -> None:
    sent = EVENTS["succeeded"]()
    second = advance(SPEC, _run("touching", touch=2), sent, context(SPEC, sent))
    assert second is not None and second.commands == (StartTimer("touch_3", datetime(2026, 3, 6, 15, 0, tzinfo=UTC)),)
    last = advance(SPEC, _run("touching", touch=3), sent, context(SPEC, sent))
    assert last is not None and last.state == "completed" and last.commands == ()


def test_a_timer_starts_the_touch_it_waited_for() -> None:
    fired = timer_fired()
    decided = advance(SPEC, _run("waiting"), fired, context(SPEC, fired))
    assert decided is not None and decided.commands == (Propose("touch", {"touch": 2}),)
    assert decided.data["touch"] == 2 and decided.data["attempt"] == 1


def test_a_block_for_the_words_is_drafted_again_with_its_reason_at_most_n_times() -> None:
    block = EVENTS["blocked:grounding"]()
    again = advance(SPEC, _run("touching"), block, context(SPEC, block))
    assert again is not None and again.commands == (Propose("touch", {"touch": 1}),)
    assert again.data["attempt"] == 2
    assert again.data["feedback"] == ["grounding.unsupported: grounding.unsupported said no"]
    spent = advance(SPEC, _run("touching", attempt=3), block, context(SPEC, block))
    assert spent is not None and spent.state == "blocked", "two redrafts, then on_block (end)"
    none = advance(SPEC, _run("touching"), block, context(SPEC, block, {"reflection_attempts": 0}))
    assert none is not None and none.state == "blocked"


def test_skip_moves_on_to_the_next_touch_but_a_consent_block_always_ends() -> None:
    skip = {"on_block": "skip"}
    capped = EVENTS["blocked:cap"]()
    skipped = advance(SPEC, _run("touching"), capped, context(SPEC, capped, skip))
    assert skipped is not None and skipped.state == "waiting"
    assert skipped.commands == (StartTimer("touch_2", datetime(2026, 3, 5, 15, 0, tzinfo=UTC)),)
    assert skipped.note["skipped_touch"] == 1
    at_last = advance(SPEC, _run("touching", touch=3), capped, context(SPEC, capped, skip))
    assert at_last is not None and at_last.state == "completed"
    opted_out = EVENTS["blocked"]()
    assert advance(SPEC, _run("touching"), opted_out, context(SPEC, opted_out, skip)).state == "blocked"  # type: ignore[union-attr]


def test_a_colleagues_reply_ends_the_sequence_only_when_the_tenant_opts_in() -> None:
    reply = EVENTS["replied:colleague"]()
    assert advance(SPEC, _run("waiting"), reply, context(SPEC, reply)) is None
    opted = advance(SPEC, _run("waiting"), reply, context(SPEC, reply, {"exit_on_company_reply": True}))
    assert opted is not None and opted.state == "exited" and opted.data["exit"] == "colleague_replied"
    # a reply from a free-mail address is nobody's company
    gmail = reply.model_copy(update={"from_address": "sam@gmail.com"})
    assert advance(SPEC, _run("waiting"), gmail, context(SPEC, gmail, {"exit_on_company_reply": True})) is None


def test_an_exit_recorded_before_the_deadline_wins_over_the_timer() -> None:
    reply = EVENTS["replied"]()
    envelope = context(SPEC, reply).envelope.model_copy(update={"time": NOW - timedelta(minutes=1)})
    recorded = activity_of(envelope, reply)
    assert recorded is not None
    fired = timer_fired(due=NOW)
    decided = advance(SPEC, _run("waiting"), fired, context(SPEC, fired, history=(recorded,)))
    assert decided is not None and decided.state == "exited" and decided.data["exit"] == "replied"
    assert decided.note["decided_at_deadline"] is True
    # what does not end a sequence does not stop the touch
    opened = Activity("e2", "herald.message.engagement.v1", "501", NOW, {"kind": "opened"})
    going = advance(SPEC, _run("waiting"), fired, context(SPEC, fired, history=(opened,)))
    assert going is not None and going.state == "touching"


def test_a_lifecycle_stage_the_tenant_does_not_list_does_not_end_it() -> None:
    became = EVENTS["became_opportunity"]()
    kept = advance(SPEC, _run("waiting"), became, context(SPEC, became, {"exit_lifecycle_stages": ["customer"]}))
    assert kept is not None and kept.state == "waiting"


def test_a_reply_is_kept_as_the_contacts_activity() -> None:
    reply = EVENTS["replied"]()
    assert EmailReplied in SPEC.activity
    recorded = activity_of(context(SPEC, reply).envelope, reply)
    assert recorded is not None and recorded.contact_id == "501" and recorded.type == EmailReplied.TYPE


def test_an_exit_while_a_touch_waits_for_review_withdraws_it_and_one_while_waiting_has_nothing_to_withdraw() -> None:
    reply = EVENTS["replied"]()
    for state in ("touching", "awaiting_review", "deferred"):
        decided = advance(SPEC, _run(state), reply, context(SPEC, reply))
        assert decided is not None and decided.commands == (Withdraw("01ACTION", "replied"),), state
    waiting = advance(SPEC, _run("waiting"), reply, context(SPEC, reply))
    assert waiting is not None and waiting.state == "exited" and waiting.commands == ()


def test_a_wait_is_handed_what_the_contact_did_and_no_other_step_pays_for_reading_it() -> None:
    from herald_core.contracts import TimerFired

    assert frozenset({TimerFired}) == SPEC.reads_history


def test_an_out_of_office_reply_moves_the_wait_to_the_contacts_return_and_never_ends_the_run() -> None:
    away = EVENTS["reply:away"]()  # back on Monday 16 March 2026
    due = NOW + timedelta(days=2)
    decided = advance(SPEC, _run("waiting", due_at=due.isoformat()), away, context(SPEC, away))
    assert decided is not None and decided.state == "waiting"
    # 09:00 in Berlin (the contact's zone) on the return day: 08:00 UTC
    back = datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    assert decided.commands == (CancelTimers(), StartTimer("touch_2", back))
    assert decided.data["due_at"] == back.isoformat()
    # a wait that already ends after the return stays as it was
    later = (back + timedelta(days=1)).isoformat()
    unchanged = advance(SPEC, _run("waiting", due_at=later), away, context(SPEC, away))
    assert unchanged is not None and unchanged.commands == ()
    # no return day given: the wait stays
    vague = EVENTS["reply:away_no_date"]()
    assert advance(SPEC, _run("waiting", due_at=due.isoformat()), vague, context(SPEC, vague)).commands == ()  # type: ignore[union-attr]


def test_a_return_day_on_a_weekend_means_the_monday_after() -> None:
    away = reply("Away.", away_until=date(2026, 3, 14))  # a Saturday
    decided = advance(SPEC, _run("waiting", due_at=NOW.isoformat()), away, context(SPEC, away))
    assert decided is not None and decided.commands[-1] == StartTimer(
        "touch_2", datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    )


def test_an_out_of_office_while_a_touch_is_in_flight_holds_the_wait_after_it() -> None:
    away = EVENTS["reply:away"]()
    held = advance(SPEC, _run("touching"), away, context(SPEC, away))
    assert held is not None and held.state == "touching" and held.commands == ()
    sent = EVENTS["succeeded"]()
    decided = advance(SPEC, _run("touching", **held.data), sent, context(SPEC, sent))
    # three business days would end on Thursday 5 March; the contact is back on the 16th
    assert decided is not None and decided.commands == (StartTimer("touch_2", datetime(2026, 3, 16, 8, 0, tzinfo=UTC)),)


def test_an_out_of_office_recorded_before_a_deadline_does_not_end_the_run() -> None:
    away = EVENTS["reply:away_no_date"]()
    fired = timer_fired()
    seen = (activity_of(context(SPEC, away).envelope, away),)
    decided = advance(SPEC, _run("waiting"), fired, context(SPEC, fired, history=seen))  # type: ignore[arg-type]
    assert decided is not None and decided.state == "touching"


def test_a_reply_read_at_the_inbound_edge_ends_the_run_and_withdraws_a_touch_in_flight() -> None:
    answered = EVENTS["reply"]()
    decided = advance(SPEC, _run("awaiting_review"), answered, context(SPEC, answered))
    assert decided is not None and decided.state == "exited"
    assert decided.commands == (Withdraw(ACTION, "replied"),)


def _handing_over(event):  # type: ignore[no-untyped-def]
    """The context of a tenant that runs reply handling beside the sequence."""
    plain = context(SPEC, event)
    tenant = plain.tenant.model_copy(update={"workflows": {"new_lead_sequence": {}, "reply_handling": {}}})
    return type(plain)(now=plain.now, envelope=plain.envelope, config=plain.config, tenant=tenant)


@pytest.mark.parametrize(
    ("state", "resume"), [("waiting", 2), ("touching", 1), ("awaiting_review", 1), ("in_doubt", 2)]
)
def test_with_reply_handling_a_reply_holds_the_sequence_for_its_reading(state: str, resume: int) -> None:
    answered = EVENTS["reply"]()
    held = advance(SPEC, _run(state), answered, _handing_over(answered))
    assert held is not None and held.state == "answered"
    assert held.data == {"answered_by": REPLY_ID, "resume_touch": resume}
    assert held.commands[0] == CancelTimers()
    if state in ("touching", "awaiting_review"):  # the touch in flight is withdrawn, and sent again on resuming
        assert held.commands[1:] == (Withdraw(ACTION, "replied"),)


def test_a_not_now_reading_resumes_the_interrupted_touch_on_its_day() -> None:
    reading = EVENTS["classified:not_now"]()  # not before 1 April 2026
    resumed = advance(SPEC, _run("answered"), reading, _handing_over(reading))
    assert resumed is not None and resumed.state == "waiting"
    assert resumed.commands == (StartTimer("touch_2", datetime(2026, 4, 1, 7, 0, tzinfo=UTC)),)  # 09:00 in Berlin
    assert resumed.data["waiting_for"] == 2
    done = advance(SPEC, _run("answered", resume_touch=4), reading, _handing_over(reading))
    assert done is not None and done.state == "completed"  # it had sent its last touch


def test_any_other_reading_ends_the_sequence_with_the_intent() -> None:
    reading = EVENTS["classified:not_interested"]()
    ended = advance(SPEC, _run("answered"), reading, _handing_over(reading))
    assert ended is not None and ended.state == "exited" and ended.data["exit"] == "replied (not_interested)"


def test_with_reply_handling_a_reply_recorded_before_a_deadline_holds_instead_of_ending() -> None:
    answered = EVENTS["reply"]()
    fired = timer_fired()
    seen = (activity_of(context(SPEC, answered).envelope, answered),)
    plain = _handing_over(fired)
    at_deadline = type(plain)(
        now=plain.now, envelope=plain.envelope, config=plain.config, tenant=plain.tenant, history=seen
    )  # type: ignore[arg-type]
    held = advance(SPEC, _run("waiting"), fired, at_deadline)
    assert held is not None and held.state == "answered" and held.data["answered_by"] == REPLY_ID
