"""The review API's request bodies (pure, no I/O)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Approve(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Field(min_length=1, max_length=200, description="Who approves (an email or SSO subject).")
    reason: str | None = Field(default=None, max_length=2000, description="Why, optionally.")


class Reject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reviewer: str = Field(min_length=1, max_length=200, description="Who rejects.")
    reason: str = Field(min_length=1, max_length=2000, description="Why — required, it reaches the audit.")
