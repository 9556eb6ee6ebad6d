"""A tenant's ingest tokens: with `ingest_token_files` in its file, `POST /v1/events` and
`POST /v1/inbound/<tenant>/email` take its events only with `Authorization: Bearer <one of them>`. No
credential is a 401 (with the Bearer challenge), a wrong one a 403; both are audited, publish nothing and take
nothing from a later, authentic delivery of the same event. Tokens are rotated by their files, without a
restart. A tenant without token files stays open. Read back from Kafka."""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from herald_core.contracts import ConsentReason, ConsentWithdrawn, ContactCreated, EventRejected
from herald_core.topics import AUDIT, CONSENT, EVENTS

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SAMPLES = Path(__file__).parent / "samples"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def lock(ingest, directory: Path, *tokens: str) -> tuple[str, list[Path]]:  # type: ignore[no-untyped-def]
    """A new tenant whose file names one token file per token (each written as secret tooling writes it, with a
    newline): (its id, the files)."""
    tenant_id = f"locked{secrets.token_hex(3)}"
    files = []
    for number, token in enumerate(tokens):
        path = directory / f"{tenant_id}-{number}.token"
        path.write_text(token + "\n")
        files.append(path)
    config = {
        "tenant_id": tenant_id,
        "name": "Acme Relay",
        "sender": {"name": "Maya from Acme Relay", "address": "maya@acmerelay.example"},
        "unsubscribe_url": "https://acmerelay.example/unsubscribe",
        "ingest_token_files": [str(path) for path in files],
    }
    (ingest.tenants_dir / f"{tenant_id}.yaml").write_text(yaml.safe_dump(config))
    return tenant_id, files


@pytest.fixture
def token_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ingest-tokens"
    directory.mkdir()
    return directory


# ---------------------------------------------------------------- what the edges are sent


def created_event(tenant: str, contact_id: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"ce-{secrets.token_hex(6)}",
        "source": "reverse-etl/hightouch",
        "type": ContactCreated.TYPE,
        "tenant": tenant,
        "datacontenttype": "application/json",
        "data": {
            "contact": {"contact_id": contact_id, "email": f"{contact_id}@globex.example", "first_name": "Dana"},
            "upstream_source": "hightouch",
            "upstream_event_id": f"sync-{secrets.token_hex(6)}",
            "occurred_at": "2026-11-20T10:00:00Z",
        },
    }


def binary_headers(tenant: str, type_: str, **extra: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "ce-specversion": "1.0",
        "ce-id": f"bin-{secrets.token_hex(6)}",
        "ce-source": "esp/complaints",
        "ce-type": type_,
        "ce-tenant": tenant,
        **extra,
    }


def withdrawal(contact_id: str) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "email": f"{contact_id}@globex.example",
        "reason": "complaint",
        "upstream_source": "esp",
        "upstream_event_id": f"complaint-{secrets.token_hex(6)}",
        "occurred_at": "2026-11-20T10:00:00Z",
    }


def report(name: str) -> tuple[bytes, str]:
    """A sample report with a Message-ID of its own (ingest de-duplicates by it): (bytes, its Message-ID)."""
    report_id = f"<{secrets.token_hex(8)}.tokens@mail.acmerelay.example>"
    raw = re.sub(
        rb"(?mi)^Message-Id: <[^>]+>", f"Message-Id: {report_id}".encode(), (SAMPLES / name).read_bytes(), count=1
    )
    return raw, report_id


async def post_report(ingest, tenant: str, raw: bytes, headers: dict[str, str] | None = None) -> httpx.Response:  # type: ignore[no-untyped-def]
    sent = {"Content-Type": "message/rfc822", **(headers or {})}
    return await ingest.client.post(f"/v1/inbound/{tenant}/email", content=raw, headers=sent)


def published(records: list[Any], upstream_event_id: str) -> list[Any]:
    """The records of one upstream event (a report's records have ids that start with its Message-ID)."""
    bodies = [r for r in records if r.value is not None]  # not the tombstones an erasure leaves on the consent topic
    return [r for r in bodies if str(r.json().get("upstream_event_id", "")).startswith(upstream_event_id)]


async def audited_refusal(  # type: ignore[no-untyped-def]
    ingest, response: httpx.Response, trace: str, *, status: int, error: str, tenant: str, endpoint: str
) -> Any:
    """The refusal as answered and as audited (found by its trace); returns the audit record."""
    await ingest.assert_refused(response, trace, status=status, error=error, tenant=tenant, endpoint=endpoint)
    [record] = [r for r in await ingest.read(AUDIT) if ingest.trace_of(r) == trace]
    return record


#: one fresh, valid request per edge, so a test can ask "does this token get in" of either
async def _send_event(ingest, tenant: str, headers: dict[str, str]) -> httpx.Response:  # type: ignore[no-untyped-def]
    return await ingest.post_cloudevent(created_event(tenant, str(ingest.unique_int())), headers=headers)


async def _send_report(ingest, tenant: str, headers: dict[str, str]) -> httpx.Response:  # type: ignore[no-untyped-def]
    return await post_report(ingest, tenant, report("postfix_4.2.2_failed_after_retries.eml")[0], headers)


Send = Callable[[Any, str, dict[str, str]], Awaitable[httpx.Response]]
EDGES: dict[str, Send] = {"cloudevents": _send_event, "inbound_email": _send_report}


# ---------------------------------------------------------------- CloudEvents


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic dXNlcjpwYXNzd29yZA==", "Bearer", "Bearer   ", "Token {token}"],
    ids=["no_header", "basic", "bearer_without_token", "bearer_blank", "right_token_other_scheme"],
)
async def test_an_event_without_a_bearer_token_gets_401_is_audited_and_publishes_nothing(
    ingest,  # type: ignore[no-untyped-def]
    token_dir: Path,
    authorization: str | None,
) -> None:
    token = new_token()
    tenant, _ = lock(ingest, token_dir, token)
    event = created_event(tenant, str(ingest.unique_int()))
    traceparent, trace = ingest.new_traceparent()
    headers = {"traceparent": traceparent}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=token)
    response = await ingest.post_cloudevent(event, headers=headers)
    await audited_refusal(
        ingest, response, trace, status=401, error="missing_credentials", tenant=tenant, endpoint="/v1/events"
    )
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert published(await ingest.read(EVENTS), event["data"]["upstream_event_id"]) == []

    # the refusal took nothing: the same event, sent with the token, is new and published once
    accepted = await ingest.post_cloudevent(event, headers=bearer(token))
    assert accepted.status_code == 202, accepted.text
    assert accepted.json() == {"accepted": 1, "duplicates": 0}
    [record] = published(await ingest.read(EVENTS), event["data"]["upstream_event_id"])
    assert record.tenant == tenant
    assert record.body(ContactCreated) == ContactCreated.model_validate(event["data"])


async def test_a_wrong_token_gets_403_is_audited_and_withdraws_no_consent(ingest, token_dir: Path) -> None:  # type: ignore[no-untyped-def]
    """A forged opt-out in binary mode; the wrong tokens include a prefix of the right one and another
    tenant's, and neither the answer nor the audit repeats a token."""
    token, other_tenants_token = new_token(), new_token()
    tenant, _ = lock(ingest, token_dir, token)
    lock(ingest, token_dir, other_tenants_token)
    data = withdrawal(str(ingest.unique_int()))
    headers = binary_headers(tenant, ConsentWithdrawn.TYPE)
    for wrong in (new_token(), token[:-1], token + "x", other_tenants_token):
        traceparent, trace = ingest.new_traceparent()
        response = await ingest.client.post(
            "/v1/events", content=json.dumps(data), headers={**headers, **bearer(wrong), "traceparent": traceparent}
        )
        record = await audited_refusal(
            ingest, response, trace, status=403, error="bad_credentials", tenant=tenant, endpoint="/v1/events"
        )
        assert record.body(EventRejected).upstream_event_id == headers["ce-id"]
        for text in (response.text, record.value.decode()):
            assert wrong not in text and token not in text
    assert published(await ingest.read(CONSENT), data["upstream_event_id"]) == []
    assert published(await ingest.read(EVENTS), data["upstream_event_id"]) == []

    response = await ingest.client.post("/v1/events", content=json.dumps(data), headers={**headers, **bearer(token)})
    assert response.status_code == 202, response.text
    [on_consent] = published(await ingest.read(CONSENT), data["upstream_event_id"])
    assert on_consent.body(ConsentWithdrawn).reason is ConsentReason.COMPLAINT
    assert on_consent.key == f"{tenant}:{data['contact_id']}:email".encode()
    assert len(published(await ingest.read(EVENTS), data["upstream_event_id"])) == 1


def _every_mode(
    tenant: str, open_tenant: str, contact_id: str
) -> dict[str, tuple[dict[str, str], bytes, int, str, str]]:
    """name → (headers, body, status, error, audited tenant): every shape of request `from_http` reads, each
    naming the locked tenant and creating `contact_id`, sent without a token."""
    event = created_event(tenant, contact_id)
    structured = {"content-type": "application/cloudevents+json"}
    return {
        "structured": (structured, json.dumps(event).encode(), 401, "missing_credentials", tenant),
        "binary": (
            binary_headers(tenant, ContactCreated.TYPE),
            json.dumps(event["data"]).encode(),
            401,
            "missing_credentials",
            tenant,
        ),
        # ce-* headers beside a structured body: the body's tenant is the one parsed, published to and checked
        "structured_with_an_open_tenant_in_headers": (
            {**binary_headers(open_tenant, ContactCreated.TYPE), **structured},
            json.dumps(event).encode(),
            401,
            "missing_credentials",
            tenant,
        ),
        # a batch in binary mode is one event whose data is a list: checked before the data is
        "binary_batch": (
            binary_headers(tenant, ContactCreated.TYPE, **{"content-type": "application/cloudevents-batch+json"}),
            json.dumps([event]).encode(),
            401,
            "missing_credentials",
            tenant,
        ),
        # a structured batch names no single tenant: it is no CloudEvent ingest takes
        "structured_batch": (
            {"content-type": "application/cloudevents-batch+json"},
            json.dumps([event]).encode(),
            400,
            "invalid_cloudevent",
            "unknown",
        ),
    }


@pytest.mark.parametrize("mode", list(_every_mode("t", "o", "1")))
async def test_every_mode_of_sending_an_event_asks_the_tenant_it_names_for_its_token(
    ingest,  # type: ignore[no-untyped-def]
    token_dir: Path,
    mode: str,
) -> None:
    tenant, _ = lock(ingest, token_dir, new_token())
    contact_id = str(ingest.unique_int())
    headers, body, status, error, audited_tenant = _every_mode(tenant, ingest.tenant, contact_id)[mode]
    traceparent, trace = ingest.new_traceparent()
    response = await ingest.post_cloudevent(raw=body, headers={**headers, "traceparent": traceparent})
    await audited_refusal(
        ingest, response, trace, status=status, error=error, tenant=audited_tenant, endpoint="/v1/events"
    )
    records = await ingest.read(EVENTS)
    assert [r for r in records if r.tenant == tenant] == []
    assert [r for r in records if (r.json().get("contact") or {}).get("contact_id") == contact_id] == []


# ---------------------------------------------------------------- bounces and complaints


async def test_a_report_without_the_right_token_is_refused_and_withdraws_nothing(
    ingest,  # type: ignore[no-untyped-def]
    token_dir: Path,
    tmp_path: Path,
) -> None:
    token = new_token()
    tenant, _ = lock(ingest, token_dir, token)
    contact = ingest.contact(email="jordan.reyes@northwind.example")
    await ingest.seeded(tenant, [contact], tmp_path)
    raw, report_id = report("postfix_5.1.1_unknown_user.eml")
    endpoint = f"/v1/inbound/{tenant}/email"

    refusals = [
        ({}, 401, "missing_credentials"),
        # the token is asked before anything else of the request: a wrong content type is not even looked at
        ({"Content-Type": "application/json"}, 401, "missing_credentials"),
        (bearer(new_token()), 403, "bad_credentials"),
    ]
    for headers, status, error in refusals:
        traceparent, trace = ingest.new_traceparent()
        response = await post_report(ingest, tenant, raw, {**headers, "traceparent": traceparent})
        record = await audited_refusal(
            ingest, response, trace, status=status, error=error, tenant=tenant, endpoint=endpoint
        )
        assert token not in record.value.decode()
        if status == 401:
            assert response.headers["WWW-Authenticate"] == "Bearer"
    assert published(await ingest.read(CONSENT), f"{report_id}/") == []
    assert published(await ingest.read(EVENTS), f"{report_id}/") == []

    response = await post_report(ingest, tenant, raw, bearer(token))
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0, "ignored": []}
    [on_consent] = published(await ingest.read(CONSENT), f"{report_id}/")
    withdrawn = on_consent.body(ConsentWithdrawn)
    assert (withdrawn.contact_id, withdrawn.reason) == (str(contact["contact_id"]), ConsentReason.HARD_BOUNCE)
    assert on_consent.tenant == tenant


# ---------------------------------------------------------------- rotation, on both edges


@pytest.mark.parametrize("edge", list(EDGES))
async def test_two_token_files_are_both_accepted_while_a_token_is_rotated(ingest, token_dir: Path, edge: str) -> None:  # type: ignore[no-untyped-def]
    send = EDGES[edge]
    old, new = new_token(), new_token()
    tenant, _ = lock(ingest, token_dir, old, new)
    assert (await send(ingest, tenant, bearer(old))).status_code == 202
    assert (await send(ingest, tenant, bearer(new))).status_code == 202
    assert (await send(ingest, tenant, bearer(new_token()))).status_code == 403


@pytest.mark.parametrize("edge", list(EDGES))
async def test_a_rewritten_token_file_counts_at_the_next_request(ingest, token_dir: Path, edge: str) -> None:  # type: ignore[no-untyped-def]
    """Rewritten in place with a token of the same length, and then replaced by a rename as a Kubernetes
    Secret volume does it: each time the new token gets in and the old one is refused, with no restart."""
    send = EDGES[edge]
    first = new_token()
    tenant, [path] = lock(ingest, token_dir, first)
    assert (await send(ingest, tenant, bearer(first))).status_code == 202

    second = new_token()
    assert len(second) == len(first)
    path.write_text(second + "\n")
    assert (await send(ingest, tenant, bearer(second))).status_code == 202
    assert (await send(ingest, tenant, bearer(first))).status_code == 403

    third = new_token()
    staged = path.with_name(f".{path.name}.new")
    staged.write_text(third)
    os.replace(staged, path)
    assert (await send(ingest, tenant, bearer(third))).status_code == 202
    refused = await send(ingest, tenant, bearer(second))
    assert refused.status_code == 403
    assert refused.json()["error"] == "bad_credentials"


@pytest.mark.parametrize("edge", list(EDGES))
async def test_a_removed_token_file_takes_its_token_away_and_with_none_left_nothing_gets_in(
    ingest,  # type: ignore[no-untyped-def]
    token_dir: Path,
    edge: str,
) -> None:
    send = EDGES[edge]
    old, new = new_token(), new_token()
    tenant, [old_file, new_file] = lock(ingest, token_dir, old, new)
    old_file.unlink()  # the rotation's last step, before the tenant file stops naming it
    assert (await send(ingest, tenant, bearer(new))).status_code == 202
    assert (await send(ingest, tenant, bearer(old))).status_code == 403

    new_file.unlink()
    traceparent, trace = ingest.new_traceparent()
    response = await send(ingest, tenant, {**bearer(new), "traceparent": traceparent})
    # the deployment's fault, not the sender's: a retryable refusal, audited, and nothing let through
    endpoint = "/v1/events" if edge == "cloudevents" else f"/v1/inbound/{tenant}/email"
    await audited_refusal(
        ingest, response, trace, status=503, error="credentials_unavailable", tenant=tenant, endpoint=endpoint
    )
    assert [r for r in await ingest.read(EVENTS) if r.tenant == tenant and ingest.trace_of(r) == trace] == []


# ---------------------------------------------------------------- a tenant without token files


@pytest.mark.parametrize("edge", list(EDGES))
async def test_a_tenant_without_token_files_takes_requests_with_or_without_a_credential(ingest, edge: str) -> None:  # type: ignore[no-untyped-def]
    """Such a tenant relies on the ingress in front; a credential meant for that ingress is not ingest's to judge."""
    send = EDGES[edge]
    assert (await send(ingest, ingest.tenant, {})).status_code == 202
    assert (await send(ingest, ingest.tenant, bearer("meant-for-the-ingress"))).status_code == 202
