"""`new_lead_first_touch` as a table: every state against every kind of event it handles, decided by the pure
`advance` (no Kafka, no Postgres). A spec that gains a state or an event without a row here fails."""

from __future__ import annotations

import pytest
from cases import EVENTS, assert_rows_cover, assert_terminal_states_take_nothing, context, run_in

from herald_planner.engine.spec import Propose, advance
from herald_planner.workflows.first_touch import SPEC

# what each outcome does in each state ("-": ignored, the event is stale or a duplicate)
TABLE = """
state            escalated        deferred  blocked  succeeded  failed  in_doubt  refused  happened   did_not_happen
proposed         awaiting_review  deferred  blocked  completed  failed  in_doubt  failed   -          -
awaiting_review  -                deferred  blocked  completed  failed  in_doubt  failed   -          -
deferred         awaiting_review  -         blocked  completed  failed  in_doubt  failed   -          -
in_doubt         -                -         -        -          -       -         -        completed  failed
"""
#: events about another action than the run's current one: ignored in every state
STALE = ("escalated:other_action", "blocked:other_action", "succeeded:other_action")


def _rows() -> dict[tuple[str, str], str | None]:
    header, *lines = [line.split() for line in TABLE.strip().splitlines()]
    return {
        (line[0], event): (None if cell == "-" else cell)
        for line in lines
        for event, cell in zip(header[1:], line[1:], strict=True)
    } | {(state, event): None for state in SPEC.active for event in STALE}


ROWS = _rows()


@pytest.mark.parametrize(("state", "event"), sorted(ROWS))
def test_each_state_and_event(state: str, event: str) -> None:
    made = EVENTS[event]()
    decided = advance(SPEC, run_in(SPEC, state), made, context(SPEC, made))
    expected = ROWS[(state, event)]
    assert (decided.state if decided else None) == expected
    if decided is not None:
        assert decided.commands == (), "after the proposal the first touch only records what became of it"


def test_every_active_state_and_handled_event_type_has_a_row() -> None:
    assert_rows_cover(SPEC, ROWS)


def test_terminal_states_take_nothing() -> None:
    assert_terminal_states_take_nothing(SPEC, lambda state: run_in(SPEC, state))


def test_a_new_lead_with_an_address_is_drafted_for_and_one_without_is_skipped() -> None:
    created = EVENTS["created"]()
    started = advance(SPEC, None, created, context(SPEC, created))
    assert started is not None and started.state == "proposed"
    assert started.commands == (Propose("first_touch"),)
    bare = EVENTS["created:no_email"]()
    skipped = advance(SPEC, None, bare, context(SPEC, bare))
    assert skipped is not None and skipped.state == "skipped" and skipped.commands == ()
    replied = EVENTS["replied"]()
    assert advance(SPEC, None, replied, context(SPEC, replied)) is None, "only a new lead starts it"
