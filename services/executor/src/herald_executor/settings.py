"""The executor's settings (`HERALD_EXECUTOR_*`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_EXECUTOR_", extra="ignore")

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 10025
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_seconds: float = 10.0
    message_id_domain: str = "herald.local"
    concurrency: int = 8  # messages of different contacts handled at once
    assets_dir: Path = Field(
        default=Path("/var/lib/herald/assets"), description="The tenants' asset store (generated images)."
    )
