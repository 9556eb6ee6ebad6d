"""Herald's services proving who they are to each other: each holds its own Ed25519 key (`<service>.pem`) and
every service holds every service's public key (`<service>.pub.pem`).

A caller sends a short-lived token it signed (a JWT, `alg` Ed25519, RFC 9864: `iss`/`sub` its name, `aud` the
service it calls), which the callee checks against the caller's public key and its own list of who may call.
No secret is shared: a service can vouch only for itself. The same key signs what a service vouches for in a
message (the review service's decisions), checked the same way. A key's id is its RFC 7638 thumbprint, so
`<service>.<anything>.pub.pem` files can hold the next key during a rotation; the directory is re-read when it
changes.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path
from typing import Any

import grpc
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey

from herald_core.auth.access import AccessDenied, Caller

ALGORITHM = "Ed25519"
ISSUER_PREFIX = "herald:"


def service_issuer(service: str) -> str:
    return f"{ISSUER_PREFIX}{service}"


def generate_service_keys(directory: Path, services: Collection[str]) -> None:
    """`<service>.pem` (mode 0600) and `<service>.pub.pem` for each service that has none yet."""
    directory.mkdir(parents=True, exist_ok=True)
    for service in services:
        private_path = directory / f"{service}.pem"
        if private_path.exists():
            continue
        key = Ed25519PrivateKey.generate()
        staged = directory / f".{service}.pem.partial"
        staged.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        staged.chmod(0o600)
        (directory / f"{service}.pub.pem").write_bytes(
            key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        os.replace(staged, private_path)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def peek(token: str) -> tuple[dict[str, object], dict[str, object]]:
    """A compact JWT's header and claims, unverified (to choose how to verify it); empty when it is not one."""
    try:
        header, claims, _ = token.split(".")
        decoded = json.loads(_unb64(header)), json.loads(_unb64(claims))
    except (ValueError, UnicodeDecodeError):
        return {}, {}
    return (decoded[0], decoded[1]) if all(isinstance(part, dict) for part in decoded) else ({}, {})


def is_service_token(token: str) -> bool:
    issuer = peek(token)[1].get("iss")
    return isinstance(issuer, str) and issuer.startswith(ISSUER_PREFIX)


def _jwk(key: Ed25519PrivateKey | Ed25519PublicKey) -> OKPKey:
    jwk = OKPKey.import_key(key)
    return OKPKey.import_key(key, {"kid": jwk.thumbprint()})


class ServiceKeys:
    """One service's own key (when it has one) and every service's public keys, from `directory`."""

    def __init__(self, directory: Path, service: str | None, token_seconds: int = 300, interval: float = 1.0) -> None:
        self.directory = directory
        self.service = service
        self.token_seconds = token_seconds
        self.interval = interval
        self._checked = float("-inf")
        self._stamp: int | None = None
        self._own: OKPKey | None = None
        self._public: dict[str, dict[str, OKPKey]] = {}  # service → key id → key
        self._tokens: dict[str, tuple[float, str]] = {}  # audience → (renew after, token)

    def _fresh(self) -> None:
        if time.monotonic() - self._checked < self.interval:
            return
        self._checked = time.monotonic()
        try:
            stamp = os.stat(self.directory).st_mtime_ns
        except OSError:
            stamp = None
        if stamp == self._stamp and (self._own is not None or self.service is None):
            return
        self._stamp, self._own, self._public, self._tokens = stamp, None, {}, {}
        if stamp is None:
            return
        for path in sorted(self.directory.glob("*.pub.pem")):
            key = serialization.load_pem_public_key(path.read_bytes())
            if isinstance(key, Ed25519PublicKey):
                service = path.name.split(".", 1)[0]
                jwk = _jwk(key)
                self._public.setdefault(service, {})[str(jwk.kid)] = jwk
        if self.service is not None:
            own = self.directory / f"{self.service}.pem"
            if own.exists():
                private = serialization.load_pem_private_key(own.read_bytes(), password=None)
                if isinstance(private, Ed25519PrivateKey):
                    self._own = _jwk(private)

    def _own_key(self) -> OKPKey:
        self._fresh()
        if self._own is None:
            raise RuntimeError(f"no service key {self.service}.pem in {self.directory}")
        return self._own

    def ready(self) -> bool:
        """This service holds its own key (and so can call and sign)."""
        try:
            self._own_key()
        except (RuntimeError, OSError, ValueError):
            return False
        return True

    # ---- tokens (calls)

    def token(self, audience: str) -> str:
        """A token saying this service calls `audience`; reused until a fifth of its lifetime is left."""
        now = time.time()
        cached = self._tokens.get(audience)
        if cached is not None and now < cached[0]:
            return cached[1]
        key = self._own_key()
        claims = {
            "iss": service_issuer(str(self.service)),
            "sub": f"service:{self.service}",
            "aud": service_issuer(audience),
            "iat": int(now),
            "exp": int(now) + self.token_seconds,
        }
        token = jwt.encode({"alg": ALGORITHM, "kid": key.kid}, claims, key, algorithms=[ALGORITHM])
        self._tokens[audience] = (now + self.token_seconds * 0.8, token)
        return token

    def verify_token(self, token: str, allowed: Collection[str]) -> Caller:
        """The calling service, if the token is one of `allowed`'s, signed by its key, for this service, in time."""
        header, claims = peek(token)
        issuer = claims.get("iss")
        caller = str(issuer).removeprefix(ISSUER_PREFIX) if isinstance(issuer, str) else ""
        if caller not in allowed:
            raise AccessDenied(403, "service_not_allowed", f"service {caller or '?'} may not call {self.service}")
        self._fresh()
        key = self._public.get(caller, {}).get(str(header.get("kid")))
        if key is None:
            raise AccessDenied(401, "unknown_key", f"no public key of service {caller} with that id")
        try:
            decoded = jwt.decode(token, key, algorithms=[ALGORITHM])
            jwt.JWTClaimsRegistry(
                leeway=30,
                iss={"essential": True, "value": service_issuer(caller)},
                aud={"essential": True, "value": service_issuer(str(self.service))},
                exp={"essential": True},
            ).validate(decoded.claims)
        except (JoseError, ValueError) as exc:
            raise AccessDenied(401, "bad_service_token", f"service token refused: {exc}") from exc
        return Caller(f"service:{caller}", "service")

    # ---- signatures (what a service vouches for in a message)

    def key_id(self) -> str:
        """The id of the key this service signs with now."""
        return str(self._own_key().kid)

    def sign(self, payload: bytes) -> tuple[str, str]:
        """(key id, signature) of `payload` by this service's key."""
        key = self._own_key()
        private = key.private_key
        assert isinstance(private, Ed25519PrivateKey)
        return str(key.kid), _b64(private.sign(payload))

    def verify(self, service: str, key_id: str, payload: bytes, signature: str) -> bool:
        """Whether `signature` over `payload` was made by `service`'s key `key_id`."""
        self._fresh()
        key = self._public.get(service, {}).get(key_id)
        if key is None:
            return False
        public = key.public_key
        assert isinstance(public, Ed25519PublicKey)
        try:
            public.verify(_unb64(signature), payload)
        except (InvalidSignature, ValueError):
            return False
        return True


# ---- gRPC: the token in the call's metadata, checked by an interceptor on the server

#: the gRPC methods any caller may use: health (probes) and reflection (tools)
OPEN_GRPC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class ServiceTokenClientInterceptor(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Put this service's token for `audience` on every unary call of a channel."""

    def __init__(self, keys: ServiceKeys, audience: str) -> None:
        self.keys = keys
        self.audience = audience

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        metadata = list(client_call_details.metadata or ())
        metadata.append(("authorization", f"Bearer {self.keys.token(self.audience)}"))
        details = grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            grpc.aio.Metadata(*metadata),
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


def service_channel(target: str, keys: ServiceKeys, audience: str) -> grpc.aio.Channel:
    """A gRPC channel to `audience` at `target` whose every call carries this service's token."""
    return grpc.aio.insecure_channel(target, interceptors=[ServiceTokenClientInterceptor(keys, audience)])


class ServiceTokenInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuse (UNAUTHENTICATED / PERMISSION_DENIED) every call but health and reflection that does not carry a
    token of one of `allowed`'s services."""

    def __init__(self, keys: ServiceKeys, allowed: Collection[str]) -> None:
        self.keys = keys
        self.allowed = frozenset(allowed)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(OPEN_GRPC_PREFIXES):
            return await continuation(handler_call_details)
        metadata = dict(handler_call_details.invocation_metadata or ())
        scheme, _, token = str(metadata.get("authorization", "")).partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise AccessDenied(401, "missing_credentials", "a Herald service token is required")
            self.keys.verify_token(token.strip(), self.allowed)
        except AccessDenied as denied:
            code = grpc.StatusCode.UNAUTHENTICATED if denied.status == 401 else grpc.StatusCode.PERMISSION_DENIED
            return _refusal(code, denied.detail)
        return await continuation(handler_call_details)


def _refusal(code: grpc.StatusCode, detail: str) -> grpc.RpcMethodHandler:
    async def refuse(request: object, context: grpc.aio.ServicerContext) -> None:
        del request
        await context.abort(code, detail)

    return grpc.unary_unary_rpc_method_handler(refuse)
