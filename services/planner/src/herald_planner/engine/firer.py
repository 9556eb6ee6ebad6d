"""Fires durable timers: every `interval` seconds, the pending timers due on the planner's clock are leased
(rows locked `FOR UPDATE SKIP LOCKED`, so replicas share them and none takes one twice at a time) and
published as `TimerFired` on the timer topic, with their audit copies, in one Kafka transaction.

A timer is marked fired by the runner, in the same write as the step it causes — not here. So a firer that
dies after leasing loses nothing (the lease runs out and a replica publishes it), and one that dies after
publishing doubles nothing (the second publication finds the timer fired and changes nothing).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from prometheus_client import Counter, Gauge, Histogram

from herald_core.bus import Outbound, TransactionalProducer
from herald_core.bus.tasks import cancel_and_wait
from herald_core.contracts import TimerFired
from herald_core.envelope import Envelope
from herald_core.observability import NotReady, get_logger
from herald_core.topics import TIMERS, contact_key
from herald_planner.adapters.runs import DueTimer, WorkflowRuns

SOURCE = "herald/planner"
FIRED = Counter(
    "herald_planner_timers_published_total", "Timers published as due (a repeat after a lease ran out counts)."
)
REPUBLISHED = Counter(
    "herald_planner_timers_republished_total", "Timers published again because an earlier lease ran out."
)
LATENESS = Histogram(
    "herald_planner_timer_lateness_seconds",
    "How long after its deadline a timer was published, on the planner's clock.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
PENDING = Gauge("herald_planner_timers_pending", "Timers waiting for their deadline.")
OVERDUE = Gauge("herald_planner_timers_overdue", "Pending timers past their deadline (not yet taken by a run).")
log = get_logger("herald.planner")


def fired(timer: DueTimer, now: datetime) -> Outbound:
    body = TimerFired(
        timer_id=timer.timer_id,
        workflow_id=timer.workflow_id,
        workflow=timer.workflow,
        contact_id=timer.contact_id,
        name=timer.name,
        due_at=timer.due_at,
        fired_at=now,
    )
    envelope = Envelope(
        source=SOURCE,
        type=TimerFired.TYPE,
        subject=f"contact/{timer.contact_id}",
        tenant=timer.tenant,
        correlation_id=timer.correlation_id,
    )
    return Outbound(TIMERS, contact_key(timer.tenant, timer.contact_id), envelope, body)


class TimerFirer:
    def __init__(
        self,
        runs: WorkflowRuns,
        producer: TransactionalProducer,
        clock: Callable[[], datetime],
        *,
        interval: float,
        lease_seconds: float,
        keep_days: float = 180.0,
        batch: int = 500,
    ) -> None:
        self.keep = timedelta(days=keep_days)
        self.runs = runs
        self.producer = producer
        self.clock = clock
        self.interval = interval
        self.lease_seconds = lease_seconds
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._last_round: float | None = None
        self._last_error = ""

    async def start(self) -> None:
        await self.producer.start()
        self._task = asyncio.create_task(self._run(), name="planner-timers")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        await self.producer.stop()

    async def ready(self) -> bool | NotReady:
        """Ready once a round has run, and while rounds keep succeeding."""
        if self._last_round is None:
            return NotReady(self._last_error or "the timer firer has not run a round yet")
        stale = time.monotonic() - self._last_round
        if stale > max(30.0, 20 * self.interval):
            return NotReady(f"no timer round succeeded for {stale:.0f}s: {self._last_error}"[:300])
        return True

    async def fire_due(self) -> int:
        """One round: lease what is due, publish it, return how many were published."""
        now = self.clock()
        due = await self.runs.lease_due(now, self.batch, self.lease_seconds)
        if due:
            await self.producer.publish([fired(timer, now) for timer in due])
            for timer in due:
                FIRED.inc()
                if timer.leases > 1:
                    REPUBLISHED.inc()
                LATENESS.observe(max(0.0, (now - timer.due_at).total_seconds()))
        return len(due)

    async def _run(self) -> None:
        counted = swept = 0.0
        while True:
            published = 0
            try:
                published = await self.fire_due()
                if time.monotonic() - counted > 10:
                    counted = time.monotonic()
                    counts = await self.runs.timer_counts(self.clock())
                    PENDING.set(counts.pending)
                    OVERDUE.set(counts.overdue)
                if time.monotonic() - swept > 600:  # what no run can ask for any more
                    swept = time.monotonic()
                    activity, timers = await self.runs.sweep(self.clock() - self.keep)
                    if activity or timers:
                        log.info("swept old activity and timers", activity=activity, timers=timers)
                self._last_round = time.monotonic()
            except Exception as exc:  # the lease runs out and a later round (or replica) publishes them
                self._last_error = repr(exc)[:300]
                log.warning("timer round failed", error=self._last_error)
            if published < self.batch:
                await asyncio.sleep(self.interval)
