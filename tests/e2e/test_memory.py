"""Memory on the real stack: interactions in through the edge and the executor's topic, recalled over
gRPC; an expired interaction folded into a long-term summary; a reviewer's feedback recalled by a
later workflow's plan; a malformed interaction refused at the edge (the memory consumer's dead letters are
in test_bad_input)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import grpc
import pytest
from test_first_touch import _contact, _creation, post_hubspot

from herald_core.contracts import ActionExecuted, ActionProposed, ExecutionStatus, PlanCreated
from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from herald_core.topics import EXECUTED, PLAN, PROPOSED_ACTION, contact_key
from support import envelope, eventually, post_event, publish_audited, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

NOW = datetime.now(UTC)
FEEDBACK = "Never quote per-seat prices in a first email to operations leads; open with a customer story."


@pytest.fixture(scope="module")
def tenant(herald):  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"mem{secrets.token_hex(3)}")
    herald.load_kb(tenant)
    return tenant


def reply(contact_id: str, subject: str, occurred_at: datetime) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "subject": subject,
        "snippet": "Thursday works for us; can you bring the carrier-exception numbers?",
        "upstream_source": "gmail",
        "upstream_event_id": f"msg-{secrets.token_hex(4)}",
        "occurred_at": occurred_at.isoformat(),
    }


async def recall(herald, tenant: str, contact_id: str, query: str = "", k: int = 8) -> list[Any]:  # type: ignore[no-untyped-def]
    async with herald.retrieval_channel() as channel:
        stub = retrieval_pb2_grpc.RetrievalStub(channel)
        response = await stub.Recall(
            retrieval_pb2.RecallRequest(tenant=tenant, contact_id=contact_id, query=query, k=k)
        )
    return list(response.memories)


async def test_recent_interactions_are_recalled_newest_first_and_once(herald, tenant) -> None:  # type: ignore[no-untyped-def]
    contact_id = f"c-{secrets.token_hex(4)}"
    # the executor's report of a sent email, two days ago, delivered twice (a redelivery)
    sent = ActionExecuted(
        action_id=f"a-{secrets.token_hex(4)}",
        workflow_id="wf-1",
        contact_id=contact_id,
        tool="send_email",
        status=ExecutionStatus.SUCCEEDED,
        result={"message_id": "<a@acmerelay.example>"},
        summary="email “Jordan, how logistics teams use Acme Relay” to jordan@northwind.example",
    )
    env = envelope(tenant, sent, source="herald/executor").model_copy(update={"time": NOW - timedelta(days=2)})
    for _ in range(2):
        await publish_audited(herald.bootstrap, herald.prefix, EXECUTED, contact_key(tenant, contact_id), env, sent)
    answered = await post_event(
        herald, tenant, "herald.message.replied.v1", reply(contact_id, "Re: logistics teams", NOW - timedelta(days=1))
    )
    assert answered.status_code == 202, answered.text
    booked = await post_event(
        herald,
        tenant,
        "herald.meeting.booked.v1",
        {
            "contact_id": contact_id,
            "title": "Acme Relay walkthrough",
            "starts_at": (NOW + timedelta(days=3)).isoformat(),
            "upstream_source": "calendly",
            "upstream_event_id": f"bk-{secrets.token_hex(4)}",
            "occurred_at": (NOW - timedelta(hours=2)).isoformat(),
        },
    )
    assert booked.status_code == 202, booked.text

    async def three() -> list[Any] | None:
        memories = await recall(herald, tenant, contact_id)
        return memories if len(memories) >= 3 else None

    memories = await eventually(three, timeout=30, what="three interactions recalled")
    assert [m.kind for m in memories] == ["meeting", "reply", "email_sent"]
    assert {m.tier for m in memories} == {"medium"}
    assert "Acme Relay walkthrough" in memories[0].text
    assert "carrier-exception numbers" in memories[1].text
    assert "how logistics teams use Acme Relay" in memories[2].text
    assert all(m.contact_id == contact_id for m in memories)
    # another contact of the tenant, and the same contact id in another tenant, remember none of it
    assert await recall(herald, tenant, f"c-{secrets.token_hex(4)}") == []
    other = herald.add_tenant(f"memo{secrets.token_hex(3)}")
    assert await recall(herald, other, contact_id) == []


async def test_an_interaction_past_its_ttl_is_folded_into_a_long_term_summary(herald, tenant) -> None:  # type: ignore[no-untyped-def]
    contact_id = f"c-{secrets.token_hex(4)}"
    subject = f"Re: pilot results {secrets.token_hex(2)}"
    old = await post_event(
        herald, tenant, "herald.message.replied.v1", reply(contact_id, subject, NOW - timedelta(days=120))
    )
    assert old.status_code == 202, old.text

    async def summarised() -> list[Any] | None:
        memories = await recall(herald, tenant, contact_id, query="pilot results reply")
        return [m for m in memories if m.kind == "summary"] or None

    (summary,) = await eventually(summarised, timeout=30, what="a summary of the expired reply")
    assert summary.tier == "long" and summary.contact_id == contact_id
    assert subject in summary.text and "Earlier with this contact" in summary.text
    memories = await recall(herald, tenant, contact_id, query="pilot results reply")
    assert [m.tier for m in memories] == ["long"]  # nothing of it is left in the medium tier
    conn = await asyncpg.connect(herald.pg_dsn)
    try:
        left = await conn.fetchval(
            "SELECT count(*) FROM retrieval.interactions WHERE tenant = $1 AND contact_id = $2", tenant, contact_id
        )
    finally:
        await conn.close()
    assert left == 0


async def test_a_reviewers_feedback_is_recalled_by_a_later_workflow(herald, tenant, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = secrets.token_hex(3)
    vip = _contact(run, 6, vip=True)
    later = _contact(run, 7)  # another lead like the first: same role, same industry
    herald.seed_contacts(tenant, [vip, later], tmp_path)
    response = await post_hubspot(herald, tenant, [_creation(vip, int(f"8{int(run, 16)}6"))])
    assert response.json()["accepted"] == 1

    async with herald.review_client() as review:

        async def pending() -> list[dict[str, Any]] | None:
            items = (await review.get("/v1/reviews", params={"tenant": tenant, "status": "pending"})).json()
            return [i for i in items if str(i["contact_id"]) == str(vip["contact_id"])] or None

        (item,) = await eventually(pending, timeout=60, what="the VIP's review item")
        no = await review.post(f"/v1/reviews/{item['review_id']}/reject", json={"reason": FEEDBACK})
        assert no.status_code == 200, no.text

    # the feedback is a memory of the whole tenant before the next lead arrives
    async def remembered() -> list[Any] | None:
        memories = await recall(herald, tenant, str(later["contact_id"]), query="first-touch email")
        return [m for m in memories if m.kind == "reviewer_feedback"] or None

    (feedback,) = await eventually(remembered, timeout=30, what="the reviewer's feedback in memory")
    assert FEEDBACK in feedback.text and feedback.tier == "long" and feedback.contact_id == ""

    response = await post_hubspot(herald, tenant, [_creation(later, int(f"8{int(run, 16)}7"))])
    assert response.json()["accepted"] == 1

    def plan_for_later(records):  # type: ignore[no-untyped-def]
        return [
            r.body(PlanCreated)
            for r in records
            if r.tenant == tenant
            and r.type == PlanCreated.TYPE
            and r.body(PlanCreated).contact_id == str(later["contact_id"])
        ]

    plans = plan_for_later(
        await read_topic(herald.bootstrap, herald.topic(PLAN), timeout=60, until=lambda rs: bool(plan_for_later(rs)))
    )
    assert plans, "no plan for the later lead"
    recalled = [m for m in plans[0].memories if m.kind == "reviewer_feedback"]
    assert recalled and FEEDBACK in recalled[0].text
    # and the reviewer of the later email sees it in the proposal's rationale
    proposals = [
        r.body(ActionProposed)
        for r in await read_topic(herald.bootstrap, herald.topic(PROPOSED_ACTION), timeout=10)
        if r.tenant == tenant
    ]
    mine = [p for p in proposals if p.contact.contact_id == str(later["contact_id"])]
    assert mine and FEEDBACK[:60] in mine[0].rationale


async def test_recall_refuses_bad_requests(herald, tenant) -> None:  # type: ignore[no-untyped-def]
    async with herald.retrieval_channel() as channel:
        stub = retrieval_pb2_grpc.RetrievalStub(channel)
        for request, words in [
            (retrieval_pb2.RecallRequest(tenant=tenant, contact_id=""), "contact_id is required"),
            (retrieval_pb2.RecallRequest(tenant=tenant, contact_id="c-1", k=51), "k must be between 1 and 50"),
            (retrieval_pb2.RecallRequest(tenant="Not A Tenant", contact_id="c-1"), "tenant must be"),
            (retrieval_pb2.RecallRequest(tenant=tenant, contact_id="c-1", query="x" * 2001), "over 2,000"),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Recall(request)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert words in (refused.value.details() or "")


async def test_a_malformed_reply_is_refused_at_the_edge_with_the_field_named(herald, tenant) -> None:  # type: ignore[no-untyped-def]
    bad = reply("c-1", "x", NOW)
    del bad["subject"]
    refused = await post_event(herald, tenant, "herald.message.replied.v1", bad)
    assert refused.status_code == 422 and "subject" in refused.text
    too_long = await post_event(herald, tenant, "herald.message.replied.v1", reply("c-1", "x" * 301, NOW))
    assert too_long.status_code == 422 and "subject" in too_long.text
