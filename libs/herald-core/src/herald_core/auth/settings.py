"""How callers are authenticated (`HERALD_AUTH_*`), shared by every service, the CLI and the stack tools."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HERALD_AUTH_", extra="ignore")

    jwks_file: Path | None = Field(
        default=None,
        description="A JSON Web Key Set file (a mounted secret or ConfigMap) holding the identity provider's "
        "public keys; re-read when it changes, so keys rotate without a restart.",
    )
    jwks_url: str | None = Field(
        default=None,
        description="The identity provider's JWKS URL (OIDC `jwks_uri`); fetched again every "
        "`jwks_refresh_seconds`, and at once (at most every 10 s) for a token signed by a key it does not hold.",
    )
    jwks_refresh_seconds: float = Field(default=300.0, gt=0, description="How long a fetched JWKS is used.")
    issuer: str | None = Field(default=None, description="The `iss` every person's token must carry.")
    audience: str = Field(default="herald", description="The `aud` every person's token must carry.")
    algorithms: tuple[str, ...] = Field(
        default=("RS256", "PS256", "ES256", "Ed25519"), description="Signature algorithms accepted on tokens."
    )
    subject_claims: tuple[str, ...] = Field(
        default=("email", "sub"), description="Claims naming the person, the first present wins."
    )
    groups_claim: str = Field(default="groups", description="The claim listing the person's groups.")
    leeway_seconds: int = Field(default=30, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    trusted_proxies: tuple[IPv4Network | IPv6Network, ...] = Field(
        default=(),
        description="Addresses (CIDR) of the authenticating proxies whose identity headers are believed. A request "
        "carrying such a header from any other address is refused (401), never read.",
    )
    proxy_user_headers: tuple[str, ...] = Field(
        default=("X-Auth-Request-Email", "X-Forwarded-Email", "X-Forwarded-User"),
        description="Headers in which a trusted proxy names the signed-in person (the first present wins).",
    )
    proxy_groups_headers: tuple[str, ...] = Field(
        default=("X-Auth-Request-Groups", "X-Forwarded-Groups"),
        description="Headers in which a trusted proxy lists the person's groups (comma-separated).",
    )
    service_keys_dir: Path = Field(
        default=Path(".stack/keys/services"),
        description="Herald's service keys: `<service>.pem` (the service's own, private) and `<service>.pub.pem` "
        "(each service's public key; `<service>.<anything>.pub.pem` too, for a rotation's overlap).",
    )
    service_token_seconds: int = Field(default=300, ge=30, le=3600, description="Lifetime of a service's token.")
    platform_admins: tuple[str, ...] = Field(
        default=(),
        description="Who may set the global kill switch (subjects, or `group:<name>`); tenants' admins are in their "
        "tenant files.",
    )
