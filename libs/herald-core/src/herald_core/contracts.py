"""Every message contract on Herald's topics, one frozen pydantic model each.

Events are facts in the past tense (`ContactCreated`, `ActionApproved`); the one command,
`ReviewRequested`, asks a human for something. Each model names its CloudEvents `type`; the
registry `MESSAGE_TYPES` maps a type back to its model so a consumer can validate a body.
JSON Schema and the AsyncAPI document are generated from these models (`make schemas`).
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from herald_core.text import MAX_TEXT, TEXT_RULE, value_problem

TenantId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
ContactId = Annotated[str, StringConstraints(min_length=1, max_length=64)]
# One mailbox, no display name, no whitespace, CR/LF, commas or angle brackets (nothing that could smuggle a
# header or a second recipient). A pattern, not pydantic.EmailStr: full RFC/IDNA validation cost more than the rest
# of a message's handling, on every hop; deliverability is the SMTP server's answer anyway.
_LOCAL_PART = r"[^@\s<>,;:\"()\[\]\\]{1,64}"
_DOMAIN_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
EmailAddress = Annotated[
    str, StringConstraints(max_length=254, pattern=rf"^{_LOCAL_PART}@{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})+$")
]

#: an RFC 5322 Message-ID in angle brackets, nothing around it (it becomes a header)
MessageId = Annotated[str, StringConstraints(min_length=3, max_length=500, pattern=r"^<[^<>\s]+>$")]


class Contract(BaseModel):
    """Base of every message body: frozen, strict about unknown fields, and holding only what every store
    can (`herald_core.text`): no NUL or unpaired surrogate in any string, strings at most `MAX_TEXT` long
    unless a field says otherwise, integers within bigint, no NaN or Infinity."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        str_max_length=MAX_TEXT,
        allow_inf_nan=False,
        json_schema_extra={"$comment": TEXT_RULE},
    )
    TYPE: ClassVar[str]

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = value_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Channel(StrEnum):
    """A channel Herald acts on."""

    EMAIL = "email"


class ConsentChannel(StrEnum):
    """A channel consent is given or withdrawn for; `all` covers every channel (do-not-contact, erasure)."""

    EMAIL = "email"
    SMS = "sms"
    PHONE = "phone"
    ALL = "all"


# ---------------------------------------------------------------- herald.events.v1


class ContactFacts(Contract):
    """What Herald knows of a contact at the moment a message was made."""

    contact_id: ContactId = Field(description="The contact's id in the tenant's CRM (HubSpot objectId).")
    email: EmailAddress | None = Field(default=None, description="Primary email address, if known.")
    first_name: str | None = Field(default=None, description="Given name.")
    last_name: str | None = Field(default=None, description="Family name.")
    company: str | None = Field(default=None, description="Company name.")
    job_title: str | None = Field(default=None, description="Job title.")
    industry: str | None = Field(default=None, description="Industry, lower case (e.g. `logistics`).")
    lifecycle_stage: str | None = Field(default=None, description="CRM lifecycle stage.")
    timezone: str | None = Field(default=None, description="IANA time zone of the contact.")
    vip: bool = Field(default=False, description="Marked VIP in the CRM.")
    deal_value_minor: int = Field(default=0, ge=0, description="Open deal value in minor units (cents).")
    company_size: int | None = Field(
        default=None, ge=0, le=10_000_000, description="Employees at the contact's company, when known."
    )
    owner: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\r\n]*$")] | None = Field(
        default=None,
        description="The contact's owner in the CRM (HubSpot `hubspot_owner_id`): the person a hot lead goes to.",
    )


class ContactCreated(Contract):
    TYPE: ClassVar[str] = "herald.contact.created.v1"
    contact: ContactFacts = Field(description="The new contact, enriched from the tenant's CRM.")
    upstream_source: str = Field(description="Where the fact came from, e.g. `hubspot`.")
    upstream_event_id: str = Field(description="The upstream system's id of the event (for de-duplication).")
    occurred_at: datetime = Field(description="When the upstream system says it happened (UTC).")


class ContactUpdated(Contract):
    TYPE: ClassVar[str] = "herald.contact.updated.v1"
    contact: ContactFacts = Field(description="The contact after the change.")
    changed_property: str | None = Field(default=None, description="The CRM property that changed.")
    new_value: str | None = Field(default=None, description="Its new value, as the upstream system sent it.")
    upstream_source: str = Field(description="Where the fact came from, e.g. `hubspot`.")
    upstream_event_id: str = Field(description="The upstream system's id of the event.")
    occurred_at: datetime = Field(description="When the upstream system says it happened (UTC).")


class ConsentReason(StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard_bounce"
    MANUAL_DNC = "manual_dnc"
    IMPORTED_OPT_OUT = "imported_opt_out"


class ConsentWithdrawn(Contract):
    TYPE: ClassVar[str] = "herald.consent.withdrawn.v1"
    contact_id: ContactId = Field(description="The contact who withdrew consent.")
    email: EmailAddress | None = Field(default=None, description="The address concerned, if known.")
    channel: ConsentChannel = Field(
        default=ConsentChannel.EMAIL, description="The channel consent was withdrawn for (`all`: every channel)."
    )
    reason: ConsentReason = Field(description="Why: unsubscribe, complaint, hard bounce, manual do-not-contact …")
    upstream_source: str = Field(description="Where the fact came from.")
    upstream_event_id: str = Field(description="The upstream system's id of the event.")
    occurred_at: datetime = Field(description="When it happened (UTC).")


class ConsentGranted(Contract):
    TYPE: ClassVar[str] = "herald.consent.granted.v1"
    contact_id: ContactId = Field(description="The contact who (re-)granted consent.")
    channel: ConsentChannel = Field(default=ConsentChannel.EMAIL, description="The channel (`all`: every channel).")
    upstream_source: str = Field(description="Where the fact came from.")
    upstream_event_id: str = Field(description="The upstream system's id of the event.")
    occurred_at: datetime = Field(description="When it happened (UTC).")


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ContactErased(Contract):
    """A data subject's erasure (GDPR art. 17): every Herald store drops the contact's personal data; the
    guard and the executor keep only a hashed suppression entry, so the address is never written to again.
    The address travels as its hash only (`herald_core.consent.address_hash`)."""

    TYPE: ClassVar[str] = "herald.contact.erased.v1"
    contact_id: ContactId = Field(description="The erased contact's id in the tenant's CRM.")
    email_sha256: Sha256Hex | None = Field(
        default=None, description="SHA-256 (hex) of the contact's lower-cased email address, if it had one."
    )
    upstream_source: str = Field(description="Where the request came from, e.g. `hubspot` (privacy deletion).")
    upstream_event_id: str = Field(description="The upstream system's id of the request.")
    occurred_at: datetime = Field(description="When it was requested (UTC).")


# ---------------------------------------------------------------- message events (what the contact did)


class EmailReplied(Contract):
    TYPE: ClassVar[str] = "herald.message.replied.v1"
    contact_id: ContactId = Field(description="The contact who replied.")
    subject: Annotated[str, StringConstraints(max_length=300)] = Field(description="Subject of the reply.")
    snippet: Annotated[str, StringConstraints(max_length=2000)] = Field(
        default="", description="The first words of the reply (quoted text and signature removed by the sender)."
    )
    in_reply_to: str | None = Field(
        default=None, max_length=500, description="Message-ID of the email answered, when it was one of Herald's."
    )
    from_address: EmailAddress | None = Field(
        default=None,
        description="The address the reply came from, when known (a reply from a colleague at the same company "
        "domain can end a contact's sequence).",
    )
    upstream_source: str = Field(description="Where the fact came from, e.g. `gmail` or `hubspot`.")
    upstream_event_id: str = Field(description="The upstream system's id of the event.")
    occurred_at: datetime = Field(description="When the reply arrived (UTC).")


class ReplyMatch(StrEnum):
    IN_REPLY_TO = "in_reply_to"  # its In-Reply-To names an email Herald sent
    REFERENCES = "references"  # its References do
    SENDER = "sender"  # no thread Herald knows: its sender's address is one contact's


class ReplyReceived(Contract):
    """A reply Herald read itself (the raw message at the tenant's inbound address): matched to the contact and,
    by its thread, to the email and the run it answers; only the new text, quoted history and signature removed.
    The text is the contact's, not Herald's: untrusted, it can only choose among what a workflow declares."""

    TYPE: ClassVar[str] = "herald.message.reply-received.v1"
    contact: ContactFacts = Field(description="The contact the reply is from (its thread's, else its sender's).")
    message_id: Annotated[str, StringConstraints(min_length=3, max_length=500)] = Field(
        description="The reply's own Message-ID (else `sha256:` of its bytes): the de-duplication key."
    )
    matched_by: ReplyMatch = Field(description="How the reply was matched: by its thread, else by its sender.")
    in_reply_to: MessageId | None = Field(
        default=None, description="The Message-ID of Herald's email it answers (None when matched by sender)."
    )
    answers_action_id: str | None = Field(
        default=None, max_length=64, description="The action whose email it answers, when its thread says."
    )
    answers_workflow_id: str | None = Field(
        default=None, max_length=100, description="The workflow run that sent that email, when its thread says."
    )
    references: tuple[MessageId, ...] = Field(
        default=(), max_length=50, description="The thread's Message-IDs, oldest first (for an answer in-thread)."
    )
    from_address: EmailAddress = Field(description="The address the reply came from.")
    subject: Annotated[str, StringConstraints(max_length=300)] = Field(description="The reply's subject.")
    text: Annotated[str, StringConstraints(max_length=10_000)] = Field(
        description="What the reply says that is new: quoted history and signature removed, at most 10,000 "
        "characters (`clipped` says when it was longer)."
    )
    clipped: bool = Field(default=False, description="The new text was longer than `text` holds.")
    out_of_office: bool = Field(
        default=False,
        description="An automatic reply (RFC 3834 `Auto-Submitted: auto-replied`, or the usual out-of-office "
        "headers): the contact is away, it did not answer.",
    )
    returns_on: date | None = Field(
        default=None, description="For an out-of-office reply, the day the text says the contact is back."
    )
    upstream_source: str = Field(default="herald-inbound", description="`herald-inbound`: Herald's inbound edge.")
    upstream_event_id: str = Field(description="The reply's Message-ID (as `message_id`).")
    occurred_at: datetime = Field(description="When the reply was sent, by its Date (never later than arrival; UTC).")


class EngagementKind(StrEnum):
    DELIVERED = "delivered"
    OPENED = "opened"
    CLICKED = "clicked"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class EmailEngagement(Contract):
    """What happened to one of Herald's emails after it left: delivered, opened, clicked, bounced, marked as
    spam — from the sending provider's analytics or Herald's own bounce intake. Campaign statistics are
    counted from these (`fetch_campaign_stats`)."""

    TYPE: ClassVar[str] = "herald.message.engagement.v1"
    contact_id: ContactId = Field(description="The contact the email went to.")
    kind: EngagementKind = Field(description="delivered, opened, clicked, bounced or complained.")
    message_id: MessageId = Field(description="The Message-ID Herald gave the email (`<action id@domain>`).")
    campaign_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] | None = Field(
        default=None, description="The campaign, when the sender knows it (else it is the sent action's)."
    )
    variant: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")] | None = Field(
        default=None, description="The variant, when the sender knows it (else it is the sent action's)."
    )
    permanent: bool | None = Field(default=None, description="For a bounce: a hard (permanent) failure.")
    url: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, description="For a click: the link."
    )
    upstream_source: str = Field(description="Where the fact came from, e.g. `ses`, `herald-bounces`.")
    upstream_event_id: str = Field(description="The upstream system's id of the event.")
    occurred_at: datetime = Field(description="When it happened (UTC).")


class MeetingBooked(Contract):
    TYPE: ClassVar[str] = "herald.meeting.booked.v1"
    contact_id: ContactId = Field(description="The contact the meeting is with.")
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)] = Field(description="The meeting's title.")
    starts_at: datetime = Field(description="When it starts (UTC).")
    upstream_source: str = Field(description="Where the fact came from, e.g. a calendar.")
    upstream_event_id: str = Field(description="The upstream system's id of the event.")
    occurred_at: datetime = Field(description="When it was booked (UTC).")


# ---------------------------------------------------------------- the planner's own clock


class TimerFired(Contract):
    """A workflow run's durable timer reached its deadline ("wait 3 business days for a reply, else …"). The
    planner publishes it from its timer table and reads it back in the contact's order; a timer takes effect
    once, however often it is published."""

    TYPE: ClassVar[str] = "herald.workflow.timer-fired.v1"
    timer_id: str = Field(description="The timer (ULID).")
    workflow_id: str = Field(description="The workflow run that set it.")
    workflow: str = Field(description="The workflow kind, e.g. `new_lead_sequence`.")
    contact_id: ContactId = Field(description="The run's contact.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(
        description="What the timer is for, e.g. `touch_2`."
    )
    due_at: datetime = Field(description="The deadline (UTC).")
    fired_at: datetime = Field(description="When the planner fired it, on its clock (UTC).")


# ---------------------------------------------------------------- plan / proposed action


#: more tokens than any one LLM call reports: a count past it is no count (and summed, could overflow a counter)
MAX_TOKENS = 100_000_000

#: the longest query the retrieval API (`herald.v1.Retrieval` Search and Recall) answers; longer is INVALID_ARGUMENT
MAX_QUERY_CHARS = 2000


class EvidenceRef(Contract):
    """A retrieved passage a draft rests on."""

    chunk_id: str = Field(description="Id of the knowledge-base chunk.")
    doc_id: str = Field(description="The document it came from.")
    title: str = Field(description="The document's title.")
    score: float = Field(description="Retrieval score of the passage for the query used.")
    quote: str = Field(max_length=2000, description="The passage text as retrieved (for the audit and reviewers).")


class MemoryRef(Contract):
    """A memory recalled for a plan: a recent interaction, a summary of older ones, or reviewer feedback."""

    memory_id: str = Field(description="Id of the memory.")
    tier: Literal["medium", "long"] = Field(description="medium: a recent interaction; long: a lasting memory.")
    kind: str = Field(description="email_sent, reply, meeting, summary or reviewer_feedback.")
    text: str = Field(max_length=2000, description="The memory, in words.")
    occurred_at: datetime = Field(description="When what it remembers happened (UTC).")
    score: float = Field(description="How strongly it was recalled for the plan's question.")


class PlanStep(Contract):
    tool: str = Field(description="The tool the step uses, e.g. `send_email`.")
    purpose: str = Field(description="Why this step, in a sentence.")


class PlanCreated(Contract):
    TYPE: ClassVar[str] = "herald.plan.created.v1"
    workflow_id: str = Field(description="The workflow run this plan belongs to.")
    workflow: str = Field(description="The workflow kind, e.g. `new_lead_first_touch`.")
    contact_id: ContactId = Field(description="The contact the plan is for.")
    steps: tuple[PlanStep, ...] = Field(description="What the planner intends to do, in order.")
    planner: Literal["template", "llm", "rules"] = Field(
        description="Whether the draft came from a template or the LLM; `rules`: a plan with no draft (a score)."
    )
    query: str = Field(description="The retrieval query the plan used.")
    evidence: tuple[EvidenceRef, ...] = Field(description="The passages retrieved for the plan.")
    memories: tuple[MemoryRef, ...] = Field(
        default=(), description="What Herald remembered of the contact and of reviewers' feedback when it planned."
    )


class WorkflowEnded(Contract):
    """A workflow run reached its end: done, or stopped (a reply, a meeting, an opt-out, a block …). What a
    marketer reading the audit asks of a sequence: why did it stop?"""

    TYPE: ClassVar[str] = "herald.workflow.ended.v1"
    workflow_id: str = Field(description="The run.")
    workflow: str = Field(description="The workflow kind, e.g. `new_lead_sequence`.")
    contact_id: ContactId = Field(description="The run's contact.")
    state: Annotated[str, StringConstraints(min_length=1, max_length=50)] = Field(
        description="The state it ended in, e.g. `completed`, `exited`, `blocked`."
    )
    reason: Annotated[str, StringConstraints(max_length=500)] = Field(
        description="Why, in a few words (e.g. `replied`, `meeting_booked`, `touches_sent: 3`)."
    )
    actions: tuple[str, ...] = Field(default=(), max_length=200, description="Every action the run proposed.")
    ended_at: datetime = Field(description="When, on the planner's clock (UTC).")


class ReplyIntent(StrEnum):
    INTERESTED = "interested"
    QUESTION = "question"
    MEETING_REQUEST = "meeting_request"
    NOT_NOW = "not_now"
    NOT_INTERESTED = "not_interested"
    UNSUBSCRIBE = "unsubscribe"
    OUT_OF_OFFICE = "out_of_office"
    WRONG_PERSON = "wrong_person"
    UNCLEAR = "unclear"


class ReplyClassified(Contract):
    """What the planner read a reply to mean: one of the intents reply handling declares, how sure it is and
    why. The contact's other runs act on it (a sequence pauses until a "not now" day, or ends)."""

    TYPE: ClassVar[str] = "herald.reply.classified.v1"
    workflow_id: str = Field(description="The reply-handling run that read it.")
    contact_id: ContactId = Field(description="The contact who replied.")
    reply_message_id: Annotated[str, StringConstraints(min_length=3, max_length=500)] = Field(
        description="The reply's Message-ID (as on `ReplyReceived`)."
    )
    answers_workflow_id: str | None = Field(
        default=None, max_length=100, description="The run whose email the reply answers, when its thread says."
    )
    intent: ReplyIntent = Field(description="What the reply means.")
    confidence: float = Field(ge=0, le=1, description="How sure the reading is.")
    classifier: Literal["rules", "rules+similarity", "llm"] = Field(description="What read it.")
    until: date | None = Field(default=None, description="For not_now or out_of_office: the day to come back.")
    evidence: tuple[Annotated[str, StringConstraints(max_length=300)], ...] = Field(
        default=(), max_length=4, description="The phrases or similarities that decided it."
    )
    classified_at: datetime = Field(description="When, on the planner's clock (UTC).")


class LeadTier(StrEnum):
    HOT = "hot"  # a person takes it up now
    WARM = "warm"  # the sequence works it
    COLD = "cold"  # nothing is done


class ScoreFeature(Contract):
    """One feature of a lead's score: what was seen, and the points it gave."""

    name: Literal["seniority", "industry", "company_size", "opened", "clicked", "replied", "meeting"] = Field(
        description="The feature."
    )
    seen: Annotated[str, StringConstraints(max_length=200)] = Field(description="What the contact's facts say.")
    points: int = Field(ge=-100, le=100, description="What it adds to the score.")


class LeadQualified(Contract):
    """A lead's score against the tenant's ideal-customer profile, feature by feature, and the tier its
    thresholds give: hot goes to a person, warm to the sequence, cold to nothing. Published when a lead is first
    scored and whenever its tier changes."""

    TYPE: ClassVar[str] = "herald.lead.qualified.v1"
    workflow_id: str = Field(description="The qualification run.")
    contact: ContactFacts = Field(description="The contact as scored.")
    score: int = Field(ge=0, le=100, description="The score, 0 to 100.")
    tier: LeadTier = Field(description="hot, warm or cold, by the tenant's thresholds.")
    previous_tier: LeadTier | None = Field(default=None, description="The tier before, when it changed.")
    features: tuple[ScoreFeature, ...] = Field(max_length=20, description="Every feature, with its points.")
    hot_at: int = Field(ge=0, le=100, description="The score from which a lead is hot.")
    warm_at: int = Field(ge=0, le=100, description="The score from which a lead is warm.")
    qualified_at: datetime = Field(description="When, on the planner's clock (UTC).")


class SendEmailInput(Contract):
    """Input of the `send_email` tool."""

    to: EmailAddress = Field(description="Recipient address.")
    to_name: Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\r\n]*$")] | None = Field(
        default=None, description="Recipient display name (one line)."
    )
    subject: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n]*$")] = Field(
        description="Subject line (one line, no CR/LF)."
    )
    body_text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] = Field(
        description="Plain-text body."
    )
    in_reply_to: MessageId | None = Field(
        default=None, description="The Message-ID of the email this one follows in its thread (a sequence's touch 1)."
    )
    references: tuple[MessageId, ...] = Field(
        default=(), max_length=20, description="The thread's Message-IDs, oldest first (RFC 5322 References)."
    )


OneLine = Annotated[str, StringConstraints(pattern=r"^[^\r\n]*$")]


CrmProperty = Literal["lifecycle_stage", "lead_status", "lead_score", "job_title", "company", "industry", "next_step"]


class UpdateCrmRecordInput(Contract):
    contact_id: ContactId = Field(description="The contact to update (its id in the tenant's CRM).")
    properties: dict[CrmProperty, Annotated[str, StringConstraints(max_length=500)] | None] = Field(
        min_length=1, max_length=20, description="Properties to set (null clears one)."
    )


class ScheduleMeetingInput(Contract):
    contact_id: ContactId = Field(description="The contact the meeting is with.")
    attendee_email: EmailAddress = Field(description="Where the invite goes.")
    attendee_name: Annotated[OneLine, StringConstraints(max_length=200)] | None = None
    title: Annotated[OneLine, StringConstraints(min_length=1, max_length=200)] = Field(description="The event title.")
    starts_at: AwareDatetime = Field(description="Start, with its time zone.")
    duration_minutes: int = Field(ge=15, le=240, description="Length in minutes.")
    description: Annotated[str, StringConstraints(max_length=2000)] = ""


class GenerateImageInput(Contract):
    template: Literal["banner", "square", "story"] = Field(description="Layout: 1200×628, 1080×1080 or 1080×1920.")
    headline: Annotated[OneLine, StringConstraints(min_length=1, max_length=120)]
    subhead: Annotated[OneLine, StringConstraints(max_length=200)] = ""


class FetchCampaignStatsInput(Contract):
    campaign_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None


class CreateContactInput(Contract):
    """A new contact in the tenant's CRM: a person another contact pointed to (a referral), confirmed by a person."""

    email: EmailAddress = Field(description="The new contact's address.")
    first_name: Annotated[OneLine, StringConstraints(max_length=100)] | None = None
    last_name: Annotated[OneLine, StringConstraints(max_length=100)] | None = None
    company: Annotated[OneLine, StringConstraints(max_length=200)] | None = None
    referred_by: ContactId = Field(description="The contact whose reply named this person.")


class FindFreeSlotsInput(Contract):
    """Free times in the tenant's meetings calendar, within its meeting hours (`meeting_hours`, in its zone)."""

    duration_minutes: int = Field(ge=15, le=240, description="The meeting's length in minutes.")
    after: AwareDatetime | None = Field(default=None, description="The earliest start (none: now).")
    business_days: int = Field(default=5, ge=1, le=20, description="How many business days to look through.")
    count: int = Field(default=3, ge=1, le=10, description="How many free slots to return at most.")


ToolName = Literal[
    "send_email",
    "update_crm_record",
    "create_contact",
    "schedule_meeting",
    "generate_image",
    "fetch_campaign_stats",
    "find_free_slots",
]
ToolInput = (
    SendEmailInput
    | UpdateCrmRecordInput
    | CreateContactInput
    | ScheduleMeetingInput
    | GenerateImageInput
    | FetchCampaignStatsInput
    | FindFreeSlotsInput
)
#: a task's id: `task-` and a ULID
TaskId = Annotated[str, StringConstraints(pattern=r"^task-[0-9A-HJKMNP-TV-Z]{26}$")]

TOOL_INPUTS: dict[str, type[Contract]] = {
    "send_email": SendEmailInput,
    "update_crm_record": UpdateCrmRecordInput,
    "create_contact": CreateContactInput,
    "schedule_meeting": ScheduleMeetingInput,
    "generate_image": GenerateImageInput,
    "fetch_campaign_stats": FetchCampaignStatsInput,
    "find_free_slots": FindFreeSlotsInput,
}


class ActionProposed(Contract):
    TYPE: ClassVar[str] = "herald.action.proposed.v1"
    action_id: str = Field(description="Unique id of the action (ULID); idempotency key downstream.")
    tenant: TenantId = Field(description="The tenant it acts for; signed with the action so it cannot be moved.")
    workflow_id: str = Field(description="The workflow run that proposed it.")
    campaign_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] | None = Field(
        default=None, description="The campaign the action belongs to (campaign caps, first-send review)."
    )
    tool: ToolName = Field(description="The tool to run (`herald_core.tools`).")
    input: ToolInput = Field(description="The tool's typed input (the model of `tool`).")
    contact: ContactFacts = Field(description="The contact as the planner saw it (VIP, deal value, …).")
    channel: Channel = Field(default=Channel.EMAIL, description="The channel the action uses.")
    evidence: tuple[EvidenceRef, ...] = Field(description="Passages the draft is grounded in.")
    confidence: float = Field(ge=0, le=1, description="The planner's confidence in the draft.")
    rationale: str = Field(description="Why the planner proposes this, for reviewers and `herald explain`.")
    variant: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")] | None = Field(
        default=None, description="The campaign variant (A/B) the draft belongs to, for campaign statistics."
    )
    drafted_by: Literal["llm", "template"] | None = Field(
        default=None, description="Who wrote the draft: the LLM or a template (the LLM budget applies to the first)."
    )
    review_reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] | None = Field(
        default=None,
        description="The planner asks a person to decide this action, and why (a reply read with low confidence, "
        "a hand-off to the contact's owner): the guard escalates it; nothing lets such an action skip review.",
    )
    task_id: TaskId | None = Field(
        default=None,
        description="The campaign task that proposed it, when one did: a task's proposals are one batch in review "
        "(`GET /v1/reviews?task=<id>`).",
    )

    @model_validator(mode="before")
    @classmethod
    def _input_of_its_tool(cls, data: Any) -> Any:
        """Read `input` as the model of `tool` (not whichever model of the union happens to fit)."""
        tool = data.get("tool") if isinstance(data, dict) else None
        if isinstance(tool, str) and tool in TOOL_INPUTS and isinstance(data.get("input"), dict):
            return {**data, "input": TOOL_INPUTS[tool].model_validate(data["input"])}
        return data

    @model_validator(mode="after")
    def _input_matches_tool(self) -> ActionProposed:
        if type(self.input) is not TOOL_INPUTS[self.tool]:
            raise ValueError(f"input is a {type(self.input).__name__}, not the input of {self.tool}")
        return self

    @property
    def recipient(self) -> str | None:
        """The address the action writes to, if it writes to one (an email, an invite)."""
        if isinstance(self.input, SendEmailInput):
            return self.input.to
        if isinstance(self.input, ScheduleMeetingInput):
            return self.input.attendee_email
        return None

    @property
    def text(self) -> tuple[str, str]:
        """The words the action puts in front of someone, as (subject, body): what content rules read."""
        match self.input:
            case SendEmailInput():
                return self.input.subject, self.input.body_text
            case ScheduleMeetingInput():
                return self.input.title, self.input.description
            case GenerateImageInput():
                return self.input.headline, self.input.subhead
            case UpdateCrmRecordInput():
                return "", "\n".join(f"{k}: {v}" for k, v in self.input.properties.items() if v)
        return "", ""

    def describe(self) -> str:
        """The action in a few words (for summaries, memories and reviewers)."""
        match self.input:
            case SendEmailInput():
                return f"email “{self.input.subject}” to {self.input.to}"
            case ScheduleMeetingInput():
                when = f"{self.input.starts_at:%Y-%m-%d %H:%M %Z}"
                return f"meeting “{self.input.title}” with {self.input.attendee_email} at {when}"
            case GenerateImageInput():
                return f"{self.input.template} image “{self.input.headline}”"
            case UpdateCrmRecordInput():
                return f"CRM update of {', '.join(self.input.properties)}"
        return f"{self.tool}"


# ---------------------------------------------------------------- campaign tasks

SegmentWord = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"^[a-z0-9][a-z0-9_ -]*$")]
Seniority = Literal["c_level", "vp", "director", "manager", "individual", "unknown"]
#: the most contacts one task may write to (and one segment read may answer)
MAX_TASK_CONTACTS = 5000


class CompanySizeRange(Contract):
    """Employees, both ends included; an end left out is open."""

    min: int | None = Field(default=None, ge=0, description="At least this many employees.")
    max: int | None = Field(default=None, ge=0, description="At most this many employees.")

    @model_validator(mode="after")
    def _ordered(self) -> CompanySizeRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"company_size.min ({self.min}) is above company_size.max ({self.max})")
        return self


class SegmentFilter(Contract):
    """Which contacts of the tenant's contact store a campaign speaks to. Every condition given must hold (an empty
    one is no condition); a contact without an address, or opted out in the store, is never in a segment."""

    industries: tuple[SegmentWord, ...] = Field(
        default=(), max_length=20, description="Industry is one of these (`logistics` also fits `logistics_and_…`)."
    )
    lifecycle_stages: tuple[SegmentWord, ...] = Field(
        default=(), max_length=20, description="CRM lifecycle stage is one of these (e.g. `lead`, `customer`)."
    )
    seniorities: tuple[Seniority, ...] = Field(
        default=(), max_length=6, description="The job title's level is one of these (as lead qualification reads it)."
    )
    title_contains: tuple[Annotated[str, StringConstraints(min_length=2, max_length=60)], ...] = Field(
        default=(), max_length=20, description="The job title contains one of these words (case-insensitive)."
    )
    company_size: CompanySizeRange | None = Field(default=None, description="Employees within this range.")
    countries: tuple[Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")], ...] = Field(
        default=(), max_length=50, description="ISO 3166 country code is one of these (`US`, `DE`)."
    )
    limit: int = Field(
        default=1000, ge=1, le=MAX_TASK_CONTACTS, description="At most this many contacts are answered (by id)."
    )


class CampaignBrief(Contract):
    """A defined campaign task: to whom, about what, to what end, and the angles its emails take."""

    campaign_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] = Field(
        description="The campaign its emails are sent (and counted) under."
    )
    topic: Annotated[str, StringConstraints(min_length=3, max_length=300, pattern=r"^[^\r\n]*$")] = Field(
        description="What the emails are about; the knowledge base is searched for it."
    )
    goal: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\r\n]*$")] = Field(
        default="", description="What the campaign wants of its readers, for reviewers (e.g. `book a demo`)."
    )
    segment: SegmentFilter = Field(description="Who it is for.")
    variants: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")],
        Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n]*$")],
    ] = Field(
        min_length=1,
        max_length=5,
        description="Variant name → its angle in one line; the audience is split between them evenly, by contact.",
    )
    max_contacts: int = Field(
        default=1000,
        ge=1,
        le=MAX_TASK_CONTACTS,
        description="The task is refused when its segment holds more contacts than this.",
    )


class CampaignTaskAccepted(Contract):
    """A campaign task was accepted (`POST /v1/tasks`): the planner carries it through its steps, once."""

    TYPE: ClassVar[str] = "herald.task.accepted.v1"
    task_id: TaskId = Field(description="The task.")
    tenant: TenantId = Field(description="The tenant it acts for.")
    kind: Literal["defined", "open"] = Field(
        default="defined", description="A defined brief, or (`open`) one the LLM planned from a marketer's text."
    )
    brief: CampaignBrief = Field(description="What was asked, or what the LLM planned.")
    text: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        default=None, description="For an open task: the marketer's request, as written."
    )
    planned: tuple[PlanStep, ...] = Field(
        default=(), max_length=20, description="For an open task: every call the LLM made to plan it, answered."
    )
    requested_by: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(description="Who asked.")
    accepted_at: datetime = Field(description="When (UTC).")


class CampaignTaskProposed(Contract):
    """A campaign task's batch: every send it proposed (each an `ActionProposed` the guard decides, escalated to
    review as one batch), the plan it followed and what it was drafted from."""

    TYPE: ClassVar[str] = "herald.task.proposed.v1"
    task_id: TaskId = Field(description="The task.")
    campaign_id: str = Field(description="The campaign of its sends.")
    steps: tuple[PlanStep, ...] = Field(max_length=20, description="What the task did, in order.")
    query: str = Field(description="The retrieval query (the brief's topic).")
    evidence: tuple[EvidenceRef, ...] = Field(max_length=20, description="The passages its drafts quote from.")
    audience: int = Field(ge=0, description="Contacts of the segment written to.")
    variants: dict[str, int] = Field(description="Sends per variant.")
    actions: tuple[str, ...] = Field(max_length=MAX_TASK_CONTACTS, description="Every action proposed.")
    review_reason: str = Field(description="What each proposal asks of a reviewer.")
    proposed_at: datetime = Field(description="When (UTC).")


class CampaignTaskFailed(Contract):
    """A campaign task stopped without proposing anything, and why (its segment empty, the store refusing it)."""

    TYPE: ClassVar[str] = "herald.task.failed.v1"
    task_id: TaskId = Field(description="The task.")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = Field(description="Why, in words.")
    failed_at: datetime = Field(description="When (UTC).")


class ActionWithdrawn(Contract):
    """The workflow that proposed an action no longer wants it (the contact answered while it waited for a
    review or a send window): the guard blocks it at any later decision. A withdrawal can only stop an action,
    never let one through; one the executor already has is not recalled."""

    TYPE: ClassVar[str] = "herald.action.withdrawn.v1"
    action_id: str = Field(description="The action withdrawn.")
    tenant: TenantId = Field(description="Its tenant.")
    workflow_id: str = Field(description="The workflow run that proposed it.")
    contact_id: ContactId = Field(description="The contact.")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(
        description="Why, in a few words (e.g. `replied`)."
    )
    withdrawn_at: datetime = Field(description="When, on the planner's clock (UTC).")


# ---------------------------------------------------------------- guard decisions


class RuleHit(Contract):
    rule: str = Field(description="Rule id, e.g. `consent.opt_out`.")
    outcome: Literal["pass", "block", "escalate", "defer"] = Field(description="What the rule decided.")
    detail: str = Field(description="The inputs and reason, in words.")


class ActionBlocked(Contract):
    TYPE: ClassVar[str] = "herald.action.blocked.v1"
    action_id: str = Field(description="The blocked action.")
    workflow_id: str = Field(description="Its workflow run.")
    contact_id: ContactId = Field(description="The contact.")
    rule: str = Field(description="The rule that blocked it.")
    reason: str = Field(description="Why, in words.")
    rules: tuple[RuleHit, ...] = Field(description="Every rule evaluated, with its result.")
    stage: Literal["proposal", "review", "release"] = Field(
        description="Blocked on proposal, at re-check after review, or when a deferred action was released."
    )
    policy_version: str | None = Field(default=None, description="The tenant's policy the decision was made under.")


class ActionEscalated(Contract):
    TYPE: ClassVar[str] = "herald.action.escalated.v1"
    action_id: str = Field(description="The escalated action.")
    workflow_id: str = Field(description="Its workflow run.")
    contact_id: ContactId = Field(description="The contact.")
    review_id: str = Field(description="The review item opened for it.")
    reason: str = Field(description="Why a human must decide.")
    rules: tuple[RuleHit, ...] = Field(description="Every rule evaluated, with its result.")
    policy_version: str | None = Field(default=None, description="The tenant's policy the decision was made under.")


class ActionDeferred(Contract):
    TYPE: ClassVar[str] = "herald.action.deferred.v1"
    action_id: str = Field(description="The deferred action.")
    workflow_id: str = Field(description="Its workflow run.")
    contact_id: ContactId = Field(description="The contact.")
    release_at: datetime = Field(description="When the guard decides it again (UTC): the send window's next opening.")
    reason: str = Field(description="Why it waits, in words.")
    rules: tuple[RuleHit, ...] = Field(description="Every rule evaluated, with its result.")
    stage: Literal["proposal", "review", "release"] = Field(description="The decision that deferred it.")
    policy_version: str | None = Field(default=None, description="The tenant's policy the decision was made under.")


class ReviewRequested(Contract):
    TYPE: ClassVar[str] = "herald.review.requested.v1"
    review_id: str = Field(description="Id of the review item.")
    action: ActionProposed = Field(description="The action awaiting a decision.")
    reason: str = Field(description="Why it needs a human.")
    rules: tuple[RuleHit, ...] = Field(description="The rules that sent it to review.")


class ReviewDecision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"


class DraftEdit(Contract):
    """A reviewer's change to an email draft before approving it: the fields given replace the draft's, under
    the same constraints as the `send_email` tool's input."""

    subject: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n]*$")] | None = Field(
        default=None, description="The subject line to send instead (one line)."
    )
    body_text: Annotated[str, StringConstraints(min_length=1, max_length=20_000)] | None = Field(
        default=None, description="The plain-text body to send instead."
    )

    def apply(self, action: ActionProposed) -> ActionProposed:
        """The action as edited (its id, contact and everything else unchanged)."""
        email = action.input
        if not isinstance(email, SendEmailInput):
            raise ValueError(f"only an email draft can be edited, not {action.tool}")
        changed = {k: v for k, v in (("subject", self.subject), ("body_text", self.body_text)) if v is not None}
        return action.model_copy(update={"input": email.model_copy(update=changed)})


class DecisionSignature(Contract):
    """The review service's signature over a decision: what the guard checks before it acts on one."""

    key_id: str = Field(description="Id (RFC 7638 thumbprint) of the review service's key that signed.")
    signed_at: datetime = Field(description="When the review service signed (UTC).")
    expires_at: datetime = Field(description="After this the guard no longer acts on the decision.")
    signature: str = Field(
        description="Ed25519 signature (base64url) over the decision, its item, the action's digest and the "
        "authenticated reviewer (`herald_core.signing.decision_payload`)."
    )


class ReviewDecided(Contract):
    TYPE: ClassVar[str] = "herald.review.decided.v1"
    review_id: str = Field(description="The review item decided.")
    action: ActionProposed = Field(description="The action exactly as it was escalated for review.")
    edit: DraftEdit | None = Field(
        default=None,
        description="For an approval: the reviewer's change to the email draft. The guard applies it and decides "
        "the edited action under every hard rule again.",
    )
    decision: ReviewDecision = Field(description="approved or rejected.")
    reviewer: str = Field(min_length=1, max_length=200, description="Who decided: the authenticated identity.")
    reason: str | None = Field(default=None, max_length=2000, description="The reviewer's reason.")
    decided_at: datetime = Field(description="When (UTC).")
    approvers: tuple[str, ...] = Field(
        default=(),
        max_length=5,
        description="For a high-risk item's approval: every approver, in order (two distinct people, four eyes).",
    )
    signature: DecisionSignature | None = Field(
        default=None, description="The review service's signature; the guard acts on no decision without a valid one."
    )


class Approval(Contract):
    """The guard's signature over an action: what the executor checks before any side effect."""

    key_id: str = Field(description="Id of the guard key that signed.")
    nonce: str = Field(description="Random, unique per approval; the executor's replay ledger keys on it.")
    issued_at: datetime = Field(description="When the guard signed (UTC).")
    expires_at: datetime = Field(description="After this the executor refuses the approval.")
    approved_by: str = Field(description="`guard` for automatic approvals, else `review:<reviewer>`.")
    policy_version: str = Field(description="The policy the decision was made under.")
    signature: str = Field(description="Ed25519 signature (base64url) over the canonical bytes of action+approval.")


class ActionApproved(Contract):
    TYPE: ClassVar[str] = "herald.action.approved.v1"
    action: ActionProposed = Field(description="The action, exactly as signed.")
    approval: Approval = Field(description="The guard's signed approval.")
    rules: tuple[RuleHit, ...] = Field(description="Every rule evaluated, with its result.")
    stage: Literal["proposal", "review", "release"] | None = Field(
        default=None, description="Approved on proposal, after review, or when a deferred action was released."
    )


# ---------------------------------------------------------------- executor


class ExecutionStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    IN_DOUBT = "in_doubt"


class FailureKind(StrEnum):
    """How a tool failed, which says what to do next."""

    RETRYABLE = "retryable"  # the downstream may answer later: try again with backoff
    PERMANENT = "permanent"  # it will never work as asked: do not retry
    NEEDS_HUMAN = "needs_human"  # the outcome is unknown or a judgement is needed: surface to review


class ToolFailure(Contract):
    """A tool's typed failure (`herald_core.tools`)."""

    kind: FailureKind = Field(description="retryable, permanent or needs_human.")
    code: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")] = Field(
        description="e.g. `invalid_input`, `smtp_rejected`, `in_doubt`."
    )
    message: Annotated[str, StringConstraints(max_length=2000)] = Field(description="What happened, in words.")


class ActionExecuted(Contract):
    TYPE: ClassVar[str] = "herald.action.executed.v1"
    action_id: str = Field(description="The action.")
    workflow_id: str = Field(description="Its workflow run.")
    contact_id: ContactId = Field(description="The contact.")
    tool: str = Field(description="The tool that ran.")
    status: ExecutionStatus = Field(description="succeeded, failed, or in_doubt (a crash mid-send; never retried).")
    result: dict[str, Any] = Field(default_factory=dict, description="The tool's output, e.g. the Message-ID.")
    error: str | None = Field(default=None, description="What went wrong, if anything.")
    failure: ToolFailure | None = Field(default=None, description="The typed failure, when it did not succeed.")
    summary: str | None = Field(
        default=None, max_length=500, description="What was done, in words (e.g. the subject of the email sent)."
    )


class ActionRefused(Contract):
    TYPE: ClassVar[str] = "herald.action.refused.v1"
    action_id: str | None = Field(default=None, description="The action, when it could be read.")
    contact_id: str | None = Field(default=None, description="The contact, when it could be read.")
    reason: Literal[
        "bad_signature",
        "unknown_key",
        "retired_key",
        "expired",
        "replayed",
        "consent_withdrawn",
        "malformed",
        "tenant_mismatch",
        "kill_switch",
    ] = Field(description="Why the executor refused to act.")
    detail: str = Field(description="The reason in words.")


class ResolutionOutcome(StrEnum):
    HAPPENED = "happened"
    DID_NOT_HAPPEN = "did_not_happen"


class ExecutionResolved(Contract):
    """What a person found when checking an execution in doubt in its downstream (the mailbox, the CRM, the
    calendar): the side effect happened, or it did not. It settles the execution's outcome everywhere (the
    executor's ledger and campaign statistics, the workflow run, the audit); nothing is re-run because of it."""

    TYPE: ClassVar[str] = "herald.execution.resolved.v1"
    review_id: str = Field(description="The review item of the execution in doubt.")
    action_id: str = Field(description="The action.")
    workflow_id: str = Field(description="Its workflow run.")
    contact_id: ContactId = Field(description="The contact.")
    tool: str = Field(description="The tool whose call was in doubt.")
    outcome: ResolutionOutcome = Field(description="happened or did_not_happen.")
    reviewer: str = Field(min_length=1, max_length=200, description="Who checked.")
    reason: str = Field(min_length=1, max_length=2000, description="How it was checked.")
    summary: str | None = Field(default=None, max_length=500, description="What the action was, in words.")
    resolved_at: datetime = Field(description="When (UTC).")


# ---------------------------------------------------------------- policy

MAX_POLICY_BYTES = 256 * 1024


class PolicyPublished(Contract):
    TYPE: ClassVar[str] = "herald.policy.published.v1"
    tenant: TenantId = Field(description="The tenant the policy is for (also the record key).")
    version: int = Field(ge=1, description="The policy's version; must be above the live one to take effect.")
    source: Annotated[str, StringConstraints(min_length=1, max_length=MAX_POLICY_BYTES)] = Field(
        description="The policy's YAML, exactly as written (its SHA-256 is part of the recorded version)."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of `source`, hex.")
    published_by: str = Field(min_length=1, max_length=200, description="Who published it.")
    note: str | None = Field(default=None, max_length=2000, description="Why it changed.")
    mode: Literal["live", "shadow"] = Field(
        default="live",
        description="`shadow`: decided beside the live policy, differences recorded, never enforced "
        "(keyed `<tenant>:shadow`; applying the same text live ends the shadow).",
    )


# ---------------------------------------------------------------- control


class KillSwitchChanged(Contract):
    TYPE: ClassVar[str] = "herald.control.kill-switch.v1"
    tenant: TenantId | None = Field(default=None, description="The tenant it stops; none for every tenant.")
    engaged: bool = Field(description="On (nothing is sent) or off.")
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500)] = Field(description="Why, in words.")
    set_by: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(description="Who set it.")


class LlmBudgetChanged(Contract):
    """The guard's word that a tenant's LLM token budget for a day is spent: planners draft from templates
    for the rest of that (UTC) day, and the guard sends LLM drafts to review."""

    TYPE: ClassVar[str] = "herald.control.llm-budget.v1"
    tenant: TenantId = Field(description="The tenant.")
    day: date = Field(description="The UTC day the budget is for.")
    exhausted: bool = Field(description="The day's budget is spent.")
    used_tokens: int = Field(ge=0, description="Tokens reported for the day so far.")
    budget_tokens: int = Field(ge=0, description="The policy's tokens per day.")


# ---------------------------------------------------------------- LLM usage


class LlmUsageReported(Contract):
    """Tokens an LLM task used (one draft: every Messages call it took, tool rounds included), reported by
    the service that made the calls (what the daily budget counts)."""

    TYPE: ClassVar[str] = "herald.llm.usage.v1"
    workflow_id: str | None = Field(default=None, description="The workflow run the call was for.")
    purpose: Annotated[str, StringConstraints(min_length=1, max_length=50)] = Field(description="e.g. `draft`.")
    model: Annotated[str, StringConstraints(min_length=1, max_length=100)] = Field(description="The model called.")
    input_tokens: int = Field(
        ge=0, le=MAX_TOKENS, description="Input tokens the API reported, cache reads and writes included."
    )
    output_tokens: int = Field(ge=0, le=MAX_TOKENS, description="Output tokens the API reported.")
    cache_read_tokens: int = Field(
        default=0, ge=0, le=MAX_TOKENS, description="Of the input tokens, those read from the prompt cache."
    )
    cache_write_tokens: int = Field(
        default=0, ge=0, le=MAX_TOKENS, description="Of the input tokens, those written to the prompt cache."
    )
    occurred_at: datetime = Field(description="When the call returned (UTC).")


# ---------------------------------------------------------------- the knowledge base

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
DocumentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")]
KnowledgeCollection = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]


class MediaType(StrEnum):
    MARKDOWN = "text/markdown"
    HTML = "text/html"
    PDF = "application/pdf"
    TEXT = "text/plain"


MEDIA_TYPE_BY_SUFFIX: dict[str, MediaType] = {
    ".md": MediaType.MARKDOWN,
    ".markdown": MediaType.MARKDOWN,
    ".html": MediaType.HTML,
    ".htm": MediaType.HTML,
    ".pdf": MediaType.PDF,
    ".txt": MediaType.TEXT,
    ".text": MediaType.TEXT,
}


class DocumentSubmitted(Contract):
    TYPE: ClassVar[str] = "herald.document.submitted.v1"
    doc_id: DocumentId = Field(description="The document's id in the tenant's knowledge base (e.g. `pricing/plans`).")
    collection: KnowledgeCollection = Field(
        description="Where it belongs: brand, product, pricing, campaigns, competitors, customers, …"
    )
    media_type: MediaType = Field(description="How the content is written: Markdown, HTML, PDF or plain text.")
    content: str | None = Field(
        default=None, max_length=MAX_DOCUMENT_BYTES, description="The document, for text media types."
    )
    content_base64: str | None = Field(
        default=None,
        max_length=(MAX_DOCUMENT_BYTES * 4) // 3 + 4,
        description="The document, base64-encoded, for binary media types (PDF).",
    )
    source_uri: str | None = Field(default=None, max_length=2000, description="Where it came from (path or URL).")


class DocumentDeleted(Contract):
    TYPE: ClassVar[str] = "herald.document.deleted.v1"
    doc_id: DocumentId = Field(description="The document to remove, with every chunk of it.")


class DocumentIndexed(Contract):
    TYPE: ClassVar[str] = "herald.document.indexed.v1"
    doc_id: DocumentId = Field(description="The document.")
    collection: str = Field(description="Its collection.")
    title: str = Field(description="Its title, as read from the document.")
    status: Literal["indexed", "unchanged", "deleted"] = Field(
        description="indexed (new or replaced), unchanged (same content as already indexed), or deleted."
    )
    chunks: int = Field(ge=0, description="How many chunks it now has in the knowledge base.")
    content_hash: str | None = Field(default=None, description="SHA-256 of the submitted content.")


class DocumentRefused(Contract):
    TYPE: ClassVar[str] = "herald.document.refused.v1"
    doc_id: str = Field(description="The document, as submitted.")
    reason: str = Field(description="Why it cannot be indexed, in words.")


# ---------------------------------------------------------------- audit-only records


class EventRejected(Contract):
    TYPE: ClassVar[str] = "herald.event.rejected.v1"
    status_code: int = Field(description="The HTTP status returned to the sender.")
    reason: str = Field(description="Why the event was refused.")
    endpoint: str = Field(description="The edge endpoint that refused it.")
    upstream_event_id: str | None = Field(default=None, description="The sender's event id, if readable.")


class DeadLettered(Contract):
    TYPE: ClassVar[str] = "herald.dead-lettered.v1"
    consumer: str = Field(description="The service that could not accept the message.")
    original_topic: str = Field(description="Where it was read from.")
    original_partition: int = Field(description="Its partition.")
    original_offset: int = Field(description="Its offset.")
    reason: str = Field(description="Why it was dead-lettered.")


MESSAGE_TYPES: dict[str, type[Contract]] = {
    model.TYPE: model
    for model in (
        ContactCreated,
        ContactUpdated,
        ConsentWithdrawn,
        ConsentGranted,
        ContactErased,
        EmailReplied,
        ReplyReceived,
        EmailEngagement,
        MeetingBooked,
        TimerFired,
        PlanCreated,
        WorkflowEnded,
        ReplyClassified,
        LeadQualified,
        CampaignTaskAccepted,
        CampaignTaskProposed,
        CampaignTaskFailed,
        ActionProposed,
        ActionWithdrawn,
        ActionBlocked,
        ActionEscalated,
        ActionDeferred,
        ReviewRequested,
        ReviewDecided,
        ActionApproved,
        ActionExecuted,
        ActionRefused,
        ExecutionResolved,
        PolicyPublished,
        KillSwitchChanged,
        LlmBudgetChanged,
        LlmUsageReported,
        DocumentSubmitted,
        DocumentDeleted,
        DocumentIndexed,
        DocumentRefused,
        EventRejected,
        DeadLettered,
    )
}
