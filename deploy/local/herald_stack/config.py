"""Where the local stack keeps its artifacts, data and ports — all overridable by environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[3]


class StackConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_STACK_", extra="ignore")

    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "herald",
        description="Heavy artifacts (Kafka jars, the Weaviate binary), keyed by version; outside the repo.",
    )
    state_dir: Path = Field(default=REPO_ROOT / ".stack", description="Data dirs, logs, pid files, keys, mailbox.")

    kafka_version: str = "4.1.1"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    kafka_heap: str = "768m"

    pg_port: int = 15432
    pg_bin_dir: Path = Path("/usr/lib/postgresql/15/bin")
    pg_user: str = "herald"
    pg_database: str = "herald"

    weaviate_version: str = "v1.35.2"
    weaviate_http_port: int = 18090
    weaviate_grpc_port: int = 18091
    weaviate_raft_port: int = 18310
    weaviate_gossip_port: int = 18956

    smtp_port: int = 10025

    caldav_port: int = 15232
    # Radicale on loopback only, with one plain-text htpasswd user: enough to exercise real CalDAV auth
    caldav_user: str = "herald"
    caldav_password: str = "herald"  # noqa: S105 - a loopback-only server's fixed test login

    chromium_binary: Path = Field(
        default=Path("/usr/bin/chromium"), description="Debian's Chromium, for the web UI's browser tests."
    )

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://{self.pg_user}@127.0.0.1:{self.pg_port}/{self.pg_database}"

    @property
    def kafka_libs(self) -> Path:
        return self.cache_dir / "kafka" / self.kafka_version / "libs"

    @property
    def weaviate_binary(self) -> Path:
        return self.cache_dir / "weaviate" / self.weaviate_version / "weaviate-server"

    @property
    def maildir(self) -> Path:
        return self.state_dir / "mail"

    @property
    def caldav_url(self) -> str:
        return f"http://127.0.0.1:{self.caldav_port}/"

    @property
    def keys_dir(self) -> Path:
        return self.state_dir / "keys"

    @property
    def service_keys_dir(self) -> Path:
        return self.keys_dir / "services"

    @property
    def identity_dir(self) -> Path:
        return self.state_dir / "identity"

    @property
    def jwks_file(self) -> Path:
        return self.identity_dir / "jwks.json"

    def env(self) -> dict[str, str]:
        """The variables the services read to find this stack (each one is read by some settings class)."""
        from herald_stack.identity import auth_env  # it reads this module

        return {
            "HERALD_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "HERALD_PG_DSN": self.pg_dsn,
            "HERALD_KEYS_DIR": str(self.keys_dir),
            "HERALD_RETRIEVAL_WEAVIATE_HTTP_PORT": str(self.weaviate_http_port),
            "HERALD_RETRIEVAL_WEAVIATE_GRPC_PORT": str(self.weaviate_grpc_port),
            "HERALD_EXECUTOR_SMTP_PORT": str(self.smtp_port),
            "HERALD_EXECUTOR_CALDAV_URL": self.caldav_url,
            "HERALD_EXECUTOR_CALDAV_USERNAME": self.caldav_user,
            "HERALD_EXECUTOR_CALDAV_PASSWORD": self.caldav_password,
            **auth_env(self),
        }
