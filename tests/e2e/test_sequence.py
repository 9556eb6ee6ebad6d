"""`new_lead_sequence` end to end: touch 1 for every lead, then, on a moved clock across planner restarts, touch 2
and the last touch in the thread of the first — for the leads who did nothing. A reply, a colleague's reply
(opted in), a booked meeting and an unsubscribe end a lead's sequence; so does a reply recorded before the
lead's wait was even set (its touch 1 was in review: it is withdrawn, and its approval sends nothing). An edit
of the sequence while runs are in flight changes no run already started, and no touch is sent twice. Read
back from the mailbox and from Postgres."""

from __future__ import annotations

import asyncio
import json
import secrets

import pytest
import yaml
from sequence_support import lead, mails, new_lead, planner_clock, reply_from, runs_of, timers_of, upstream
from test_review_edit import after_review

from herald_core.contracts import ActionBlocked
from support import eventually, mails_to, part_of, post_event

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

SEQUENCE = {"new_lead_sequence": {"waits_business_days": [3, 4], "exit_on_company_reply": True}}


async def _review_item(herald, tenant: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    async with herald.review_client() as client:

        async def look() -> dict[str, object] | None:
            items = (await client.get("/v1/reviews", params={"tenant": tenant, "status": "pending"})).json()
            return items[0] if items else None

        item: dict[str, object] = await eventually(look, timeout=60, what="the VIP's touch in the review queue")
        return item


async def _settled(herald, tenant: str, states: dict[str, str]) -> dict[str, dict[str, object]]:  # type: ignore[no-untyped-def]
    async def look() -> dict[str, dict[str, object]] | None:
        runs = await runs_of(herald, tenant)
        return runs if all(runs.get(c, {}).get("state") == s for c, s in states.items()) else None

    runs: dict[str, dict[str, object]] = await eventually(look, timeout=60, what=f"runs in states {states}")
    return runs


async def test_a_three_touch_sequence_runs_to_the_end_and_stops_for_whoever_answers(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(
        f"seq{secrets.token_hex(3)}",
        workflows=SEQUENCE,
        limits={"emails_per_hour": 1000, "emails_per_contact_per_day": 10},
    )
    herald.load_kb(tenant)
    run = secrets.token_hex(3)
    leads = {name: lead(run, name) for name in ("ada", "bo", "dee", "eve", "fay", "gus")}
    leads["cy"] = lead(run, "cy", vip=True)
    for contact in leads.values():
        await new_lead(herald, tenant, contact)

    first = {
        name: (await mails(herald, c["email"], 1, f"touch 1 to {name}"))[0] for name, c in leads.items() if name != "cy"
    }
    for name, mail in first.items():
        assert mail["In-Reply-To"] is None, f"touch 1 to {name} starts its thread"
        assert "Northwind Freight cut" not in part_of(mail, "plain"), "their own company's story is not theirs to hear"

    # the VIP's touch 1 waits for a person; the VIP answers meanwhile: recorded before any wait was set
    item = await _review_item(herald, tenant)
    await reply_from(herald, tenant, leads["cy"]["contact_id"])
    await reply_from(herald, tenant, leads["bo"]["contact_id"])
    booked = await post_event(
        herald,
        tenant,
        "herald.meeting.booked.v1",
        upstream(contact_id=leads["dee"]["contact_id"], title="Intro call", starts_at="2030-01-07T15:00:00+00:00"),
    )
    assert booked.status_code == 202, booked.text
    unsubscribed = await post_event(
        herald,
        tenant,
        "herald.consent.withdrawn.v1",
        upstream(contact_id=leads["eve"]["contact_id"], email=leads["eve"]["email"], reason="unsubscribe"),
    )
    assert unsubscribed.status_code == 202, unsubscribed.text
    fay_domain = str(leads["fay"]["email"]).split("@")[1]
    await reply_from(herald, tenant, f"sam-{run}", address=f"sam@{fay_domain}")  # fay's colleague answers

    runs = await _settled(
        herald,
        tenant,
        {leads[n]["contact_id"]: "exited" for n in ("bo", "cy", "dee", "eve", "fay")}
        | {leads[n]["contact_id"]: "waiting" for n in ("ada", "gus")},
    )
    exits = {
        n: json.loads(str(runs[leads[n]["contact_id"]]["data"]))["exit"] for n in ("bo", "cy", "dee", "eve", "fay")
    }
    assert exits == {
        "bo": "replied",
        "cy": "replied",
        "dee": "meeting_booked",
        "eve": "opted_out (unsubscribe)",
        "fay": "colleague_replied",
    }
    # the reviewer approves the VIP's touch 1 after all: its workflow withdrew it when the VIP answered, so the
    # guard blocks it and nothing is sent
    async with herald.review_client() as client:
        approved = await client.post(f"/v1/reviews/{item['review_id']}/approve", json={})
        assert approved.status_code == 200, approved.text
    withdrawn = await after_review(herald, tenant, str(item["action_id"]))
    assert isinstance(withdrawn, ActionBlocked) and withdrawn.rule == "workflow.withdrawn", withdrawn

    # the sequence is edited while ada's and gus's runs wait: their runs keep the version they started on
    path = herald.tenants_dir / f"{tenant}.yaml"
    config = yaml.safe_load(path.read_text())
    config["workflows"]["new_lead_sequence"]["waits_business_days"] = [1, 1, 1]
    staged = path.with_suffix(".partial")
    staged.write_text(yaml.safe_dump(config))
    staged.replace(path)

    with planner_clock(herald) as move:
        move(6)  # past three business days, whatever the weekday
        for name in ("ada", "gus"):
            second = (await mails(herald, leads[name]["email"], 2, f"touch 2 to {name}"))[1]
            assert second["In-Reply-To"] == first[name]["Message-ID"], "touch 2 goes in touch 1's thread"
            assert first[name]["Message-ID"] in second["References"]
            assert second["Subject"] == f"Re: {first[name]['Subject']}"
            assert part_of(second, "plain") != part_of(first[name], "plain")
        move(13)  # past four more business days
        for name in ("ada", "gus"):
            third = (await mails(herald, leads[name]["email"], 3, f"the last touch to {name}"))[2]
            assert third["In-Reply-To"] is not None and first[name]["Message-ID"] in third["References"]
            assert len(part_of(third, "plain")) < len(part_of(first[name], "plain")), "the last touch is short"
        await _settled(herald, tenant, {leads[n]["contact_id"]: "completed" for n in ("ada", "gus")})
        await asyncio.sleep(3)  # anything more would have been sent by now

    counts = {name: len(mails_to(herald.maildir, str(c["email"]))) for name, c in leads.items()}
    assert counts == {"ada": 3, "gus": 3, "bo": 1, "cy": 0, "dee": 1, "eve": 1, "fay": 1}
    for name in ("ada", "gus"):
        bodies = [part_of(m, "plain") for m in mails_to(herald.maildir, str(leads[name]["email"]))]
        assert len(set(bodies)) == 3, f"each touch to {name} says something new"
    timers = await timers_of(herald, tenant)
    fired = sorted((t["contact_id"], t["name"]) for t in timers if t["state"] == "fired")
    assert fired == sorted((leads[n]["contact_id"], f"touch_{k}") for n in ("ada", "gus") for k in (2, 3))
    assert not [t for t in timers if t["state"] == "pending"]
