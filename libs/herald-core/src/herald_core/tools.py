"""The tool registry: every tool Herald's agents act through, with one typed input (in the contracts, as
`ActionProposed.input`) and one typed output.

From these models come the Anthropic tool-use schema the planner offers the model (`anthropic_tool`)
and the validation the executor applies before any side effect (`validate_input`); a tool's failure
is typed (`ToolFailure`: retryable, permanent or needs a human) and travels in `ActionExecuted`.

    send_email            SMTP, idempotent by Message-ID                       needs approval
    update_crm_record     the contact store (Postgres) or HubSpot's CRM API   needs approval
    create_contact        a new contact there (a referral)                     needs approval
    schedule_meeting      an ICS invite by email and a CalDAV calendar event  needs approval
    generate_image        a branded image in the tenant's asset store         needs approval
    fetch_campaign_stats  sends, opens, clicks … per campaign and variant     read-only, no approval
    find_free_slots       free times in the tenant's CalDAV calendar           read-only, no approval
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from herald_core.contracts import (
    ContactId,
    CreateContactInput,
    CrmProperty,
    FailureKind,
    FetchCampaignStatsInput,
    FindFreeSlotsInput,
    GenerateImageInput,
    ScheduleMeetingInput,
    SendEmailInput,
    ToolFailure,
    UpdateCrmRecordInput,
)

OneLine = Annotated[str, StringConstraints(pattern=r"^[^\r\n]*$")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------- outputs and inputs, one pair per tool


class SendEmailOutput(_Model):
    message_id: str = Field(description="The email's Message-ID (derived from the action id).")
    smtp_reply: str | None = Field(default=None, description="The SMTP server's reply to the message.")


class UpdateCrmRecordOutput(_Model):
    contact_id: ContactId
    updated: tuple[CrmProperty, ...] = Field(description="The properties the CRM accepted.")
    crm: Literal["herald", "hubspot"] = Field(description="Which CRM adapter wrote them.")


class CreateContactOutput(_Model):
    contact_id: ContactId = Field(description="The contact's id in the CRM (an existing one's, for a known address).")
    created: bool = Field(description="False: a contact with that address was there already.")
    crm: Literal["herald", "hubspot"]
    email: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    referred_by: ContactId


class ScheduleMeetingOutput(_Model):
    uid: str = Field(description="The event's iCalendar UID (derived from the action id).")
    starts_at: datetime
    ends_at: datetime
    calendar_url: str = Field(description="Where the event was written (CalDAV).")
    invite_message_id: str = Field(description="Message-ID of the emailed invite.")


class GenerateImageOutput(_Model):
    asset_id: str = Field(description="The image's id in the tenant's asset store.")
    path: str = Field(description="Where the file is.")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    width: int
    height: int
    generated: Literal[True] = Field(default=True, description="Always true: the image is labelled as generated.")


class VariantStats(_Model):
    variant: str
    sends: int = 0
    deliveries: int = 0
    opens: int = 0
    clicks: int = 0
    replies: int = 0
    bounces: int = 0
    complaints: int = 0
    unsubscribes: int = 0


class FetchCampaignStatsOutput(_Model):
    campaign_id: str
    variants: tuple[VariantStats, ...]


# ---------------------------------------------------------------- failures (`FailureKind`, `ToolFailure`: contracts)


class FreeSlot(_Model):
    starts_at: datetime
    ends_at: datetime


class FindFreeSlotsOutput(_Model):
    zone: str = Field(description="The time zone of the meeting hours.")
    hours: str = Field(description="The meeting hours searched, e.g. `09:00–17:00, Monday to Friday`.")
    searched_from: datetime
    searched_until: datetime
    slots: tuple[FreeSlot, ...] = Field(description="Free slots, earliest first (none: the calendar is full).")


class ToolInputInvalid(ValueError):
    """An input that does not fit the tool's model: a permanent failure, nothing is attempted."""

    def __init__(self, tool: str, problems: str) -> None:
        super().__init__(f"{tool}: {problems}")
        self.failure = ToolFailure(
            kind=FailureKind.PERMANENT, code="invalid_input", message=f"{tool}: {problems}"[:2000]
        )


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class ToolSpec:
    name: str
    description: str
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    read_only: bool  # a read-only tool changes nothing outside Herald and needs no approval

    @property
    def needs_approval(self) -> bool:
        return not self.read_only


TOOLS: dict[str, ToolSpec] = {
    spec.name: spec
    for spec in (
        ToolSpec(
            "send_email",
            "Send one plain-text email to the contact (the sender, unsubscribe link and footer are added).",
            SendEmailInput,
            SendEmailOutput,
            read_only=False,
        ),
        ToolSpec(
            "update_crm_record",
            "Set properties of the contact's CRM record.",
            UpdateCrmRecordInput,
            UpdateCrmRecordOutput,
            read_only=False,
        ),
        ToolSpec(
            "create_contact",
            "Add a person to the CRM as a new contact: someone a contact's reply named as the right person.",
            CreateContactInput,
            CreateContactOutput,
            read_only=False,
        ),
        ToolSpec(
            "schedule_meeting",
            "Book a meeting with the contact: a calendar event and an emailed invite, never over a busy slot.",
            ScheduleMeetingInput,
            ScheduleMeetingOutput,
            read_only=False,
        ),
        ToolSpec(
            "generate_image",
            "Render a branded image from the tenant's brand kit (labelled as generated).",
            GenerateImageInput,
            GenerateImageOutput,
            read_only=False,
        ),
        ToolSpec(
            "fetch_campaign_stats",
            "Sends, deliveries, opens, clicks, replies, bounces, complaints and unsubscribes of a campaign, "
            "per variant.",
            FetchCampaignStatsInput,
            FetchCampaignStatsOutput,
            read_only=True,
        ),
        ToolSpec(
            "find_free_slots",
            "Free times for a meeting in the tenant's calendar, within its meeting hours, earliest first.",
            FindFreeSlotsInput,
            FindFreeSlotsOutput,
            read_only=True,
        ),
    )
}


def anthropic_tool(name: str) -> dict[str, Any]:
    """The tool as Anthropic's Messages API takes it (`tools=[…]`): its input model's JSON schema."""
    spec = TOOLS[name]
    return {"name": spec.name, "description": spec.description, "input_schema": spec.input_model.model_json_schema()}


def validate_input(name: str, data: Any) -> BaseModel:
    """The tool's typed input, or `ToolInputInvalid` naming every problem (and an unknown tool)."""
    spec = TOOLS.get(name)
    if spec is None:
        raise ToolInputInvalid(name, f"no tool named {name!r} (known: {', '.join(sorted(TOOLS))})")
    try:
        return spec.input_model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(input)'}: {e['msg']}" for e in exc.errors()[:10])
        raise ToolInputInvalid(name, problems) from exc
