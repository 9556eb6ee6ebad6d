"""Tenant configuration: one YAML file per tenant in a directory, re-read when it changes.

A platform team adds a tenant by adding `<tenant_id>.yaml`; services pick it up without a
restart. Unknown tenants are refused at the edge.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Mapping
from datetime import time as dt_time
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import structlog
import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from herald_core.auth.access import Access
from herald_core.contracts import EmailAddress
from herald_core.hubspot import CONTACT_FIELDS, DEFAULT_CONTACT_PROPERTIES

log = structlog.get_logger("herald.tenants")


def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA time zone of that name, or None for no name or one this machine does not know."""
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


class Sender(BaseModel):
    model_config = ConfigDict(frozen=True)
    name: str = Field(description="Display name on outgoing email.")
    address: EmailAddress = Field(description="From address.")


class Limits(BaseModel):
    model_config = ConfigDict(frozen=True)
    emails_per_hour: int = Field(default=500, ge=0, description="Tenant-wide email cap in any hour (a sliding window).")
    emails_per_contact_per_day: int = Field(
        default=1, ge=0, description="Per-contact email cap in any 24 hours (a sliding window)."
    )


class Escalation(BaseModel):
    model_config = ConfigDict(frozen=True)
    vip: bool = Field(default=True, description="Send VIP contacts' actions to review.")
    deal_value_minor_at_least: int | None = Field(
        default=None, description="Send contacts with an open deal at least this large (minor units) to review."
    )


class BrandKit(BaseModel):
    """What generated images are made of: the tenant's colours and wordmark (and, for a hosted image model, the
    look in words)."""

    model_config = ConfigDict(frozen=True)
    palette: tuple[str, ...] = Field(
        default=("#0B3D91", "#FFFFFF", "#F5A623"),
        min_length=3,
        description="Background, text and accent colours (#RRGGBB).",
    )
    wordmark: str | None = Field(default=None, max_length=60, description="Text in place of a logo (default: name).")
    voice: str | None = Field(
        default=None,
        max_length=200,
        pattern=r"^[^\r\n]*$",
        description="The brand's look and tone in one line, given to a hosted image model (e.g. calm, plain, airy).",
    )

    @field_validator("palette")
    @classmethod
    def _hex_colours(cls, palette: tuple[str, ...]) -> tuple[str, ...]:
        for colour in palette:
            if not re.fullmatch(r"#[0-9A-Fa-f]{6}", colour):
                raise ValueError(f"{colour!r} is not a #RRGGBB colour")
        return palette


#: a HubSpot property's internal name: lower-case letters, digits and underscores, starting with a letter
HubSpotPropertyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,99}$")]


class CrmConnection(BaseModel):
    """Where `update_crm_record` writes: Herald's own contact store (Postgres), or the tenant's HubSpot; and how
    a contact read from HubSpot becomes Herald's."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["herald", "hubspot"] = Field(default="herald", description="The CRM adapter.")
    hubspot_base_url: str = Field(default="https://api.hubapi.com", description="HubSpot's API root.")
    hubspot_token_file: Path | None = Field(
        default=None, description="A file holding the HubSpot private app's access token (a mounted secret)."
    )
    properties: dict[HubSpotPropertyName, str] | None = Field(
        default=None,
        min_length=1,
        description="HubSpot contact property (internal name) → the Herald contact field it sets, the whole "
        "mapping (none: HubSpot's standard properties, `herald_core.hubspot.DEFAULT_CONTACT_PROPERTIES`). Fields: "
        f"{', '.join(sorted(CONTACT_FIELDS))}.",
    )

    @model_validator(mode="after")
    def _hubspot_needs_a_token(self) -> CrmConnection:
        if self.kind == "hubspot" and self.hubspot_token_file is None:
            raise ValueError("a hubspot CRM needs hubspot_token_file (the private app's access token)")
        return self

    @field_validator("properties")
    @classmethod
    def _known_fields_once_each(cls, properties: dict[str, str] | None) -> dict[str, str] | None:
        if properties is None:
            return None
        unknown = sorted({field for field in properties.values() if field not in CONTACT_FIELDS})
        if unknown:
            raise ValueError(f"not a contact field: {', '.join(unknown)} (known: {', '.join(sorted(CONTACT_FIELDS))})")
        by_field: dict[str, list[str]] = {}
        for name, field in properties.items():
            by_field.setdefault(field, []).append(name)
        twice = {field: names for field, names in by_field.items() if len(names) > 1}
        if twice:
            # which one would win is not for the configuration's reader to guess
            said = "; ".join(f"{field} by {', '.join(sorted(names))}" for field, names in sorted(twice.items()))
            raise ValueError(f"each contact field is set by one property at most: {said}")
        return properties

    @property
    def contact_properties(self) -> Mapping[str, str]:
        """The mapping in force: the tenant's own, else HubSpot's standard properties."""
        return self.properties if self.properties is not None else DEFAULT_CONTACT_PROPERTIES


class ImageGeneration(BaseModel):
    """How `generate_image` makes a picture: the brand template drawn by Herald (Pillow), or a hosted image model
    behind an OpenAI-compatible Images API (`POST <base_url>/v1/images/generations`), fitted to the template's
    size. Either way the image is labelled as generated."""

    model_config = ConfigDict(frozen=True)
    kind: Literal["template", "hosted"] = Field(default="template", description="The image adapter.")
    base_url: str | None = Field(default=None, description="The Images API's root (e.g. https://api.openai.com).")
    model: str | None = Field(default=None, min_length=1, max_length=100, description="The model asked (hosted).")
    token_file: Path | None = Field(
        default=None, description="A file holding the Images API's key, sent as a bearer token (a mounted secret)."
    )
    size: str | None = Field(
        default=None,
        pattern=r"^[1-9][0-9]{1,4}x[1-9][0-9]{1,4}$",
        description="The size (WxH) asked for every template, for a model that takes only that; by default the "
        "size such APIs accept closest to the template's shape.",
    )

    @model_validator(mode="after")
    def _hosted_needs_an_api(self) -> ImageGeneration:
        missing = [name for name in ("base_url", "model", "token_file") if getattr(self, name) is None]
        if self.kind == "hosted" and missing:
            raise ValueError(f"a hosted image model needs {', '.join(missing)}")
        return self


CampaignId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
VariantName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]
Angle = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\r\n]*$")]


class FirstTouch(BaseModel):
    """The campaign a tenant's first-touch emails belong to, and the angles (variants) a draft may take.

    With it, each first email is counted under the campaign and its variant, so `fetch_campaign_stats` can tell
    which angle works; the LLM planner may read those figures before it chooses one.
    """

    model_config = ConfigDict(frozen=True)
    campaign_id: CampaignId = Field(description="The campaign first-touch emails are sent under.")
    variants: dict[VariantName, Angle] = Field(
        default_factory=dict,
        max_length=10,
        description="Variant name → the angle it takes, in one line (e.g. proof: lead with a customer result).",
    )


WorkflowName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,62}$")]


class MeetingHours(BaseModel):
    """When the tenant's people take meetings, in the tenant's time zone, Monday to Friday: `find_free_slots`
    offers times only within them."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    opens: dt_time = Field(default=dt_time(9, 0), description="The earliest start, e.g. `09:00`.")
    closes: dt_time = Field(default=dt_time(17, 0), description="By when a meeting ends, e.g. `17:00`.")

    @model_validator(mode="after")
    def _opens_before_it_closes(self) -> MeetingHours:
        if self.opens >= self.closes:
            raise ValueError(f"meeting hours open at {self.opens} and close at {self.closes}: nothing fits")
        return self


class ReviewRules(BaseModel):
    """How this tenant's review items are decided."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    high_risk_rules: tuple[str, ...] = Field(
        default=(),
        description="Rule ids (e.g. `escalation.deal_value`) whose escalations are high-risk: two distinct "
        "approvers must approve them (four eyes), and a reviewer without the approver role cannot.",
    )


class TenantConfig(BaseModel):
    model_config = ConfigDict(frozen=True)
    tenant_id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    name: str
    hubspot_portal_id: int | None = None
    hubspot_app_secret: str | None = Field(default=None, description="Secret for HubSpot v3 webhook signatures.")
    ingest_token_files: list[Path] = Field(
        default_factory=list,
        description="Files each holding a bearer token (mounted secrets) that `POST /v1/events` and "
        "`POST /v1/inbound/<tenant>/email` require for this tenant, any one of them; several let a token be "
        "rotated without downtime. None: ingest asks for no credential and the ingress in front must authenticate.",
    )
    sender: Sender
    unsubscribe_url: str
    timezone: str = "UTC"
    limits: Limits = Field(default_factory=Limits)
    escalation: Escalation = Field(default_factory=Escalation)
    products: tuple[str, ...] = Field(default=(), description="The tenant's product names (grounding checks them).")
    competitors: tuple[str, ...] = Field(
        default=(), description="Competitors a draft may only describe as evidence does."
    )
    brand: BrandKit = Field(default_factory=BrandKit, description="Colours and wordmark of generated images.")
    crm: CrmConnection = Field(default_factory=CrmConnection, description="Where CRM updates are written.")
    images: ImageGeneration = Field(default_factory=ImageGeneration, description="How generated images are made.")
    first_touch: FirstTouch | None = Field(
        default=None,
        description="The first-touch campaign and its variants (none: first emails belong to no campaign).",
    )
    meeting_hours: MeetingHours = Field(
        default_factory=MeetingHours, description="When meetings may be booked (in `timezone`, Monday to Friday)."
    )
    access: Access | None = Field(
        default=None,
        description="Who may read this tenant's reviews, audit and explain, decide its reviews and administer it "
        "(`herald_core.auth.access`). None: nobody, until it is configured.",
    )
    review: ReviewRules = Field(default_factory=ReviewRules, description="How review items are decided.")
    workflows: dict[WorkflowName, dict[str, Any] | None] | None = Field(
        default=None,
        description="The planner's workflows this tenant runs, each with its configuration (validated by the "
        "planner against the workflow's own model; an empty entry takes its defaults). None: "
        "`new_lead_first_touch` alone, as before workflows were configurable.",
    )


class TenantDirectory:
    """Reads `*.yaml` tenant files; re-scans at most once per `refresh_seconds`, and at once on a miss.

    A file that does not parse or validate is logged and left out; it never takes the other tenants down.
    """

    def __init__(self, directory: Path, refresh_seconds: float = 1.0, miss_rescan_seconds: float = 0.05) -> None:
        self.directory = directory
        self.refresh_seconds = refresh_seconds
        self.miss_rescan_seconds = miss_rescan_seconds
        self._tenants: dict[str, TenantConfig] = {}
        self._stamp: tuple[tuple[str, int, int, int], ...] = ()
        self._checked = float("-inf")
        self._directory_stamp: int | None = None

    def _directory_changed(self) -> bool:
        """Files added, removed or renamed into place since the last scan (one stat of the directory)."""
        try:
            return self.directory.stat().st_mtime_ns != self._directory_stamp
        except OSError:
            return False

    def _scan(self, *, within: float) -> None:
        now = time.monotonic()
        if now - self._checked < within:
            return
        self._checked = now
        with contextlib.suppress(OSError):
            self._directory_stamp = self.directory.stat().st_mtime_ns
        paths = sorted(self.directory.glob("*.yaml")) if self.directory.is_dir() else []
        # size and inode too: file times are coarse (a truncate and the write after it can share one), and an
        # editor or a ConfigMap update replaces the file rather than rewriting it
        stamp = tuple((p.name, s.st_mtime_ns, s.st_size, s.st_ino) for p in paths for s in [p.stat()])
        if stamp == self._stamp:
            return
        tenants: dict[str, TenantConfig] = {}
        for path in paths:
            try:
                config = TenantConfig.model_validate(yaml.safe_load(path.read_text()))
            except (OSError, yaml.YAMLError, ValidationError) as exc:
                log.error("tenant file refused; other tenants unaffected", path=str(path), error=str(exc)[:500])
                continue
            tenants[config.tenant_id] = config
        self._tenants, self._stamp = tenants, stamp

    def get(self, tenant_id: str) -> TenantConfig | None:
        self._scan(within=self.refresh_seconds)
        if tenant_id not in self._tenants:
            # a tenant added a moment ago must not be refused: look again when the directory changed, else
            # at most every `miss_rescan_seconds` (unknown tenants must not make every request scan)
            self._scan(within=0 if self._directory_changed() else self.miss_rescan_seconds)
        return self._tenants.get(tenant_id)

    def all(self) -> list[TenantConfig]:
        self._scan(within=self.refresh_seconds)
        return list(self._tenants.values())
