"""Review helpers the e2e tests share: an escalated email, the queue and an item's state read through the review
API, the decisions the review service published."""

from __future__ import annotations

from typing import Any

from herald_core.contracts import ActionProposed, ReviewDecided
from herald_core.topics import PROPOSED_ACTION, REVIEW_DECISION, contact_key
from support import bodies, email_action, envelope, eventually, publish_audited, read_topic


async def escalated_email(  # type: ignore[no-untyped-def]
    herald, tenant: str, contact_id: str, *, subject: str, body: str, **contact: Any
) -> ActionProposed:  # type: ignore[no-untyped-def]
    """A VIP's email proposed as the planner proposes it (with its audit copy): the guard sends it to review."""
    action = email_action(
        tenant,
        contact_id=contact_id,
        email=f"{contact_id}@northwind.example",
        subject=subject,
        body_text=body,
        rationale="New VIP lead from the webinar; the pricing page answers their question.",
        first_name="Jordan",
        last_name="Reyes",
        company="Northwind Freight",
        **({"vip": True} | contact),
    )
    env = envelope(tenant, action, source="herald/planner")
    await publish_audited(
        herald.bootstrap, herald.prefix, PROPOSED_ACTION, contact_key(tenant, contact_id), env, action
    )
    return action


async def queued(herald, tenant: str, action_ids: set[str]) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """The tenant's pending review items for these actions, once all are in the queue (read through the API)."""
    async with herald.review_client() as client:

        async def look() -> dict[str, dict[str, Any]] | None:
            items = (await client.get("/v1/reviews", params={"tenant": tenant, "status": "pending"})).json()
            found = {i["action_id"]: i for i in items if i["action_id"] in action_ids}
            return found if set(found) == action_ids else None

        found: dict[str, dict[str, Any]] = await eventually(look, timeout=60, what="the items in the review queue")
        return found


async def review_state(herald, review_id: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    async with herald.review_client() as client:
        response = await client.get(f"/v1/reviews/{review_id}")
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state


async def decisions_on_kafka(herald, review_id: str, count: int = 1) -> list[ReviewDecided]:  # type: ignore[no-untyped-def]
    def about(records) -> list[ReviewDecided]:  # type: ignore[no-untyped-def]
        return [body for body in bodies(records, ReviewDecided, review_id) if body.review_id == review_id]

    records = await read_topic(
        herald.bootstrap, herald.topic(REVIEW_DECISION), timeout=30, until=lambda rs: len(about(rs)) >= count
    )
    return about(records)
