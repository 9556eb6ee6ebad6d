"""Wedge detection: a consumer with lag whose committed position does not move is wedged; an idle one or one
working through a backlog is not."""

from __future__ import annotations

from herald_core.bus import Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_consumer_stuck_behind_records_is_wedged_after_the_threshold() -> None:
    clock = Clock()
    progress = Progress("planner", "workflows", wedge_seconds=30, clock=clock)
    progress.fetched("herald.events.v1", 3, first_offset=120, end=160)
    progress.failed("UNAVAILABLE: retrieval down")
    clock.now += 29
    assert progress.wedged() is None
    clock.now += 2
    reason = progress.wedged()
    assert reason is not None
    assert "herald.events.v1[3] stuck at offset 120" in reason
    assert "40 record(s) behind it" in reason
    assert "UNAVAILABLE: retrieval down" in reason


def test_progress_and_idleness_are_not_wedges() -> None:
    clock = Clock()
    progress = Progress("planner", "workflows", wedge_seconds=30, clock=clock)
    progress.fetched("t", 0, first_offset=0, end=1000)
    for step in range(1, 10):  # a backlog, a batch every 20 s
        clock.now += 20
        progress.committed("t", 0, step * 100)
        assert progress.wedged() is None
    progress.committed("t", 0, 1000)
    clock.now += 3600  # then nothing to do for an hour
    assert progress.wedged() is None


def test_a_partition_moved_to_another_replica_is_forgotten() -> None:
    clock = Clock()
    progress = Progress("guard", "decisions", wedge_seconds=5, clock=clock)
    progress.fetched("t", 0, first_offset=5, end=9)
    progress.fetched("t", 1, first_offset=0, end=3)
    clock.now += 10
    assert progress.wedged() is not None
    progress.keep_only({("t", 1)})
    progress.committed("t", 1, 3)
    assert progress.wedged() is None


def test_a_transaction_marker_after_the_last_record_is_not_lag() -> None:
    """A transactional producer's commit marker takes an offset: after the last record at offset 9 the
    partition ends at 11. Once the consumer's position reaches the end, nothing waits there."""
    clock = Clock()
    progress = Progress("retrieval", "memory", wedge_seconds=5, clock=clock)
    progress.fetched("t", 0, first_offset=9, end=11)
    progress.committed("t", 0, 10)
    progress.caught_up("t", 0, position=11, end=11)
    clock.now += 60
    assert progress.wedged() is None


def test_a_consumer_rewound_behind_its_end_is_not_caught_up() -> None:
    clock = Clock()
    progress = Progress("planner", "workflows", wedge_seconds=5, clock=clock)
    progress.fetched("t", 0, first_offset=4, end=8)
    progress.caught_up("t", 0, position=4, end=8)  # read again from its first record after a failure
    clock.now += 6
    assert progress.wedged() is not None
