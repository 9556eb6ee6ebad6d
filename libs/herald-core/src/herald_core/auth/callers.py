"""Authenticating a caller of an HTTP endpoint.

In order: `Authorization: Bearer <token>` — a Herald service's token (`services`), or a person's token from the
identity provider, verified against its JWKS (`jwks_file` or `jwks_url`), issuer, audience and expiry; else an
authenticating proxy's identity header, believed only from `trusted_proxies`. An identity header from any other
address is refused rather than ignored: it is somebody trying. Anything else is anonymous, and refused (401).

`install_auth` gives an app its `Authenticator` and turns `AccessDenied` into a 401/403 with a reason; every guarded
route declares `caller: Authenticated` (the route table tests check that each does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from ipaddress import ip_address
from pathlib import Path
from typing import Annotated, Protocol

import httpx
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from herald_core.auth.access import AccessDenied, Caller
from herald_core.auth.services import ServiceKeys, is_service_token, peek
from herald_core.auth.settings import AuthSettings


class KeySource(Protocol):
    async def keys(self, key_id: str | None) -> KeySet: ...


class JwksFile:
    """A JWKS file, read again when its stamp (mtime, size, inode) changes: a key added for a rotation is used
    at the next request."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._keys: KeySet | None = None

    async def keys(self, key_id: str | None) -> KeySet:
        del key_id
        try:
            status = self.path.stat()
        except OSError as exc:
            raise AccessDenied(503, "keys_unavailable", f"the key file cannot be read: {exc}") from exc
        stamp = (status.st_mtime_ns, status.st_size, status.st_ino)
        if stamp != self._stamp or self._keys is None:
            try:
                self._keys = KeySet.import_key_set(json.loads(self.path.read_text()))
            except (OSError, ValueError, JoseError) as exc:
                raise AccessDenied(503, "keys_unavailable", f"the key file is not a JWKS: {exc}") from exc
            self._stamp = stamp
        return self._keys


class JwksUrl:
    """An OIDC `jwks_uri`: kept for `refresh_seconds`, fetched again at once for a key id it does not hold (at
    most every `unknown_key_seconds`, so unknown ids cannot make every request fetch). A fetch that fails keeps
    the keys already held."""

    def __init__(self, url: str, refresh_seconds: float, unknown_key_seconds: float = 10.0) -> None:
        self.url = url
        self.refresh_seconds = refresh_seconds
        self.unknown_key_seconds = unknown_key_seconds
        self._keys: KeySet | None = None
        self._fetched = float("-inf")
        self._client = httpx.AsyncClient(timeout=5)

    async def keys(self, key_id: str | None) -> KeySet:
        age = time.monotonic() - self._fetched
        known = self._keys is not None and (key_id is None or _holds(self._keys, key_id))
        if self._keys is None or age >= self.refresh_seconds or (not known and age >= self.unknown_key_seconds):
            try:
                response = await self._client.get(self.url)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(response.json())
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                if self._keys is None:
                    raise AccessDenied(503, "keys_unavailable", f"the identity provider's JWKS: {exc}") from exc
            self._fetched = time.monotonic()
        assert self._keys is not None
        return self._keys


def _holds(keys: KeySet, key_id: str) -> bool:
    return any(key.kid == key_id for key in keys.keys)


class Authenticator:
    """Who is calling; `services` are the Herald services allowed to call with their own token, and `people`
    whether anyone else may (an API only Herald's services use refuses people, 403)."""

    def __init__(
        self,
        settings: AuthSettings,
        service_keys: ServiceKeys,
        *,
        services: Collection[str] = (),
        people: bool = True,
    ) -> None:
        self.settings = settings
        self.service_keys = service_keys
        self.services = frozenset(services)
        self.people = people
        self.source: KeySource | None = (
            JwksFile(settings.jwks_file)
            if settings.jwks_file is not None
            else JwksUrl(settings.jwks_url, settings.jwks_refresh_seconds)
            if settings.jwks_url
            else None
        )

    async def __call__(self, request: Request) -> Caller:
        caller = await self.caller(request.headers, request.client.host if request.client else None)
        request.state.caller = caller
        return caller

    async def caller(self, headers: Mapping[str, str], peer: str | None) -> Caller:
        caller = await self._caller({name.lower(): value for name, value in headers.items()}, peer)
        if caller.via != "service" and not self.people:
            allowed = ", ".join(sorted(self.services)) or "none"
            raise AccessDenied(403, "services_only", f"only Herald's services call this ({allowed}), not people")
        return caller

    async def _caller(self, headers: Mapping[str, str], peer: str | None) -> Caller:
        proxied = next(
            ((name, headers[name.lower()]) for name in self.settings.proxy_user_headers if headers.get(name.lower())),
            None,
        )
        if proxied is not None and not self._trusted(peer):
            raise AccessDenied(
                401, "untrusted_proxy", f"an identity header ({proxied[0]}) from {peer}, which is not a trusted proxy"
            )
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            token = token.strip()
            if is_service_token(token):
                return self.service_keys.verify_token(token, self.services)
            return await self._person(token)
        if proxied is not None:
            groups = next(
                (headers[n.lower()] for n in self.settings.proxy_groups_headers if headers.get(n.lower())), ""
            )
            return Caller(proxied[1].strip(), "proxy", frozenset(g.strip() for g in groups.split(",") if g.strip()))
        raise AccessDenied(401, "missing_credentials", "sign in: send Authorization: Bearer <token>")

    def _trusted(self, peer: str | None) -> bool:
        if peer is None:
            return False
        try:
            address = ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self.settings.trusted_proxies)

    async def _person(self, token: str) -> Caller:
        if self.source is None:
            raise AccessDenied(401, "tokens_not_accepted", "no identity provider is configured for bearer tokens")
        if not self.settings.issuer:
            raise AccessDenied(503, "no_issuer", "bearer tokens need HERALD_AUTH_ISSUER to be set")
        header, _ = peek(token)
        key_id = header.get("kid")
        keys = await self.source.keys(key_id if isinstance(key_id, str) else None)
        try:
            decoded = jwt.decode(token, keys, algorithms=list(self.settings.algorithms))
            jwt.JWTClaimsRegistry(
                leeway=self.settings.leeway_seconds,
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.audience},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError, KeyError) as exc:
            raise AccessDenied(401, "bad_token", f"token refused: {exc}") from exc
        claims = decoded.claims
        subject = next(
            (claims[c] for c in self.settings.subject_claims if isinstance(claims.get(c), str) and claims[c]), None
        )
        if subject is None:
            raise AccessDenied(
                401, "bad_token", f"the token names nobody (no {' or '.join(self.settings.subject_claims)})"
            )
        groups = claims.get(self.settings.groups_claim) or []
        return Caller(
            subject,
            "token",
            frozenset(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else frozenset(),
        )


def denied_json(error: AccessDenied) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return JSONResponse({"detail": {"error": error.error, "detail": error.detail}}, error.status, headers=headers)


async def authenticated(request: Request) -> Caller:
    """The FastAPI dependency of every guarded route: the caller, by the app's authenticator (`install_auth`)."""
    authenticator: Authenticator = request.app.state.authenticator
    return await authenticator(request)


#: a route's `caller: Authenticated` parameter: who calls it (anonymous and refused callers never reach the route)
Authenticated = Annotated[Caller, Depends(authenticated)]


def install_auth(
    app: FastAPI,
    authenticator: Authenticator,
    page: Callable[[Request, AccessDenied], Awaitable[Response] | Response] | None = None,
    page_prefix: str = "/ui",
) -> None:
    """Authenticate the app's guarded routes with `authenticator`; `AccessDenied` raised anywhere in a request →
    its status with the reason (JSON; `page` renders it for paths under `page_prefix`, for people in a browser)."""
    app.state.authenticator = authenticator

    async def handler(request: Request, error: Exception) -> Response:
        assert isinstance(error, AccessDenied)
        if page is not None and request.url.path.startswith(page_prefix):
            answer = page(request, error)
            return await answer if isinstance(answer, Awaitable) else answer
        return denied_json(error)

    app.add_exception_handler(AccessDenied, handler)
