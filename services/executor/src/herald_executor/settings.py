"""The executor's settings (`HERALD_EXECUTOR_*`)."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, FilePath, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from herald_core.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_EXECUTOR_", extra="ignore")

    smtp_host: str = Field(
        default="127.0.0.1", description="The SMTP server; also the name its TLS certificate must be valid for."
    )
    smtp_port: int = 10025
    smtp_starttls: bool = Field(
        default=False, description="Upgrade the connection with STARTTLS before anything else (submission, 587)."
    )
    smtp_tls: bool = Field(
        default=False, description="Implicit TLS: the connection is TLS from its first byte (submissions, 465)."
    )
    smtp_tls_ca_file: FilePath | None = Field(
        default=None,
        description="A PEM bundle of the CAs to trust for the SMTP server (an internal CA) instead of the system's.",
    )
    smtp_username: str | None = Field(default=None, description="Log in (AUTH) as this user when set.")
    smtp_password: SecretStr | None = Field(default=None, description="The login's password.")
    smtp_password_file: Path | None = Field(
        default=None,
        description="A file holding the login's password (a mounted Kubernetes secret); wins over smtp_password, "
        "and must exist when smtp_username is set (without a username there is no login and it is not read). "
        "Read at each new connection, so a rotated secret is used without a restart; one trailing newline is "
        "not part of the password.",
    )
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

    @model_validator(mode="after")
    def _smtp_tls_is_one_thing(self) -> Self:
        # refused here rather than at the first email: a deployment that cannot send should not start
        if self.smtp_tls and self.smtp_starttls:
            raise ValueError(
                "smtp_tls (implicit TLS, port 465) and smtp_starttls (STARTTLS, port 587) are mutually exclusive: "
                "set the one the SMTP server speaks on smtp_port"
            )
        if self.smtp_tls_ca_file is not None and not (self.smtp_tls or self.smtp_starttls):
            # whoever set a CA expects TLS; sending in clear instead would be a silent downgrade
            raise ValueError("smtp_tls_ca_file is set but neither smtp_tls nor smtp_starttls is: TLS would not be used")
        if self.smtp_username and self.smtp_password_file is not None and not self.smtp_password_file.is_file():
            raise ValueError(f"smtp_password_file {self.smtp_password_file} does not exist (smtp_username is set)")
        return self

    def smtp_login_password(self) -> str | None:
        """The password to log in with: smtp_password_file's content when it is set (without one trailing
        newline, as `echo` and most secret tooling leave it), else smtp_password."""
        if self.smtp_password_file is not None and self.smtp_username:
            text = self.smtp_password_file.read_text()
            return text.removesuffix("\n").removesuffix("\r")
        return self.smtp_password.get_secret_value() if self.smtp_password is not None else None
