"""The ingest service's settings (`HERALD_INGEST_*`)."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_INGEST_", extra="ignore")

    http_host: str = "127.0.0.1"
    http_port: int = 8101
    signature_max_age_seconds: int = 300
    max_body_bytes: int = 1_000_000  # larger requests are refused (413) before they are read
    # the base URL HubSpot calls (e.g. https://herald.example.com behind an ingress): signatures cover the full
    # URI the sender used, which the service cannot see behind a TLS-terminating proxy
    public_base_url: str | None = None
    pg_pool_size: int = 20
    # reading contacts from a tenant's HubSpot (`crm.kind: hubspot`) for webhooks that name only their id:
    # HubSpot waits a few seconds for a webhook's answer, so every retry of one read fits in the budget
    hubspot_budget_seconds: float = 3.0
    hubspot_timeout_seconds: float = 2.0
    # a contact read from HubSpot longer ago than this is read again when a webhook names it
    hubspot_stale_seconds: float = 24 * 3600
