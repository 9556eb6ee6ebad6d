"""The local stack's identities: every service's key, and a local identity provider standing in for a company's
(its signing key and the JWKS file the services verify people's tokens against).

Nothing here runs in production: there, people's tokens come from the company's identity provider (its JWKS at
`HERALD_AUTH_JWKS_URL`) or its authenticating proxy, and each service's key is a mounted secret. Here,
`herald-stack token --as dana@acme.example --group reviewers` mints a person's token, as an identity provider
would after a sign-in.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from joserfc import jwt
from joserfc.jwk import ECKey

from herald_core.auth.services import generate_service_keys
from herald_stack.config import StackConfig

#: the services holding a key: the six, and the operator's CLI (and the stack tools acting as it)
KEYED = ("retrieval", "ingest", "planner", "guard", "review", "executor", "cli")
LOCAL_ISSUER = "https://sign-in.herald.localhost"
AUDIENCE = "herald"


def issuer_key_path(cfg: StackConfig) -> Path:
    return cfg.identity_dir / "issuer.jwk.json"


def ensure_identities(cfg: StackConfig) -> None:
    """Every service's key, the local issuer's key and its JWKS, each made once (kept across restarts)."""
    generate_service_keys(cfg.service_keys_dir, KEYED)
    path = issuer_key_path(cfg)
    if path.exists():
        return
    cfg.identity_dir.mkdir(parents=True, exist_ok=True)
    key = ECKey.generate_key("P-256", parameters={"kid": f"local-{int(time.time())}"})
    staged = path.with_suffix(".partial")
    staged.write_text(json.dumps(key.as_dict(private=True)))
    staged.chmod(0o600)
    public = cfg.jwks_file.with_suffix(".partial")
    public.write_text(json.dumps({"keys": [key.as_dict(private=False)]}))
    os.replace(public, cfg.jwks_file)
    os.replace(staged, path)


def mint(cfg: StackConfig, subject: str, groups: Iterable[str] = (), *, seconds: int = 3600, **claims: object) -> str:
    """A person's token from the local issuer (what a company's identity provider hands out at sign-in)."""
    ensure_identities(cfg)
    key = ECKey.import_key(json.loads(issuer_key_path(cfg).read_text()))
    now = int(time.time())
    body = {
        "iss": LOCAL_ISSUER,
        "aud": AUDIENCE,
        "sub": subject,
        "email": subject,
        "groups": list(groups),
        "iat": now,
        "exp": now + seconds,
        **claims,
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, body, key, algorithms=["ES256"])


def auth_env(cfg: StackConfig) -> dict[str, str]:
    """What the services read to authenticate callers on the local stack."""
    return {
        "HERALD_AUTH_JWKS_FILE": str(cfg.jwks_file),
        "HERALD_AUTH_ISSUER": LOCAL_ISSUER,
        "HERALD_AUTH_AUDIENCE": AUDIENCE,
        "HERALD_AUTH_SERVICE_KEYS_DIR": str(cfg.service_keys_dir),
        # the local stand-in for an authenticating proxy is whatever runs on this machine's loopback
        "HERALD_AUTH_TRUSTED_PROXIES": json.dumps(["127.0.0.1/32"]),
        "HERALD_AUTH_PLATFORM_ADMINS": json.dumps(["group:herald-platform"]),
    }
