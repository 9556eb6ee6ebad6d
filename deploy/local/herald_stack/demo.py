"""`make demo`: the sample tenant's events through all six services, and what happened, read back.

It starts the six services against the running stack (a fresh topic prefix and database, so a
second run starts clean), loads Acme Relay's knowledge base, serves Acme's CRM as a HubSpot-shaped
CRM API on loopback (`herald_stack.hubspot_crm`, holding the 200 sample contacts) and posts signed
HubSpot webhook batches that name new leads by `objectId` only, as HubSpot sends them — an opted-out
contact, VIPs and more new leads than the hourly cap allows. Herald's contact store starts empty:
ingest reads each batch's contacts from the CRM API. The demo approves one escalated email through
the review API and prints a summary read from Kafka, the SMTP mailbox and the review API.

Acme runs `new_lead_sequence`: after touch 1 for every lead, one lead replies, and the clock moves on (a
drill: the planner and the guard restart with a clock offset), so the leads who did nothing get touch 2 in
the thread of touch 1 and the one who replied gets nothing more. Acme's policy for the demo also forbids
naming a customer who is not a public reference: a draft that quotes that customer's story is blocked and
drafted again without it. `herald explain` then tells one lead's sequence step by step.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime
from pathlib import Path

import asyncpg
import httpx
import yaml
from aiokafka import AIOKafkaConsumer

from herald_core.auth.services import ServiceKeys
from herald_core.bus import ensure_topics
from herald_core.contracts import ActionBlocked, ActionExecuted, ActionProposed, SendEmailInput
from herald_core.hubspot import DEFAULT_CONTACT_PROPERTIES
from herald_core.settings import CommonSettings
from herald_ingest.logic import hubspot_signature
from herald_stack.cli import up
from herald_stack.config import REPO_ROOT, StackConfig
from herald_stack.hubspot_crm import CONTACTS_READ, HubSpotApi, hubspot_api
from herald_stack.identity import mint
from herald_stack.services import ServiceSet

SAMPLE = REPO_ROOT / "samples" / "acme"
LEADS = 40  # contacts 5100001..5100040: more than the hourly cap of 25
#: the demo's policy: the tenant file's escalations, and a legal rule a template draft can break (and mend)
POLICY = """tenant: acme
version: 1
description: Acme Relay's rules for the demo
rules:
  - id: escalation.vip
    when: action.contact.vip
    then: escalate
    reason: VIP contacts get a human's eye
  - id: escalation.deal_value
    when: action.contact.deal_value_minor >= 5000000
    then: escalate
    reason: an open deal of $50,000 or more
  - id: content.unreferenceable_customer
    kind: pattern
    field: draft.body
    pattern: (?i)\\bLedgerly\\b
    then: block
    reason: Ledgerly is not a public reference; never name them in outbound email
"""
#: how far the drill moves the clocks: past three business days from any weekday
DRILL_DAYS = 6
#: the HubSpot properties Acme's portal keeps beyond HubSpot's own, and the contact fields they set
ACME_PROPERTIES = {"hs_timezone": "timezone", "herald_vip": "vip", "herald_open_deal_value": "deal_value_minor"}


def hubspot_properties(contact: dict) -> dict[str, str]:  # type: ignore[type-arg]
    """A sample contact as Acme's HubSpot portal holds it (HubSpot's property names, every value as text)."""
    zone = str(contact.get("timezone") or "")
    return {
        "email": contact.get("email") or "",
        "firstname": contact.get("first_name") or "",
        "lastname": contact.get("last_name") or "",
        "company": contact.get("company") or "",
        "jobtitle": contact.get("job_title") or "",
        "industry": (contact.get("industry") or "").upper(),
        "lifecyclestage": contact.get("lifecycle_stage") or "",
        "country": contact.get("country") or "",
        "hs_timezone": zone.lower().replace("/", "_slash_"),
        "hs_email_optout": "true" if contact.get("opted_out") else "false",
        "herald_vip": "true" if contact.get("vip") else "false",
        "herald_open_deal_value": str(contact.get("deal_value_minor") or 0),
    }


def demo_tenants(directory: Path, crm_url: str, token_file: Path) -> Path:
    """The sample tenant's file, its CRM pointed at the loopback HubSpot (a real portal: see the README)."""
    tenant = yaml.safe_load((REPO_ROOT / "samples" / "tenants" / "acme.yaml").read_text())
    # each reply is read, answered or handed on (README, "reply_handling")
    tenant["workflows"] = {**(tenant.get("workflows") or {}), "reply_handling": {}}
    tenant["crm"] = {
        "kind": "hubspot",
        "hubspot_base_url": crm_url,
        "hubspot_token_file": str(token_file),
        "properties": {**DEFAULT_CONTACT_PROPERTIES, **ACME_PROPERTIES},
    }
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "acme.yaml").write_text(yaml.safe_dump(tenant, sort_keys=False))
    return directory


#: the demo's reviewer, as Acme's identity provider would sign her in: a marketer and one of Acme's leads
DEMO_REVIEWER = "dana@acmerelay.example"
DEMO_REVIEWER_GROUPS = ("acme-marketing", "acme-leads")


def _reviewer_token(services: ServiceSet) -> str:
    return mint(services.config, DEMO_REVIEWER, DEMO_REVIEWER_GROUPS)


def _review_client(services: ServiceSet) -> httpx.AsyncClient:
    """The review API, as the demo's signed-in reviewer."""
    headers = {"Authorization": f"Bearer {_reviewer_token(services)}"}
    return httpx.AsyncClient(base_url=services.review_url, timeout=30, headers=headers)


async def _approve(services: ServiceSet, review_id: str) -> list[str]:
    """Approve an item as the demo's reviewer; a high-risk one (four eyes) also as a second of Acme's leads.
    Returns who approved."""
    approvers = [DEMO_REVIEWER]
    async with _review_client(services) as review:
        response = await review.post(f"/v1/reviews/{review_id}/approve", json={"reason": "approved by the demo"})
        response.raise_for_status()
        if response.json()["status"] != "pending":
            return approvers
    second = "lee@acmerelay.example"
    token = mint(services.config, second, ("acme-leads",))
    async with httpx.AsyncClient(base_url=services.review_url, timeout=30) as review:
        response = await review.post(
            f"/v1/reviews/{review_id}/approve",
            json={"reason": "second approver (four eyes)"},
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
    return [*approvers, second]


def _cli_keys(services: ServiceSet) -> ServiceKeys:
    """The operator's CLI's service key (what the executor's read tools answer besides the planner)."""
    return ServiceKeys(services.config.service_keys_dir, "cli")


def _run(services: ServiceSet, *args: str) -> str:
    binary = Path(sys.executable).with_name(args[0])
    result = subprocess.run(
        [str(binary), *args[1:]],
        env={
            **os.environ,
            **services.common_env(),
            "HERALD_LOG_LEVEL": "WARNING",
            "HERALD_TOKEN": _reviewer_token(services),
        },
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


async def _audit(bootstrap: str, topic: str, settle: float) -> list[tuple[dict[str, str], bytes]]:
    """Read the whole audit topic; stop once nothing new arrived for `settle` seconds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", isolation_level="read_committed"
    )
    await consumer.start()
    records: list[tuple[dict[str, str], bytes]] = []
    quiet_since = time.monotonic()
    try:
        while time.monotonic() - quiet_since < settle:
            batch = await consumer.getmany(timeout_ms=300)
            for part in batch.values():
                for r in part:
                    records.append(({k: v.decode() for k, v in r.headers or ()}, r.value or b""))
            if batch:
                quiet_since = time.monotonic()
    finally:
        await consumer.stop()
    return records


def _types(records: list[tuple[dict[str, str], bytes]]) -> Counter[str]:
    return Counter(h.get("ce_type", "?") for h, _ in records)


async def _post_batch(
    client: httpx.AsyncClient,
    url: str,
    tenant: dict,
    stamp: str,  # type: ignore[type-arg]
    contacts: list[dict],
) -> int:  # type: ignore[type-arg]
    batch = [
        {
            "eventId": int(f"{stamp[-8:]}{c['contact_id'] % 1000:03d}"),
            "subscriptionId": 4242,
            "portalId": tenant["hubspot_portal_id"],
            "appId": 1,
            "occurredAt": int(time.time() * 1000),
            "subscriptionType": "contact.creation",
            "attemptNumber": 0,
            "objectId": c["contact_id"],
            "changeSource": "CRM",
        }
        for c in contacts
    ]
    body = json.dumps(batch).encode()
    ts = int(time.time() * 1000)
    response = await client.post(
        url,
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-HubSpot-Request-Timestamp": str(ts),
            "X-HubSpot-Signature-v3": hubspot_signature(tenant["hubspot_app_secret"], "POST", url, body, str(ts)),
        },
    )
    response.raise_for_status()
    return int(response.json()["accepted"])


async def _wait_for(check, what: str, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.5)
    raise SystemExit(f"demo: timed out waiting for {what}")


async def demo(config: StackConfig) -> None:
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    prefix = f"demo{stamp}."
    database = f"herald_demo_{stamp}"
    admin = await asyncpg.connect(config.pg_dsn)
    await admin.execute(f'CREATE DATABASE "{database}"')
    await admin.close()
    pg_dsn = config.pg_dsn.rsplit("/", 1)[0] + f"/{database}"
    await ensure_topics(CommonSettings(kafka_bootstrap=config.kafka_bootstrap, topic_prefix=prefix, pg_dsn=pg_dsn))
    tenant = yaml.safe_load((SAMPLE / "tenant.yaml").read_text())
    logs = config.state_dir / "demo" / stamp
    sample = [json.loads(line) for line in (SAMPLE / "contacts.jsonl").read_text().splitlines()]
    token_file = logs / "hubspot-token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(f"pat-demo-{stamp}")
    async with hubspot_api(
        token_file.read_text(), {str(c["contact_id"]): hubspot_properties(c) for c in sample}
    ) as crm:
        await _run_demo(config, stamp, prefix, database, pg_dsn, tenant, logs, sample, crm, token_file)


async def _run_demo(
    config: StackConfig,
    stamp: str,
    prefix: str,
    database: str,
    pg_dsn: str,
    tenant: dict,  # type: ignore[type-arg]
    logs: Path,
    sample: list[dict],  # type: ignore[type-arg]
    crm: HubSpotApi,
    token_file: Path,
) -> None:
    services = ServiceSet(
        config,
        prefix,
        pg_dsn,
        demo_tenants(logs / "tenants", crm.url, token_file),
        logs,
        extra_env={
            "HERALD_RETRIEVAL_COLLECTION": f"KnowledgeChunkDemo{stamp}",
            "HERALD_RETRIEVAL_MEMORY_COLLECTION": f"MemoryDemo{stamp}",
        },
    )
    print(f"▶ starting the six services (topic prefix {prefix!r}, database {database}) …")
    started = time.monotonic()
    services.start_all()
    try:
        print(f"  all ready in {time.monotonic() - started:.1f}s: " + ", ".join(services.replicas))
        print("▶ " + _run(services, "herald-retrieval", "load-kb", "--tenant", "acme", "--dir", str(SAMPLE / "kb")))
        policy = logs / "policy.yaml"
        policy.write_text(POLICY)
        _run(services, "herald", "policy", "apply", str(policy), "--note", "the demo's rules")
        print(
            "▶ applied Acme's demo policy: VIP and deal-value escalations, and Ledgerly (not a public reference) "
            "never named in an email"
        )
        await _wait_for(lambda: _policy_live(services), "the demo policy on the guard", timeout=60)
        print(
            f"▶ Acme's CRM: a HubSpot-shaped CRM API on loopback ({crm.url}) holding {len(sample)} contacts; "
            "Herald's contact store is empty"
        )
        contacts = sample[:LEADS]
        url = f"{services.ingest_url}/v1/webhooks/hubspot/acme"
        audit_topic = f"{prefix}herald.audit.v1"
        accepted = 0
        reviewed = None
        async with (
            httpx.AsyncClient(timeout=30) as client,
            _review_client(services) as review,
        ):
            for start in range(0, LEADS, 10):
                accepted += await _post_batch(client, url, tenant, stamp, contacts[start : start + 10])
                if reviewed is None:
                    # the first batch holds a VIP: a human approves it before the rest arrive
                    async def pending():  # type: ignore[no-untyped-def]
                        return (await review.get("/v1/reviews", params={"tenant": "acme", "status": "pending"})).json()

                    first = (await _wait_for(pending, "the VIP's review item"))[0]
                    approvers = await _approve(services, first["review_id"])
                    reviewed = first
                    print(
                        f"▶ VIP contact {first['contact_id']} was escalated; approved review {first['review_id']} "
                        f"through the review API by {' and then '.join(approvers)}"
                    )
        opted_out = sum(1 for c in contacts if c["opted_out"])
        vips = sum(1 for c in contacts if c["vip"] or c["deal_value_minor"] >= 5_000_000)
        print(
            f"▶ posted {LEADS} new leads as signed HubSpot webhooks naming only their objectId ({accepted} accepted; "
            f"their properties read in {crm.calls[CONTACTS_READ]} batch reads of HubSpot's CRM API): "
            f"{opted_out} opted out, {vips} VIP, hourly cap {tenant['limits']['emails_per_hour']}"
        )

        async def settled():  # type: ignore[no-untyped-def]
            types = _types(await _audit(config.kafka_bootstrap, audit_topic, settle=1.0))
            decided = (
                types["herald.action.approved.v1"]
                + types["herald.action.blocked.v1"]
                + types["herald.review.requested.v1"]
            )
            return types if decided >= LEADS + 1 else None

        await _wait_for(settled, "every lead to be decided")
        async with _review_client(services) as review:
            still_pending = len((await review.get("/v1/reviews", params={"tenant": "acme"})).json())

        async def all_executed():  # type: ignore[no-untyped-def]
            records = await _audit(config.kafka_bootstrap, audit_topic, settle=1.0)
            types = _types(records)
            return records if types["herald.action.executed.v1"] >= types["herald.action.approved.v1"] else None

        records = await _wait_for(all_executed, "every approval to be executed")
        _summary(records, config, services, prefix, database, still_pending, logs)
        await _campaign(services, tenant["first_touch"]["campaign_id"])
        await _sequence(config, services, pg_dsn, audit_topic, records)
        await _qualification(services, pg_dsn, logs / "tenants" / "acme.yaml")
        await _why(records, services)
        await _campaign_task(services, logs)
    finally:
        services.stop_all()


async def _policy_live(services: ServiceSet) -> bool:
    replica = services.replicas["guard-0"]
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(f"http://127.0.0.1:{replica.ops_port}/v1/policies/acme")
    return response.status_code == 200 and str(response.json().get("version", "")).startswith("v1-")


async def _runs_of(pg_dsn: str, workflow: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(pg_dsn)
    try:
        return await conn.fetch(
            "SELECT contact_id, state, data->>'exit' AS exit FROM planner.workflow_runs WHERE workflow = $1", workflow
        )
    finally:
        await conn.close()


async def _runs(pg_dsn: str) -> Counter[str]:
    rows = await _runs_of(pg_dsn, "new_lead_sequence")
    return Counter(f"{r['state']} ({r['exit']})" if r["exit"] else r["state"] for r in rows)


def _reply_to(to: str, name: str, message_id: str, text: str, **headers: str) -> bytes:
    """A reply to one of Herald's emails as a mail client writes it: in its thread, quoting it."""
    reply = EmailMessage()
    reply["From"] = f"{name} <{to}>"
    reply["To"] = "Maya from Acme Relay <maya@acmerelay.example>"
    reply["Subject"] = "Re: your note"
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = f"<demo-{message_id.strip('<>').split('@')[0]}@mail.client.example>"
    reply["In-Reply-To"] = message_id
    reply["References"] = message_id
    for field, value in headers.items():
        del reply[field.replace("_", "-")]  # a header given replaces the default (Subject)
        reply[field.replace("_", "-")] = value
    reply.set_content(f"{text}\n\nOn Monday, Maya from Acme Relay <maya@acmerelay.example> wrote:\n> Hi {name},\n")
    return reply.as_bytes()


async def _replies(  # type: ignore[no-untyped-def]
    services: ServiceSet, pg_dsn: str, records, sent: list[ActionExecuted]
) -> None:
    """Three leads answer an email they got, raw at the inbound edge: a question (answered in its thread), an
    out-of-office (the next touch waits for the return) and an opt-out by reply."""
    proposed = {
        a.action_id: a
        for a in (ActionProposed.model_validate_json(v) for h, v in records if h.get("ce_type") == ActionProposed.TYPE)
    }
    chosen = [e for e in sent if e.action_id in proposed and e.result.get("message_id")][:3]
    back = datetime.now(UTC) + timedelta(days=DRILL_DAYS + 12)  # after touch 3 would go
    said = [
        ("Does your single sign-on work with Okta? We would roll it out to 40 dispatchers.", {}),
        (
            f"I am out of the office until {back:%A, %B} {back.day}, {back.year}, with limited access to email.",
            {"Auto_Submitted": "auto-replied", "Subject": "Automatic reply: your note"},
        ),
        ("Please stop emailing me.", {}),
    ]
    async with httpx.AsyncClient(timeout=30) as client:
        for executed, (text, headers) in zip(chosen, said, strict=False):
            email = proposed[executed.action_id].input
            assert isinstance(email, SendEmailInput)
            raw = _reply_to(email.to, email.to_name or "there", str(executed.result["message_id"]), text, **headers)
            response = await client.post(
                f"{services.ingest_url}/v1/inbound/acme/email", content=raw, headers={"Content-Type": "message/rfc822"}
            )
            response.raise_for_status()

    async def read() -> dict[str, str] | None:
        states = {r["contact_id"]: r["state"] for r in await _runs_of(pg_dsn, "reply_handling")}
        return states if len(states) >= len(chosen) and not {"reading", "answering"} & set(states.values()) else None

    states = await _wait_for(read, "the three replies read and handled")
    question, away, stop = (e.contact_id for e in chosen)
    print("   raw at POST /v1/inbound/acme/email, each read as ReplyReceived, then by reply_handling:")
    print(f"   {question}: “Does your single sign-on work with Okta? …” → {states.get(question)} in its thread")
    print(f"   {away}: an out-of-office until {back:%Y-%m-%d} → touch 3 waits for the return")
    print(f"   {stop}: “Please stop emailing me.” → {states.get(stop)}: email consent withdrawn, sequence ended")


#: what Acme's file says of its best customers when it turns qualification on (README, "lead_qualification")
QUALIFICATION = {
    "icp": {"industries": ["logistics", "manufacturing"], "company_size": {"min": 100, "max": 5000}},
    "hot_at": 70,
    "warm_at": 40,
}
#: three sign-ups from Acme's website, sent as CloudEvents: a hot, a warm and a cold lead
SIGN_UPS = (
    ("5100901", "Noor", "Haddad", "COO", "Fleetwise Logistics", "logistics", 1200, "ana.ortiz@acmerelay.example"),
    ("5100902", "Lena", "Vogel", "Director of Operations", "Vogel Werke", "manufacturing", 20_000, None),
    ("5100903", "Sam", "Okafor", "Dispatcher", "Corner Goods", "retail", 300, None),
)


def _turn_on_qualification(tenant_file: Path) -> None:
    tenant = yaml.safe_load(tenant_file.read_text())
    workflows = tenant["workflows"]
    workflows["lead_qualification"] = QUALIFICATION
    workflows["new_lead_sequence"] = {**(workflows.get("new_lead_sequence") or {}), "start_on": "warm_lead"}
    written = tenant_file.with_suffix(".next")
    written.write_text(yaml.safe_dump(tenant, sort_keys=False))
    written.replace(tenant_file)  # in one step: a service never reads half a file


async def _qualification(services: ServiceSet, pg_dsn: str, tenant_file: Path) -> None:
    """Acme turns `lead_qualification` on (its sequence now starts only for warm leads); three sign-ups arrive as
    CloudEvents and are scored: the hot one is handed to its owner through review, the warm one gets touch 1,
    the cold one is only scored."""
    _turn_on_qualification(tenant_file)
    await asyncio.sleep(2.5)  # the services re-read tenant files at most once a second
    print("\n▶ Acme turns on lead_qualification (its ideal customer: logistics or manufacturing, 100–5000 people);")
    print("  the sequence now starts only for warm leads. Three sign-ups arrive as CloudEvents (POST /v1/events):")
    async with httpx.AsyncClient(timeout=30) as client:
        for contact_id, first, last, title, company, industry, size, owner in SIGN_UPS:
            domain = company.lower().replace(" ", "") + ".example"
            contact = {
                "contact_id": contact_id,
                "email": f"{first.lower()}@{domain}",
                "first_name": first,
                "last_name": last,
                "company": company,
                "job_title": title,
                "industry": industry,
                "company_size": size,
                "owner": owner,
                "lifecycle_stage": "lead",
                "timezone": "America/Chicago",
            }
            event = {
                "specversion": "1.0",
                "id": f"signup-{contact_id}-{time.time_ns()}",
                "source": "acmerelay.example/signup",
                "type": "herald.contact.created.v1",
                "tenant": "acme",
                "data": {
                    "contact": contact,
                    "upstream_source": "website",
                    "upstream_event_id": f"signup-{contact_id}",
                    "occurred_at": datetime.now(UTC).isoformat(),
                },
            }
            response = await client.post(
                f"{services.ingest_url}/v1/events",
                content=json.dumps(event),
                headers={"Content-Type": "application/cloudevents+json"},
            )
            response.raise_for_status()
    ids = [s[0] for s in SIGN_UPS]

    async def scored():  # type: ignore[no-untyped-def]
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch(
                "SELECT contact_id, workflow, state, data::text AS data FROM planner.workflow_runs "
                "WHERE contact_id = ANY($1::text[])",
                ids,
            )
        finally:
            await conn.close()
        runs = {(r["contact_id"], r["workflow"]): (r["state"], json.loads(r["data"])) for r in rows}
        warm = (ids[1], "new_lead_sequence")  # started by the warm lead's score, read back from the plan topic
        return runs if all((i, "lead_qualification") in runs for i in ids) and warm in runs else None

    runs = await _wait_for(scored, "the three sign-ups scored")
    async with _review_client(services) as review:

        async def handed():  # type: ignore[no-untyped-def]
            items = (await review.get("/v1/reviews", params={"tenant": "acme", "status": "pending"})).json()
            return next((i for i in items if i["contact_id"] == ids[0]), None)

        item = await _wait_for(handed, "the hot lead's hand-off in the review queue")
    for contact_id, first, last, title, *_ in SIGN_UPS:
        state, data = runs[(contact_id, "lead_qualification")]
        sequence = runs.get((contact_id, "new_lead_sequence"))
        then = {
            "with_owner": "handed to a person: waiting in review",
            "scored": "in the sequence (touch 1)" if sequence else "scored only",
        }.get(state, state)
        print(f"   {first} {last}, {title}: score {data['score']} ({data['tier']}) → {then}")
    print(f"   review item {item['review_id']}: {item['action']['review_reason']}")
    print(f"   why: {item['action']['rationale']}")


def _restart_with_clock(services: ServiceSet, days: float) -> None:
    """The drill: the planner and the guard restarted with their clocks `days` ahead (waits, caps and send
    windows all see the same day)."""
    for name, variable in (
        ("planner-0", "HERALD_PLANNER_CLOCK_OFFSET_SECONDS"),
        ("guard-0", "HERALD_GUARD_CLOCK_OFFSET_SECONDS"),
    ):
        services.stop(name)
        services.replicas[name].env[variable] = str(days * 86_400)
        services.start(name)


async def _sequence(
    config: StackConfig,
    services: ServiceSet,
    pg_dsn: str,
    audit_topic: str,
    records: list[tuple[dict[str, str], bytes]],
) -> None:
    """The clock moves; the leads who did nothing get touch 2 in the thread of touch 1; a day later three answer it."""
    sent = [ActionExecuted.model_validate_json(v) for h, v in records if h.get("ce_type") == ActionExecuted.TYPE]
    sent = [e for e in sent if e.status.value == "succeeded"]
    blocked = [ActionBlocked.model_validate_json(v) for h, v in records if h.get("ce_type") == ActionBlocked.TYPE]
    redrafted = [b for b in blocked if b.rule == "content.unreferenceable_customer"]
    print(
        f"\n▶ new_lead_sequence: touch 1 sent to {len(sent)} leads; {len(redrafted)} draft(s) blocked by "
        "content.unreferenceable_customer and drafted again without that customer"
    )
    print(f"   runs: {dict(await _runs(pg_dsn))}")
    print(f"▶ drill: the planner's and the guard's clocks move {DRILL_DAYS} days ahead (restarted with an offset)")
    _restart_with_clock(services, DRILL_DAYS)

    async def touched_again():  # type: ignore[no-untyped-def]
        """Every touch-2 timer fired and every touch it started decided and, when approved, executed."""
        conn = await asyncpg.connect(pg_dsn)
        try:
            pending = await conn.fetchval(
                "SELECT count(*) FROM planner.timers WHERE state = 'pending' AND name = 'touch_2'"
            )
        finally:
            await conn.close()
        runs = await _runs(pg_dsn)
        if pending or runs["touching"]:
            return None
        audit = await _audit(config.kafka_bootstrap, audit_topic, settle=1.0)
        types = _types(audit)
        return audit if types["herald.action.executed.v1"] >= types["herald.action.approved.v1"] else None

    audit = await _wait_for(touched_again, "touch 2 for the leads who did nothing", timeout=180)
    first = {s.action_id for s in sent}
    second = [
        e
        for e in (ActionExecuted.model_validate_json(v) for h, v in audit if h.get("ce_type") == ActionExecuted.TYPE)
        if e.action_id not in first and e.status.value == "succeeded"
    ]
    runs = await _runs(pg_dsn)
    print(
        f"▶ touch 2 sent in the thread of touch 1 to {len(second)} lead(s); touches waiting for a reviewer (VIPs): "
        f"{runs['awaiting_review']}"
    )
    print(f"   runs: {dict(runs)}")
    follow_up = second[0] if second else None
    if follow_up is not None:
        text = await _explained(services, follow_up.action_id, "step by step", "touch 2's story")
        print(f"\n▶ why? herald explain {follow_up.action_id}   (touch 2 of a sequence)\n{text}")
    print("\n▶ a day later (the drill's clocks one more day ahead), three leads answer touch 2")
    _restart_with_clock(services, DRILL_DAYS + 1)
    await _replies(services, pg_dsn, audit, second)
    print(f"   runs: {dict(await _runs(pg_dsn))}")


def _summary(
    records,
    config: StackConfig,
    services: ServiceSet,
    prefix: str,
    database: str,  # type: ignore[no-untyped-def]
    pending: int,
    logs: Path,
) -> None:
    types = _types(records)
    blocked = Counter(
        ActionBlocked.model_validate_json(v).rule for h, v in records if h.get("ce_type") == ActionBlocked.TYPE
    )
    executed = [ActionExecuted.model_validate_json(v) for h, v in records if h.get("ce_type") == ActionExecuted.TYPE]
    message_ids = {str(e.result.get("message_id")) for e in executed if e.status.value == "succeeded"}
    in_mailbox = 0
    for folder in ("new", "cur"):
        directory = config.maildir / folder
        for path in directory.iterdir() if directory.is_dir() else []:
            with path.open("rb") as handle:
                if BytesParser().parse(handle, headersonly=True).get("Message-ID", "").strip() in message_ids:
                    in_mailbox += 1
    line = "─" * 64
    print(f"\n{line}\n Herald demo — tenant acme (Acme Relay)\n{line}")
    print(f" events in (ContactCreated)        {types['herald.contact.created.v1']:>5}")
    print(f" opt-outs recorded (from HubSpot)  {types['herald.consent.withdrawn.v1'] // 2:>5}")
    print(f" plans                             {types['herald.plan.created.v1']:>5}")
    print(f" proposals (send_email)            {types['herald.action.proposed.v1']:>5}")
    print(f" approved (signed by the guard)    {types['herald.action.approved.v1']:>5}")
    print(
        f" escalated to review               {types['herald.review.requested.v1']:>5}   "
        f"(1 approved through the review API, {pending} still pending)"
    )
    print(f" blocked by rule                   {sum(blocked.values()):>5}")
    for rule, count in blocked.most_common():
        print(f"   {rule:<32}{count:>5}")
    print(f" executed                          {len(executed):>5}")
    print(f" emails in the SMTP mailbox        {in_mailbox:>5}   ({config.maildir})")
    print(f" audit messages                    {len(records):>5}")
    print(f"{line}\n Look further:")
    print(f"   mailbox        ls {config.maildir}/new")
    print(f"   audit topic    {prefix}herald.audit.v1 on {config.kafka_bootstrap}")
    print(
        f"   database       psql {config.pg_dsn.rsplit('/', 1)[0]}/{database}  "
        "(guard.decisions, planner.workflow_runs, executor.ledger, review.items)"
    )
    print(f"   service logs   {logs}/  (JSON lines with tenant, correlation and action ids)")
    print("   the stack      make status | make down")


async def _campaign(services: ServiceSet, campaign_id: str) -> None:
    """The first-touch campaign's figures, as the planner's LLM would read them: the executor's read tool."""
    async with httpx.AsyncClient(base_url=services.executor_url, timeout=30) as executor:
        response = await executor.post(
            "/v1/tools/fetch_campaign_stats",
            json={"tenant": "acme", "input": {"campaign_id": campaign_id}},
            headers={"Authorization": f"Bearer {_cli_keys(services).token('executor')}"},
        )
    response.raise_for_status()
    print(f"\n▶ fetch_campaign_stats {campaign_id} (a read tool: no approval, POST /v1/tools/fetch_campaign_stats)")
    for variant in response.json()["variants"]:
        figures = ", ".join(
            f"{variant[k]} {k}"
            for k in ("sends", "deliveries", "opens", "clicks", "replies", "bounces", "unsubscribes")
        )
        print(f"   variant {variant['variant']:<10} {figures}")


async def _explained(services: ServiceSet, action_id: str, until: str, what: str) -> str:
    """`herald explain`'s text for the action, once the audit index holds enough of it to say `until`."""
    async with _review_client(services) as review:

        async def story():  # type: ignore[no-untyped-def]
            response = await review.get(f"/v1/explain/{action_id}", params={"format": "text"})
            return response.text if response.status_code == 200 and until in response.text else None

        text: str = await _wait_for(story, f"{what} in the audit index", timeout=60)
    return text


async def _why(records, services: ServiceSet) -> None:  # type: ignore[no-untyped-def]
    """Explain one blocked action from the audit, and check the audit's hash chain."""
    blocked = [ActionBlocked.model_validate_json(v) for h, v in records if h.get("ce_type") == ActionBlocked.TYPE]
    if blocked:
        action_id = blocked[0].action_id
        text = await _explained(services, action_id, "blocked by", "the blocked action's story")
        print(f"\n▶ why? herald explain {action_id}\n{text}")
    print(f"▶ herald audit verify\n{_run(services, 'herald', 'audit', 'verify')}")


#: the demo's defined campaign task (README, "Campaign tasks"): Acme's ideal customers, about its approvals
CAMPAIGN_BRIEF = {
    "campaign_id": "approvals-launch",
    "topic": "approval workflows for operations teams",
    "goal": "book a 20-minute demo",
    "segment": {"industries": ["logistics", "manufacturing"], "seniorities": ["c_level", "vp", "director"]},
    "variants": {"proof": "lead with a customer result", "question": "open with a question about their approvals"},
    "max_contacts": 200,
}


async def _campaign_task(services: ServiceSet, logs: Path) -> None:
    """Acme's marketer submits a defined campaign task with `herald task`; its sends wait in review as one batch."""
    brief = logs / "approvals-brief.yaml"
    brief.write_text(yaml.safe_dump(CAMPAIGN_BRIEF, sort_keys=False))
    segment = CAMPAIGN_BRIEF["segment"]
    print(
        f"\n▶ a campaign task: herald task --tenant acme --brief {brief.name} --wait "
        f"(about {CAMPAIGN_BRIEF['topic']!r}; {', '.join(segment['industries'])} leads at director level and above; "
        f"variants {', '.join(CAMPAIGN_BRIEF['variants'])})"
    )
    output = _run(services, "herald", "task", "--tenant", "acme", "--brief", str(brief), "--wait", "--timeout", "120")
    task_id = output.splitlines()[0]
    for line in output.splitlines()[1:]:
        print(f"  {line}")
    async with _review_client(services) as review:

        async def batch():  # type: ignore[no-untyped-def]
            params = {"tenant": "acme", "status": "pending", "task": task_id}
            return (await review.get("/v1/reviews", params=params)).json()

        items = await _wait_for(batch, "the task's batch in the review queue")
    print(f"  waiting in review as one batch (GET /v1/reviews?task={task_id}): {len(items)} item(s)")
    for item in items[:8]:
        action = item["action"]
        contact = action["contact"]
        print(
            f"    {item['contact_id']} {contact.get('job_title') or ''}, {contact.get('industry')}: "
            f"{action['variant']} “{action['input']['subject']}”",
        )
    if len(items) > 8:
        print(f"    … and {len(items) - 8} more")
    if items:
        print(f"  why: {items[0]['action']['review_reason']}")


def main() -> None:
    config = StackConfig()
    up(config, topics=False)
    asyncio.run(demo(config))


if __name__ == "__main__":
    main()
