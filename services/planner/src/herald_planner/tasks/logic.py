"""A campaign task's decisions, pure: its states and their order, the audience's split between variants, the
seniority filter, and the words its proposals carry to reviewers."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from herald_core.contracts import CampaignBrief, ContactFacts, SegmentFilter
from herald_planner.qualification import seniority_of

TaskState = Literal["accepted", "retrieving", "drafting", "selecting", "proposed", "done", "refused", "failed"]

#: the states a task may move to from each state (a task is carried through them in this order, once; a carry cut
#: off before `proposed` published nothing, and starts again at `retrieving`)
NEXT: Mapping[TaskState, frozenset[TaskState]] = {
    "accepted": frozenset({"retrieving", "failed"}),
    "retrieving": frozenset({"drafting", "retrieving", "failed"}),
    "drafting": frozenset({"selecting", "retrieving", "failed"}),
    "selecting": frozenset({"proposed", "retrieving", "failed"}),
    "proposed": frozenset({"done"}),
    "done": frozenset(),
    "refused": frozenset(),
    "failed": frozenset(),
}
#: states a task is in while a consumer carries it (nothing published yet: a restart carries it again from the start)
IN_FLIGHT: frozenset[TaskState] = frozenset({"accepted", "retrieving", "drafting", "selecting"})
FINAL: frozenset[TaskState] = frozenset({"done", "refused", "failed"})


class IllegalStep(ValueError):
    """A task asked to move where its state machine does not go."""


def step(current: TaskState, to: TaskState) -> TaskState:
    """`to`, if a task in `current` may move there; else `IllegalStep`."""
    if to not in NEXT[current]:
        raise IllegalStep(f"a task {current} cannot become {to}")
    return to


def variant_order(variants: Mapping[str, str]) -> list[str]:
    """The brief's variants in a stable order (by name): the split does not depend on how the brief lists them."""
    return sorted(variants)


def _rank(campaign_id: str, contact_id: str) -> str:
    return hashlib.sha256(f"{campaign_id}\x00{contact_id}".encode()).hexdigest()


def split(campaign_id: str, contacts: Sequence[ContactFacts], variants: Mapping[str, str]) -> dict[str, str]:
    """Contact id → variant: the audience ordered by a hash of campaign and contact, dealt round the variants, so
    every variant gets as many contacts as another (±1) and the same audience always splits the same way."""
    names = variant_order(variants)
    ranked = sorted(contacts, key=lambda c: _rank(campaign_id, c.contact_id))
    return {contact.contact_id: names[index % len(names)] for index, contact in enumerate(ranked)}


def in_segment(contact: ContactFacts, segment: SegmentFilter) -> bool:
    """What the contact store cannot answer: the job title's level, as lead qualification reads it."""
    if not segment.seniorities:
        return True
    return seniority_of(contact.job_title).value in segment.seniorities


def review_reason(task_id: str, sends: int) -> str:
    return f"campaign task {task_id}: {sends} send{'s' if sends != 1 else ''}, reviewed as a batch"


def rationale(task_id: str, brief: CampaignBrief, variant: str, drafted: str) -> str:
    goal = f"; goal: {brief.goal}" if brief.goal else ""
    return (
        f"Campaign task {task_id} ({brief.campaign_id}) about {brief.topic!r}, variant {variant} "
        f"({brief.variants[variant]}){goal}; {drafted}"
    )[:5000]


@dataclass(frozen=True)
class Member:
    """One contact of a task's audience: its variant and the action proposed to it."""

    contact_id: str
    variant: str
    action_id: str
