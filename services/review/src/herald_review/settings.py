"""The review service's settings (`HERALD_REVIEW_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_REVIEW_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8105
    ui_page_size: int = Field(default=100, ge=1, le=1000, description="Rows per page of the web UI's queue and audit.")
    decision_ttl_seconds: int = Field(
        default=3 * 86_400,
        ge=60,
        description="How long a signed decision stays valid for the guard (a guard down longer than this refuses "
        "it, and the item must be decided again).",
    )
