"""The review API's request bodies (pure, no I/O). None names who decides: that is the authenticated caller."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from herald_core.contracts import DraftEdit, ResolutionOutcome, TenantId


class Approve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=2000, description="Why, optionally.")
    edit: DraftEdit | None = Field(
        default=None,
        description="Approve the email with this subject and/or body instead of the draft's (the guard checks the "
        "edited email under every hard rule before it signs).",
    )


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=2000, description="Why — required, it reaches the audit.")


class Resolve(BaseModel):
    """What a person found when checking an execution in doubt in its downstream (the mailbox, the CRM …)."""

    model_config = ConfigDict(extra="forbid")
    outcome: ResolutionOutcome = Field(description="Whether the side effect took place: happened, did_not_happen.")
    reason: str = Field(min_length=1, max_length=2000, description="How it was checked — it reaches the audit.")


class KillSwitchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: TenantId | None = Field(default=None, description="The tenant to stop; leave out to stop every tenant.")
    engaged: bool = Field(description="True stops sending; false resumes.")
    reason: str = Field(min_length=1, max_length=500, description="Why — it reaches the audit and every refusal.")
