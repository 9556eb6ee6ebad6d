"""update_crm_record end to end: a signed approval changes the contact's record once, read back from the CRM
itself — Herald's own contact store through asyncpg, HubSpot's API through the loopback server that answers
as HubSpot does (429 rate limits and 5xx backed off and retried, 404 and 401 typed and not retried)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import asyncpg
import pytest

from herald_core.contracts import ActionRefused
from herald_stack.hubspot_crm import hubspot_api
from support import approve, execution_of, executor_answers, present, tool_action

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


async def test_the_contact_store_merges_an_approved_update_once(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"crm{secrets.token_hex(3)}")
    contact_id = f"c{secrets.token_hex(3)}"
    first = approve(
        herald,
        tool_action(
            tenant,
            "update_crm_record",
            {"contact_id": contact_id, "properties": {"lifecycle_stage": "opportunity", "job_title": "VP Ops"}},
            contact_id=contact_id,
        ),
    )
    await present(herald, first)
    executed = await execution_of(herald, first.action.action_id)
    assert executed.status.value == "succeeded", executed
    assert executed.result == {
        "contact_id": contact_id,
        "updated": ["lifecycle_stage", "job_title"],
        "crm": "herald",
    }

    second = approve(
        herald,
        tool_action(
            tenant,
            "update_crm_record",
            {"contact_id": contact_id, "properties": {"job_title": None, "next_step": "demo on Tuesday"}},
            contact_id=contact_id,
        ),
    )
    await present(herald, second)
    assert (await execution_of(herald, second.action.action_id)).status.value == "succeeded"

    await present(herald, first)  # the first approval again: a replay, nothing written
    answers = await executor_answers(herald, first.action.action_id, count=2)
    assert [type(a).__name__ for a in answers] == ["ActionExecuted", "ActionRefused"]
    assert isinstance(answers[1], ActionRefused) and answers[1].reason == "replayed"

    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        record = await conn.fetchval(
            "SELECT properties FROM crm.contacts WHERE tenant = $1 AND contact_id = $2", tenant, contact_id
        )
        writes = await conn.fetch("SELECT action_id FROM crm.writes WHERE tenant = $1 ORDER BY written_at", tenant)
    finally:
        await conn.close()
    assert json.loads(record) == {"lifecycle_stage": "opportunity", "next_step": "demo on Tuesday"}
    assert [w["action_id"] for w in writes] == [first.action.action_id, second.action.action_id]


async def test_hubspot_gets_one_patch_after_rate_limits_and_outages(herald, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    token = f"pat-na1-{secrets.token_hex(8)}"
    (tmp_path / "hubspot-token").write_text(token + "\n")
    async with hubspot_api(token, {"5101": {"email": "ana@buyers.example"}, "5102": {}}) as hubspot:
        tenant = herald.add_tenant(
            f"hs{secrets.token_hex(3)}",
            crm={
                "kind": "hubspot",
                "hubspot_base_url": hubspot.url,
                "hubspot_token_file": str(tmp_path / "hubspot-token"),
            },
        )

        def update(contact_id: str, properties: dict[str, str | None]):  # type: ignore[no-untyped-def]
            action = tool_action(
                tenant, "update_crm_record", {"contact_id": contact_id, "properties": properties}, contact_id=contact_id
            )
            return approve(herald, action)

        # two 429s and a 503, then HubSpot takes it: one accepted PATCH, HubSpot's property names, the token
        hubspot.fail_next(429, 429, 503)
        approved = update("5101", {"lifecycle_stage": "opportunity", "lead_status": None})
        await present(herald, approved)
        executed = await execution_of(herald, approved.action.action_id)
        assert executed.status.value == "succeeded" and executed.result["crm"] == "hubspot", executed
        assert [r["status"] for r in hubspot.requests] == [429, 429, 503, 200]
        assert hubspot.applied("5101") == [{"properties": {"lifecyclestage": "opportunity", "hs_lead_status": ""}}]
        assert {r["auth"] for r in hubspot.requests} == {f"Bearer {token}"}
        assert hubspot.contacts["5101"]["lifecyclestage"] == "opportunity"

        # an outage longer than the executor's attempts: the approval is read again later, applied once
        hubspot.requests.clear()
        hubspot.fail_next(*[503] * 6)
        approved = update("5102", {"industry": "Logistics"})
        await present(herald, approved)
        executed = await execution_of(herald, approved.action.action_id)
        assert executed.status.value == "succeeded", executed
        assert [r["status"] for r in hubspot.requests].count(503) == 6
        assert hubspot.applied("5102") == [{"properties": {"industry": "Logistics"}}]

        # a contact HubSpot does not have: a permanent failure, not retried
        hubspot.requests.clear()
        approved = update("9999", {"industry": "Retail"})
        await present(herald, approved)
        executed = await execution_of(herald, approved.action.action_id)
        assert executed.status.value == "failed" and executed.failure is not None
        assert (executed.failure.kind.value, executed.failure.code) == ("permanent", "crm_contact_not_found")
        assert len(hubspot.requests) == 1

    # a revoked token: refused by HubSpot as unauthenticated, typed, once
    async with hubspot_api("another-token", {"5101": {}}) as hubspot:
        herald.add_tenant(
            tenant,
            crm={
                "kind": "hubspot",
                "hubspot_base_url": hubspot.url,
                "hubspot_token_file": str(tmp_path / "hubspot-token"),
            },
        )
        approved = update("5101", {"company": "Acme"})
        await present(herald, approved)
        executed = await execution_of(herald, approved.action.action_id)
        assert executed.failure is not None and executed.failure.code == "crm_unauthorized"
        assert len(hubspot.requests) == 1 and hubspot.applied("5101") == []


async def test_an_update_of_another_contact_than_the_approved_one_is_refused(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"crm{secrets.token_hex(3)}")
    action = tool_action(
        tenant,
        "update_crm_record",
        {"contact_id": "someone-else", "properties": {"lifecycle_stage": "customer"}},
        contact_id=f"c{secrets.token_hex(3)}",
    )
    approved = approve(herald, action)
    await present(herald, approved)
    executed = await execution_of(herald, approved.action.action_id)
    assert executed.status.value == "failed" and executed.failure is not None
    assert executed.failure.code == "contact_mismatch"
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM crm.contacts WHERE tenant = $1", tenant) == 0
    finally:
        await conn.close()


async def test_a_referral_is_created_in_hubspot_once_and_a_known_address_names_its_contact(
    herald, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    token = f"pat-na1-{secrets.token_hex(8)}"
    (tmp_path / "hubspot-token").write_text(token)
    async with hubspot_api(token, {"5101": {"email": "ana@buyers.example"}}) as hubspot:
        tenant = herald.add_tenant(
            f"hc{secrets.token_hex(3)}",
            crm={
                "kind": "hubspot",
                "hubspot_base_url": hubspot.url,
                "hubspot_token_file": str(tmp_path / "hubspot-token"),
            },
        )

        def referral(email: str):  # type: ignore[no-untyped-def]
            spec = {"email": email, "company": "Buyers Inc", "referred_by": "5101"}
            return approve(herald, tool_action(tenant, "create_contact", spec, contact_id="5101"))

        # a 503 first: the POST is retried and makes one contact
        hubspot.fail_next(503)
        approved = referral("sam@buyers.example")
        await present(herald, approved)
        executed = await execution_of(herald, approved.action.action_id)
        assert executed.status.value == "succeeded", executed
        assert executed.result["created"] is True and executed.result["crm"] == "hubspot"
        made = str(executed.result["contact_id"])
        assert hubspot.contacts[made] == {
            "email": "sam@buyers.example",
            "company": "Buyers Inc",
            "lifecyclestage": "lead",
            "herald_referred_by": "5101",
        }
        # an address HubSpot has: no second contact, the existing one named
        approved = referral("ana@buyers.example")
        await present(herald, approved)
        executed = await execution_of(herald, approved.action.action_id)
        assert executed.status.value == "succeeded", executed
        assert (executed.result["created"], executed.result["contact_id"]) == (False, "5101")
        assert len(hubspot.contacts) == 2
