"""The daily LLM budget: a planner drafting with the LLM (the real `anthropic` SDK against a loopback
Messages API) reports each call's tokens; the call that takes the tenant past its policy's budget
makes the guard say so on the control topic, and from then on the planner drafts from templates
(the API is not called again) and the guard sends any LLM draft to a reviewer."""

from __future__ import annotations

import secrets

import pytest
from test_first_touch import _creation, post_hubspot

from herald_core.contracts import ActionEscalated, LlmBudgetChanged, PlanCreated
from herald_core.topics import CONTROL, PLAN, PROPOSED_ACTION, contact_key
from support import (
    contact_record,
    email_action,
    envelope,
    guard_answer,
    messages_api,
    planner_drafting_with,
    publish,
    read_topic,
    tenant_with_policy,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate]

POLICY = "tenant: {tenant}\nversion: 1\nllm_budget:\n  tokens_per_day: 1000\n"
DRAFT = {
    "type": "tool_use",
    "id": "toolu_1",
    "name": "draft_email",
    "input": {"subject": "Hello from Acme Relay", "body_text": "Hi,\n\nA short note.", "confidence": 0.9},
}


async def test_a_spent_llm_budget_turns_the_planner_to_templates_and_llm_drafts_to_review(herald, tmp_path) -> None:  # type: ignore[no-untyped-def]
    tenant = await tenant_with_policy(herald, "llm", POLICY, tmp_path)
    herald.load_kb(tenant)
    run = secrets.token_hex(3)
    first, second = (contact_record(int(f"6{n}{int(run, 16) % 100000:05d}")) for n in (1, 2))
    herald.seed_contacts(tenant, [first, second], tmp_path)

    def plan_for(records, contact):  # type: ignore[no-untyped-def]
        for r in records:
            if r.tenant == tenant and r.type == PlanCreated.TYPE:
                plan = r.body(PlanCreated)
                if plan.contact_id == str(contact["contact_id"]):
                    return plan
        return None

    async with messages_api({"content": [DRAFT], "usage": {"input_tokens": 900, "output_tokens": 300}}) as (
        url,
        received,
    ):
        async with planner_drafting_with(herald, url):
            created = await post_hubspot(herald, tenant, [_creation(first, int(f"6{int(run, 16)}1"))])
            assert created.status_code == 200, created.text
            records = await read_topic(
                herald.bootstrap, herald.topic(PLAN), timeout=60, until=lambda rs: plan_for(rs, first) is not None
            )
            assert plan_for(records, first).planner == "llm" and len(received) == 1

            def spent(records):  # type: ignore[no-untyped-def]
                return [
                    r.body(LlmBudgetChanged) for r in records if r.tenant == tenant and r.type == LlmBudgetChanged.TYPE
                ]

            control = await read_topic(
                herald.bootstrap, herald.topic(CONTROL), timeout=30, until=lambda rs: bool(spent(rs))
            )
            (announced,) = spent(control)
            assert announced.exhausted and (announced.used_tokens, announced.budget_tokens) == (1200, 1000)

            created = await post_hubspot(herald, tenant, [_creation(second, int(f"6{int(run, 16)}2"))])
            assert created.status_code == 200, created.text
            records = await read_topic(
                herald.bootstrap, herald.topic(PLAN), timeout=60, until=lambda rs: plan_for(rs, second) is not None
            )
            assert plan_for(records, second).planner == "template"
            assert len(received) == 1  # the API was not called for the second lead

    # an LLM draft proposed after the budget is spent waits for a reviewer
    action = email_action(tenant, contact_id=f"llm-{run}", email=f"llm-{run}@buyers.example").model_copy(
        update={"drafted_by": "llm"}
    )
    await publish(
        herald.bootstrap,
        herald.prefix,
        PROPOSED_ACTION,
        contact_key(tenant, f"llm-{run}"),
        envelope(tenant, action, source="test/planner"),
        action,
    )

    held = await guard_answer(herald, tenant, action.action_id)
    assert isinstance(held, ActionEscalated), held
    hit = next(h for h in held.rules if h.rule == "budget.llm_daily")
    assert hit.outcome == "escalate" and "1200 LLM tokens reported today, budget 1000" in hit.detail
