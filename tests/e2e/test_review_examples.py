"""A reviewer's edit teaches: after a reviewer rewrites the call to action and the subject of one logistics
lead's first email, the next logistics lead's template draft carries the reviewer's wording (with its own
names), and a lead of another industry's does not. Read back from the mailbox."""

from __future__ import annotations

import secrets

import pytest
from sequence_support import lead, mails, new_lead
from test_review_ui import queued

from herald_core.contracts import ActionProposed, SendEmailInput
from herald_core.topics import PROPOSED_ACTION
from support import part_of, read_topic

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.smtp]

CALL = "Would a 20-minute call next week be useful to see how this would look for {company}?"
BETTER = "Could I show you, in 15 minutes, how {company} would run its exception queue on Acme Relay?"


async def _proposal_to(herald, tenant: str, contact_id: str) -> ActionProposed:  # type: ignore[no-untyped-def]
    def mine(records) -> list[ActionProposed]:  # type: ignore[no-untyped-def]
        return [
            r.body(ActionProposed)
            for r in records
            if r.tenant == tenant
            and r.type == ActionProposed.TYPE
            and r.body(ActionProposed).contact.contact_id == contact_id
        ]

    records = await read_topic(
        herald.bootstrap, herald.topic(PROPOSED_ACTION), timeout=60, until=lambda rs: bool(mine(rs))
    )
    (found,) = mine(records)
    return found


async def test_a_reviewers_edit_changes_the_next_template_draft_of_that_segment(herald) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"teach{secrets.token_hex(3)}")
    herald.load_kb(tenant)
    run = secrets.token_hex(3)
    vip = lead(run, "vic", vip=True, company="Contoso Shipping")
    await new_lead(herald, tenant, vip)
    proposal = await _proposal_to(herald, tenant, vip["contact_id"])
    email = proposal.input
    assert isinstance(email, SendEmailInput) and CALL.format(company="Contoso Shipping") in email.body_text
    edited = email.body_text.replace(CALL.format(company="Contoso Shipping"), BETTER.format(company="Contoso Shipping"))
    items = await queued(herald, tenant, {proposal.action_id})
    async with herald.review_client() as review:
        approved = await review.post(
            f"/v1/reviews/{items[proposal.action_id]['review_id']}/approve",
            json={
                "reason": "ask for less, name their queue",
                "edit": {"subject": "Vic, Contoso Shipping's exception queue", "body_text": edited},
            },
        )
        assert approved.status_code == 200, approved.text
    (sent,) = await mails(herald, vip["email"], 1, "the edited email")
    assert BETTER.format(company="Contoso Shipping") in part_of(sent, "plain")

    later = lead(run, "lea", company="Fabrikam Logistics")
    other = lead(run, "hal", company="Litware Health", industry="healthcare")
    for contact in (later, other):
        await new_lead(herald, tenant, contact)
    (learned,) = await mails(herald, later["email"], 1, "the next logistics lead's email")
    body = part_of(learned, "plain")
    assert BETTER.format(company="Fabrikam Logistics") in body and "20-minute call" not in body
    assert learned["Subject"] == "Lea, Fabrikam Logistics's exception queue"
    assert "Contoso" not in body + learned["Subject"], "the edit taught wording, not the reviewed lead's names"
    (unchanged,) = await mails(herald, other["email"], 1, "the healthcare lead's email")
    assert CALL.format(company="Litware Health") in part_of(unchanged, "plain")
    taught = await _proposal_to(herald, tenant, later["contact_id"])
    assert "wording as reviewers edited drafts like it: dana@acme.example" in taught.rationale
