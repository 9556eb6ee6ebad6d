"""`lead_qualification` end to end beside a sequence that starts on warm leads: four new leads come in as
CloudEvents; each is scored against the tenant's ideal-customer profile and its score and lead status written once
to the CRM through the guard and the executor. The hot lead (a COO at a logistics company of the right size) is
handed to its owner through review and gets no email; the warm one gets touch 1 of the sequence; the cold ones get
nothing. Then the warm lead clicks and books a meeting: it goes hot, its score is written a second time (a new
tier) and its sequence ends; an open of a cold lead's email that leaves it cold writes nothing.
Read back from the CRM store, the review queue, the planner's runs, the plan topic and the SMTP server."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from sequence_support import approve_review, lead, mails, new_lead, pending_review, runs_by_workflow, upstream

from herald_core.contracts import LeadQualified, LeadTier
from herald_core.topics import PLAN
from support import bodies, eventually, mails_to, post_event, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

PROFILE = {"icp": {"industries": ["logistics"], "company_size": {"min": 100, "max": 5000}}, "hot_at": 70, "warm_at": 40}


async def _writes(herald, tenant: str) -> dict[str, list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    """Every CRM write of the tenant, by contact, oldest first."""
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        rows = await conn.fetch(
            "SELECT contact_id, properties::text AS p FROM crm.writes WHERE tenant = $1 ORDER BY written_at, action_id",
            tenant,
        )
    finally:
        await conn.close()
    found: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        found.setdefault(row["contact_id"], []).append(json.loads(row["p"]))
    return found


async def _engaged(herald, tenant: str, contact_id: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    body = upstream(contact_id=contact_id, kind=kind, message_id=f"<{secrets.token_hex(6)}@herald.local>")
    posted = await post_event(herald, tenant, "herald.message.engagement.v1", body)
    assert posted.status_code == 202, posted.text


async def test_leads_are_scored_written_once_per_tier_and_routed(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"lq{secrets.token_hex(3)}",
        workflows={"lead_qualification": PROFILE, "new_lead_sequence": {"start_on": "warm_lead"}},
        limits={"emails_per_hour": 1000, "emails_per_contact_per_day": 10},
    )
    herald.load_kb(tenant)
    run = secrets.token_hex(3)
    leads = {
        # 30 (c-level) + 25 (logistics) + 15 (size): hot
        "hana": lead(run, "hana", job_title="COO", company_size=1200, owner="ana.ortiz"),
        # 20 (director) + 25: warm
        "wes": lead(run, "wes", job_title="Director of Operations", company_size=20_000),
        # 10 (manager) + 25: cold
        "cole": lead(run, "cole", job_title="Operations Manager"),
        # 0 + 0 (retail) + 15: cold
        "cara": lead(run, "cara", job_title="Dispatcher", industry="retail", company_size=300),
    }
    ids = {name: str(c["contact_id"]) for name, c in leads.items()}
    for contact in leads.values():
        await new_lead(herald, tenant, contact)

    async def scored() -> dict[str, list[dict[str, str]]] | None:
        writes = await _writes(herald, tenant)
        return writes if {ids["wes"], ids["cole"], ids["cara"]} <= set(writes) else None

    writes = await eventually(scored, timeout=90, what="the warm and cold leads' scores written")
    assert writes[ids["wes"]] == [{"lead_score": "45", "lead_status": "NEW"}]
    assert writes[ids["cole"]] == [{"lead_score": "35", "lead_status": "UNQUALIFIED"}]
    assert writes[ids["cara"]] == [{"lead_score": "15", "lead_status": "UNQUALIFIED"}]
    assert ids["hana"] not in writes  # a person decides the hot lead's hand-off first

    # the hot lead waits for its owner in review, with its score explained; approved, it is written
    pending = await pending_review(herald, tenant, ids["hana"], "hana's hand-off in the review queue", timeout=60)
    action = pending["action"]
    assert action["tool"] == "update_crm_record"
    assert action["review_reason"] == "a hot lead (score 70, hot from 70): owner ana.ortiz takes it from here"
    assert "seniority 'COO' → c_level +30" in action["rationale"]
    await approve_review(herald, pending["review_id"])

    async def handed_off() -> dict[tuple[str, str], dict[str, object]] | None:
        runs = await runs_by_workflow(herald, tenant)
        return runs if runs.get((ids["hana"], "lead_qualification"), {}).get("state") == "handed_off" else None

    runs = await eventually(handed_off, timeout=60, what="hana handed to her owner")
    hana = (await _writes(herald, tenant))[ids["hana"]]
    assert len(hana) == 1 and hana[0]["lead_score"] == "70" and hana[0]["lead_status"] == "OPEN"
    assert hana[0]["next_step"].startswith("Take up this hot lead (score 70")

    # only the warm lead is in a sequence, and only it got an email
    sequences = {contact for contact, workflow in runs if workflow == "new_lead_sequence"}
    assert sequences == {ids["wes"]}
    await mails(herald, str(leads["wes"]["email"]), 1, "touch 1 to the warm lead")
    for name in ("hana", "cole", "cara"):
        assert mails_to(herald.maildir, str(leads[name]["email"])) == [], name

    # an open leaves cole cold: nothing written; wes clicks and books a meeting: hot, written again, sequence over
    await _engaged(herald, tenant, ids["cole"], "opened")
    await _engaged(herald, tenant, ids["wes"], "clicked")
    starts = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    booked = await post_event(
        herald, tenant, "herald.meeting.booked.v1", upstream(contact_id=ids["wes"], title="Intro", starts_at=starts)
    )
    assert booked.status_code == 202, booked.text

    async def wes_hot() -> dict[tuple[str, str], dict[str, object]] | None:
        runs = await runs_by_workflow(herald, tenant)
        return runs if runs.get((ids["wes"], "lead_qualification"), {}).get("state") == "with_owner" else None

    runs = await eventually(wes_hot, timeout=60, what="the warm lead gone hot")
    assert runs[(ids["wes"], "new_lead_sequence")]["state"] == "exited"
    assert runs[(ids["cole"], "lead_qualification")]["engagement"] == {  # type: ignore[comparison-overlap]
        "opened": 1,
        "clicked": 0,
        "replied": 0,
        "meetings": 0,
    }
    records = await read_topic(herald.bootstrap, PLAN.full_name(herald.prefix))
    tiers = [(q.contact.contact_id, q.tier, q.score) for q in bodies(records, LeadQualified, *ids.values())]
    assert sorted(t for t in tiers if t[0] == ids["wes"]) == sorted(
        [(ids["wes"], LeadTier.WARM, 45), (ids["wes"], LeadTier.HOT, 75)]  # 45 + 5 (click) + 25 (meeting)
    )
    assert [t for t in tiers if t[0] == ids["cole"]] == [(ids["cole"], LeadTier.COLD, 35)]
    assert len((await _writes(herald, tenant))[ids["cole"]]) == 1
