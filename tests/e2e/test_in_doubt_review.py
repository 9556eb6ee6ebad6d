"""An execution in doubt reaches a person: the review service queues it (kind `in_doubt`, with the executor's
reason), it cannot be approved or rejected — nothing may be sent again on a click — only resolved with what
the check of the downstream found, once."""

from __future__ import annotations

import secrets

import httpx
import pytest

from herald_core.contracts import ActionExecuted, ExecutionStatus, FailureKind, ToolFailure
from herald_core.ids import new_id
from herald_core.topics import EXECUTED, contact_key
from support import envelope, eventually, publish

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


async def test_an_execution_in_doubt_is_queued_and_resolved_not_approved(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"doubt{secrets.token_hex(3)}")
    contact_id = f"c{secrets.token_hex(3)}"
    why = "found claimed after a restart; SMTP cannot be asked whether it took the message"
    executed = ActionExecuted(
        action_id=new_id(),
        workflow_id=f"wf-{new_id()}",
        contact_id=contact_id,
        tool="send_email",
        status=ExecutionStatus.IN_DOUBT,
        error=why,
        failure=ToolFailure(kind=FailureKind.NEEDS_HUMAN, code="in_doubt", message=why),
        summary="email “Hello” to someone@buyers.example",
    )
    env = envelope(tenant, executed, source="herald/executor")
    await publish(herald.bootstrap, herald.prefix, EXECUTED, contact_key(tenant, contact_id), env, executed)

    base = herald.services.review_url
    async with httpx.AsyncClient(timeout=30) as client:

        async def queued() -> list[dict]:  # type: ignore[type-arg]
            response = await client.get(f"{base}/v1/reviews", params={"tenant": tenant})
            return [i for i in response.json() if i["action_id"] == executed.action_id]

        (item,) = await eventually(queued, timeout=30, what="the in-doubt item")
        assert (item["kind"], item["status"], item["reason"]) == ("in_doubt", "pending", why)
        assert item["action"]["summary"] == executed.summary

        url = f"{base}/v1/reviews/{item['review_id']}"
        approve = await client.post(f"{url}/approve", json={"reviewer": "ana@acme.example"})
        assert approve.status_code == 409 and approve.json()["detail"]["error"] == "resolve_instead"
        vague = await client.post(f"{url}/resolve", json={"reviewer": "ana@acme.example", "outcome": "maybe"})
        assert vague.status_code == 422
        found = {"reviewer": "ana@acme.example", "outcome": "happened", "reason": "in the recipient's inbox at 10:02"}
        resolved = await client.post(f"{url}/resolve", json=found)
        assert resolved.status_code == 200, resolved.text
        assert (resolved.json()["status"], resolved.json()["reviewer"]) == ("happened", "ana@acme.example")
        again = await client.post(f"{url}/resolve", json={**found, "outcome": "did_not_happen"})
        assert again.status_code == 409
        assert (await client.get(url)).json()["status"] == "happened"
