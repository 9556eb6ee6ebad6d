"""Wedge detection: is a consumer still making progress?

A consumer is wedged when, on some partition, there are records past its committed position (lag above zero)
and that position has not moved for longer than `HERALD_WEDGE_SECONDS`. Then its readiness check fails with
the partition and the last error it met, and `herald_consumer_wedged` says so to Prometheus (the alert rule
`HeraldConsumerWedged` in `deploy/k8s/alerts.yaml` pages on it). An idle consumer (no lag) is never wedged,
and one working through a backlog moves its position with every batch.

Pure bookkeeping: the consumer reports what it read and committed; `Progress` does no I/O.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Gauge

CONSUMER_LAG = Gauge(
    "herald_consumer_lag",
    "Records past a consumer's committed position, per partition (as of its last fetch).",
    ["service", "consumer", "topic", "partition"],
)
CONSUMER_STALLED = Gauge(
    "herald_consumer_stalled_seconds",
    "How long a consumer with lag has not moved its committed position, per partition (0: moving or idle).",
    ["service", "consumer", "topic", "partition"],
)
CONSUMER_WEDGED = Gauge(
    "herald_consumer_wedged",
    "1 while a consumer is wedged (lag and no progress past the threshold).",
    ["service", "consumer"],
)


@dataclass
class _Partition:
    committed: int  # the next offset to process
    end: int  # the partition's end as last seen (read_committed: its last stable offset)
    moved_at: float


class Progress:
    """Committed positions and partition ends of one consumer, and how long each has not moved."""

    def __init__(self, service: str, consumer: str, wedge_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.service = service
        self.consumer = consumer
        self.wedge_seconds = wedge_seconds
        self.clock = clock
        self._partitions: dict[tuple[str, int], _Partition] = {}
        self.last_error: str | None = None

    def fetched(self, topic: str, partition: int, first_offset: int, end: int | None) -> None:
        """A batch from `topic[partition]` starting at `first_offset`; `end` is the partition's end if known."""
        now = self.clock()
        known = self._partitions.get((topic, partition))
        if known is None:
            known = self._partitions[(topic, partition)] = _Partition(first_offset, first_offset, now)
        elif first_offset > known.committed:  # records were skipped past (a compacted or deleted range)
            known.committed, known.moved_at = first_offset, now
        known.end = max(known.end, end if end is not None else first_offset + 1)
        self._export(topic, partition, known, now)

    def tracks(self, topic: str, partition: int) -> bool:
        return (topic, partition) in self._partitions

    def caught_up(self, topic: str, partition: int, position: int, end: int) -> None:
        """A fetch brought nothing from `topic[partition]` and the consumer's position is at its end: whatever lies
        between the last committed record and the end is no record to process (a transaction's commit marker
        takes an offset too), so nothing waits there."""
        known = self._partitions.get((topic, partition))
        if known is None or position < end or position <= known.committed:
            return
        now = self.clock()
        known.committed, known.end, known.moved_at = position, max(known.end, end), now
        self._export(topic, partition, known, now)

    def committed(self, topic: str, partition: int, next_offset: int) -> None:
        """The consumer's position on `topic[partition]` is now `next_offset`, durably."""
        now = self.clock()
        known = self._partitions.get((topic, partition))
        if known is None:
            known = self._partitions[(topic, partition)] = _Partition(next_offset, next_offset, now)
        if next_offset != known.committed:
            known.committed, known.moved_at = next_offset, now
        known.end = max(known.end, next_offset)
        if not self.wedged():
            self.last_error = None
        self._export(topic, partition, known, now)

    def failed(self, error: str) -> None:
        """What stopped the consumer this time (kept for the readiness answer)."""
        self.last_error = error[:500]

    def keep_only(self, assigned: set[tuple[str, int]]) -> None:
        """Forget partitions no longer this consumer's (a rebalance moved them elsewhere)."""
        for gone in set(self._partitions) - assigned:
            del self._partitions[gone]
            for gauge in (CONSUMER_LAG, CONSUMER_STALLED):
                try:
                    gauge.remove(self.service, self.consumer, gone[0], str(gone[1]))
                except KeyError:
                    pass

    def wedged(self) -> str | None:
        """Why the consumer is wedged (partition, position, lag, for how long, the last error), or None."""
        now = self.clock()
        stuck = [
            f"{topic}[{partition}] stuck at offset {p.committed} for {now - p.moved_at:.0f}s "
            f"with {p.end - p.committed} record(s) behind it"
            for (topic, partition), p in sorted(self._partitions.items())
            if p.end > p.committed and now - p.moved_at > self.wedge_seconds
        ]
        CONSUMER_WEDGED.labels(self.service, self.consumer).set(1 if stuck else 0)
        if not stuck:
            return None
        because = f"; last error: {self.last_error}" if self.last_error else ""
        return f"{self.consumer} is wedged: {'; '.join(stuck)}{because}"

    def _export(self, topic: str, partition: int, known: _Partition, now: float) -> None:
        labels = (self.service, self.consumer, topic, str(partition))
        lag = max(0, known.end - known.committed)
        CONSUMER_LAG.labels(*labels).set(lag)
        CONSUMER_STALLED.labels(*labels).set(now - known.moved_at if lag else 0)
