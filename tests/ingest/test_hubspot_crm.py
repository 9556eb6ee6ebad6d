"""Contacts read from HubSpot: through the real adapter against the loopback server that answers as HubSpot's CRM
API does (batch reads, 207 multi-status, associations, rate limits, outages, refused tokens), kept in the real
contact store in PostgreSQL and read back through it; and the pure mapping from HubSpot's properties."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from herald_core import hubspot as hubspot_api_rules
from herald_core.db import create_pool, migrate
from herald_core.hubspot import CONTACT_FIELDS, DEFAULT_CONTACT_PROPERTIES
from herald_core.tenants import TenantConfig
from herald_ingest.adapters import contacts as contact_store_module
from herald_ingest.adapters.contacts import PostgresContacts
from herald_ingest.adapters.hubspot import HubSpotContacts, HubSpotUnauthorized, HubSpotUnavailable
from herald_ingest.logic import CONTACT_PROPERTIES, SeedContact, contact_from_hubspot, hubspot_value, property_change
from herald_stack.hubspot_crm import ASSOCIATIONS_READ, COMPANIES_READ, CONTACTS_READ, HubSpotApi, hubspot_api

MIGRATIONS = Path(contact_store_module.__file__).parents[1] / "migrations"


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
async def contact_store(stack) -> AsyncIterator[PostgresContacts]:  # type: ignore[no-untyped-def]
    """Ingest's contact store in a database of this module's own, migrated as the service migrates it."""
    name = f"herald_hsread_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(stack.pg_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pool = await create_pool(stack.pg_dsn.rsplit("/", 1)[0] + f"/{name}", max_size=4)
    try:
        await migrate(pool, "ingest", MIGRATIONS)
        yield PostgresContacts(pool)
    finally:
        await pool.close()
        admin = await asyncpg.connect(stack.pg_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def _tenant(hubspot: HubSpotApi | str, token_file: Path, **crm: Any) -> TenantConfig:
    url = hubspot if isinstance(hubspot, str) else hubspot.url
    return TenantConfig.model_validate(
        {
            "tenant_id": f"hs{secrets.token_hex(3)}",
            "name": "Acme Relay",
            "sender": {"name": "Maya", "address": "maya@acmerelay.example"},
            "unsubscribe_url": "https://acmerelay.example/unsubscribe",
            "crm": {"kind": "hubspot", "hubspot_base_url": url, "hubspot_token_file": str(token_file), **crm},
        }
    )


def _token(tmp_path: Path) -> tuple[str, Path]:
    token = f"pat-na1-{secrets.token_hex(8)}"
    path = tmp_path / "hubspot-token"
    path.write_text(token + "\n")
    return token, path


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


def _reader(http: httpx.AsyncClient, **overrides: Any) -> HubSpotContacts:
    """The adapter with short backoffs (the waits HubSpot asks for are still honoured in full)."""
    return HubSpotContacts(http, **{"backoff_seconds": 0.01, "max_backoff_seconds": 0.05, **overrides})


def _lead(n: int, **extra: str) -> dict[str, str]:
    return {
        "email": f"lead-{n}@northwind.example",
        "firstname": "Jordan",
        "lastname": f"Reyes {n}",
        "company": "Northwind Freight",
        "jobtitle": "Head of Operations",
        "industry": "TRANSPORTATION_TRUCKING_RAILROAD",
        "lifecyclestage": "lead",
        "country": "US",
        "hs_email_optout": "true" if n % 10 == 0 else "false",
        **extra,
    }


# ---------------------------------------------------------------- batch reads against the loopback HubSpot


@pytest.mark.postgres
async def test_a_hundred_unknown_contacts_are_one_call_and_kept_in_the_store(
    tmp_path: Path, http: httpx.AsyncClient, contact_store: PostgresContacts
) -> None:
    token, token_file = _token(tmp_path)
    leads = {str(7_000 + n): _lead(n) for n in range(100)}
    async with hubspot_api(token, leads) as hubspot:
        tenant = _tenant(hubspot, token_file)
        read = await _reader(http).read(tenant, list(leads))

    assert hubspot.calls == {CONTACTS_READ: 1}  # every contact has its own company: no association lookups
    [request] = hubspot.to(CONTACTS_READ)
    assert request["auth"] == f"Bearer {token}" and request["status"] == 200
    assert request["ids"] == list(leads)
    assert set(request["body"]["properties"]) >= set(DEFAULT_CONTACT_PROPERTIES)
    assert request["body"]["propertiesWithHistory"] == []
    assert read.missing == () and read.merged == {} and read.left_out == {}
    assert sorted(read.contacts) == sorted(leads)
    first = read.contacts["7000"]
    assert (first.email, first.first_name, first.last_name) == ("lead-0@northwind.example", "Jordan", "Reyes 0")
    assert (first.company, first.job_title, first.lifecycle_stage) == (
        "Northwind Freight",
        "Head of Operations",
        "lead",
    )
    assert first.industry == "transportation_trucking_railroad"
    assert (first.country, first.opted_out) == ("US", True)
    assert read.contacts["7001"].opted_out is False

    assert await contact_store.upsert_fetched(tenant.tenant_id, list(read.contacts.values())) == 100
    stored = await contact_store.get_many(tenant.tenant_id, list(leads))
    assert len(stored) == 100
    assert stored["7042"] == read.contacts["7042"].facts()
    assert stored["7042"].email == "lead-42@northwind.example"
    rows = await contact_store.pool.fetch(
        "SELECT contact_id, country, opted_out, fetched_at FROM ingest.contacts WHERE tenant = $1", tenant.tenant_id
    )
    assert {r["contact_id"] for r in rows if r["opted_out"]} == {str(7_000 + n) for n in range(0, 100, 10)}
    assert {r["country"] for r in rows} == {"US"}
    fetched = await contact_store.fetched_at(tenant.tenant_id, list(leads))
    assert len(fetched) == 100
    assert all(abs((datetime.now(UTC) - moment).total_seconds()) < 300 for moment in fetched.values())


async def test_more_than_a_hundred_ids_are_read_in_batches_of_a_hundred(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    token, token_file = _token(tmp_path)
    leads = {str(8_000 + n): _lead(n) for n in range(201)}
    async with hubspot_api(token, leads) as hubspot:
        read = await _reader(http).read(_tenant(hubspot, token_file), [*leads, *list(leads)[:50]])  # repeats: once
    assert [len(r["ids"]) for r in hubspot.to(CONTACTS_READ)] == [100, 100, 1]
    assert len(read.contacts) == 201


async def test_a_207_returns_the_contacts_found_and_names_the_missing_ones(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(token, {"9101": _lead(1), "9102": _lead(2), "9103": _lead(3)}) as hubspot:
        read = await _reader(http).read(_tenant(hubspot, token_file), ["9101", "9990", "9102", "9103", "9991", "x-1"])
    assert sorted(read.contacts) == ["9101", "9102", "9103"]
    assert read.missing == ("9990", "9991", "x-1")
    [request] = hubspot.to(CONTACTS_READ)
    assert request["status"] == 207
    assert "x-1" not in request["ids"]  # not a HubSpot id: never asked for


async def test_a_contact_merged_into_another_is_found_under_the_surviving_one(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(token, {"9201": _lead(1, email="kept@northwind.example")}) as hubspot:
        hubspot.merged["9200"] = "9201"
        read = await _reader(http).read(_tenant(hubspot, token_file), ["9200"])
    assert read.missing == ()
    assert read.merged == {"9200": "9201"}
    found = read.get("9200")
    assert found is not None and found.contact_id == "9201" and found.email == "kept@northwind.example"


async def test_rate_limits_and_outages_are_waited_out_and_retried(tmp_path: Path, http: httpx.AsyncClient) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(token, {"9301": _lead(1), "9302": _lead(2)}) as hubspot:
        hubspot.retry_after = "0.3"
        hubspot.fail_next(429, 503)
        read = await _reader(http).read(_tenant(hubspot, token_file), ["9301", "9302"])
    assert sorted(read.contacts) == ["9301", "9302"]
    calls = hubspot.to(CONTACTS_READ)
    assert [c["status"] for c in calls] == [429, 503, 200]
    assert calls[1]["at"] - calls[0]["at"] >= 0.3  # the 429's Retry-After, honoured in full


async def test_a_spent_interval_is_waited_for_before_the_next_call(tmp_path: Path, http: httpx.AsyncClient) -> None:
    token, token_file = _token(tmp_path)
    leads = {str(9_400 + n): _lead(n) for n in range(150)}
    async with hubspot_api(token, leads) as hubspot:
        hubspot.rate_limit_max, hubspot.rate_limit_interval_ms = 1, 400
        read = await _reader(http).read(_tenant(hubspot, token_file), list(leads))
    calls = hubspot.to(CONTACTS_READ)
    assert [c["status"] for c in calls] == [200, 200]  # the first answer said none remained: no 429 was provoked
    assert calls[1]["at"] - calls[0]["at"] >= 0.4
    assert len(read.contacts) == 150


async def test_an_outage_longer_than_the_retries_is_the_typed_outage(tmp_path: Path, http: httpx.AsyncClient) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(token, {"9501": _lead(1)}) as hubspot:
        tenant = _tenant(hubspot, token_file)
        hubspot.fail_for(30, 503)
        with pytest.raises(HubSpotUnavailable) as raised:
            await _reader(http, attempts=4).read(tenant, ["9501"])
        assert not isinstance(raised.value, HubSpotUnauthorized)
        assert "after 4 call(s)" in str(raised.value)
        assert [c["status"] for c in hubspot.to(CONTACTS_READ)] == [503] * 4

        # HubSpot back: the same read succeeds
        hubspot.fail_for(0)
        read = await _reader(http).read(tenant, ["9501"])
        assert list(read.contacts) == ["9501"]


async def test_a_wait_longer_than_the_budget_is_not_slept_through(tmp_path: Path, http: httpx.AsyncClient) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(token, {"9601": _lead(1)}) as hubspot:
        hubspot.retry_after = "30"
        hubspot.fail_next(429)
        with pytest.raises(HubSpotUnavailable) as raised:
            await asyncio.wait_for(_reader(http, budget_seconds=2).read(_tenant(hubspot, token_file), ["9601"]), 10)
    assert raised.value.retry_after == 30  # for the webhook's answer: come back in 30 seconds
    assert hubspot.calls[CONTACTS_READ] == 1


async def test_a_spent_daily_limit_is_not_retried(tmp_path: Path, http: httpx.AsyncClient) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(token, {"9651": _lead(1)}) as hubspot:
        hubspot.rate_limit_policy = "DAILY"
        hubspot.fail_next(429)
        with pytest.raises(HubSpotUnavailable, match="daily"):
            await _reader(http).read(_tenant(hubspot, token_file), ["9651"])
    assert hubspot.calls == {CONTACTS_READ: 1}  # it rolls over at midnight: no retry within a webhook helps


async def test_hubspot_unreachable_is_the_typed_outage(tmp_path: Path, http: httpx.AsyncClient) -> None:
    _, token_file = _token(tmp_path)
    async with hubspot_api("unused", {}) as gone:
        url = gone.url  # the server is stopped on leaving: nothing listens there any more
    with pytest.raises(HubSpotUnavailable, match="unreachable"):
        await _reader(http, attempts=3).read(_tenant(url, token_file), ["9701"])


async def test_a_refused_token_is_an_outage_of_the_deployments_making(tmp_path: Path, http: httpx.AsyncClient) -> None:
    _, token_file = _token(tmp_path)
    async with hubspot_api("the-token-hubspot-knows", {"9801": _lead(1)}) as hubspot:
        with pytest.raises(HubSpotUnauthorized, match="token") as raised:
            await _reader(http).read(_tenant(hubspot, token_file), ["9801"])
    assert isinstance(raised.value, HubSpotUnavailable)  # the webhook is answered as in any outage
    assert "deployment" in str(raised.value)
    assert [c["status"] for c in hubspot.to(CONTACTS_READ)] == [401]  # not retried: no retry would help

    async with hubspot_api("any", {"9801": _lead(1)}) as hubspot:
        with pytest.raises(HubSpotUnauthorized, match="cannot be read"):
            await _reader(http).read(_tenant(hubspot, tmp_path / "no-such-token"), ["9801"])
    assert hubspot.calls == {}


async def test_a_rotated_token_file_is_used_at_the_next_call(tmp_path: Path, http: httpx.AsyncClient) -> None:
    token, token_file = _token(tmp_path)
    reader = _reader(http)
    async with hubspot_api(token, {"9901": _lead(1)}) as hubspot:
        tenant = _tenant(hubspot, token_file)
        assert list((await reader.read(tenant, ["9901"])).contacts) == ["9901"]
        rotated = f"pat-na1-{secrets.token_hex(8)}"
        token_file.write_text(rotated + "\n")
        hubspot.token = rotated  # HubSpot takes only the new token now
        assert list((await reader.read(tenant, ["9901"])).contacts) == ["9901"]
    assert [c["auth"] for c in hubspot.to(CONTACTS_READ)] == [f"Bearer {token}", f"Bearer {rotated}"]
    assert [c["status"] for c in hubspot.to(CONTACTS_READ)] == [200, 200]


@pytest.mark.postgres
async def test_the_tenants_own_property_mapping_is_read_and_stored(
    tmp_path: Path, http: httpx.AsyncClient, contact_store: PostgresContacts
) -> None:
    token, token_file = _token(tmp_path)
    mapping = {
        "email": "email",
        "firstname": "first_name",
        "herald_vip": "vip",
        "herald_open_deal_cents": "deal_value_minor",
        "hs_timezone": "timezone",
        "herald_segment": "industry",
        "company": "company",
    }
    contact = {
        "email": "ana@buyers.example",
        "firstname": "Ana",
        "lastname": "not mapped",
        "herald_vip": "true",
        "herald_open_deal_cents": "1250000",
        "hs_timezone": "america_slash_chicago",
        "herald_segment": "Logistics",
        "company": "Buyers Inc",
        "jobtitle": "not mapped either",
    }
    async with hubspot_api(token, {"10001": contact, "10002": {**contact, "email": "not an address"}}) as hubspot:
        tenant = _tenant(hubspot, token_file, properties=mapping)
        read = await _reader(http).read(tenant, ["10001", "10002"])
    [request] = hubspot.to(CONTACTS_READ)
    assert set(request["body"]["properties"]) == {*mapping, "hs_merged_object_ids"}
    ana = read.contacts["10001"]
    assert (ana.vip, ana.deal_value_minor, ana.timezone, ana.industry) == (
        True,
        1_250_000,
        "America/Chicago",
        "logistics",
    )
    assert (ana.last_name, ana.job_title) == (None, None)
    assert read.contacts["10002"].email is None  # the bad address left out, with its reason; the rest kept
    assert read.contacts["10002"].first_name == "Ana"
    assert list(read.left_out) == ["10002"] and "not an email address" in read.left_out["10002"][0]

    await contact_store.upsert_fetched(tenant.tenant_id, list(read.contacts.values()))
    stored = await contact_store.get_many(tenant.tenant_id, ["10001", "10002"])
    assert stored["10001"].vip and stored["10001"].deal_value_minor == 1_250_000
    assert stored["10001"].timezone == "America/Chicago"
    assert stored["10002"].email is None and stored["10002"].vip


@pytest.mark.postgres
async def test_a_stored_field_the_mapping_does_not_cover_is_kept(
    tmp_path: Path, http: httpx.AsyncClient, contact_store: PostgresContacts
) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(token, {"10101": _lead(1, jobtitle="COO", email="")}) as hubspot:
        tenant = _tenant(hubspot, token_file)
        seeded = SeedContact(
            contact_id=10101, email="old@northwind.example", job_title="CEO", vip=True, deal_value_minor=9_900
        )
        await contact_store.upsert(tenant.tenant_id, [seeded])
        assert await contact_store.fetched_at(tenant.tenant_id, ["10101"]) == {}  # seeded, never read from HubSpot
        read = await _reader(http).read(tenant, ["10101"])
        await contact_store.upsert_fetched(tenant.tenant_id, list(read.contacts.values()))
    [stored] = (await contact_store.get_many(tenant.tenant_id, ["10101"])).values()
    assert stored.job_title == "COO"  # HubSpot's value wins where the mapping covers the field
    assert stored.email is None  # cleared in HubSpot: cleared here
    assert (stored.vip, stored.deal_value_minor) == (True, 9_900)  # not HubSpot's to say: kept
    assert list(await contact_store.fetched_at(tenant.tenant_id, ["10101"])) == ["10101"]


async def test_a_contact_without_a_company_gets_its_primary_companys_name(
    tmp_path: Path, http: httpx.AsyncClient
) -> None:
    token, token_file = _token(tmp_path)
    contacts = {"11001": _lead(1, company=""), "11002": _lead(2, company="Own Company"), "11003": _lead(3, company="")}
    companies = {
        "501": {"name": "Northwind Freight", "domain": "northwind.example"},
        "502": {"name": "Second Shell Co", "domain": "shell.example"},
    }
    associations = {"11001": ["501", "502"], "11002": ["502"]}  # 11003 has no company at all
    async with hubspot_api(token, contacts, companies=companies, associations=associations) as hubspot:
        read = await _reader(http).read(_tenant(hubspot, token_file), list(contacts))
    assert read.contacts["11001"].company == "Northwind Freight"  # the primary one, though HubSpot lists it last
    assert read.companies["11001"].domain == "northwind.example"
    assert read.contacts["11002"].company == "Own Company"
    assert read.contacts["11003"].company is None
    assert hubspot.calls == {CONTACTS_READ: 1, ASSOCIATIONS_READ: 1, COMPANIES_READ: 1}
    assert hubspot.to(ASSOCIATIONS_READ)[0]["ids"] == ["11001", "11003"]  # only those without a company
    assert hubspot.to(ASSOCIATIONS_READ)[0]["status"] == 207  # 11003: NO_ASSOCIATIONS_FOUND
    assert hubspot.to(COMPANIES_READ)[0]["ids"] == ["501"]
    assert set(hubspot.to(COMPANIES_READ)[0]["body"]["properties"]) == {"name", "domain"}


async def test_contacts_are_read_when_their_companies_cannot_be(tmp_path: Path, http: httpx.AsyncClient) -> None:
    token, token_file = _token(tmp_path)
    async with hubspot_api(
        token, {"11101": _lead(1, company="")}, companies={"601": {"name": "X"}}, associations={"11101": ["601"]}
    ) as hubspot:
        hubspot.missing_scopes.add(COMPANIES_READ)  # the private app may read contacts, not companies
        read = await _reader(http).read(_tenant(hubspot, token_file), ["11101"])
    assert read.contacts["11101"].company is None
    assert read.companies_unread is not None and "403" in read.companies_unread
    assert read.contacts["11101"].email == "lead-1@northwind.example"


# ---------------------------------------------------------------- the mapping, pure


def test_hubspot_values_become_the_stores_fields() -> None:
    assert hubspot_value("industry", "COMPUTER_SOFTWARE") == "computer_software"
    assert hubspot_value("opted_out", "true") is True
    assert hubspot_value("opted_out", "TRUE ") is True
    assert hubspot_value("opted_out", "false") is False
    assert hubspot_value("opted_out", None) is False
    assert hubspot_value("vip", "") is False
    assert hubspot_value("company", "") is None
    assert hubspot_value("company", "  ") is None
    assert hubspot_value("first_name", " Ana ") == "Ana"
    assert hubspot_value("email", "ana@buyers.example") == "ana@buyers.example"
    assert hubspot_value("timezone", "America/Chicago") == "America/Chicago"
    assert hubspot_value("timezone", "america_slash_argentina_slash_buenos_aires") == "America/Argentina/Buenos_Aires"
    assert hubspot_value("deal_value_minor", "125000") == 125_000
    assert hubspot_value("deal_value_minor", "125000.0") == 125_000
    assert hubspot_value("deal_value_minor", "") == 0
    assert hubspot_value("company_size", "1250") == 1250
    assert hubspot_value("company_size", "1,250") == 1250
    assert hubspot_value("company_size", "100-500") == 100  # HubSpot's `numemployees` ranges: the lower bound
    assert hubspot_value("company_size", "1000+") == 1000
    assert hubspot_value("company_size", "") is None
    assert hubspot_value("owner", "90210") == "90210"
    for field, bad in (
        ("company_size", "a few"),
        ("company_size", "-20"),
        ("email", "not an address"),
        ("email", "two@a.example, three@b.example"),
        ("timezone", "Mars/Olympus_Mons"),
        ("deal_value_minor", "12.50"),
        ("deal_value_minor", "-5"),
        ("deal_value_minor", "lots"),
    ):
        with pytest.raises(ValueError):
            hubspot_value(field, bad)


def test_a_contact_is_mapped_with_its_bad_values_left_out_and_said() -> None:
    properties = {
        "email": "bad address",
        "firstname": "",
        "lastname": "Reyes",
        "company": None,
        "industry": "LOGISTICS",
        "hs_email_optout": "true",
        "country": "US",
        "unmapped": "ignored",
    }
    contact, left_out = contact_from_hubspot("42", properties, CONTACT_PROPERTIES, company="Northwind Freight")
    assert contact.email is None and contact.first_name is None and contact.last_name == "Reyes"
    assert (contact.company, contact.industry, contact.opted_out, contact.country) == (
        "Northwind Freight",
        "logistics",
        True,
        "US",
    )
    assert contact.read == {"first_name", "last_name", "company", "industry", "opted_out", "country"}
    assert len(left_out) == 1 and left_out[0].startswith("email (email):")
    facts = contact.facts()
    assert facts.contact_id == "42" and facts.company == "Northwind Freight" and facts.email is None

    # a company of its own wins over the associated one; a property HubSpot did not answer is not read
    own, _ = contact_from_hubspot("43", {"company": "Own"}, CONTACT_PROPERTIES, company="Associated")
    assert own.company == "Own" and own.read == {"company"}


def test_property_changes_follow_the_tenants_mapping() -> None:
    assert property_change("herald_vip", "true", {"herald_vip": "vip"}) == ("vip", True)
    assert property_change("jobtitle", "CTO", {"herald_vip": "vip"}) is None
    assert property_change("email", "not an address") == ("email", "not an address")  # apply_property refuses it
    assert property_change("email", " ana@buyers.example ") == ("email", "ana@buyers.example")


def test_a_tenants_property_mapping_names_only_fields_the_store_holds() -> None:
    def crm(properties: Any) -> dict[str, Any]:
        return {
            "tenant_id": "acme",
            "name": "Acme",
            "sender": {"name": "Maya", "address": "maya@acme.example"},
            "unsubscribe_url": "https://acme.example/u",
            "crm": {"kind": "hubspot", "hubspot_token_file": "/run/secrets/hubspot", "properties": properties},
        }

    assert TenantConfig.model_validate(crm(None)).crm.contact_properties == DEFAULT_CONTACT_PROPERTIES
    own = TenantConfig.model_validate(crm({"email": "email", "herald_vip": "vip"})).crm
    assert own.contact_properties == {"email": "email", "herald_vip": "vip"}
    for bad, said in (
        ({"email": "e_mail"}, "not a contact field: e_mail"),
        ({"email": "email", "work_email": "email"}, "each contact field is set by one property"),
        ({"Email Address": "email"}, "string_pattern_mismatch"),
        ({}, "at least 1"),
    ):
        with pytest.raises(ValidationError) as raised:
            TenantConfig.model_validate(crm(bad))
        assert said in str(raised.value) or said in str(raised.value.errors()), raised.value


def test_the_fields_a_property_may_set_are_the_stores_columns() -> None:
    assert contact_store_module._COLUMNS == CONTACT_FIELDS
    assert set(DEFAULT_CONTACT_PROPERTIES.values()) <= set(CONTACT_FIELDS)


def test_hubspot_says_how_long_to_wait() -> None:
    spent = {"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    assert hubspot_api_rules.interval_pause(spent) == 10.0
    assert hubspot_api_rules.interval_pause({**spent, "X-HubSpot-RateLimit-Remaining": "3"}) is None
    assert hubspot_api_rules.interval_pause({}) is None
    assert hubspot_api_rules.rate_limited_wait({**spent, "Retry-After": "2"}) == 2.0
    assert hubspot_api_rules.rate_limited_wait(spent) == 10.0
    assert hubspot_api_rules.rate_limited_wait({}) == 1.0
    assert hubspot_api_rules.retry_after_seconds({"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}) is None
    daily = '{"status":"error","errorType":"RATE_LIMIT","policyName":"DAILY","message":"daily limit reached"}'
    assert hubspot_api_rules.is_daily_limit(daily)
    assert not hubspot_api_rules.is_daily_limit('{"policyName":"TEN_SECONDLY_ROLLING"}')
    assert (
        hubspot_api_rules.error_message('{"category":"OBJECT_NOT_FOUND","message":"gone"}') == "OBJECT_NOT_FOUND gone"
    )
    assert hubspot_api_rules.error_message("<html>bad gateway</html>") == "<html>bad gateway</html>"
