"""HubSpot as it really sends: a webhook names a contact by `objectId` only. For contacts Herald has never seen,
ingest reads their properties from HubSpot's CRM API (one batch read per webhook batch), keeps them, and every
lead is published once — through rate limits and outages, which make the webhook fail with a 5xx so HubSpot
sends it again, never losing a lead and never publishing one twice."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import asyncpg
import pytest
from test_first_touch import _creation, post_hubspot

from herald_core.contracts import ConsentWithdrawn, ContactCreated, EventRejected
from herald_core.topics import AUDIT, CONSENT, EVENTS
from herald_stack.hubspot_crm import CONTACTS_READ, hubspot_api
from support import read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


def _hubspot_contacts(run: int, count: int) -> dict[str, dict[str, str]]:
    return {
        str(9_000_000 + run * 1000 + n): {
            "email": f"lead{n}-{run}@freight.example",
            "firstname": f"Lee{n}",
            "lastname": "Okafor",
            "jobtitle": "Head of Operations",
            "industry": "Logistics",
            "lifecyclestage": "lead",
            "hs_email_optout": "true" if n == 0 else "false",
        }
        for n in range(count)
    }


async def _tenant(herald, hubspot, tmp_path: Path, token: str) -> str:  # type: ignore[no-untyped-def]
    (tmp_path / "token").write_text(token)
    return herald.add_tenant(
        f"hsr{secrets.token_hex(3)}",
        crm={"kind": "hubspot", "hubspot_base_url": hubspot.url, "hubspot_token_file": str(tmp_path / "token")},
    )


async def _created(herald, tenant: str, count: int, timeout: float = 60) -> list[ContactCreated]:  # type: ignore[no-untyped-def]
    def mine(records):  # type: ignore[no-untyped-def]
        return [r.body(ContactCreated) for r in records if r.type == ContactCreated.TYPE and r.tenant == tenant]

    await read_topic(herald.bootstrap, herald.topic(EVENTS), timeout=timeout, until=lambda rs: len(mine(rs)) >= count)
    await asyncio.sleep(1)  # a second copy of any lead would be on the topic by now
    return mine(await read_topic(herald.bootstrap, herald.topic(EVENTS), timeout=5))


def _batch(contacts: dict[str, dict[str, str]], first_event: int) -> list[dict[str, object]]:
    return [_creation({"contact_id": int(cid)}, first_event + n) for n, cid in enumerate(contacts)]


async def test_a_batch_of_100_unseen_contacts_is_read_once_and_each_lead_published_once(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.randbelow(900) + 100
    contacts = _hubspot_contacts(run, 100)
    token = f"pat-na1-{secrets.token_hex(8)}"
    first = next(iter(contacts))
    async with hubspot_api(
        token, contacts, companies={"77": {"name": "Northwind Freight", "domain": "northwind.example"}}
    ) as hubspot:
        hubspot.associations[first] = ["77"]
        contacts[first].pop("company", None)
        tenant = await _tenant(herald, hubspot, tmp_path, token)
        response = await post_hubspot(herald, tenant, _batch(contacts, run * 10_000))
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == 100, response.text
        assert hubspot.calls[CONTACTS_READ] == 1
        created = await _created(herald, tenant, 100)
        assert sorted(c.contact.contact_id for c in created) == sorted(contacts)
        by_id = {c.contact.contact_id: c.contact for c in created}
        some = by_id[str(9_000_000 + run * 1000 + 42)]
        assert (some.email, some.first_name, some.job_title, some.industry) == (
            f"lead42-{run}@freight.example",
            "Lee42",
            "Head of Operations",
            "logistics",
        )
        assert by_id[first].company == "Northwind Freight"
        # the contact opted out in HubSpot before Herald knew it is withdrawn on the consent topic
        consent = await read_topic(
            herald.bootstrap,
            herald.topic(CONSENT),
            timeout=20,
            until=lambda rs: any(r.tenant == tenant for r in rs),
        )
        withdrawn = [r.body(ConsentWithdrawn) for r in consent if r.tenant == tenant]
        assert [w.contact_id for w in withdrawn] == [first]
        # kept in the contact store: the same webhook again reads nothing and publishes nothing
        again = await post_hubspot(herald, tenant, _batch(contacts, run * 10_000))
        assert again.json()["duplicates"] == 100
        assert hubspot.calls[CONTACTS_READ] == 1
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        stored = await conn.fetchval("SELECT count(*) FROM ingest.contacts WHERE tenant = $1", tenant)
    finally:
        await conn.close()
    assert stored == 100


async def test_rate_limits_and_outages_are_retried_or_answered_5xx_and_nothing_is_lost(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.randbelow(900) + 100
    contacts = _hubspot_contacts(run, 6)
    contacts.pop(next(iter(contacts)))  # none opted out here
    token = f"pat-na1-{secrets.token_hex(8)}"
    async with hubspot_api(token, contacts) as hubspot:
        tenant = await _tenant(herald, hubspot, tmp_path, token)
        ids = list(contacts)
        # a 429, then a 503, then the properties: within one webhook answer
        hubspot.fail_next(429, 503)
        first = {cid: contacts[cid] for cid in ids[:2]}
        response = await post_hubspot(herald, tenant, _batch(first, run * 10_000))
        assert response.status_code == 200 and response.json()["accepted"] == 2, response.text
        assert [r["status"] for r in hubspot.to(CONTACTS_READ)] == [429, 503, 200]
        # an outage longer than the retries: 503, nothing claimed; HubSpot sends the same delivery again later
        hubspot.fail_for(30)
        rest = {cid: contacts[cid] for cid in ids[2:]}
        batch = _batch(rest, run * 10_000 + 100)
        failed = await post_hubspot(herald, tenant, batch)
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"] == "unavailable"
        hubspot.fail_for(0)
        retried = await post_hubspot(herald, tenant, [{**e, "attemptNumber": 1} for e in batch])
        assert retried.json() == {"accepted": 3, "duplicates": 0, "rejected": []}, retried.text
        created = await _created(herald, tenant, 5)
        assert sorted(c.contact.contact_id for c in created) == sorted(ids)


async def test_a_contact_hubspot_does_not_have_is_refused_with_that_reason_and_audited(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.randbelow(900) + 100
    contacts = _hubspot_contacts(run, 3)
    contacts.pop(next(iter(contacts)))
    token = f"pat-na1-{secrets.token_hex(8)}"
    async with hubspot_api(token, contacts) as hubspot:
        tenant = await _tenant(herald, hubspot, tmp_path, token)
        ghost = {"contact_id": 8_999_999_999}
        response = await post_hubspot(
            herald, tenant, [*_batch(contacts, run * 10_000), _creation(ghost, run * 10_000 + 50)]
        )
        body = response.json()
        assert body["accepted"] == 2, body
        assert body["rejected"] == [
            {"eventId": run * 10_000 + 50, "reason": "unknown contact 8999999999: HubSpot has no such contact"}
        ]
        assert hubspot.calls[CONTACTS_READ] == 1

    def refused(records):  # type: ignore[no-untyped-def]
        return [r for r in records if r.type == EventRejected.TYPE and r.tenant == tenant]

    audit = await read_topic(herald.bootstrap, herald.topic(AUDIT), timeout=20, until=lambda rs: bool(refused(rs)))
    assert "HubSpot has no such contact" in refused(audit)[0].body(EventRejected).reason
