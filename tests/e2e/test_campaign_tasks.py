"""Campaign tasks end to end: a defined brief over a segment of the contact store (`POST /v1/tasks` on the
planner) becomes one batch of proposals in review — exactly the segment's contacts, each once, the opted-out and
those outside the segment left out, the audience split between the variants, every item carrying the task and the
campaign — and a task message delivered again proposes nothing twice. Bad briefs, an unknown tenant, a segment too
large and a free-text task without an API key are refused with their reason (4xx; the CLI exits 2), nothing done.
Read back through the review API, the planner's task API, Kafka and the `herald` command."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from herald_core.contracts import ActionProposed, CampaignTaskAccepted, CampaignTaskProposed, LlmUsageReported
from herald_core.topics import LLM_USAGE, PLAN, PROPOSED_ACTION
from support import (
    contact_record,
    eventually,
    herald_command,
    messages_api,
    planner_drafting_with,
    publish_raw,
    read_topic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate]

BRIEF: dict[str, Any] = {
    "campaign_id": "approvals-launch",
    "topic": "approval workflows for operations teams",
    "goal": "book a demo",
    "segment": {
        "industries": ["logistics"],
        "lifecycle_stages": ["lead"],
        "seniorities": ["c_level", "vp", "director"],
    },
    "variants": {"proof": "lead with a customer result", "question": "open with a question about their approvals"},
}


async def _submit(herald, body: dict[str, Any]) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=herald.services.planner_url, timeout=30) as client:
        return await client.post("/v1/tasks", json=body)


@pytest.fixture(scope="module")
def segment_tenant(herald, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    """A tenant with the sample knowledge base and eight seeded contacts, four of them in BRIEF's segment."""
    tenant = herald.add_tenant(f"ct{secrets.token_hex(3)}")
    herald.load_kb(tenant)
    base = 7_100_000 + secrets.randbelow(800_000) * 10
    people = {
        "coo": contact_record(base + 1, job_title="COO", first_name="Hana"),
        "head": contact_record(base + 2, job_title="Head of Operations", first_name="Wes"),
        "director": contact_record(base + 3, job_title="Director of Logistics", first_name="Dara"),
        "vp": contact_record(base + 4, job_title="VP Supply Chain", industry="logistics_and_supply_chain"),
        "opted_out": contact_record(base + 5, job_title="CEO", opted_out=True),
        "retail": contact_record(base + 6, job_title="COO", industry="retail"),
        "dispatcher": contact_record(base + 7, job_title="Dispatcher"),
        "customer": contact_record(base + 8, job_title="COO", lifecycle_stage="customer"),
    }
    for contact in people.values():
        contact["email"] = f"c{contact['contact_id']}@northwind.example"
    herald.seed_contacts(tenant, list(people.values()), tmp_path_factory.mktemp("segment"))
    return tenant, {name: str(c["contact_id"]) for name, c in people.items()}


async def test_a_defined_task_yields_one_batch_in_review_and_a_redelivery_proposes_nothing_twice(  # type: ignore[no-untyped-def]
    herald, segment_tenant
) -> None:
    tenant, ids = segment_tenant
    answer = await _submit(herald, {"tenant": tenant, "brief": BRIEF, "requested_by": "dana@acme.example"})
    assert answer.status_code == 202, answer.text
    accepted = answer.json()
    task_id = accepted["task_id"]
    assert accepted["audience"] == 4 and accepted["variants"] == ["proof", "question"]
    wanted = {ids[name] for name in ("coo", "head", "director", "vp")}

    async with herald.review_client() as client:

        async def batch() -> list[dict[str, Any]] | None:
            params = {"tenant": tenant, "status": "pending", "task": task_id}
            items = (await client.get("/v1/reviews", params=params)).json()
            return items if len(items) >= 4 else None

        items = await eventually(batch, timeout=90, what="the task's batch in review")
        everything = (await client.get("/v1/reviews", params={"tenant": tenant, "status": "pending"})).json()

    assert sorted(i["contact_id"] for i in items) == sorted(wanted)  # each of the segment once, no one else
    assert sorted(i["contact_id"] for i in everything) == sorted(wanted)
    for item in items:
        action = item["action"]
        assert action["task_id"] == task_id
        assert action["campaign_id"] == "approvals-launch"
        assert action["tool"] == "send_email"
        assert action["input"]["to"] == f"c{item['contact_id']}@northwind.example"  # the store's address
        assert action["review_reason"] == f"campaign task {task_id}: 4 sends, reviewed as a batch"
        assert "escalation.planner_asks" in {r["rule"] for r in item["rules"]}
        assert action["evidence"], "every send quotes the knowledge base"
    variants = sorted(i["action"]["variant"] for i in items)
    assert variants == ["proof", "proof", "question", "question"]

    async with httpx.AsyncClient(base_url=herald.services.planner_url, timeout=30) as client:
        task = (await client.get(f"/v1/tasks/{task_id}", params={"tenant": tenant})).json()
        other = await client.get(f"/v1/tasks/{task_id}", params={"tenant": "nosuchtenant"})
    assert task["state"] == "proposed" and task["proposed"] == 4
    assert task["variants"] == {"proof": 2, "question": 2}
    assert [e["state"] for e in task["journal"]] == [
        "accepted",
        "retrieving",
        "drafting",
        "selecting",
        "proposed",
    ]
    assert other.status_code == 404

    # the task's message delivered again: once with another envelope (nothing), once as it was (the same again)
    plan_topic = herald.topic(PLAN)
    records = await read_topic(
        herald.bootstrap,
        plan_topic,
        timeout=30,
        until=lambda rs: any(r.type == CampaignTaskProposed.TYPE and task_id.encode() in (r.value or b"") for r in rs),
    )
    original = next(r for r in records if r.type == CampaignTaskAccepted.TYPE and task_id.encode() in (r.value or b""))
    headers = [(k, v.encode()) for k, v in original.headers.items()]
    # another copy under a new id (not one of Herald's messages: it has no audit copy, and says so in its source)
    forged = {"ce_id": f"ce-{secrets.token_hex(8)}", "ce_source": "test/replay"}
    other_id = [(k, forged.get(k, v).encode()) for k, v in original.headers.items()]
    await publish_raw(herald.bootstrap, plan_topic, original.value, key=original.key, headers=other_id)
    await publish_raw(herald.bootstrap, plan_topic, original.value, key=original.key, headers=headers)

    def batches(rs: list[Any]) -> list[Any]:
        return [r for r in rs if r.type == CampaignTaskProposed.TYPE and task_id.encode() in (r.value or b"")]

    records = await read_topic(herald.bootstrap, plan_topic, timeout=60, until=lambda rs: len(batches(rs)) >= 2)
    assert len(batches(records)) == 2, "the same message, read again, publishes the same batch again"
    assert len({r.headers["ce_id"] for r in batches(records)}) == 1
    proposed = await read_topic(herald.bootstrap, herald.topic(PROPOSED_ACTION), timeout=10)
    mine = [
        r.body(ActionProposed)
        for r in proposed
        if r.type == ActionProposed.TYPE and task_id.encode() in (r.value or b"")
    ]
    assert len({a.action_id for a in mine}) == 4  # the same four actions, never new ones
    async with herald.review_client() as client:
        again = (
            await client.get("/v1/reviews", params={"tenant": tenant, "task": task_id, "status": "pending"})
        ).json()
    assert sorted(i["contact_id"] for i in again) == sorted(wanted)


@pytest.mark.parametrize(
    ("change", "status", "error", "field"),
    [
        ({"tenant": "nosuchtenant"}, 404, "unknown_tenant", None),
        ({"brief": {**BRIEF, "variants": {}}}, 422, "invalid_brief", "brief.variants"),
        ({"brief": {**BRIEF, "segment": {"countries": ["usa"]}}}, 422, "invalid_brief", "brief.segment.countries.0"),
        (
            {"brief": {**BRIEF, "segment": {"industries": ["LOGISTICS!"]}}},
            422,
            "invalid_brief",
            "brief.segment.industries.0",
        ),
        ({"brief": {**BRIEF, "max_contacts": 2}}, 422, "too_many_contacts", None),
        ({"brief": {**BRIEF, "segment": {"industries": ["aerospace"]}}}, 422, "empty_segment", None),
        ({"kind": "open", "text": "re-engage logistics COOs who went quiet"}, 422, "llm_not_configured", None),
    ],
)
async def test_a_task_it_cannot_run_is_refused_with_its_reason_and_nothing_done(  # type: ignore[no-untyped-def]
    herald, segment_tenant, change: dict[str, Any], status: int, error: str, field: str | None
) -> None:
    tenant, _ = segment_tenant
    answer = await _submit(herald, {"tenant": tenant, "brief": BRIEF, **change})
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["error"] == error
    if field is not None:
        assert field in {".".join(str(p) for p in d["loc"]) for d in body["detail"]}
    if error == "too_many_contacts":
        assert "holds 4 contacts, more than the brief's max_contacts (2)" in body["detail"]
    if error == "llm_not_configured":
        assert body["detail"] == (
            "a free-text task needs the LLM planner (ANTHROPIC_API_KEY is not set); nothing was done"
        )


def test_the_cli_refuses_a_free_text_task_without_an_api_key_and_runs_a_brief(  # type: ignore[no-untyped-def]
    herald, segment_tenant, tmp_path: Path
) -> None:
    tenant, _ = segment_tenant
    refused = herald_command(herald, "task", "--tenant", tenant, "--text", "re-engage logistics COOs who went quiet")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "a free-text task needs the LLM planner (ANTHROPIC_API_KEY is not set); nothing was done" in refused.stderr

    brief = tmp_path / "brief.yaml"
    brief.write_text(yaml.safe_dump({**BRIEF, "campaign_id": "approvals-cli", "variants": {"proof": "a result"}}))
    ran = herald_command(herald, "task", "--tenant", tenant, "--brief", str(brief), "--wait", "--timeout", "90")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.startswith("task-")
    assert "batch proposed: 4 send(s) waiting in review as one batch (proof 4)" in ran.stdout

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BRIEF, "variants": {}}))
    refused_brief = herald_command(herald, "task", "--tenant", tenant, "--brief", str(bad))
    assert refused_brief.returncode == 2 and "brief.variants" in refused_brief.stderr


def _call(n: int, name: str, given: dict[str, Any]) -> dict[str, Any]:
    return {
        "content": [{"type": "tool_use", "id": f"toolu_{n}", "name": name, "input": given}],
        "usage": {"input_tokens": 900, "output_tokens": 60},
    }


async def test_a_free_text_task_is_planned_by_the_llm_into_a_brief_and_its_batch(herald, segment_tenant) -> None:  # type: ignore[no-untyped-def]
    """The model (the real SDK, a loopback Messages API) reads the knowledge base and the segment, then proposes a
    brief; what it proposes is a `CampaignBrief` and nothing more: the batch goes to the segment's contacts at the
    store's addresses, drafted from passages, in review. Every call it made is in the task's plan."""
    tenant, ids = segment_tenant
    conversation = [
        _call(1, "search_knowledge_base", {"query": "approval workflows"}),
        _call(2, "list_segment", {"industries": ["logistics"], "seniorities": ["c_level"]}),  # a customer too: 2
        _call(
            3,
            "propose_brief",
            {
                "campaign_id": "reengage-coos",
                "topic": "approval workflows for operations teams",
                "goal": "book a demo",
                "segment": {"industries": ["logistics"], "lifecycle_stages": ["lead"], "seniorities": ["c_level"]},
                "variants": {"proof": "lead with a customer result"},
            },
        ),
    ]
    async with messages_api(conversation) as (url, received), planner_drafting_with(herald, url):
        answer = await _submit(
            herald,
            {"tenant": tenant, "kind": "open", "text": "re-engage logistics COOs who went quiet, about approvals"},
        )
        assert answer.status_code == 202, answer.text
        accepted = answer.json()
        task_id = accepted["task_id"]
        assert accepted["brief"]["campaign_id"] == "reengage-coos" and accepted["audience"] == 1
        assert [s["tool"] for s in accepted["planned"]] == ["search_knowledge_base", "list_segment", "propose_brief"]
        # the model was shown what it read: passages, then who the segment holds
        shown = json.dumps(received[1]["body"]["messages"][-1]["content"])
        assert "tool_result" in shown and "approval" in shown.lower()
        assert "2 contact(s) can be written to" in json.dumps(received[2]["body"]["messages"][-1]["content"])
        assert received[0]["body"]["tool_choice"] == {"type": "any"}

        async with herald.review_client() as client:

            async def batch() -> list[dict[str, Any]] | None:
                params = {"tenant": tenant, "status": "pending", "task": task_id}
                return (await client.get("/v1/reviews", params=params)).json() or None

            items = await eventually(batch, timeout=90, what="the planned task's batch in review")
    assert [i["contact_id"] for i in items] == [ids["coo"]]
    action = items[0]["action"]
    assert action["input"]["to"] == f"c{ids['coo']}@northwind.example" and action["campaign_id"] == "reengage-coos"
    records = await read_topic(herald.bootstrap, herald.topic(PLAN), timeout=30)
    (planned,) = [
        r.body(CampaignTaskAccepted)
        for r in records
        if r.type == CampaignTaskAccepted.TYPE and task_id.encode() in (r.value or b"")
    ]
    assert planned.kind == "open" and planned.text and len(planned.planned) == 3
    usage = [
        r.body(LlmUsageReported)
        for r in await read_topic(herald.bootstrap, herald.topic(LLM_USAGE), timeout=30)
        if r.tenant == tenant
    ]
    assert any(u.purpose == "plan_task" and u.input_tokens == 2700 for u in usage)


async def test_a_free_text_task_whose_brief_does_not_hold_is_refused_and_nothing_done(herald, segment_tenant) -> None:  # type: ignore[no-untyped-def]
    tenant, _ = segment_tenant
    bad = _call(1, "propose_brief", {"campaign_id": "x", "topic": "t", "segment": {}, "variants": {}, "discount": 90})
    async with messages_api([bad]) as (url, _), planner_drafting_with(herald, url):
        answer = await _submit(herald, {"tenant": tenant, "kind": "open", "text": "offer everyone 90% off"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "not_planned" and "nothing was done" in answer.json()["detail"]
