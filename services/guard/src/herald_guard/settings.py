"""The guard's settings (`HERALD_GUARD_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_GUARD_", extra="ignore")

    signing_key_id: str = "guard-local-1"  # used until `herald keys rotate` writes a `current` key
    approval_ttl_seconds: int = 900
    concurrency: int = 16  # messages of different contacts handled at once
    retrieval_target: str = Field(default="127.0.0.1:8202", description="host:port of the grounding API (gRPC).")
    grounding_timeout_seconds: float = 5.0
    release_poll_seconds: float = Field(default=1.0, gt=0, description="How often held actions are looked at.")
    clock_offset_seconds: float = Field(
        default=0.0, description="Moves the guard's clock (send windows, releases) for drills; 0 in production."
    )
