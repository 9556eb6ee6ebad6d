"""fetch_campaign_stats end to end: emails of two variants sent by the executor, then what happened to them
published at the ingest edge as an upstream system would (deliveries, opens, a click, a bounce, a reply, an
unsubscribe), counted per variant by the read tool; bad questions get typed 4xx answers."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from support import approve, email_action, eventually, execution_of, post_event, present

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]


async def _ask(herald, tenant: str, tool_input: dict[str, Any], tool: str = "fetch_campaign_stats") -> httpx.Response:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            f"{herald.services.executor_url}/v1/tools/{tool}",
            json={"tenant": tenant, "input": tool_input},
            headers=herald.service_headers("executor"),
        )


async def test_campaign_figures_per_variant_count_each_email_once(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"stats{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    sent: dict[str, tuple[str, str]] = {}  # name → (contact id, Message-ID)
    for name, variant in (("a1", "A"), ("a2", "A"), ("b1", "B"), ("b2", "B")):
        contact_id = f"{run}{name}"
        action = email_action(tenant, contact_id=contact_id, email=f"{contact_id}@buyers.example")
        action = action.model_copy(update={"campaign_id": "spring-launch", "variant": variant})
        await present(herald, approve(herald, action))
        executed = await execution_of(herald, action.action_id)
        assert executed.status.value == "succeeded", executed
        sent[name] = (contact_id, executed.result["message_id"])
    # an email of another campaign to the same contact, before its events: not counted here
    other = email_action(tenant, contact_id=f"{run}x", email=f"{run}x@buyers.example")
    await present(herald, approve(herald, other.model_copy(update={"campaign_id": "autumn"})))

    now = datetime.now(UTC).isoformat()

    async def engagement(name: str, kind: str, **extra: Any) -> None:
        contact_id, message_id = sent[name]
        data = {
            "contact_id": contact_id,
            "kind": kind,
            "message_id": message_id,
            "upstream_source": "esp",
            "upstream_event_id": f"{name}-{kind}-{secrets.token_hex(3)}",
            "occurred_at": now,
            **extra,
        }
        response = await post_event(herald, tenant, "herald.message.engagement.v1", data)
        assert response.status_code == 202, response.text

    for name in sent:
        if name != "b2":
            await engagement(name, "delivered")
    await engagement("a1", "opened")
    await engagement("a1", "opened")  # opened twice: one email opened
    await engagement("a1", "clicked", url="https://acmerelay.example/pricing")
    await engagement("b1", "opened")
    await engagement("b2", "bounced", permanent=True)
    reply = {
        "contact_id": sent["a1"][0],
        "subject": "Re: Hello",
        "snippet": "Tell me more",
        "in_reply_to": sent["a1"][1],
        "upstream_source": "gmail",
        "upstream_event_id": f"reply-{run}",
        "occurred_at": now,
    }
    assert (await post_event(herald, tenant, "herald.message.replied.v1", reply)).status_code == 202
    unsubscribe = {
        "contact_id": sent["a2"][0],
        "reason": "unsubscribe",
        "upstream_source": "esp",
        "upstream_event_id": f"unsub-{run}",
        "occurred_at": now,
    }
    assert (await post_event(herald, tenant, "herald.consent.withdrawn.v1", unsubscribe)).status_code == 202

    expected = {
        "campaign_id": "spring-launch",
        "variants": [
            {
                "variant": "A",
                "sends": 2,
                "deliveries": 2,
                "opens": 1,
                "clicks": 1,
                "replies": 1,
                "bounces": 0,
                "complaints": 0,
                "unsubscribes": 1,
            },
            {
                "variant": "B",
                "sends": 2,
                "deliveries": 1,
                "opens": 1,
                "clicks": 0,
                "replies": 0,
                "bounces": 1,
                "complaints": 0,
                "unsubscribes": 0,
            },
        ],
    }
    answers: list[Any] = []

    async def counted() -> bool:
        response = await _ask(herald, tenant, {"campaign_id": "spring-launch"})
        assert response.status_code == 200, response.text
        answers.append(response.json())
        return bool(answers[-1] == expected)

    await eventually(counted, timeout=60, what=f"the campaign's figures (last: {answers[-1:]})")

    # another tenant's campaign of the same name is its own
    stranger = herald.add_tenant(f"stats{secrets.token_hex(3)}")
    replies: list[httpx.Response] = []

    async def known() -> bool:  # a tenant file is picked up within a moment
        replies.append(await _ask(herald, stranger, {"campaign_id": "spring-launch"}))
        return replies[-1].status_code != 404

    await eventually(known, timeout=10, what="the new tenant")
    assert replies[-1].json() == {"campaign_id": "spring-launch", "variants": []}


async def test_bad_questions_to_the_read_tool_get_typed_answers(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"stats{secrets.token_hex(3)}")
    invalid = await _ask(herald, tenant, {"campaign_id": "spring launch; DROP TABLE"})
    assert invalid.status_code == 422, invalid.text
    failure = invalid.json()["failure"]
    assert (failure["kind"], failure["code"]) == ("permanent", "invalid_input") and "campaign_id" in failure["message"]
    missing = await _ask(herald, tenant, {"since": "2026-01-01T00:00:00Z"})
    assert missing.status_code == 422 and "campaign_id" in missing.json()["failure"]["message"]
    extra = await _ask(herald, tenant, {"campaign_id": "x", "limit": 5})
    assert extra.status_code == 422
    # a tool with side effects never runs from this API: it needs the guard's signature
    email = {"to": "someone@buyers.example", "subject": "Hi", "body_text": "Hello"}
    forbidden = await _ask(herald, tenant, email, tool="send_email")
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "needs_approval"
    assert (await _ask(herald, tenant, {}, tool="drop_tables")).status_code == 404
    assert (await _ask(herald, "no-such-tenant", {"campaign_id": "x"})).status_code == 404
