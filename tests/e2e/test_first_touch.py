"""The workflow "new lead first touch", end to end through all six services, from a signed HubSpot
webhook to the SMTP mailbox, read back through Kafka, the mailbox and the HTTP APIs."""

from __future__ import annotations

import asyncio
import json
import secrets
import time

import httpx
import pytest

from herald_core.contracts import ActionBlocked, ActionProposed
from herald_core.topics import AUDIT, CONSENT, DECISION, EVENTS, EXECUTED, PLAN, PROPOSED_ACTION, REVIEW
from support import contact_record, eventually, hubspot_signature, mails_to, part_of, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

PORTAL = 62515
SECRET = "e2e-hubspot-secret"


def _contact(run: str, n: int, **extra: object) -> dict[str, object]:
    return contact_record(
        int(f"7{n:03d}{int(run, 16) % 100000:05d}"), email=f"lead-{run}-{n}@northwind.example", **extra
    )


def _creation(contact: dict[str, object], event_id: int) -> dict[str, object]:
    return {
        "eventId": event_id,
        "subscriptionId": 101,
        "portalId": PORTAL,
        "appId": 9001,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.creation",
        "attemptNumber": 0,
        "objectId": contact["contact_id"],
        "changeFlag": "NEW",
        "changeSource": "CRM",
    }


async def post_hubspot(
    herald,
    tenant: str,
    batch: list[dict[str, object]],
    *,
    secret: str = SECRET,  # type: ignore[no-untyped-def]
    timestamp_ms: int | None = None,
    raw: bytes | None = None,
) -> httpx.Response:
    url = f"{herald.services.ingest_url}/v1/webhooks/hubspot/{tenant}"
    body = raw if raw is not None else json.dumps(batch).encode()
    timestamp = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": str(timestamp),
        "X-HubSpot-Signature-v3": hubspot_signature(secret, "POST", url, body, timestamp),
    }
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(url, content=body, headers=headers)


@pytest.fixture(scope="module")
def acme(herald, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A tenant like the sample `acme`, with its knowledge base loaded."""
    tenant = herald.add_tenant(f"acme{secrets.token_hex(3)}")
    herald.load_kb(tenant)
    return tenant


def _of_tenant(records, tenant: str):  # type: ignore[no-untyped-def]
    return [r for r in records if r.headers.get("ce_tenant") == tenant]


async def test_signed_webhook_sends_one_grounded_email_with_the_chain_on_the_audit(herald, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.token_hex(3)
    contact = _contact(run, 1)
    herald.seed_contacts(acme, [contact], tmp_path)
    response = await post_hubspot(herald, acme, [_creation(contact, int(f"9{int(run, 16)}1"))])
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1

    mails = await eventually(lambda: mails_to(herald.maildir, str(contact["email"])), timeout=60, what="the email")
    assert len(mails) == 1
    mail = mails[0]
    body = part_of(mail, "plain")
    assert "Jordan" in body and "Unsubscribe:" in body
    # the same approved words as HTML (escaped, nothing added but structure) with the unsubscribe link
    page = part_of(mail, "html")
    assert mail.get_content_type() == "multipart/alternative" and "Jordan" in page
    link = "".join(str(mail["List-Unsubscribe"]).split()).strip("<>")  # the header may be folded
    assert f'href="{link.replace("&", "&amp;")}"' in page

    proposals = _of_tenant(
        await read_topic(
            herald.bootstrap, herald.topic(PROPOSED_ACTION), timeout=10, until=lambda rs: bool(_of_tenant(rs, acme))
        ),
        acme,
    )
    proposal = ActionProposed.model_validate_json(proposals[0].value)
    assert proposal.evidence, "the draft must rest on retrieved passages"
    # grounded: each quoted claim in the email comes from one of the evidence passages
    quoted = [line[2:] for line in body.splitlines() if line.startswith("- ")]
    assert quoted
    for line in quoted:
        assert any(line.rstrip(".") in " ".join(e.quote.split()) for e in proposal.evidence), line
    assert proposal.action_id.lower() in mail["Message-ID"]

    # the chain, from the audit alone: event → plan → proposal → approval → execution, one correlation id
    correlation = proposals[0].headers["ce_correlationid"]
    wanted = {
        "herald.contact.created.v1",
        "herald.plan.created.v1",
        "herald.action.proposed.v1",
        "herald.action.approved.v1",
        "herald.action.executed.v1",
    }

    def chain(records):  # type: ignore[no-untyped-def]
        return [r for r in records if r.headers.get("ce_correlationid") == correlation]

    audit = chain(
        await read_topic(
            herald.bootstrap, herald.topic(AUDIT), timeout=30, until=lambda rs: {r.type for r in chain(rs)} >= wanted
        )
    )
    assert {r.type for r in audit} >= wanted
    by_id = {r.id: r for r in audit}
    for record in audit:  # every link points at its cause
        if record.type != "herald.contact.created.v1":
            assert record.headers.get("ce_causationid") in by_id, record.type
        assert record.headers.get("traceparent", "").split("-")[1] == audit[0].headers["traceparent"].split("-")[1]


async def test_opted_out_contact_gets_nothing_and_the_block_is_audited(herald, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.token_hex(3)
    contact = _contact(run, 2, opted_out=True)
    herald.seed_contacts(acme, [contact], tmp_path)
    response = await post_hubspot(herald, acme, [_creation(contact, int(f"9{int(run, 16)}2"))])
    assert response.status_code == 200, response.text

    def blocked_for_contact(records):  # type: ignore[no-untyped-def]
        return [
            r
            for r in _of_tenant(records, acme)
            if r.type == ActionBlocked.TYPE
            and ActionBlocked.model_validate_json(r.value).contact_id == str(contact["contact_id"])
        ]

    blocked = blocked_for_contact(
        await read_topic(
            herald.bootstrap, herald.topic(AUDIT), timeout=60, until=lambda rs: bool(blocked_for_contact(rs))
        )
    )
    assert blocked, "no block on the audit"
    decision = ActionBlocked.model_validate_json(blocked[0].value)
    assert decision.rule == "consent.opt_out"
    await asyncio.sleep(2)
    assert mails_to(herald.maildir, str(contact["email"])) == []


async def test_same_webhook_delivered_twice_sends_one_email(herald, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.token_hex(3)
    contact = _contact(run, 3)
    herald.seed_contacts(acme, [contact], tmp_path)
    batch = [_creation(contact, int(f"9{int(run, 16)}3"))]
    first, second = await asyncio.gather(post_hubspot(herald, acme, batch), post_hubspot(herald, acme, batch))
    assert sorted([first.json()["accepted"], second.json()["accepted"]]) == [0, 1]
    third = await post_hubspot(herald, acme, batch)
    assert third.json() == {"accepted": 0, "duplicates": 1, "rejected": []}
    await eventually(lambda: mails_to(herald.maildir, str(contact["email"])), timeout=60, what="the email")
    await asyncio.sleep(2)
    assert len(mails_to(herald.maildir, str(contact["email"]))) == 1


async def test_vip_waits_for_review_then_approve_sends_and_reject_does_not(herald, acme, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.token_hex(3)
    approved_vip = _contact(run, 4, vip=True, deal_value_minor=9_000_000)
    rejected_vip = _contact(run, 5, vip=True)
    herald.seed_contacts(acme, [approved_vip, rejected_vip], tmp_path)
    response = await post_hubspot(
        herald,
        acme,
        [_creation(approved_vip, int(f"9{int(run, 16)}4")), _creation(rejected_vip, int(f"9{int(run, 16)}5"))],
    )
    assert response.json()["accepted"] == 2

    async with herald.review_client() as review:

        async def pending() -> list[dict[str, object]]:
            items = (await review.get("/v1/reviews", params={"tenant": acme, "status": "pending"})).json()
            return [
                i
                for i in items
                if str(i["contact_id"]) in {str(approved_vip["contact_id"]), str(rejected_vip["contact_id"])}
            ]

        items = await eventually(lambda: _both(pending()), timeout=60, what="two review items")
        await asyncio.sleep(1)
        assert mails_to(herald.maildir, str(approved_vip["email"])) == []  # nothing before a human decides
        by_contact = {str(i["contact_id"]): i for i in items}
        ok = await review.post(
            f"/v1/reviews/{by_contact[str(approved_vip['contact_id'])]['review_id']}/approve",
            json={},
        )
        assert ok.status_code == 200, ok.text
        no = await review.post(
            f"/v1/reviews/{by_contact[str(rejected_vip['contact_id'])]['review_id']}/reject",
            json={"reason": "talk to the account owner first"},
        )
        assert no.status_code == 200, no.text

    await eventually(lambda: mails_to(herald.maildir, str(approved_vip["email"])), timeout=60, what="the VIP email")
    await asyncio.sleep(2)
    assert len(mails_to(herald.maildir, str(approved_vip["email"]))) == 1
    assert mails_to(herald.maildir, str(rejected_vip["email"])) == []


async def _both(items_coro):  # type: ignore[no-untyped-def]
    items = await items_coro
    return items if len(items) == 2 else None


async def test_every_pipeline_message_has_its_audit_copy(herald, acme) -> None:  # type: ignore[no-untyped-def]
    pipeline = [EVENTS, PLAN, PROPOSED_ACTION, DECISION, REVIEW, EXECUTED, CONSENT]
    originals: set[tuple[str, str]] = set()  # (message id, topic): one event may travel on two topics
    for spec in pipeline:
        for record in await read_topic(herald.bootstrap, herald.topic(spec), timeout=5):
            # what Herald's services published (other tests also write straight onto topics, as attackers do)
            if record.headers.get("ce_source", "").startswith("herald/"):
                originals.add((record.id, herald.topic(spec)))
    assert len(originals) > 20, "the other tests should have put messages on the pipeline"

    def copies(records):  # type: ignore[no-untyped-def]
        return {(r.id, r.headers.get("herald_topic", "")) for r in records}

    audit = await read_topic(
        herald.bootstrap, herald.topic(AUDIT), timeout=15, until=lambda rs: copies(rs) >= originals
    )
    missing = originals - copies(audit)
    assert not missing, f"{len(missing)} pipeline message(s) without an audit copy: {sorted(missing)[:5]}"
