"""The ingest service's settings (`HERALD_INGEST_*`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_INGEST_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8101
    signature_max_age_seconds: int = 300
    max_body_bytes: int = 1_000_000
    public_base_url: str | None = None  # the URL HubSpot calls (behind an ingress), used in signature checks
