"""The kill switch: a global and a per-tenant stop, followed by every service that acts.

`herald kill-switch on|off [--tenant T]` (or the review service's API) publishes a
`KillSwitchChanged` on the compacted `herald.control.v1`, keyed `global` or `tenant:<id>`. Each
service that can cause a side effect (the guard, the executor) reads the topic from its
beginning at start and follows it with a short fetch wait, so a change reaches all of them
well within a second. While a switch is on, the guard blocks every proposal it covers
(`control.kill_switch`) and the executor refuses every approval it covers, right before the
side effect.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from prometheus_client import Gauge

from herald_core.bus import Outbound, Rejected, TopicFollower, Unreadable, read_record
from herald_core.contracts import KillSwitchChanged, LlmBudgetChanged
from herald_core.envelope import Envelope
from herald_core.observability import get_logger
from herald_core.settings import CommonSettings
from herald_core.topics import CONTROL

ENGAGED = Gauge("herald_kill_switch_engaged", "1 while a kill switch is on, by scope.", ["scope"])
log = get_logger("herald.control")
GLOBAL = "global"


def control_key(tenant: str | None) -> bytes:
    return (f"tenant:{tenant}" if tenant else GLOBAL).encode()


@dataclass(frozen=True)
class Stop:
    scope: str  # "global" or the tenant id
    reason: str
    set_by: str


class KillSwitch(TopicFollower):
    def __init__(self, common: CommonSettings, service: str) -> None:
        self._stops: dict[str, Stop] = {}
        super().__init__(common, CONTROL, self._apply, f"{service}-kill-switch", service=service)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        read = read_record(record, CONTROL)
        if isinstance(read, Unreadable):
            raise Rejected(read.reason)  # the follower dead-letters it
        if not isinstance(read.body, KillSwitchChanged):
            return  # another control (an LLM budget) is another follower's
        change = read.body
        scope = change.tenant or GLOBAL
        if change.tenant and read.envelope.tenant != change.tenant:
            raise Rejected(f"a kill switch for tenant {change.tenant} under tenant {read.envelope.tenant}'s envelope")
        if change.engaged:
            self._stops[scope] = Stop(scope, change.reason, change.set_by)
        else:
            self._stops.pop(scope, None)
        ENGAGED.labels(scope).set(1 if change.engaged else 0)
        log.warning("kill switch " + ("on" if change.engaged else "off"), scope=scope, reason=change.reason)

    def engaged(self, tenant: str) -> Stop | None:
        """The stop that covers `tenant` (global first), or None."""
        return self._stops.get(GLOBAL) or self._stops.get(tenant)


ALL_TENANTS = "*"  # the envelope tenant of a global change


def kill_switch_message(tenant: str | None, engaged: bool, reason: str, set_by: str, source: str) -> Outbound:
    """The message that turns a switch on or off (the CLI and the review API both send this)."""
    body = KillSwitchChanged(tenant=tenant, engaged=engaged, reason=reason, set_by=set_by)
    envelope = Envelope.new_chain(
        source=source,
        type=KillSwitchChanged.TYPE,
        tenant=tenant or ALL_TENANTS,
        subject=f"kill-switch/{tenant or GLOBAL}",
    )
    return Outbound(CONTROL, control_key(tenant), envelope, body)


def budget_key(tenant: str) -> bytes:
    return f"budget:{tenant}".encode()


class LlmBudgets(TopicFollower):
    """Which tenants have spent today's LLM budget (`LlmBudgetChanged` on the control topic, from the guard).
    Followed by the planner, which has no kill switch: a control record it cannot read is its to dead-letter."""

    def __init__(self, common: CommonSettings, service: str) -> None:
        self._latest: dict[str, LlmBudgetChanged] = {}
        super().__init__(common, CONTROL, self._apply, f"{service}-llm-budgets", service=service)

    def _apply(self, record: ConsumerRecord[bytes, bytes]) -> None:
        read = read_record(record, CONTROL)
        if isinstance(read, Unreadable):
            raise Rejected(read.reason)
        if not isinstance(read.body, LlmBudgetChanged):
            return
        if read.envelope.tenant != read.body.tenant:
            raise Rejected(f"an LLM budget of tenant {read.body.tenant} under tenant {read.envelope.tenant}'s envelope")
        self._latest[read.body.tenant] = read.body
        log.info("LLM budget", tenant=read.body.tenant, exhausted=read.body.exhausted, day=str(read.body.day))

    def exhausted(self, tenant: str) -> LlmBudgetChanged | None:
        """Today's (UTC) spent budget of `tenant`, or None while there is budget left."""
        latest = self._latest.get(tenant)
        if latest is not None and latest.exhausted and latest.day == datetime.now(UTC).date():
            return latest
        return None
