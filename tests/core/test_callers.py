"""Who is calling: a person's token checked against the identity provider's JWKS (a file re-read on rotation, or
a URL), an authenticating proxy's header believed only from its addresses, a Herald service's own token; and
what each role may do for a tenant."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from herald_core.auth.access import Access, AccessDenied, Caller, Permission, may, require, roles_of
from herald_core.auth.callers import Authenticator
from herald_core.auth.services import ServiceKeys, generate_service_keys
from herald_core.auth.settings import AuthSettings

ISSUER = "https://login.example"


def token(key: Any, alg: str = "RS256", **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "herald", "sub": "u-1", "email": "dana@acme.example", "exp": now + 600, **claims}
    return jwt.encode({"alg": alg, "kid": key.kid}, body, key, algorithms=[alg])


def write_jwks(path: Path, *keys: Any) -> None:
    staged = path.with_suffix(".partial")
    staged.write_text(json.dumps({"keys": [k.as_dict(private=False) for k in keys]}))
    staged.replace(path)


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "services"
    generate_service_keys(directory, ["planner", "review", "guard"])
    return directory


def authenticator(tmp_path: Path, keys_dir: Path, **settings: Any) -> Authenticator:
    # explicit, not the environment's: the test process has the local stack's identity provider configured
    defaults: dict[str, Any] = {"jwks_file": None, "jwks_url": None, "trusted_proxies": ()}
    auth = AuthSettings(issuer=ISSUER, service_keys_dir=keys_dir, **(defaults | settings))
    return Authenticator(auth, ServiceKeys(keys_dir, "review"), services=["planner"])


def caller(auth: Authenticator, headers: dict[str, str], peer: str | None = "10.0.0.9") -> Caller:
    return asyncio.run(auth.caller(headers, peer))


def refused(auth: Authenticator, headers: dict[str, str], peer: str | None = "10.0.0.9") -> AccessDenied:
    with pytest.raises(AccessDenied) as denied:
        caller(auth, headers, peer)
    return denied.value


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_a_token_from_the_identity_provider_names_the_person_and_their_groups(tmp_path, keys_dir) -> None:  # type: ignore[no-untyped-def]
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    write_jwks(tmp_path / "jwks.json", key)
    auth = authenticator(tmp_path, keys_dir, jwks_file=tmp_path / "jwks.json")
    who = caller(auth, bearer(token(key, groups=["acme-marketing", 7])))
    assert (who.subject, who.via, who.groups) == ("dana@acme.example", "token", frozenset({"acme-marketing"}))


@pytest.mark.parametrize(
    ("claims", "error"),
    [
        ({"exp": int(time.time()) - 3600}, "bad_token"),  # expired
        ({"iss": "https://elsewhere.example"}, "bad_token"),
        ({"aud": "another-app"}, "bad_token"),
        ({"email": None, "sub": None}, "bad_token"),  # names nobody
    ],
)
def test_a_token_out_of_time_or_for_another_audience_is_refused(tmp_path, keys_dir, claims, error) -> None:  # type: ignore[no-untyped-def]
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    write_jwks(tmp_path / "jwks.json", key)
    auth = authenticator(tmp_path, keys_dir, jwks_file=tmp_path / "jwks.json")
    claims = {k: v for k, v in claims.items()}
    raw = token(key, **{k: v for k, v in claims.items() if v is not None})
    if claims.get("email", 1) is None:
        now = int(time.time())
        raw = jwt.encode({"alg": "RS256", "kid": "k1"}, {"iss": ISSUER, "aud": "herald", "exp": now + 60}, key)
    denied = refused(auth, bearer(raw))
    assert (denied.status, denied.error) == (401, error)


def test_a_token_signed_by_a_key_the_provider_does_not_list_is_refused(tmp_path, keys_dir) -> None:  # type: ignore[no-untyped-def]
    listed = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    write_jwks(tmp_path / "jwks.json", listed)
    auth = authenticator(tmp_path, keys_dir, jwks_file=tmp_path / "jwks.json")
    forged_same_kid = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    unknown = ECKey.generate_key("P-256", parameters={"kid": "k9"})
    for raw in (token(forged_same_kid), token(unknown, "ES256"), token(listed)[:-4] + "AAAA"):
        denied = refused(auth, bearer(raw))
        assert (denied.status, denied.error) == (401, "bad_token")


def test_keys_rotate_in_the_file_without_a_restart(tmp_path, keys_dir) -> None:  # type: ignore[no-untyped-def]
    old = RSAKey.generate_key(2048, parameters={"kid": "old"})
    new = ECKey.generate_key("P-256", parameters={"kid": "new"})
    write_jwks(tmp_path / "jwks.json", old)
    auth = authenticator(tmp_path, keys_dir, jwks_file=tmp_path / "jwks.json")
    assert caller(auth, bearer(token(old))).subject == "dana@acme.example"
    refused(auth, bearer(token(new, "ES256")))
    write_jwks(tmp_path / "jwks.json", old, new)  # the provider publishes its next key
    assert caller(auth, bearer(token(new, "ES256"))).subject == "dana@acme.example"
    write_jwks(tmp_path / "jwks.json", new)  # and retires the old one
    assert refused(auth, bearer(token(old))).error == "bad_token"


class _Jwks(BaseHTTPRequestHandler):
    body = b"{}"
    fetched = 0

    def do_GET(self) -> None:
        type(self).fetched += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(type(self).body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def jwks_server() -> Iterator[tuple[str, type[_Jwks]]]:
    handler = type("Jwks", (_Jwks,), {"body": b"{}", "fetched": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks", handler
    finally:
        server.shutdown()
        server.server_close()


def test_keys_from_the_providers_url_are_fetched_again_for_a_key_it_did_not_hold(
    tmp_path, keys_dir, jwks_server
) -> None:  # type: ignore[no-untyped-def]
    url, handler = jwks_server
    first = RSAKey.generate_key(2048, parameters={"kid": "a"})
    handler.body = json.dumps({"keys": [first.as_dict(private=False)]}).encode()
    auth = authenticator(tmp_path, keys_dir, jwks_url=url)
    assert auth.source is not None
    auth.source.unknown_key_seconds = 0  # type: ignore[attr-defined]

    async def calls() -> None:
        assert (await auth.caller(bearer(token(first)), None)).subject == "dana@acme.example"
        assert (await auth.caller(bearer(token(first)), None)).via == "token"
        assert handler.fetched == 1  # kept, not fetched per request
        second = RSAKey.generate_key(2048, parameters={"kid": "b"})
        handler.body = json.dumps({"keys": [first.as_dict(private=False), second.as_dict(private=False)]}).encode()
        assert (await auth.caller(bearer(token(second)), None)).subject == "dana@acme.example"
        assert handler.fetched == 2

    asyncio.run(calls())


def test_a_proxy_header_counts_only_from_a_trusted_proxy(tmp_path, keys_dir) -> None:  # type: ignore[no-untyped-def]
    auth = authenticator(tmp_path, keys_dir, trusted_proxies=["10.1.0.0/16"])
    headers = {"X-Auth-Request-Email": "ana@acme.example", "X-Auth-Request-Groups": "acme-leads, acme-marketing"}
    who = caller(auth, headers, peer="10.1.2.3")
    assert (who.subject, who.via, who.groups) == (
        "ana@acme.example",
        "proxy",
        frozenset({"acme-leads", "acme-marketing"}),
    )
    for peer in ("10.2.0.1", "127.0.0.1", None):
        denied = refused(auth, headers, peer=peer)
        assert (denied.status, denied.error) == (401, "untrusted_proxy")
    # a spoofed header beside a valid token is still somebody trying
    assert refused(auth, {**headers, **bearer("x.y.z")}, peer="10.9.9.9").error == "untrusted_proxy"


def test_nobody_named_is_refused(tmp_path, keys_dir) -> None:  # type: ignore[no-untyped-def]
    auth = authenticator(tmp_path, keys_dir)
    for headers in ({}, {"Authorization": "Basic ZGFuYTpwdw=="}, bearer("")):
        assert refused(auth, headers).status == 401
    assert refused(auth, bearer("not.a.jwt")).error == "tokens_not_accepted"  # no identity provider configured


def test_a_services_token_counts_only_for_the_services_allowed_and_only_here(tmp_path, keys_dir) -> None:  # type: ignore[no-untyped-def]
    auth = authenticator(tmp_path, keys_dir)
    planner = ServiceKeys(keys_dir, "planner")
    assert caller(auth, bearer(planner.token("review"))) == Caller("service:planner", "service")
    assert refused(auth, bearer(ServiceKeys(keys_dir, "guard").token("review"))).status == 403
    assert refused(auth, bearer(planner.token("executor"))).error == "bad_service_token"  # another audience
    # a key that merely calls itself the planner's
    other = tmp_path / "other"
    generate_service_keys(other, ["planner"])
    assert refused(auth, bearer(ServiceKeys(other, "planner").token("review"))).error == "unknown_key"


def test_a_service_signature_is_checked_against_that_services_key(keys_dir) -> None:  # type: ignore[no-untyped-def]
    review, guard = ServiceKeys(keys_dir, "review"), ServiceKeys(keys_dir, "guard")
    key_id, signature = review.sign(b"approved rv-1")
    assert guard.verify("review", key_id, b"approved rv-1", signature)
    assert not guard.verify("review", key_id, b"approved rv-2", signature)
    assert not guard.verify("planner", key_id, b"approved rv-1", signature)
    forged_id, forged = ServiceKeys(keys_dir, "planner").sign(b"approved rv-1")
    assert not guard.verify("review", forged_id, b"approved rv-1", forged)


ACCESS = Access(
    reviewer=("group:acme-marketing",), approver=("group:acme-leads", "Lee@Acme.example"), admin=("ops@acme.example",)
)


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        (Caller("kim@acme.example", "token", frozenset({"acme-marketing"})), {"read", "decide"}),
        (Caller("lee@acme.example", "proxy"), {"read", "decide", "decide_high_risk"}),
        (Caller("ops@acme.example", "token"), {"read", "administer"}),
        (Caller("eve@acme.example", "token", frozenset({"other-team"})), set()),
        (Caller("service:planner", "service", frozenset({"acme-leads"})), set()),  # a service holds no role
    ],
)
def test_roles_grant_what_each_may_do_for_a_tenant(who: Caller, allowed: set[str]) -> None:
    assert {p.value for p in Permission if may(who, ACCESS, p)} == allowed
    assert not roles_of(who, None)  # a tenant without an access section grants nothing
    if "decide" not in allowed:
        with pytest.raises(AccessDenied) as denied:
            require(who, "acme", ACCESS, Permission.DECIDE)
        assert denied.value.status == 403 and "tenant acme" in denied.value.detail
