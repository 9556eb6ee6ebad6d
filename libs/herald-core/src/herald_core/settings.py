"""Settings shared by every service, read from `HERALD_*` environment variables.

Each service adds its own `Settings` class with the prefix `HERALD_<SERVICE>_` and embeds
`CommonSettings`, so the bootstrap address or database is set once for all six.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald_core.auth.settings import AuthSettings


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_", extra="ignore")

    kafka_bootstrap: str = Field(default="127.0.0.1:19092", description="Kafka bootstrap servers.")
    topic_prefix: str = Field(default="", description="Prefix on every topic name (isolates test runs).")
    pg_dsn: str = Field(default="postgresql://herald@127.0.0.1:15432/herald", description="PostgreSQL DSN.")
    tenants_dir: Path = Field(default=Path("samples/tenants"), description="Directory of tenant YAML files.")
    keys_dir: Path = Field(default=Path(".stack/keys"), description="Where the guard's signing keys live.")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="How callers are authenticated.")
    instance_id: str = Field(
        default="0", description="Stable replica id (a StatefulSet ordinal); names the transactional producer."
    )
    log_level: str = Field(default="INFO", description="Log level.")
    retry_give_up_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a consumer retries a failure that should heal (a dependency down) before it "
        "dead-letters the records that still fail.",
    )
    wedge_seconds: float = Field(
        default=120.0,
        gt=0,
        description="A consumer with lag whose committed offset has not moved for this long reports not-ready.",
    )


class ServiceSettings(BaseSettings):
    """Base for a service's settings; subclasses set `env_prefix`."""

    model_config = SettingsConfigDict(extra="ignore")

    common: CommonSettings = Field(default_factory=CommonSettings)
    ops_host: str = Field(default="127.0.0.1", description="Address of the health/metrics HTTP server.")
    ops_port: int = Field(default=0, description="Port of the health/metrics HTTP server (0: pick one).")
