"""What a workflow is, as data: what starts a run, its states, its transitions keyed by contract type, its
steps and its tenant configuration.

A transition is a pure function `(run, event, context) -> Advance | None`: it decides, the runner does the
I/O (drafting, publishing, timers). None means "not for me": the event is ignored by this run. The engine
never calls a transition for a run in a terminal state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from herald_core.bus import Outbound
from herald_core.contracts import ContactFacts, Contract
from herald_core.envelope import Envelope
from herald_core.tenants import TenantConfig

if TYPE_CHECKING:
    from herald_planner.engine.ports import Ports

ConfigT = TypeVar("ConfigT", bound=BaseModel)


@dataclass(frozen=True)
class Activity:
    """Something the contact (or someone at its company) did, as the planner recorded it: what a wait checks
    before it sleeps, and what the race between a deadline and an event is decided on."""

    event_id: str
    type: str  # the contract's TYPE
    contact_id: str
    recorded_at: datetime  # when Herald recorded it at its edge (the event's envelope time)
    facts: Mapping[str, Any] = field(default_factory=dict)  # e.g. the reason of a consent withdrawal


@dataclass(frozen=True)
class Run:
    """A workflow run as the engine sees it."""

    workflow_id: str
    workflow: str
    tenant: str
    contact: ContactFacts
    state: str  # "" for a run not started yet
    version: int  # bumped by every change; a change names the version it read (compare-and-set)
    data: Mapping[str, Any]  # the workflow's own memory: the touch it is at, the thread, attempts …
    config: Mapping[str, Any]  # the tenant's configuration of the workflow when the run started (pinned)
    started_at: datetime
    correlation_id: str
    key: str = ""  # which of the contact's runs of a workflow with `run_key` ("" for one run per contact)


@dataclass(frozen=True)
class Context(Generic[ConfigT]):
    """What a transition may read besides the run and the event."""

    now: datetime  # the planner's clock (moved by `clock_offset_seconds` in drills)
    envelope: Envelope  # of the event
    config: ConfigT  # the run's configuration (the tenant's, as pinned at the start)
    tenant: TenantConfig
    history: Sequence[Activity] = ()  # since the run started, oldest first; for the spec's `reads_history` types


# ---------------------------------------------------------------- what a transition asks the runner to do


@dataclass(frozen=True)
class Propose:
    """Run the step `step` (drafting, retrieval …) and publish what it proposes."""

    step: str
    args: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StartTimer:
    """Fire `name` for this run at `due_at` (a durable timer: it survives restarts and fires once)."""

    name: str
    due_at: datetime


@dataclass(frozen=True)
class CancelTimers:
    """Cancel the run's pending timers (leaving a wait early). Leaving for a terminal state cancels them too."""


@dataclass(frozen=True)
class Withdraw:
    """Tell the guard the run no longer wants `action_id` (still waiting for a review or a send window): any
    later decision of it blocks it."""

    action_id: str
    reason: str


Command = Propose | StartTimer | CancelTimers | Withdraw


@dataclass(frozen=True)
class Advance:
    state: str  # the state the run moves to (may be the one it is in)
    commands: tuple[Command, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)  # merged into the run's data
    note: Mapping[str, Any] = field(default_factory=dict)  # why, for the run's history


# ---------------------------------------------------------------- steps


@dataclass(frozen=True)
class StepResult:
    outputs: Sequence[Outbound]
    action_id: str | None = None  # the action the step proposed, so decisions about it find the run
    label: str | None = None  # which of the run's steps proposed it (e.g. `touch_2`): reviewers' examples key on it
    data: Mapping[str, Any] = field(default_factory=dict)  # merged into the run's data after the advance's
    note: Mapping[str, Any] = field(default_factory=dict)


Step = Callable[["Ports", Run, Envelope, Mapping[str, Any]], Awaitable[StepResult]]
Start = Callable[[Any, Context[Any]], Advance | None]
Transition = Callable[[Run, Any, Context[Any]], Advance | None]


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    doc: str
    config: type[BaseModel]  # the tenant file's `workflows.<name>` section
    # an event of this type may start a run: one per contact, ever, unless `run_key` names one per key
    starts: Mapping[type[Contract], Start]
    states: tuple[str, ...]
    terminal: frozenset[str]
    transitions: Mapping[tuple[str, type[Contract]], Transition]
    steps: Mapping[str, Step]
    job: str  # what it does for a tenant; a tenant runs one workflow per job (two would write twice)
    activity: frozenset[type[Contract]] = frozenset()  # event types recorded as the contact's activity
    # the event types whose transitions read `Context.history` (a query per event: only where it is read)
    reads_history: frozenset[type[Contract]] = frozenset()
    # the key of the run a starting event starts (e.g. the reply's Message-ID: one run per reply); None: one run
    run_key: Callable[[Contract], str] | None = None
    version: int = 1

    def __post_init__(self) -> None:
        unknown = {state for state, _ in self.transitions} - set(self.states)
        if unknown:
            raise ValueError(f"{self.name}: transitions from undeclared states {sorted(unknown)}")
        if not self.terminal <= set(self.states):
            raise ValueError(f"{self.name}: terminal states {sorted(self.terminal - set(self.states))} undeclared")
        from_terminal = {state for state, _ in self.transitions if state in self.terminal}
        if from_terminal:
            raise ValueError(f"{self.name}: transitions out of terminal states {sorted(from_terminal)}")

    @property
    def handles(self) -> frozenset[type[Contract]]:
        """Every contract type that starts or moves a run of this workflow."""
        return frozenset(self.starts) | {kind for _, kind in self.transitions} | self.activity

    @property
    def active(self) -> tuple[str, ...]:
        return tuple(state for state in self.states if state not in self.terminal)


def advance(spec: WorkflowSpec, run: Run | None, event: Contract, context: Context[Any]) -> Advance | None:
    """What `event` does to `run` (None: a run not started yet), decided without I/O."""
    if run is None or run.state == "":
        start = spec.starts.get(type(event))
        return start(event, context) if start is not None else None
    if run.state in spec.terminal:
        return None
    transition = spec.transitions.get((run.state, type(event)))
    return transition(run, event, context) if transition is not None else None
