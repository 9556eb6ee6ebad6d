"""Lead qualification, pure: a score from what Herald knows of a contact (seniority, company size, industry fit
against the tenant's ideal-customer profile) and what it did (opens, clicks, replies, meetings), explained feature by
feature, and the tier the tenant's thresholds give it.

Points, not a model: a marketer reads each feature's points in the plan and sets them in the tenant file. The
facts alone can make a lead hot (a chief officer at a company the profile fits); engagement moves the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from herald_core.contracts import (
    ContactFacts,
    EmailEngagement,
    EmailReplied,
    LeadTier,
    MeetingBooked,
    ReplyReceived,
    ScoreFeature,
)
from herald_planner.engine.spec import Activity


class Seniority(StrEnum):
    C_LEVEL = "c_level"
    VP = "vp"
    DIRECTOR = "director"
    MANAGER = "manager"
    INDIVIDUAL = "individual"
    UNKNOWN = "unknown"  # no job title


def _words(*patterns: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


#: read in this order: the first that matches a title names its level ("Vice President" before "President",
#: "Assistant to the CEO" before "CEO", "Managing Director" before "Director")
_LEVELS: tuple[tuple[Seniority, re.Pattern[str]], ...] = (
    (Seniority.INDIVIDUAL, _words("assistant", "intern", "trainee", "working student", "apprentice")),
    (Seniority.VP, _words("vice[ -]president", "s?vp", "evp", "avp", "head of", "head")),
    (
        Seniority.C_LEVEL,
        _words(
            "chief",
            "c[efiotmrp]o",
            "ciso",
            "founder",
            "co-?founder",
            "president",
            "managing director",
            "general manager",
            "gesch(?:ä|ae)ftsf(?:ü|ue)hrer(?:in)?",
            "directeur g(?:é|e)n(?:é|e)ral",
        ),
    ),
    (Seniority.DIRECTOR, _words("director", "directeur", "directrice", "direktor(?:in)?", "leiter(?:in)?")),
    (Seniority.MANAGER, _words("manager", "lead", "supervisor", "principal", "team ?lead", "responsable")),
)


def seniority_of(title: str | None) -> Seniority:
    """The level a job title says, in English (and the common German and French executive titles)."""
    if title is None or not title.strip():
        return Seniority.UNKNOWN
    for level, pattern in _LEVELS:
        if pattern.search(title):
            return level
    return Seniority.INDIVIDUAL


Industry = Annotated[str, StringConstraints(min_length=1, max_length=100, to_lower=True, strip_whitespace=True)]


def _industry_words(industry: str) -> frozenset[str]:
    return frozenset(w for w in re.split(r"[^a-z0-9]+", industry.lower()) if w and w != "and")


class CompanySize(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    min: int | None = Field(default=None, ge=0, description="The fewest employees the profile fits.")
    max: int | None = Field(default=None, ge=0, description="The most employees the profile fits.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"company_size.min ({self.min}) is above company_size.max ({self.max})")
        return self

    def fits(self, employees: int) -> bool:
        return (self.min is None or employees >= self.min) and (self.max is None or employees <= self.max)

    def __str__(self) -> str:
        if self.max is None:
            return f"{self.min or 0}+"
        return f"{self.min or 0}–{self.max}"


class IdealCustomer(BaseModel):
    """Who the tenant sells to best."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    industries: tuple[Industry, ...] = Field(
        default=(),
        max_length=50,
        description="Industries that fit (lower case; `logistics` fits a CRM's `logistics_and_supply_chain`).",
    )
    company_size: CompanySize = Field(default_factory=CompanySize, description="Employees at a company that fits.")


class Points(BaseModel):
    """What each feature adds to the score (the total is kept between 0 and 100)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    seniority: Mapping[Seniority, Annotated[int, Field(ge=-100, le=100)]] = Field(
        default_factory=lambda: {
            Seniority.C_LEVEL: 30,
            Seniority.VP: 25,
            Seniority.DIRECTOR: 20,
            Seniority.MANAGER: 10,
            Seniority.INDIVIDUAL: 0,
            Seniority.UNKNOWN: 0,
        },
        description="Points per level the job title says (a level left out gives 0).",
    )
    industry: int = Field(default=25, ge=0, le=100, description="An industry the profile names.")
    company_size: int = Field(default=15, ge=0, le=100, description="A company size in the profile's range.")
    opened: int = Field(default=2, ge=0, le=100, description="Each email opened …")
    opened_at_most: int = Field(default=3, ge=0, le=100, description="… counted this many times at most.")
    clicked: int = Field(default=5, ge=0, le=100, description="Each link clicked …")
    clicked_at_most: int = Field(default=2, ge=0, le=100, description="… counted this many times at most.")
    replied: int = Field(default=10, ge=0, le=100, description="A reply (an out-of-office is none).")
    meeting: int = Field(default=25, ge=0, le=100, description="A meeting booked.")


LeadStatus = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,39}$")]


class QualificationConfig(BaseModel):
    """A tenant's `workflows.lead_qualification` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    icp: IdealCustomer = Field(default_factory=IdealCustomer, description="The ideal-customer profile.")
    points: Points = Field(default_factory=Points)
    hot_at: int = Field(default=70, ge=1, le=100, description="A score from which a person takes the lead.")
    warm_at: int = Field(default=40, ge=1, le=100, description="A score from which the sequence works the lead.")
    lead_status: Mapping[LeadTier, LeadStatus] = Field(
        default_factory=lambda: {LeadTier.HOT: "OPEN", LeadTier.WARM: "NEW", LeadTier.COLD: "UNQUALIFIED"},
        description="The CRM lead status written with each tier's score (HubSpot's `hs_lead_status` values).",
    )

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        if self.warm_at > self.hot_at:
            raise ValueError(f"warm_at ({self.warm_at}) is above hot_at ({self.hot_at})")
        return self


@dataclass(frozen=True)
class Engagement:
    """What the contact did with Herald's emails."""

    opened: int = 0
    clicked: int = 0
    replied: int = 0
    meetings: int = 0

    def counting(self, activity: Activity) -> Engagement:
        """With one more event of the contact's counted: an open, a click, a reply (an out-of-office is none) or a
        meeting; anything else changes nothing."""
        kind = activity.facts.get("kind")
        if activity.type == EmailEngagement.TYPE and kind == "opened":
            return replace(self, opened=self.opened + 1)
        if activity.type == EmailEngagement.TYPE and kind == "clicked":
            return replace(self, clicked=self.clicked + 1)
        if activity.type in (ReplyReceived.TYPE, EmailReplied.TYPE) and not activity.facts.get("out_of_office"):
            return replace(self, replied=self.replied + 1)
        if activity.type == MeetingBooked.TYPE:
            return replace(self, meetings=self.meetings + 1)
        return self


def engagement_of(history: Iterable[Activity], contact_id: str) -> Engagement:
    """The contact's own engagement in `history`, each event counted once (a colleague's is not the contact's)."""
    seen: set[str] = set()
    engagement = Engagement()
    for activity in history:
        if activity.contact_id == contact_id and activity.event_id not in seen:
            seen.add(activity.event_id)
            engagement = engagement.counting(activity)
    return engagement


@dataclass(frozen=True)
class Scored:
    score: int
    tier: LeadTier
    features: tuple[ScoreFeature, ...]

    def explained(self) -> str:
        """One line a reviewer and `herald explain` read: the score, the tier and each feature's points."""
        parts = ", ".join(f"{f.name} {f.seen} {f.points:+d}" for f in self.features)
        return f"score {self.score} ({self.tier.value}): {parts}"


def _industry_fit(industry: str | None, icp: IdealCustomer) -> str | None:
    if industry is None:
        return None
    words = _industry_words(industry)
    return next((fit for fit in icp.industries if _industry_words(fit) <= words), None)


def _counted(name: str, count: int, each: int, at_most: int, unit: str) -> ScoreFeature:
    counted = min(count, at_most)
    plural = unit if count == 1 else f"{unit}s"
    capped = f" (counted {counted})" if count > counted else ""
    return ScoreFeature(name=name, seen=f"{count} {plural}{capped}", points=counted * each)  # type: ignore[arg-type]


def score(contact: ContactFacts, engagement: Engagement, config: QualificationConfig) -> Scored:
    """The contact's score, feature by feature, and its tier."""
    points = config.points
    icp = config.icp
    level = seniority_of(contact.job_title)
    title = f"{contact.job_title.strip()[:80]!r} → {level.value}" if contact.job_title else "no job title"
    fit = _industry_fit(contact.industry, icp)
    if contact.industry is None:
        industry = "unknown"
    else:
        industry = f"{contact.industry[:60]} (fits {fit})" if fit else f"{contact.industry[:60]} (not in the profile)"
    if contact.company_size is None:
        size, size_points = "unknown", 0
    else:
        fits = icp.company_size.fits(contact.company_size)
        size = f"{contact.company_size} employees ({'in' if fits else 'outside'} {icp.company_size})"
        size_points = points.company_size if fits else 0
    features = (
        ScoreFeature(name="seniority", seen=title, points=points.seniority.get(level, 0)),
        ScoreFeature(name="industry", seen=industry, points=points.industry if fit else 0),
        ScoreFeature(name="company_size", seen=size, points=size_points),
        _counted("opened", engagement.opened, points.opened, points.opened_at_most, "open"),
        _counted("clicked", engagement.clicked, points.clicked, points.clicked_at_most, "click"),
        ScoreFeature(
            name="replied",
            seen=f"{engagement.replied} repl{'y' if engagement.replied == 1 else 'ies'}",
            points=points.replied if engagement.replied else 0,
        ),
        ScoreFeature(
            name="meeting",
            seen=f"{engagement.meetings} meeting{'' if engagement.meetings == 1 else 's'} booked",
            points=points.meeting if engagement.meetings else 0,
        ),
    )
    total = max(0, min(100, sum(f.points for f in features)))
    return Scored(total, tier_of(total, config), features)


def tier_of(total: int, config: QualificationConfig) -> LeadTier:
    if total >= config.hot_at:
        return LeadTier.HOT
    if total >= config.warm_at:
        return LeadTier.WARM
    return LeadTier.COLD
