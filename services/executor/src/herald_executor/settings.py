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
    caldav_url: str = Field(
        default="http://127.0.0.1:15232/",
        description="The CalDAV server schedule_meeting writes to; each tenant's calendar is under <url><user>/.",
    )
    caldav_username: str | None = None
    caldav_password: str | None = None
    caldav_timeout_seconds: float = 10.0
    concurrency: int = 8  # messages of different contacts handled at once
    tool_timeout_seconds: dict[str, float] = Field(
        # a hosted image model takes up to a minute for one picture; cut off sooner, every attempt would be paid
        # for and thrown away
        default={"send_email": 30.0, "update_crm_record": 15.0, "schedule_meeting": 30.0, "generate_image": 120.0},
        description="How long one attempt of a tool may take; past it the call is reconciled, not repeated blindly.",
    )
    tool_concurrency: dict[str, int] = Field(
        default={"send_email": 8, "update_crm_record": 4, "schedule_meeting": 2, "generate_image": 2},
        description="Calls of a tool under way at once (a downstream's rate limits, this machine's CPU).",
    )
    tool_attempts: int = Field(
        default=4, ge=1, description="Attempts of a retryable call before it is read again later."
    )
    tool_max_backoff_seconds: float = Field(default=5.0, description="Longest wait between two attempts.")
    assets_dir: Path = Field(
        default=Path("/var/lib/herald/assets"), description="The tenants' asset store (generated images)."
    )
