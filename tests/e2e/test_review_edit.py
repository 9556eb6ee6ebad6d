"""A reviewer may approve an email with their own wording: the edit travels with the decision, the guard applies it
and decides the edited email under every hard rule again before it signs — so an edit cannot carry what a rule
forbids — and the email that arrives is the edited one. The edit is kept on the item, in the audit and in
"why did it do that?"."""

from __future__ import annotations

import secrets

import pytest
from test_review_ui import escalated_email, queued

from herald_core.contracts import ActionApproved, ActionBlocked
from herald_core.topics import APPROVED_ACTION, DECISION
from support import eventually, mails_to, part_of, read_topic, tenant_with_policy

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp]

POLICY = """tenant: {tenant}
version: 1
rules:
  - id: escalation.vip
    when: action.contact.vip
    then: escalate
    reason: VIP contacts get a human's eye
  - id: content.banned_phrases
    kind: banned_phrases
    phrases: [risk-free]
    reason: words our brand rules forbid
"""


async def after_review(herald, tenant: str, action_id: str):  # type: ignore[no-untyped-def]
    """The guard's decision on the reviewed action (signed or blocked at the review stage)."""

    async def look():  # type: ignore[no-untyped-def]
        for spec, model in ((APPROVED_ACTION, ActionApproved), (DECISION, ActionBlocked)):
            for r in await read_topic(herald.bootstrap, herald.topic(spec), timeout=2):
                if r.tenant == tenant and r.type == model.TYPE and action_id.encode() in (r.value or b""):
                    body = r.body(model)
                    if isinstance(body, ActionBlocked) and body.stage != "review":
                        continue
                    return body
        return None

    return await eventually(look, timeout=60, what=f"the guard's decision after review of {action_id}")


async def test_an_approval_with_the_reviewers_wording_sends_that_wording_and_only_what_rules_allow(
    herald, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    tenant = await tenant_with_policy(herald, "edit", POLICY, tmp_path)
    run = secrets.token_hex(3)
    kept = await escalated_email(
        herald, tenant, f"kept{run}", subject="Quick question", body="Hi Jordan,\n\nA first draft.\n"
    )
    tempted = await escalated_email(
        herald, tenant, f"tempted{run}", subject="Quick question", body="Hi Jordan,\n\nAnother draft.\n"
    )
    items = await queued(herald, tenant, {kept.action_id, tempted.action_id})
    better = {"subject": "Jordan, your carrier exceptions", "body_text": "Hi Jordan,\n\nWritten by a person.\n"}

    async with herald.review_client() as client:
        url = f"/v1/reviews/{items[kept.action_id]['review_id']}"
        bad = await client.post(f"{url}/approve", json={"edit": {"subject": "Hi\r\nBcc: all@x.example"}})
        assert bad.status_code == 422, bad.text  # an edit meets the tool's constraints, like any draft
        rejected_with_edit = await client.post(f"{url}/reject", json={"reason": "no", "edit": better})
        assert rejected_with_edit.status_code == 422, rejected_with_edit.text
        assert (await client.get(url)).json()["status"] == "pending"

        approved = await client.post(f"{url}/approve", json={"reason": "sharper subject", "edit": better})
        assert approved.status_code == 200, approved.text
        assert approved.json()["edit"] == better
        forbidden = {"body_text": "Hi Jordan,\n\nStart your risk-free trial today.\n"}
        sneaky = await client.post(
            f"/v1/reviews/{items[tempted.action_id]['review_id']}/approve",
            json={"edit": forbidden},
        )
        assert sneaky.status_code == 200, sneaky.text

        signed = await after_review(herald, tenant, kept.action_id)
        assert isinstance(signed, ActionApproved), signed
        assert signed.action.input.subject == better["subject"]  # type: ignore[union-attr]
        assert signed.action.input.body_text == better["body_text"]  # type: ignore[union-attr]
        assert signed.approval.approved_by == "review:dana@acme.example"
        (mail,) = await eventually(lambda: mails_to(herald.maildir, kept.recipient), what="the edited email")
        assert mail["Subject"] == better["subject"]
        assert "Written by a person." in part_of(mail, "plain") and "A first draft." not in part_of(mail, "plain")

        blocked = await after_review(herald, tenant, tempted.action_id)
        assert isinstance(blocked, ActionBlocked) and blocked.rule == "content.banned_phrases", blocked
        assert mails_to(herald.maildir, tempted.recipient) == []

        story = (
            await client.get(
                f"/v1/explain/{kept.action_id}", headers={"accept": "text/plain"}, params={"format": "text"}
            )
        ).text
        assert "edited by the reviewer: subject “Jordan, your carrier exceptions”" in story, story
