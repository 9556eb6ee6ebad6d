"""An execution in doubt reaches a person: the review service queues it (kind `in_doubt`, with the executor's
reason), it cannot be approved or rejected — nothing may be sent again on a click — only resolved with what
the check of the downstream found, once; that finding settles the execution everywhere."""

from __future__ import annotations

import secrets

import asyncpg
import httpx
import pytest

from herald_core.contracts import ExecutionResolved, ExecutionStatus
from herald_core.topics import EXECUTED
from support import (
    approve,
    bodies,
    cut_off_by_a_crash,
    eventually,
    execution_of,
    mails_to,
    read_topic,
    reported_in_doubt,
    tool_action,
    tool_input,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]


async def test_an_execution_in_doubt_is_queued_and_resolved_not_approved(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"doubt{secrets.token_hex(3)}")
    contact_id = f"c{secrets.token_hex(3)}"
    why = "found claimed after a restart; SMTP cannot be asked whether it took the message"
    executed = await reported_in_doubt(herald, tenant, contact_id, why)

    base = herald.services.review_url
    async with httpx.AsyncClient(timeout=30, headers=herald.auth_headers("ana@acme.example")) as client:

        async def queued() -> list[dict]:  # type: ignore[type-arg]
            response = await client.get(f"{base}/v1/reviews", params={"tenant": tenant})
            return [i for i in response.json() if i["action_id"] == executed.action_id]

        (item,) = await eventually(queued, timeout=30, what="the in-doubt item")
        assert (item["kind"], item["status"], item["reason"]) == ("in_doubt", "pending", why)
        assert item["action"]["summary"] == executed.summary

        url = f"{base}/v1/reviews/{item['review_id']}"
        approve = await client.post(f"{url}/approve", json={})
        assert approve.status_code == 409 and approve.json()["detail"]["error"] == "resolve_instead"
        vague = await client.post(f"{url}/resolve", json={"outcome": "maybe"})
        assert vague.status_code == 422
        found = {"outcome": "happened", "reason": "in the recipient's inbox at 10:02"}
        resolved = await client.post(f"{url}/resolve", json=found)
        assert resolved.status_code == 200, resolved.text
        assert (resolved.json()["status"], resolved.json()["reviewer"]) == ("happened", "ana@acme.example")
        again = await client.post(f"{url}/resolve", json={**found, "outcome": "did_not_happen"})
        assert again.status_code == 409
        assert (await client.get(url)).json()["status"] == "happened"


async def test_a_persons_finding_settles_the_execution_everywhere(herald) -> None:  # type: ignore[no-untyped-def]
    """Two emails the executor was cut off sending (the state a crash right after the claim leaves: its ledger
    row `claimed` for the approval's record), so SMTP cannot be asked and both are in doubt. A person checks
    the mailboxes: one arrived, one did not. The finding is a fact on Kafka (`ExecutionResolved`, in the
    sealed audit); the executor's ledger settles (sent / failed) and the email found sent counts in the
    campaign's statistics; "why did it do that?" tells the whole story; nothing is sent again."""
    tenant = herald.add_tenant(f"settle{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    campaign = f"winter-{run}"
    actions = [
        tool_action(tenant, "send_email", tool_input("send_email", f"{run}{n}", n), contact_id=f"{run}{n}")
        for n in range(2)
    ]
    actions = [a.model_copy(update={"campaign_id": campaign}) for a in actions]
    approvals = [approve(herald, a) for a in actions]
    ids = {a.action_id for a in actions}

    await cut_off_by_a_crash(herald, approvals)

    for action in actions:
        executed = await execution_of(herald, action.action_id)
        assert executed.status is ExecutionStatus.IN_DOUBT, executed
    sent, lost = actions
    base = herald.services.review_url
    async with httpx.AsyncClient(timeout=30, headers=herald.auth_headers("ana@acme.example")) as client:

        async def queued() -> dict[str, dict]:  # type: ignore[type-arg]
            response = await client.get(f"{base}/v1/reviews", params={"tenant": tenant})
            return {i["action_id"]: i for i in response.json() if i["kind"] == "in_doubt"}

        items = await eventually(lambda: _all(queued, ids), timeout=30, what="both in-doubt items")
        findings = {
            sent.action_id: ("happened", "in the recipient's inbox, Message-ID matches"),
            lost.action_id: ("did_not_happen", "not in the mail server's log nor the inbox"),
        }
        for action_id, (outcome, reason) in findings.items():
            answer = await client.post(
                f"{base}/v1/reviews/{items[action_id]['review_id']}/resolve",
                json={"outcome": outcome, "reason": reason},
            )
            assert answer.status_code == 200, answer.text

        # the findings are facts on Kafka, in the executed topic and the sealed audit
        def resolutions(records) -> dict[str, ExecutionResolved]:  # type: ignore[no-untyped-def]
            return {b.action_id: b for b in bodies(records, ExecutionResolved, *ids) if b.action_id in ids}

        records = await read_topic(
            herald.bootstrap, herald.topic(EXECUTED), timeout=30, until=lambda rs: len(resolutions(rs)) == 2
        )
        found = resolutions(records)
        assert {a: (r.outcome.value, r.reason) for a, r in found.items()} == findings
        assert all(r.reviewer == "ana@acme.example" and r.tool == "send_email" for r in found.values())
        sealed = await read_topic(
            herald.bootstrap,
            f"{herald.prefix}herald.audit-sealed.v1",
            timeout=60,
            until=lambda rs: len(resolutions(rs)) == 2,
        )
        assert set(resolutions(sealed)) == ids

        # the executor's ledger is settled, and the email found sent counts for its campaign
        async def settled() -> dict[str, str] | None:
            conn = await asyncpg.connect(herald.pg_dsn)
            try:
                rows = await conn.fetch(
                    "SELECT action_id, state FROM executor.ledger WHERE tenant = $1 AND resolution IS NOT NULL", tenant
                )
            finally:
                await conn.close()
            states = {r["action_id"]: r["state"] for r in rows}
            return states if len(states) == 2 else None

        states = await eventually(settled, timeout=30, what="the ledger settled")
        assert states == {sent.action_id: "sent", lost.action_id: "failed"}
        stats = await client.post(
            f"{herald.services.executor_url}/v1/tools/fetch_campaign_stats",
            json={"tenant": tenant, "input": {"campaign_id": campaign}},
            headers=herald.service_headers("executor"),
        )
        assert stats.status_code == 200, stats.text
        assert [(v["variant"], v["sends"]) for v in stats.json()["variants"]] == [("default", 1)]

        # "why did it do that?" ends with the person's finding
        story = (await client.get(f"{base}/v1/explain/{sent.action_id}")).json()
        assert story["outcome"] == "executed: in_doubt, resolved: happened", story["outcome"]
        assert story["execution"][-1]["detail"] == findings[sent.action_id][1]

    # nothing was sent on the way: resolving is a record of what happened, not a retry
    for action in actions:
        assert mails_to(herald.maildir, action.recipient) == []


async def _all(queued, ids: set[str]):  # type: ignore[no-untyped-def]
    items = await queued()
    return items if ids <= set(items) else None
