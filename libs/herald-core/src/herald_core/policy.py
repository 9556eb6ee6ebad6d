"""A tenant's policy as code: versioned YAML, validated with line numbers, conditions in CEL.

A policy lists the rules the guard applies to a tenant's proposed actions, beyond the ones no
policy can switch off (consent, the recipient is the contact, the action is the tenant's own):

    tenant: acme
    version: 4                      # a new version must be higher than the live one
    description: Acme's outbound rules
    rules:
      - id: escalation.low_confidence
        when: action.confidence < 0.6         # CEL over the decision's facts (below)
        then: escalate                        # block | escalate
        reason: the planner is unsure of this draft
      - id: content.banned_phrases
        kind: banned_phrases
        phrases: [guaranteed results, risk-free]
      - id: content.length
        kind: max_length
        max_body_chars: 4000
      - id: content.grounded
        kind: grounding                       # prices, percentages, dates, competitor claims need evidence
      - id: content.other_peoples_data
        kind: personal_data                   # addresses other than the recipient's and the tenant's, phones
      - id: escalation.sensitive_topic
        kind: pattern                         # Python regex in one field, compiled once
        field: draft.body
        pattern: (?i)\b(layoffs?|lawsuits?)\b
        then: escalate
    breakers:                         # bounce / complaint rate over the window: stop automatic sending
      - id: breaker.bounces
        reasons: [hard_bounce, complaint]
        max_rate: 0.05
        min_sends: 20
        window: 1h
        scope: campaign                       # tenant | campaign
    llm_budget:                       # past it: templates, and LLM drafts go to review (budget.llm_daily)
      tokens_per_day: 200000
    limits:                           # caps over sliding windows, exact across guard replicas
      - id: limits.contact_weekly
        scope: contact                        # tenant | campaign | contact
        channel: any                          # email | sms | phone | any (a cross-channel budget)
        max: 3
        per: 7d                               # 30s, 15m, 1h, 7d (at most 31d)
      - id: limits.send_email_rate
        tool: send_email                      # a per-tool rate limit
        max: 20
        per: 1m

Facts a CEL condition can read:
    action.tool, action.channel, action.campaign_id, action.confidence, action.rationale, action.evidence_count
    action.contact.{contact_id, email, first_name, last_name, company, job_title, industry,
                    lifecycle_stage, timezone, vip, deal_value_minor}
    draft.{to, subject, body, body_chars, words}
    tenant.{id, name, timezone}
    campaign.{id, first_send}               first_send: no send of this campaign approved yet
    stage                                   "proposal" or "review"

Rules run in order; every rule's result is recorded (pass, block, escalate). Block wins over
escalate. Escalation rules run at proposal only (a reviewer has decided by the review stage);
block rules run at both stages. A condition that cannot be evaluated fails closed: the rule
takes its `then` outcome and says why.

`evaluate` is the one implementation of a decision's rules, used by the guard, by
`herald policy test` and by backtests; counters (caps) are the guard's, in Postgres.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cached_property, lru_cache
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import cel
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from herald_core.contracts import ActionProposed, ContactFacts, PolicyPublished, RuleHit, SendEmailInput
from herald_core.tenants import Limits, TenantConfig, zone_named

Outcome = Literal["approve", "block", "escalate", "defer"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
RuleId = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$", description="e.g. `content.banned_phrases`")]
BUILT_IN_RULES = (
    "control.kill_switch",
    "consent.opt_out",
    "content.recipient_is_contact",
    "tenant.matches",
    "content.sender_and_unsubscribe",
    "budget.llm_daily",
)
_TENANT_LIMIT_IDS = ("limits.tenant_emails_per_hour", "limits.contact_emails_per_day")


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: RuleId
    then: Literal["block", "escalate"] = Field(default="block", description="What the rule decides when it fires.")
    reason: str | None = Field(default=None, max_length=500, description="Why, for the reviewer and the audit.")
    enabled: bool = True


class ConditionRule(_Rule):
    kind: Literal["condition"] = "condition"
    when: str = Field(
        min_length=1, max_length=2000, description="A CEL expression over the facts; true fires the rule."
    )


class BannedPhrasesRule(_Rule):
    kind: Literal["banned_phrases"]
    phrases: tuple[Annotated[str, Field(min_length=2, max_length=200)], ...] = Field(min_length=1)

    @cached_property
    def pattern(self) -> re.Pattern[str]:
        words = "|".join(re.escape(p.strip()) for p in self.phrases)
        return re.compile(rf"(?<!\w)(?:{words})(?!\w)", re.IGNORECASE)


class PatternRule(_Rule):
    """A regular expression (Python's `re`, compiled once) searched in one field of the draft. Faster than a
    CEL `matches`, which compiles its pattern on every call."""

    kind: Literal["pattern"]
    field: Literal["draft.subject", "draft.body", "draft.to", "draft.any"] = Field(
        description="Where to search; `draft.any` is the subject and the body."
    )
    pattern: str = Field(min_length=1, max_length=2000)

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return pattern

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)


ClaimKind = Literal["price", "percentage", "date", "number", "product", "competitor"]
CLAIM_KINDS: tuple[ClaimKind, ...] = ("price", "percentage", "date", "number", "product", "competitor")


class GroundingRule(_Rule):
    """Every factual claim of the kinds listed must be backed by an evidence passage the planner attached,
    as the retrieval service's grounding API judges it."""

    kind: Literal["grounding"]
    claims: tuple[ClaimKind, ...] = Field(
        default=CLAIM_KINDS, min_length=1, description="The kinds of claim that must be supported."
    )


class MaxLengthRule(_Rule):
    kind: Literal["max_length"]
    max_body_chars: int | None = Field(default=None, ge=1)
    max_subject_chars: int | None = Field(default=None, ge=1)


class PersonalDataRule(_Rule):
    """Another person's data in a draft: email addresses other than the recipient's and the tenant's own
    (its sender's domain and `allow_domains`), and, with `phones`, phone numbers (9 digits or more)."""

    kind: Literal["personal_data"]
    allow_domains: tuple[Annotated[str, Field(min_length=3, max_length=253)], ...] = ()
    phones: bool = True


_EMAIL_IN_TEXT = re.compile(r"[\w.+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_PHONE_IN_TEXT = re.compile(r"(?<![\w.])\+?\d[\d ().-]{7,}\d(?!\w)")


def _kind(value: Any) -> str:
    """A rule's kind; a rule with a `when` and no kind is a condition."""
    if isinstance(value, dict):
        return str(value.get("kind", "condition"))
    return str(getattr(value, "kind", "condition"))


Rule = Annotated[
    Annotated[ConditionRule, Tag("condition")]
    | Annotated[BannedPhrasesRule, Tag("banned_phrases")]
    | Annotated[PatternRule, Tag("pattern")]
    | Annotated[GroundingRule, Tag("grounding")]
    | Annotated[MaxLengthRule, Tag("max_length")]
    | Annotated[PersonalDataRule, Tag("personal_data")],
    Discriminator(_kind),
]


class SendWindow(BaseModel):
    """When the tenant's emails may go out, in each contact's own time zone (else the tenant's)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    start: time = Field(description="Opening time, local (e.g. `08:00`).")
    end: time = Field(description="Closing time, local, after the opening (e.g. `20:00`).")
    days: tuple[Day, ...] = Field(default=DAYS, min_length=1, description="The days it opens (default: every day).")

    @model_validator(mode="after")
    def _opens_before_it_closes(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    def next_opening(self, local: datetime) -> datetime | None:
        """None when `local` is inside the window, else when it next opens (in `local`'s time zone)."""
        if DAYS[local.weekday()] in self.days and self.start <= local.time().replace(tzinfo=None) < self.end:
            return None
        for ahead in range(8):
            day = (local + timedelta(days=ahead)).date()
            opening = datetime.combine(day, self.start, tzinfo=local.tzinfo)
            if DAYS[day.weekday()] in self.days and opening > local:
                return opening
        raise AssertionError("a window with a day opens within a week")


_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
LONGEST_LIMIT_WINDOW = timedelta(days=31)


def parse_duration(text: str) -> timedelta:
    """`30s`, `15m`, `1h`, `7d` → a timedelta; anything else is a ValueError."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"not a duration like 30s, 15m, 1h or 7d: {text!r}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _duration(value: Any) -> Any:
    """`30s`, `15m`, `1h`, `7d` → a timedelta (anything else is left to pydantic's own timedelta parsing)."""
    if isinstance(value, str) and _DURATION.match(value):
        return parse_duration(value)
    return value


class Limit(BaseModel):
    """A frequency cap over a sliding window (`max` approvals in any `per`), exact across guard replicas:
    the guard reserves it in Postgres after the rules pass, under a lock per counted key.

    `scope` says what is counted separately: the whole tenant, each campaign, or each contact; `channel`
    narrows it to one channel (`any` makes a cross-channel budget); `tool` makes it a per-tool rate limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: RuleId
    max: int = Field(ge=0, description="Most approvals in any window of length `per`.")
    per: Annotated[timedelta, BeforeValidator(_duration)] = Field(
        description="The sliding window: `30s`, `15m`, `1h`, `7d` (at most 31 days)."
    )
    scope: Literal["tenant", "campaign", "contact"] = "tenant"
    channel: Literal["email", "sms", "phone", "any"] = "any"
    tool: str | None = Field(default=None, description="Only actions of this tool count (a per-tool rate limit).")
    reason: str | None = Field(default=None, max_length=500)

    @field_validator("per")
    @classmethod
    def _window(cls, per: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= per <= LONGEST_LIMIT_WINDOW:
            raise ValueError("a window is between 1s and 31d")
        return per

    def counted_key(self, action: ActionProposed) -> str | None:
        """The counter this action adds to, or None when the limit does not apply to it."""
        if self.tool is not None and action.tool != self.tool:
            return None
        if self.channel != "any" and action.channel.value != self.channel:
            return None
        if self.scope == "tenant":
            return self.id
        if self.scope == "campaign":
            return None if action.campaign_id is None else f"{self.id}/campaign/{action.campaign_id}"
        return f"{self.id}/contact/{action.contact.contact_id}"

    def describe(self) -> str:
        seconds = int(self.per.total_seconds())
        unit, size = next((u, n) for u, n in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)) if seconds % n == 0)
        narrowed = "".join(
            [f", {self.channel}" if self.channel != "any" else "", f", {self.tool}" if self.tool else ""]
        )
        return f"{self.max} per {seconds // size}{unit} per {self.scope}{narrowed}"


class LlmBudget(BaseModel):
    """Tokens the tenant's LLM calls may use per UTC day. Past it, planners draft from templates and the guard
    sends any LLM draft to a reviewer (`budget.llm_daily`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    tokens_per_day: int = Field(ge=0, description="Input plus output tokens, all LLM calls of the tenant.")


class Breaker(BaseModel):
    """A circuit breaker: when the rate of delivery problems (hard bounces, complaints …) among the sends of
    the last `window` goes over `max_rate`, automatic sending stops for the tenant (or the campaign) — each
    action goes to a reviewer (`then: escalate`, the default) or is blocked — until the rate falls again."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    id: RuleId
    reasons: tuple[Literal["hard_bounce", "complaint", "unsubscribe"], ...] = Field(
        default=("hard_bounce", "complaint"), min_length=1, description="Which consent withdrawals count."
    )
    max_rate: float = Field(gt=0, le=1, description="Problems per send above which the breaker opens.")
    min_sends: int = Field(default=20, ge=1, description="Below this many sends in the window it stays closed.")
    window: Annotated[timedelta, BeforeValidator(_duration)] = Field(description="`1h`, `1d` … (at most 31d).")
    scope: Literal["tenant", "campaign"] = "tenant"
    then: Literal["block", "escalate"] = "escalate"
    reason: str | None = Field(default=None, max_length=500)

    @field_validator("window")
    @classmethod
    def _window(cls, window: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= window <= LONGEST_LIMIT_WINDOW:
            raise ValueError("a window is between 1m and 31d")
        return window


@dataclass(frozen=True)
class BreakerReading:
    """What the guard counted for one breaker: sends and problems in its window (and scope)."""

    sends: int
    problems: int


def tenant_limits(tenant: TenantConfig) -> tuple[Limit, ...]:
    """The caps in the tenant's configuration (the platform's ceiling; a policy's limits add to them)."""
    return _configured_limits(tenant.limits)


@lru_cache(maxsize=1024)
def _configured_limits(limits: Limits) -> tuple[Limit, ...]:
    """Built once per configuration, not on every decision."""
    return (
        Limit(
            id="limits.tenant_emails_per_hour",
            max=limits.emails_per_hour,
            per=timedelta(hours=1),
            channel="email",
            reason="the tenant's hourly email cap",
        ),
        Limit(
            id="limits.contact_emails_per_day",
            max=limits.emails_per_contact_per_day,
            per=timedelta(days=1),
            scope="contact",
            channel="email",
            reason="the per-contact daily email cap",
        ),
    )


class PolicyDocument(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    tenant: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    version: int = Field(
        ge=1, description="Raised with every change; the guard refuses a version not above the live one."
    )
    description: str = ""
    send_window: SendWindow | None = Field(
        default=None, description="Outside it, an action is deferred (held, then decided again at the opening)."
    )
    rules: tuple[Rule, ...] = ()
    limits: tuple[Limit, ...] = Field(
        default=(), description="Frequency caps over sliding windows, on top of the tenant configuration's caps."
    )
    breakers: tuple[Breaker, ...] = Field(default=(), description="Circuit breakers on bounce and complaint rates.")
    llm_budget: LlmBudget | None = Field(default=None, description="The tenant's daily LLM token budget.")

    @field_validator("rules", "limits", "breakers")
    @classmethod
    def _unique_ids(cls, items: tuple[Rule | Limit | Breaker, ...]) -> tuple[Rule | Limit | Breaker, ...]:
        seen: set[str] = set()
        for item in items:
            if item.id in seen:
                raise ValueError(f"id {item.id!r} appears twice")
            if item.id in BUILT_IN_RULES or item.id in _TENANT_LIMIT_IDS:
                raise ValueError(f"id {item.id!r} is built in and cannot be redefined")
            seen.add(item.id)
        return items

    @model_validator(mode="after")
    def _limits_are_not_rules(self) -> PolicyDocument:
        ids = [r.id for r in self.rules] + [limit.id for limit in self.limits] + [b.id for b in self.breakers]
        clash = {i for i in ids if ids.count(i) > 1}
        if clash:
            raise ValueError(f"ids used twice among rules, limits and breakers: {', '.join(sorted(clash))}")
        return self


@dataclass(frozen=True)
class PolicyProblem:
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}: {self.message}" if self.line else f"{self.path}: {self.message}"


class PolicyError(ValueError):
    """A policy that does not parse, validate or compile; each problem names its line."""

    def __init__(self, problems: Sequence[PolicyProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Policy:
    document: PolicyDocument
    source: str
    programs: Mapping[str, Any] = field(repr=False)  # rule id → compiled CEL program

    @property
    def tenant(self) -> str:
        return self.document.tenant

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def version(self) -> str:
        """What decisions record: the version number and a fingerprint of the exact text."""
        return f"v{self.document.version}-{self.sha256[:10]}"


# ---------------------------------------------------------------- loading


def load_policy(source: str) -> Policy:
    """Parse, validate and compile a policy; `PolicyError` lists every problem with its line."""
    try:
        root = yaml.compose(source)
        data = yaml.safe_load(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise PolicyError([PolicyProblem(line, "(yaml)", str(getattr(exc, "problem", None) or exc))]) from exc
    if not isinstance(data, dict):
        raise PolicyError([PolicyProblem(1, "(root)", "a policy is a mapping with tenant, version and rules")])
    problems: list[PolicyProblem] = []
    document: PolicyDocument | None = None
    try:
        document = PolicyDocument.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            loc = [p for i, p in enumerate(error["loc"]) if not (i > 0 and isinstance(error["loc"][i - 1], int))]
            problems.append(PolicyProblem(_line_of(root, loc), ".".join(map(str, loc)) or "(root)", error["msg"]))
    # conditions are checked even when something else is wrong, so one run shows every problem
    programs: dict[str, Any] = {}
    raw_rules: list[Any] = data["rules"] if isinstance(data.get("rules"), list) else []
    for index, raw in enumerate(raw_rules):
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("when"), str)
            or raw.get("kind", "condition") != "condition"
        ):
            continue
        program, problem = _compile(raw["when"])
        if problem:
            problems.append(PolicyProblem(_line_of(root, ("rules", index, "when")), f"rules.{index}.when", problem))
        else:
            programs[str(raw.get("id"))] = program
    if problems or document is None:
        raise PolicyError(sorted(problems, key=lambda p: p.line or 0))
    return Policy(document, source, programs)


def _compile(expression: str) -> tuple[Any, str | None]:
    """A compiled condition, or why it is not one (syntax, a name the facts do not have, not a boolean)."""
    try:
        program = cel.compile(expression)
    except ValueError as exc:
        return None, f"CEL: {_first_line(exc)}"
    try:  # run on the shape of real facts: a misspelt name is an error now, not at the first decision
        result = program.execute(cel.Context(variables=_SAMPLE_FACTS))
    except KeyError as exc:
        return None, f"CEL: no fact named {exc} (see the facts in herald_core.policy)"
    except Exception as exc:
        return None, f"CEL: {_first_line(exc)}"
    if not isinstance(result, bool):
        return None, f"CEL: must be true or false, not {type(result).__name__}"
    return program, None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _line_of(node: yaml.Node | None, loc: Sequence[int | str]) -> int | None:
    """The 1-based line of the YAML node at `loc` (or of the nearest ancestor that exists)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            node = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            node = None
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


# ---------------------------------------------------------------- the built-in policy


def default_policy(tenant: TenantConfig) -> Policy:
    """The policy of a tenant that has not published one: its configured escalations (VIP, deal value)."""
    rules: list[dict[str, Any]] = []
    if tenant.escalation.vip:
        rules.append(
            {
                "id": "escalation.vip",
                "when": "action.contact.vip",
                "then": "escalate",
                "reason": "contact is marked VIP",
            }
        )
    threshold = tenant.escalation.deal_value_minor_at_least
    if threshold is not None:
        rules.append(
            {
                "id": "escalation.deal_value",
                "when": f"action.contact.deal_value_minor >= {int(threshold)}",
                "then": "escalate",
                "reason": f"open deal of at least {threshold} (minor units)",
            }
        )
    source = yaml.safe_dump(
        {"tenant": tenant.tenant_id, "version": 1, "description": "from the tenant's configuration", "rules": rules},
        sort_keys=False,
    )
    return load_policy(source)


# ---------------------------------------------------------------- deciding


@dataclass(frozen=True)
class UnsupportedClaim:
    kind: str
    text: str
    reason: str


@dataclass(frozen=True)
class Grounding:
    """What the grounding API said of a draft: its unsupported claims, or why it could not say."""

    unsupported: tuple[UnsupportedClaim, ...] = ()
    claims: int = 0
    unknown_evidence: tuple[str, ...] = ()
    error: str | None = None


def limits_for(policy: Policy, tenant: TenantConfig, action: ActionProposed) -> list[tuple[Limit, str]]:
    """Every cap an approval of `action` counts against, with the key it is counted under."""
    applicable = []
    for limit in (*tenant_limits(tenant), *policy.document.limits):
        key = limit.counted_key(action)
        if key is not None:
            applicable.append((limit, key))
    return applicable


def needs_grounding(policy: Policy) -> bool:
    """Whether deciding under `policy` needs the grounding API's answer."""
    return any(isinstance(r, GroundingRule) and r.enabled for r in policy.document.rules)


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    rule: str | None
    reason: str
    rules: tuple[RuleHit, ...]
    policy_version: str
    release_at: datetime | None = None  # when a deferred action is decided again (UTC)


def facts_for(
    action: ActionProposed, tenant: TenantConfig, stage: str, campaign_first_send: bool = False
) -> dict[str, Any]:
    """The names a CEL condition can read, for one action."""
    contact = action.contact.model_dump(mode="json")
    subject, body = action.text
    return {
        "action": {
            "tool": action.tool,
            "channel": action.channel.value,
            "campaign_id": action.campaign_id or "",
            "confidence": float(action.confidence),
            "rationale": action.rationale,
            "evidence_count": len(action.evidence),
            "contact": {k: ("" if v is None else v) for k, v in contact.items()},
        },
        "draft": {
            "to": action.recipient or "",
            "subject": subject,
            "body": body,
            "body_chars": len(body),
            "words": len(body.split()),
        },
        "tenant": {
            "id": tenant.tenant_id,
            "name": tenant.name,
            "timezone": tenant.timezone,
            "sender": str(tenant.sender.address),
        },
        "campaign": {"id": action.campaign_id or "", "first_send": campaign_first_send and bool(action.campaign_id)},
        "stage": stage,
    }


def _sample_facts() -> dict[str, Any]:
    """Facts of a made-up action: the shape every condition is checked against when a policy loads."""
    action = ActionProposed(
        action_id="sample",
        tenant="sample",
        workflow_id="sample",
        tool="send_email",
        input=SendEmailInput(to="a@b.example", subject="s", body_text="b"),
        contact=ContactFacts(contact_id="1", email="a@b.example"),
        evidence=(),
        confidence=0.5,
        rationale="",
    )
    tenant = TenantConfig(
        tenant_id="sample", name="s", sender={"name": "s", "address": "s@b.example"}, unsubscribe_url="https://u"
    )
    return facts_for(action, tenant, "proposal")


_SAMPLE_FACTS = _sample_facts()


def evaluate(
    policy: Policy,
    action: ActionProposed,
    tenant: TenantConfig,
    *,
    stage: Literal["proposal", "review"],
    suppression_reason: str | None,
    grounding: Grounding | None = None,
    kill_switch: str | None = None,
    now: datetime | None = None,
    campaign_first_send: bool = False,
    breakers: Mapping[str, BreakerReading] | None = None,
    llm_tokens_today: int | None = None,
) -> Verdict:
    """Every rule's result for one action: the built-in ones, then the policy's, in order.

    `grounding` is the grounding API's answer for the draft, when the policy has a grounding rule;
    without it such a rule fails closed. `campaign_first_send`: no send of the action's campaign has
    been approved yet (the guard knows; `campaign.first_send` in conditions). `breakers`: the guard's
    counts for each of the policy's breakers (a breaker without a reading stays closed). `llm_tokens_today`:
    the tenant's LLM tokens reported today, checked against the policy's `llm_budget` for LLM drafts."""
    hits = _built_in(action, tenant, suppression_reason, kill_switch)
    if action.review_reason is not None and stage == "proposal":  # a reviewer's approval is the answer it asked for
        hits.append(_hit(rule="escalation.planner_asks", outcome="escalate", detail=action.review_reason))
    facts = facts_for(action, tenant, stage, campaign_first_send)
    context = cel.Context(variables=facts)
    for rule in policy.document.rules:
        if not rule.enabled or (rule.then == "escalate" and stage != "proposal"):
            continue
        hits.append(_apply(rule, policy, context, facts, grounding))
    budget = policy.document.llm_budget
    if budget is not None and action.drafted_by == "llm" and stage == "proposal":
        used = llm_tokens_today or 0
        spent = used > budget.tokens_per_day
        detail = f"{used} LLM tokens reported today, budget {budget.tokens_per_day}"
        hits.append(_hit(rule="budget.llm_daily", outcome="escalate" if spent else "pass", detail=detail))
    readings = breakers or {}
    for breaker in policy.document.breakers:
        if breaker.then == "escalate" and stage != "proposal":
            continue
        hits.append(_breaker(breaker, readings.get(breaker.id), action))
    release_at = None
    window = policy.document.send_window
    if window is not None:
        hit, release_at = _send_window(window, action, tenant, now or datetime.now(UTC))
        hits.append(hit)
    blocks = [h for h in hits if h.outcome == "block"]
    if blocks:
        return Verdict("block", blocks[0].rule, blocks[0].detail, tuple(hits), policy.version)
    escalations = [h for h in hits if h.outcome == "escalate"]
    if escalations:
        reason = "; ".join(h.detail for h in escalations)
        return Verdict("escalate", escalations[0].rule, reason, tuple(hits), policy.version)
    deferrals = [h for h in hits if h.outcome == "defer"]
    if deferrals and release_at is not None:
        return Verdict("defer", deferrals[0].rule, deferrals[0].detail, tuple(hits), policy.version, release_at)
    return Verdict("approve", None, "all rules passed", tuple(hits), policy.version)


def _send_window(
    window: SendWindow, action: ActionProposed, tenant: TenantConfig, now: datetime
) -> tuple[RuleHit, datetime | None]:
    zone = zone_named(action.contact.timezone) or zone_named(tenant.timezone) or ZoneInfo("UTC")
    local = now.astimezone(zone)
    opening = window.next_opening(local)
    days = ",".join(window.days) if len(window.days) < 7 else "every day"
    span = f"{window.start:%H:%M}-{window.end:%H:%M} ({days}) in {zone.key}"
    if opening is None:
        return _hit(rule="schedule.send_window", outcome="pass", detail=f"inside the send window {span}"), None
    detail = f"outside the send window {span} (local time {local:%a %H:%M}); held until {opening.isoformat()}"
    return _hit(rule="schedule.send_window", outcome="defer", detail=detail), opening.astimezone(UTC)


def _breaker(breaker: Breaker, reading: BreakerReading | None, action: ActionProposed) -> RuleHit:
    where = f"campaign {action.campaign_id}" if breaker.scope == "campaign" else "the tenant"
    if breaker.scope == "campaign" and action.campaign_id is None:
        return _hit(rule=breaker.id, outcome="pass", detail="not a campaign action")
    if reading is None or reading.sends < breaker.min_sends:
        sends = reading.sends if reading else 0
        return _hit(
            rule=breaker.id, outcome="pass", detail=f"{sends} sends from {where}, fewer than {breaker.min_sends}"
        )
    rate = reading.problems / reading.sends
    counted = f"{reading.problems} {'/'.join(breaker.reasons)} in {reading.sends} sends from {where}"
    if rate > breaker.max_rate:
        detail = f"{breaker.reason or 'circuit breaker open'}: {counted} ({rate:.1%} > {breaker.max_rate:.1%})"
        return _hit(rule=breaker.id, outcome=breaker.then, detail=detail)
    return _hit(rule=breaker.id, outcome="pass", detail=f"{counted} ({rate:.1%} ≤ {breaker.max_rate:.1%})")


def _built_in(
    action: ActionProposed, tenant: TenantConfig, suppression_reason: str | None, kill_switch: str | None
) -> list[RuleHit]:
    hits = []
    if kill_switch:
        hits.append(RuleHit(rule="control.kill_switch", outcome="block", detail=f"kill switch on: {kill_switch}"))
    hits += [
        RuleHit(
            rule="consent.opt_out",
            outcome="block",
            detail=f"contact {action.contact.contact_id} is suppressed: {suppression_reason}",
        )
        if suppression_reason
        else RuleHit(rule="consent.opt_out", outcome="pass", detail="no opt-out recorded")
    ]
    contact_email = (action.contact.email or "").lower()
    recipient = action.recipient
    if recipient is None:
        hits.append(RuleHit(rule="content.recipient_is_contact", outcome="pass", detail="writes to no one"))
    elif recipient.lower() != contact_email:
        detail = f"recipient {recipient} is not the contact's address {contact_email or '-'}"
        hits.append(RuleHit(rule="content.recipient_is_contact", outcome="block", detail=detail))
    else:
        hits.append(RuleHit(rule="content.recipient_is_contact", outcome="pass", detail="recipient is the contact"))
    if action.tenant != tenant.tenant_id:
        detail = f"action is for {action.tenant}, message is from {tenant.tenant_id}"
        hits.append(RuleHit(rule="tenant.matches", outcome="block", detail=detail))
    # every email goes out with the tenant's sender address and a working unsubscribe link (the executor adds
    # both, with one-click List-Unsubscribe); a tenant configured without them sends nothing
    if not tenant.unsubscribe_url.startswith(("https://", "mailto:")):
        detail = f"the tenant's unsubscribe link {tenant.unsubscribe_url!r} is not an https or mailto URL"
        hits.append(RuleHit(rule="content.sender_and_unsubscribe", outcome="block", detail=detail))
    else:
        detail = f"from {tenant.sender.address}, unsubscribe at {tenant.unsubscribe_url}"
        hits.append(RuleHit(rule="content.sender_and_unsubscribe", outcome="pass", detail=detail))
    return hits


def _grounded(rule: GroundingRule, grounding: Grounding | None) -> RuleHit:
    if grounding is None or grounding.error:
        why = grounding.error if grounding else "no grounding answer"
        return _hit(rule=rule.id, outcome=rule.then, detail=f"grounding could not be checked ({why})"[:1000])
    unsupported = [c for c in grounding.unsupported if c.kind in rule.claims]
    if unsupported:
        listed = "; ".join(f"{c.kind} “{c.text}”: {c.reason}" for c in unsupported[:5])
        detail = f"{rule.reason or 'claims no evidence passage supports'}: {listed}"
        return _hit(rule=rule.id, outcome=rule.then, detail=detail[:1000])
    return _hit(rule=rule.id, outcome="pass", detail=f"{grounding.claims} claim(s) checked, none unsupported")


def _personal_data(rule: PersonalDataRule, facts: dict[str, Any]) -> RuleHit:
    draft = facts["draft"]
    text = f"{draft['subject']}\n{draft['body']}"
    own = {str(draft["to"]).lower(), str(facts["action"]["contact"].get("email") or "").lower()}
    domains = {d.lower().lstrip("@") for d in rule.allow_domains} | {facts["tenant"]["sender"].split("@")[-1].lower()}
    found = [
        m.group(0)
        for m in _EMAIL_IN_TEXT.finditer(text)
        if m.group(0).lower() not in own and m.group(0).split("@")[-1].lower() not in domains
    ]
    if rule.phones:
        found += [m.group(0) for m in _PHONE_IN_TEXT.finditer(text) if sum(c.isdigit() for c in m.group(0)) >= 9]
    if found:
        listed = ", ".join(sorted(set(found))[:3])
        return _hit(
            rule=rule.id, outcome=rule.then, detail=f"{rule.reason or 'personal data of someone else'}: {listed}"
        )
    return _hit(rule=rule.id, outcome="pass", detail="no one else's address or phone number")


def _hit(*, rule: str, outcome: Literal["pass", "block", "escalate", "defer"], detail: str) -> RuleHit:
    """A rule's result, built without re-validation (its values come from a validated policy)."""
    return RuleHit.model_construct(rule=rule, outcome=outcome, detail=detail)


def _apply(rule: Rule, policy: Policy, context: Any, facts: dict[str, Any], grounding: Grounding | None) -> RuleHit:
    reason = rule.reason
    if isinstance(rule, GroundingRule):
        return _grounded(rule, grounding)
    if isinstance(rule, ConditionRule):
        try:
            fired = policy.programs[rule.id].execute(context) is True
        except Exception as exc:  # fail closed: a rule that cannot be read is not a pass
            return _hit(rule=rule.id, outcome=rule.then, detail=f"could not evaluate `{rule.when}`: {exc}"[:1000])
        detail = f"{reason or 'condition holds'} (when {rule.when})" if fired else f"not ({rule.when})"
        return _hit(rule=rule.id, outcome=rule.then if fired else "pass", detail=detail[:1000])
    draft = facts["draft"]
    if isinstance(rule, PersonalDataRule):
        return _personal_data(rule, facts)
    if isinstance(rule, BannedPhrasesRule):
        found = sorted({m.group(0).lower() for m in rule.pattern.finditer(f"{draft['subject']}\n{draft['body']}")})
        if found:
            detail = f"{reason or 'banned phrase'}: {', '.join(found)}"
            return _hit(rule=rule.id, outcome=rule.then, detail=detail[:1000])
        return _hit(rule=rule.id, outcome="pass", detail="no banned phrase")
    if isinstance(rule, PatternRule):
        where = rule.field.removeprefix("draft.")
        text = f"{draft['subject']}\n{draft['body']}" if where == "any" else str(draft[where])
        match = rule.regex.search(text)
        if match:
            detail = f"{reason or 'pattern found'}: “{match.group(0)[:100]}” in {rule.field}"
            return _hit(rule=rule.id, outcome=rule.then, detail=detail)
        return _hit(rule=rule.id, outcome="pass", detail=f"no match in {rule.field}")
    over = []
    if rule.max_body_chars is not None and draft["body_chars"] > rule.max_body_chars:
        over.append(f"body {draft['body_chars']} > {rule.max_body_chars} characters")
    if rule.max_subject_chars is not None and len(draft["subject"]) > rule.max_subject_chars:
        over.append(f"subject {len(draft['subject'])} > {rule.max_subject_chars} characters")
    if over:
        return _hit(rule=rule.id, outcome=rule.then, detail=f"{reason or 'too long'}: {'; '.join(over)}")
    return _hit(rule=rule.id, outcome="pass", detail="within length limits")


# ---------------------------------------------------------------- admitting a published policy


class PolicyRefused(ValueError):
    """A published policy that must not replace the live one, and why."""


def admit(published: PolicyPublished, envelope_tenant: str, live: Policy | None) -> Policy | None:
    """The policy a publication makes live; None when it is the live one again (a re-read, a replay).

    Raises `PolicyRefused` for a record whose tenant, fingerprint or version does not hold up, or whose
    source does not load; the guard keeps the live policy then (and `herald policy apply` refuses first).
    """
    tenant = published.tenant
    if envelope_tenant != tenant:
        raise PolicyRefused(f"envelope tenant {envelope_tenant!r} is not the policy's tenant {tenant!r}")
    if hashlib.sha256(published.source.encode()).hexdigest() != published.sha256:
        raise PolicyRefused("sha256 does not match the source")
    try:
        policy = load_policy(published.source)
    except PolicyError as exc:
        raise PolicyRefused(str(exc)) from exc
    if policy.tenant != tenant or policy.document.version != published.version:
        raise PolicyRefused("the source's tenant or version differs from the record's")
    if live is not None and policy.document.version <= live.document.version:
        if policy.sha256 == live.sha256:
            return None
        raise PolicyRefused(f"version {policy.document.version} is not above the live version {live.document.version}")
    return policy
