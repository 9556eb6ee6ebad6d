"""Every door knows who calls it, four eyes on a high-risk item, and a decision is the reviewer's, provably.

One table over every guarded route of every service: without credentials (or with an expired token, a token from
a key the identity provider never listed, or the proxy's header from an address that is not the proxy's) each is
401; signed in as another tenant's reviewer each tenant-scoped one is 403 and changes nothing; the doors only
Herald's services use refuse people. Then a high-risk item needs two different approvers, and a `ReviewDecided`
written straight to the topic — unsigned, signed by another service, altered, or replayed — is refused by the
guard (dead-lettered with the reason, so audited) and nothing is sent.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from review_support import decisions_on_kafka, escalated_email, queued, review_state

from herald_core.auth.services import ServiceKeys
from herald_core.contracts import ActionApproved, ReviewDecided, ReviewDecision
from herald_core.envelope import Envelope
from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_core.ids import new_id
from herald_core.signing import sign_decision
from herald_core.topics import APPROVED_ACTION, REVIEW_DECISION, contact_key
from herald_review.api import ROUTE_PERMISSIONS
from herald_stack.identity import AUDIENCE, LOCAL_ISSUER
from support import bodies, eventually, mails_to, publish, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]


@dataclass(frozen=True)
class Door:
    service: str  # whose HTTP API
    method: str
    path: str  # with {tenant}, {review_id}, {action_id}, {tool} to fill
    params: dict[str, str]
    body: dict[str, Any] | None = None
    form: bool = False  # a web UI form (a CSRF token is sent with it)
    tenant_scoped: bool = True  # 403 for another tenant's people
    people: bool = True  # False: only Herald's services may call it


SINCE = "2026-01-01T00:00:00Z"
#: one row per guarded route; the review service's rows must be exactly its ROUTE_PERMISSIONS
DOORS = [
    Door("review", "GET", "/v1/reviews", {"tenant": "{tenant}"}),
    Door("review", "GET", "/v1/reviews/{review_id}", {}),
    Door("review", "POST", "/v1/reviews/{review_id}/approve", {}, {"reason": "looks fine"}),
    Door("review", "POST", "/v1/reviews/{review_id}/reject", {}, {"reason": "no"}),
    Door("review", "POST", "/v1/reviews/{review_id}/resolve", {}, {"outcome": "happened", "reason": "saw it"}),
    Door("review", "GET", "/v1/explain/{action_id}", {}),
    Door("review", "GET", "/v1/audit", {"tenant": "{tenant}"}),
    Door("review", "GET", "/v1/audit/proposals", {"tenant": "{tenant}", "since": SINCE}),
    Door("review", "POST", "/v1/kill-switch", {}, {"tenant": "{tenant}", "engaged": True, "reason": "test"}),
    Door("review", "GET", "/ui", {"tenant": "{tenant}"}),
    Door("review", "GET", "/ui/reviews/{review_id}", {}),
    Door("review", "POST", "/ui/reviews/{review_id}/approve", {}, {"reason": "fine"}, form=True),
    Door("review", "POST", "/ui/reviews/{review_id}/reject", {}, {"reason": "no"}, form=True),
    Door("review", "POST", "/ui/reviews/{review_id}/resolve", {}, {"outcome": "happened", "reason": "x"}, form=True),
    Door("review", "GET", "/ui/explain/{action_id}", {}),
    Door("review", "GET", "/ui/audit", {"tenant": "{tenant}"}),
    Door("guard", "GET", "/v1/policies/{tenant}", {}),
    Door("guard", "GET", "/v1/policies/{tenant}/shadow", {}),
    Door(
        "executor", "POST", "/v1/tools/{tool}", {}, {"tenant": "{tenant}", "input": {"campaign_id": "c"}}, people=False
    ),
    Door("ingest", "POST", "/v1/segments/{tenant}", {}, {"limit": 5}, people=False),
]


def test_the_table_holds_every_route_of_the_review_service() -> None:
    rows = {(d.method, d.path) for d in DOORS if d.service == "review"}
    assert rows == set(ROUTE_PERMISSIONS), set(ROUTE_PERMISSIONS) ^ rows


def _base(herald, service: str) -> str:  # type: ignore[no-untyped-def]
    if service == "review":
        return str(herald.services.review_url)
    if service == "ingest":
        return str(herald.services.ingest_url)
    if service == "executor":
        return str(herald.services.executor_url)
    guard = next(r for r in herald.services.replicas.values() if r.service == "guard")
    return f"http://127.0.0.1:{guard.ops_port}"


def _filled(value: Any, names: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _filled(v, names) for k, v in value.items()}
    return value


async def _knock(  # type: ignore[no-untyped-def]
    herald, door: Door, names: dict[str, str], headers: dict[str, str], local_address: str | None = None
) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(local_address=local_address) if local_address else None
    async with httpx.AsyncClient(base_url=_base(herald, door.service), timeout=30, transport=transport) as client:
        url, params, body = _filled(door.path, names), _filled(door.params, names), _filled(door.body, names)
        if door.method == "GET":
            return await client.get(url, params=params, headers=headers)
        if door.form:  # with a session's CSRF token, so that only who is calling can stop it
            csrf = secrets.token_urlsafe(32)
            cookie = {"Cookie": f"herald_csrf={csrf}"}
            return await client.post(url, data={**body, "csrf_token": csrf}, headers=headers | cookie)
        return await client.post(url, params=params, json=body, headers=headers)


def _unknown_key_token() -> str:
    key = ECKey.generate_key("P-256", parameters={"kid": "not-the-providers"})
    now = int(time.time())
    claims = {"iss": LOCAL_ISSUER, "aud": AUDIENCE, "sub": "x", "email": "dana@acme.example", "exp": now + 600}
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])


async def test_every_door_refuses_strangers_and_other_tenants(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"door{secrets.token_hex(3)}")
    other = herald.add_tenant(
        f"doorx{secrets.token_hex(3)}", access={"reviewer": ["group:x-reviewers"], "admin": ["group:x-admins"]}
    )
    contact_id = f"d{secrets.token_hex(3)}"
    action = await escalated_email(herald, tenant, contact_id, subject="Hello", body="A short note.")
    item = (await queued(herald, tenant, {action.action_id}))[action.action_id]
    names = {"tenant": tenant, "review_id": item["review_id"], "action_id": action.action_id}
    names["tool"] = "fetch_campaign_stats"
    del other
    async with herald.review_client() as insider:  # the action's story indexed, so explain has a tenant to refuse

        async def explained() -> bool:
            return (await insider.get(f"/v1/explain/{action.action_id}")).status_code == 200

        await eventually(explained, timeout=60, what="the action in the audit index")

    strangers = {
        "anonymous": {},
        "expired": herald.auth_headers() | {"Authorization": f"Bearer {herald.token(exp=int(time.time()) - 3600)}"},
        "unknown key": {"Authorization": f"Bearer {_unknown_key_token()}"},
        "wrong audience": {"Authorization": f"Bearer {herald.token(aud='another-app')}"},
    }
    problems = []
    for door in DOORS:
        for who, headers in strangers.items():
            answer = await _knock(herald, door, names, headers)
            if answer.status_code != 401:
                problems.append(f"{door.method} {door.path} as {who}: {answer.status_code} {answer.text[:120]}")
        spoofed = {"X-Auth-Request-Email": "dana@acme.example", "X-Auth-Request-Groups": "reviewers,approvers,admins"}
        answer = await _knock(herald, door, names, spoofed, local_address="127.0.0.2")
        if answer.status_code != 401:
            problems.append(f"{door.method} {door.path} with a proxy header from 127.0.0.2: {answer.status_code}")
        outsider = herald.auth_headers("eve@other.example", ("x-reviewers", "x-admins"))
        answer = await _knock(herald, door, names, outsider)
        if answer.status_code != 403:
            problems.append(f"{door.method} {door.path} as another tenant's: {answer.status_code} {answer.text[:120]}")
    assert not problems, "\n".join(problems)

    # nothing was decided, switched or sent by any of them; the tenant's own reviewer still reads the item
    state = await review_state(herald, item["review_id"])
    assert (state["status"], state["approvals"]) == ("pending", [])
    assert mails_to(herald.maildir, str(action.recipient)) == []

    # a name in the body is never who decides
    async with herald.review_client() as client:
        named = await client.post(
            f"/v1/reviews/{item['review_id']}/reject", json={"reviewer": "mallory@x", "reason": "no"}
        )
    assert named.status_code == 422 and "reviewer" in named.text


async def test_the_retrieval_api_answers_only_herald_services(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"grpcdoor{secrets.token_hex(3)}")
    request = retrieval_pb2.SearchRequest(tenant=tenant, query="pricing", k=1)
    review_token = herald.service_headers("retrieval", "review")["Authorization"]
    async with grpc.aio.insecure_channel(herald.services.retrieval_target) as channel:
        stub = retrieval_pb2_grpc.RetrievalStub(channel)
        for metadata, code in [
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Bearer {herald.token()}"),), grpc.StatusCode.PERMISSION_DENIED),  # a person
            ((("authorization", review_token),), grpc.StatusCode.PERMISSION_DENIED),  # a service not allowed
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Search(request, metadata=metadata, timeout=10)
            assert refused.value.code() == code, refused.value
    async with herald.retrieval_channel("planner") as channel:
        answer = await retrieval_pb2_grpc.RetrievalStub(channel).Search(request, timeout=30)
    assert answer is not None  # the planner's token is answered


async def _signed_approvals(herald, action_id: str) -> list[ActionApproved]:  # type: ignore[no-untyped-def]
    records = await read_topic(herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=3)
    return [b for b in bodies(records, ActionApproved, action_id) if b.action.action_id == action_id]


async def test_a_high_risk_item_needs_two_different_approvers(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"eyes{secrets.token_hex(3)}", review={"high_risk_rules": ["escalation.deal_value"]})
    contact_id = f"e{secrets.token_hex(3)}"
    action = await escalated_email(
        herald, tenant, contact_id, subject="Your renewal", body="A short note.", vip=False, deal_value_minor=12_000_000
    )
    item = (await queued(herald, tenant, {action.action_id}))[action.action_id]
    assert item["approvals_needed"] == 2
    url = f"/v1/reviews/{item['review_id']}/approve"

    async with herald.review_client("kim@acme.example", ("reviewers",)) as reviewer_only:
        refused = await reviewer_only.post(url, json={})
        assert refused.status_code == 403 and "approver" in refused.text
    async with herald.review_client("ana@acme.example", ("approvers",)) as first:
        once = await first.post(url, json={"reason": "numbers check out"})
        assert once.status_code == 200, once.text
        assert (once.json()["status"], [a["reviewer"] for a in once.json()["approvals"]]) == (
            "pending",
            ["ana@acme.example"],
        )
        again = await first.post(url, json={})
        assert again.status_code == 409 and again.json()["detail"]["error"] == "second_approver_needed"
    assert await _signed_approvals(herald, action.action_id) == []
    assert mails_to(herald.maildir, str(action.recipient)) == []

    async with herald.review_client("lee@acme.example", ("approvers",)) as second:
        decided = await second.post(url, json={})
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "approved"
    (published,) = await decisions_on_kafka(herald, item["review_id"])
    assert published.approvers == ("ana@acme.example", "lee@acme.example") and published.reviewer == "lee@acme.example"
    approvals = await eventually(lambda: _signed_approvals(herald, action.action_id), what="the guard's approval")
    assert [a.approval.approved_by for a in approvals] == ["review:ana@acme.example+lee@acme.example"]
    await eventually(lambda: len(mails_to(herald.maildir, str(action.recipient))) == 1, what="the email, once")


async def _dead_letters(herald, marker: str, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    records = await read_topic(
        herald.bootstrap,
        f"{herald.prefix}herald.dlq.guard.v1",
        timeout=60,
        until=lambda rs: sum(marker.encode() in (r.value or b"") for r in rs) >= count,
    )
    return [r.headers["herald_dlq_reason"] for r in records if marker.encode() in (r.value or b"")]


async def test_a_decision_written_to_the_topic_counts_only_as_the_review_service_signed_it(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"forge{secrets.token_hex(3)}")
    contact_id = f"f{secrets.token_hex(3)}"
    action = await escalated_email(herald, tenant, contact_id, subject="Hello", body="A short note.")
    item = (await queued(herald, tenant, {action.action_id}))[action.action_id]
    review_keys = ServiceKeys(herald.services.config.service_keys_dir, "review")
    marker = f"forged-{secrets.token_hex(3)}"
    approval = ReviewDecided(
        review_id=item["review_id"],
        action=action,
        decision=ReviewDecision.APPROVED,
        reviewer="mallory@attacker.example",
        reason=marker,
        decided_at=datetime.now(UTC),
    )
    genuine_elsewhere = sign_decision(approval, review_keys, timedelta(hours=1))
    forgeries = {
        "unsigned": approval,
        "signed by the planner's key": sign_decision(approval, herald.service_keys("planner"), timedelta(hours=1)),
        "altered after signing": genuine_elsewhere.model_copy(update={"reviewer": "dana@acme.example"}),
        "expired": sign_decision(
            approval, review_keys, timedelta(seconds=1), now=datetime.now(UTC) - timedelta(hours=1)
        ),
    }
    key = contact_key(tenant, contact_id)
    for forged in forgeries.values():
        await publish(
            herald.bootstrap, herald.prefix, REVIEW_DECISION, key, _forged_envelope(tenant, contact_id), forged
        )
    reasons = await _dead_letters(herald, marker, len(forgeries))
    said = " | ".join(reasons)
    for reason in ("(unsigned)", "(bad_signature)", "(expired)"):
        assert reason in said, said
    assert (await review_state(herald, item["review_id"]))["status"] == "pending"
    assert await _signed_approvals(herald, action.action_id) == []
    assert mails_to(herald.maildir, str(action.recipient)) == []

    # the reviewer's own approval goes through once; replaying its signed decision changes nothing
    async with herald.review_client() as client:
        assert (await client.post(f"/v1/reviews/{item['review_id']}/approve", json={})).status_code == 200
    published = await decisions_on_kafka(herald, item["review_id"], count=len(forgeries) + 1)
    (real,) = [d for d in published if d.reason != marker]
    await eventually(lambda: len(mails_to(herald.maildir, str(action.recipient))) == 1, what="the approved email")
    await publish(herald.bootstrap, herald.prefix, REVIEW_DECISION, key, _forged_envelope(tenant, contact_id), real)
    await decisions_on_kafka(herald, item["review_id"], count=len(forgeries) + 2)
    await asyncio.sleep(3)  # time for a second approval, were there one
    approvals = await _signed_approvals(herald, action.action_id)
    assert len({a.approval.nonce for a in approvals}) == 1  # said again at most, never approved twice
    assert len(mails_to(herald.maildir, str(action.recipient))) == 1


def _forged_envelope(tenant: str, contact_id: str) -> Envelope:
    """A copy written to the topic by someone else (it says so: not one of Herald's services)."""
    return Envelope(
        source="test/forger",
        type=ReviewDecided.TYPE,
        subject=f"contact/{contact_id}",
        tenant=tenant,
        correlation_id=new_id(),
    )
