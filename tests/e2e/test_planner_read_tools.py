"""The LLM planner reads before it writes: a tenant whose first-touch campaign already has sends and opens (emails
the real executor sent, engagement published at the ingest edge) gets a new lead; the model (the real `anthropic`
SDK against a loopback Messages API) calls `fetch_campaign_stats`, the real executor answers from what it counted,
and the proposal goes out under the campaign with the variant the model chose."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from test_first_touch import _creation, post_hubspot

from herald_core.contracts import ActionProposed, LlmUsageReported, PlanCreated
from herald_core.topics import LLM_USAGE, PLAN, PROPOSED_ACTION
from support import (
    approve,
    contact_record,
    email_action,
    eventually,
    execution_of,
    messages_api,
    planner_drafting_with,
    post_event,
    present,
    read_topic,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

CAMPAIGN = "first-touch"
FIRST_TOUCH = {
    "campaign_id": CAMPAIGN,
    "variants": {"proof": "lead with a customer result", "question": "open with a question about their work"},
}
STATS_CALL = {
    "content": [
        {"type": "tool_use", "id": "toolu_stats", "name": "fetch_campaign_stats", "input": {"campaign_id": CAMPAIGN}}
    ],
    "usage": {"input_tokens": 500, "output_tokens": 40},
}
DRAFT = {
    "content": [
        {
            "type": "tool_use",
            "id": "toolu_draft",
            "name": "draft_email",
            "input": {
                "subject": "A question about exceptions at Northwind",
                "body_text": "Hi Jordan,\n\nHow does your team handle carrier exceptions today?",
                "confidence": 0.85,
                "variant": "question",
            },
        }
    ],
    "usage": {"input_tokens": 700, "output_tokens": 120},
}


async def _campaign_stats(herald, tenant: str) -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{herald.services.executor_url}/v1/tools/fetch_campaign_stats",
            json={"tenant": tenant, "input": {"campaign_id": CAMPAIGN}},
            headers=herald.service_headers("executor"),
        )


def _of(records, tenant: str, model, contact_id: str):  # type: ignore[no-untyped-def]
    for r in records:
        if r.tenant == tenant and r.type == model.TYPE:
            body = r.body(model)
            if contact_id in (
                getattr(body, "contact_id", None),
                getattr(getattr(body, "contact", None), "contact_id", None),
            ):
                return body
    return None


async def test_the_llm_reads_the_campaigns_true_figures_and_proposes_under_the_campaign(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"reads{secrets.token_hex(3)}", first_touch=FIRST_TOUCH)
    herald.load_kb(tenant)
    run = secrets.token_hex(3)

    # the campaign's history: emails of both variants sent by the executor, then opened (one of them twice)
    sent: dict[str, str] = {}  # contact id → Message-ID
    for name, variant in (("p1", "proof"), ("p2", "proof"), ("p3", "proof"), ("q1", "question"), ("q2", "question")):
        contact_id = f"{run}{name}"
        action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@buyers.example")
        await present(herald, approve(herald, action.model_copy(update={"campaign_id": CAMPAIGN, "variant": variant})))
        executed = await execution_of(herald, action.action_id)
        assert executed.status.value == "succeeded", executed
        sent[contact_id] = executed.result["message_id"]
    now = datetime.now(UTC).isoformat()
    for name in ("p1", "p2", "p2", "q1"):
        contact_id = f"{run}{name}"
        opened = {
            "contact_id": contact_id,
            "kind": "opened",
            "message_id": sent[contact_id],
            "upstream_source": "esp",
            "upstream_event_id": f"open-{name}-{secrets.token_hex(3)}",
            "occurred_at": now,
        }
        response = await post_event(herald, tenant, "herald.message.engagement.v1", opened)
        assert response.status_code == 202, response.text

    figures: list[Any] = []

    async def counted() -> bool:
        response = await _campaign_stats(herald, tenant)
        assert response.status_code == 200, response.text
        figures.append(response.json())
        opens = {v["variant"]: (v["sends"], v["opens"]) for v in figures[-1]["variants"]}
        return opens == {"proof": (3, 2), "question": (2, 1)}

    await eventually(counted, timeout=60, what=f"the campaign's sends and opens (last: {figures[-1:]})")
    true_figures = figures[-1]

    # a new lead arrives while the planner drafts with the LLM
    lead = contact_record(int(f"8{int(run, 16) % 10_000_000:07d}"))
    lead_id = str(lead["contact_id"])
    herald.seed_contacts(tenant, [lead], tmp_path)
    async with messages_api([STATS_CALL, DRAFT]) as (url, received):
        async with planner_drafting_with(herald, url):
            created = await post_hubspot(herald, tenant, [_creation(lead, int(f"8{int(run, 16)}"))])
            assert created.status_code == 200, created.text
            proposals = await read_topic(
                herald.bootstrap,
                herald.topic(PROPOSED_ACTION),
                timeout=60,
                until=lambda rs: _of(rs, tenant, ActionProposed, lead_id) is not None,
            )

    # the model asked, and the second request carried the executor's answer: the campaign's true figures
    assert len(received) == 2
    first, second = (r["body"] for r in received)
    assert [t["name"] for t in first["tools"]] == ["draft_email", "fetch_campaign_stats"]
    assert first["tool_choice"] == {"type": "any"}
    assert first["tools"][0]["input_schema"]["properties"]["variant"]["enum"] == ["proof", "question"]
    (result,) = [b for b in second["messages"][-1]["content"] if b["type"] == "tool_result"]
    assert result["tool_use_id"] == "toolu_stats" and not result.get("is_error")
    answered = json.loads(result["content"])
    assert answered == true_figures
    assert {v["variant"]: (v["sends"], v["opens"]) for v in answered["variants"]} == {
        "proof": (3, 2),
        "question": (2, 1),
    }

    # the proposal goes out under the campaign, with the model's variant and a rationale naming what it read
    action = _of(proposals, tenant, ActionProposed, lead_id)
    assert (action.campaign_id, action.variant, action.drafted_by) == (CAMPAIGN, "question", "llm")
    assert action.input.subject == "A question about exceptions at Northwind"
    assert "consulted fetch_campaign_stats(first-touch): proof 3 sends 2 opens" in action.rationale
    assert "question 2 sends 1 opens" in action.rationale

    # the plan names the read it made; the guard is told what both calls cost
    plans = await read_topic(
        herald.bootstrap, herald.topic(PLAN), timeout=30, until=lambda rs: _of(rs, tenant, PlanCreated, lead_id)
    )
    plan = _of(plans, tenant, PlanCreated, lead_id)
    assert [step.tool for step in plan.steps] == ["fetch_campaign_stats", "send_email"] and plan.planner == "llm"
    usage = await read_topic(
        herald.bootstrap,
        herald.topic(LLM_USAGE),
        timeout=30,
        until=lambda rs: any(r.tenant == tenant and r.type == LlmUsageReported.TYPE for r in rs),
    )
    (reported,) = [r.body(LlmUsageReported) for r in usage if r.tenant == tenant and r.type == LlmUsageReported.TYPE]
    assert (reported.input_tokens, reported.output_tokens) == (1200, 160)
    assert reported.workflow_id == plan.workflow_id
