"""The review service's settings (`HERALD_REVIEW_*`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_REVIEW_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8105
