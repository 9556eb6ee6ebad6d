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
    reviewer_headers: tuple[str, ...] = Field(
        default=("X-Auth-Request-Email", "X-Forwarded-User"),
        description="Headers in which the authenticating proxy in front of the web UI names the signed-in reviewer "
        "(the first present wins, and the UI then asks for no name). The proxy must set them itself and drop any "
        "copy a client sent, and the service must be reachable only through it: else anyone could decide under "
        "any name.",
    )
