"""The reviewers' web UI in a real browser (Debian's Chromium driven by Playwright) against the review service of
the running stack: items reach the queue the real way (a VIP's email escalated by the guard, an execution in
doubt reported on the executed topic), a person decides on the pages, and what follows is read back from Kafka,
the mailbox and the API — never from the page alone. The audit page is read against the JSON audit API."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from playwright.async_api import Browser, Locator, Page, Response, async_playwright
from review_support import decisions_on_kafka, escalated_email, queued, review_state

from herald_core.contracts import (
    ActionApproved,
    ExecutionResolved,
)
from herald_core.topics import APPROVED_ACTION, EXECUTED
from support import (
    ALL_ROLES,
    bodies,
    eventually,
    loopback,
    mails_to,
    part_of,
    read_topic,
    reported_in_doubt,
    restarted_with,
)

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.smtp, pytest.mark.browser]

REVIEWER = "dana@acmerelay.example"
SCRIPT = "<script>window.__draft_script_ran = true</script>"
IMAGE = '<img src="x" onerror="window.__draft_image_ran = true">'


@pytest.fixture(scope="module")
async def browser(herald) -> AsyncIterator[Browser]:  # type: ignore[no-untyped-def]
    """Debian's Chromium (installed by `herald-stack install`), never a browser Playwright would download."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(herald.services.config.chromium_binary))
        try:
            yield launched
        finally:
            await launched.close()


def signed_in(browser: Browser, subject: str = REVIEWER, groups: tuple[str, ...] = ALL_ROLES):  # type: ignore[no-untyped-def]
    """A browser session signed in as the authenticating proxy in front of the UI would say: the person and their
    groups in its headers (the test stack trusts loopback's 127.0.0.1 as that proxy)."""
    headers = {"X-Auth-Request-Email": subject, "X-Auth-Request-Groups": ",".join(groups)}
    return browser.new_context(extra_http_headers=headers)


async def submitted(page: Page, button: str) -> Response:
    """Click a form's button and wait for the page it leads to; the answer to the POST itself."""
    async with page.expect_response(lambda r: r.request.method == "POST") as posted:
        await page.get_by_role("button", name=button).click()
    await page.wait_for_load_state()
    return await posted.value


async def searched(page: Page) -> Response:
    """Submit the audit search and wait for the page it leads to; the answer to that GET."""
    async with page.expect_response(lambda r: r.request.is_navigation_request() and "/ui/audit" in r.url) as got:
        await page.get_by_role("button", name="Search").click()
    await page.wait_for_load_state()
    return await got.value


async def audit_api(herald, **params: str) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Audit records through the JSON API (oldest first), every page of it."""
    found: list[dict[str, Any]] = []
    async with herald.review_client() as client:
        while True:
            response = await client.get("/v1/audit", params={**params, "limit": 2, "offset": len(found)})
            assert response.status_code == 200, response.text
            found += response.json()
            if len(response.json()) < 2:
                return found


async def audit_rows(page: Page) -> list[str]:
    """The audit page's rows, as the place of each record on the audit topic (partition-offset)."""
    rows = page.locator("table.audit tbody tr")
    return [str(await rows.nth(n).get_attribute("id")).removeprefix("record-") for n in range(await rows.count())]


async def test_a_reviewer_rejects_one_escalated_email_and_approves_another(herald, browser) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"ui{secrets.token_hex(3)}")
    run = secrets.token_hex(3)
    subject = "Quick <b>question</b> about your Q3 routes"
    body = f"Hi Jordan,\n\n{SCRIPT}\n{IMAGE}\nWe cut dispatch time by 30%.\n\nBest,\nMaya"
    hostile = await escalated_email(herald, tenant, f"{run}1", subject=subject, body=body)
    other = await escalated_email(herald, tenant, f"{run}2", subject="Following up on the webinar", body="Hi Jordan.")
    items = await queued(herald, tenant, {hostile.action_id, other.action_id})
    rejected_id, approved_id = items[hostile.action_id]["review_id"], items[other.action_id]["review_id"]
    base = herald.services.review_url

    context = await signed_in(browser)
    page = await context.new_page()

    # the queue: both items, oldest first, each with why it is here
    answer = await page.goto(f"{base}/ui?tenant={tenant}")
    assert answer is not None and answer.status == 200
    headers = await answer.all_headers()
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    rows = page.locator("table.queue tbody tr")
    by_age = sorted(items.values(), key=lambda i: i["created_at"])
    assert [await r.get_attribute("data-review-id") for r in await rows.all()] == [i["review_id"] for i in by_age]
    row = page.locator(f'tr[data-review-id="{rejected_id}"]')
    text = await row.inner_text()
    for expected in ("approval", tenant, str(hostile.contact.email), "send_email", "VIP", "escalation.vip"):
        assert expected in text, (expected, text)

    # the item: the draft shown as text — the script in it neither rendered nor run
    await row.get_by_role("link").click()
    await page.wait_for_url(f"**/ui/reviews/{rejected_id}")
    assert await page.locator("#email-subject").inner_text() == subject
    assert hostile.contact.email in await page.locator("#email-to").inner_text()
    shown = await page.locator("#email-body").inner_text()
    assert SCRIPT in shown and IMAGE in shown and "We cut dispatch time by 30%." in shown
    assert await page.locator("script").count() == 0 and await page.locator("main img").count() == 0
    assert await page.evaluate("[window.__draft_script_ran, window.__draft_image_ran]") == [None, None]
    assert "pricing page answers" in await page.locator("#rationale").inner_text()
    assert await page.locator("#confidence").inner_text() == "90 %"
    assert "escalation.vip" in await page.locator("table.rules").inner_text()
    facts = await page.locator("#contact").inner_text()
    assert "Northwind Freight" in facts and "VIP" in facts

    # a second tab left open on the same item, to come back to after the decision
    stale = await context.new_page()
    await stale.goto(f"{base}/ui/reviews/{rejected_id}")

    # rejecting without a reason: the problem next to the field, nothing decided
    refused = await submitted(page, "Reject")
    assert refused.status == 422
    assert "Say why" in await page.locator("#reason-error").inner_text()
    assert await page.locator("#reason").get_attribute("aria-describedby") == "reason-error"
    assert REVIEWER in await page.locator("#deciding-as").inner_text()  # who decides: the signed-in person
    assert (await review_state(herald, rejected_id))["status"] == "pending"

    # rejecting with a reason: back to the queue, the item gone from it, the decision on Kafka
    reason = "Promises a 30% cut we cannot show for their lanes"
    await page.locator("#reason").fill(reason)
    done = await submitted(page, "Reject")
    assert done.status == 303
    await page.wait_for_url(f"{base}/ui")
    assert "Rejected" in await page.locator("#flash").inner_text()
    assert subject in await page.locator("#flash").inner_text()
    await page.goto(f"{base}/ui?tenant={tenant}")
    assert await page.locator(f'tr[data-review-id="{rejected_id}"]').count() == 0
    assert await page.locator(f'tr[data-review-id="{approved_id}"]').count() == 1
    assert await page.locator("#flash").count() == 0  # said once
    state = await review_state(herald, rejected_id)
    assert (state["status"], state["reviewer"], state["decision_reason"]) == ("rejected", REVIEWER, reason)
    (decided,) = await decisions_on_kafka(herald, rejected_id)
    assert (decided.decision.value, decided.reviewer, decided.reason) == ("rejected", REVIEWER, reason)
    assert decided.action.action_id == hostile.action_id

    # the stale tab: approving what was already rejected is refused on the page, and changes nothing
    conflict = await submitted(stale, "Approve")
    assert conflict.status == 409
    assert "already decided" in await stale.locator("#conflict").inner_text()
    assert f"rejected by {REVIEWER}" in await stale.locator("#outcome").inner_text()
    assert (await review_state(herald, rejected_id))["status"] == "rejected"

    # approving the other: the guard re-checks and signs; the email is sent
    await page.goto(f"{base}/ui/reviews/{approved_id}")
    approved = await submitted(page, "Approve")
    assert approved.status == 303
    assert "Approved" in await page.locator("#flash").inner_text()

    def signed(records) -> list[ActionApproved]:  # type: ignore[no-untyped-def]
        return [b for b in bodies(records, ActionApproved, other.action_id) if b.action.action_id == other.action_id]

    approvals = signed(
        await read_topic(herald.bootstrap, herald.topic(APPROVED_ACTION), timeout=30, until=lambda rs: bool(signed(rs)))
    )
    assert [(a.stage, a.approval.approved_by) for a in approvals] == [("review", f"review:{REVIEWER}")]
    mails = await eventually(lambda: mails_to(herald.maildir, other.contact.email or ""), timeout=60, what="the email")
    assert len(mails) == 1 and mails[0]["Subject"] == "Following up on the webinar"
    (approval,) = await decisions_on_kafka(herald, approved_id)
    assert approval.edit is None  # the draft untouched in the form is the draft, not an edit
    # one decision each, and the rejected email never left
    assert len(await decisions_on_kafka(herald, rejected_id)) == 1
    assert mails_to(herald.maildir, hostile.contact.email or "") == []

    # "why did it do that?": the escalation, the rule and the reviewer's rejection, rebuilt from the audit
    async def told() -> bool:
        await page.goto(f"{base}/ui/explain/{hostile.action_id}")
        return (
            await page.locator("#story-review").count() == 1
            and "rejected" in await page.locator("#story-review").inner_text()
        )

    await eventually(told, timeout=60, interval=0.5, what="the rejection in the explain page")
    story = await page.locator("main").inner_text()
    assert "Escalated at proposal" in story and "escalation.vip" in story and "contact is marked VIP" in story
    review = await page.locator("#story-review").inner_text()
    assert REVIEWER in review and reason in review
    assert await page.locator("#story-subject").inner_text() == subject
    assert SCRIPT in story and await page.locator("script").count() == 0
    assert await page.evaluate("[window.__draft_script_ran, window.__draft_image_ran]") == [None, None]
    await context.close()


async def test_the_sign_in_proxy_names_the_reviewer(herald, browser) -> None:  # type: ignore[no-untyped-def]
    """Who decides is who the authenticating proxy says signed in, with the groups it names; nobody named sees a
    sign-in page, somebody without a role for the tenant sees nothing of it, and the proxy's header from any
    address but the proxy's is refused."""
    tenant = herald.add_tenant(f"uiproxy{secrets.token_hex(3)}")
    action = await escalated_email(herald, tenant, f"p{secrets.token_hex(3)}", subject="Hello", body="A short note.")
    review_id = (await queued(herald, tenant, {action.action_id}))[action.action_id]["review_id"]
    item_url = f"{herald.services.review_url}/ui/reviews/{review_id}"

    anonymous = await (await browser.new_context()).new_page()
    answer = await anonymous.goto(item_url)
    assert answer is not None and answer.status == 401
    assert "Sign in first" in await anonymous.locator("main").inner_text()
    assert "Hello" not in await anonymous.locator("main").inner_text()

    outsider = await (await signed_in(browser, "eve@elsewhere.example", ("other-team",))).new_page()
    answer = await outsider.goto(item_url)
    assert answer is not None and answer.status == 403
    assert "Hello" not in await outsider.locator("main").inner_text()
    answer = await outsider.goto(f"{herald.services.review_url}/ui")
    assert answer is not None and answer.status == 200
    assert await outsider.locator(f'tr[data-review-id="{review_id}"]').count() == 0  # not their tenant's queue

    # the proxy's header sent straight to the service from another address: refused, not believed
    spoofed = {"X-Auth-Request-Email": REVIEWER, "X-Auth-Request-Groups": "reviewers"}
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(transport=transport, timeout=30) as client:
        answer_from_elsewhere = await client.get(item_url, headers=spoofed)
    assert answer_from_elsewhere.status_code == 401, answer_from_elsewhere.text
    assert "not a trusted proxy" in answer_from_elsewhere.text

    signed = "ana.proxy@acmerelay.example"
    context = await signed_in(browser, signed, ("reviewers",))
    page = await context.new_page()
    await page.goto(item_url)
    assert await page.locator("#reviewer").count() == 0  # no name to type: the proxy said who it is
    assert await page.locator("#signed-in-reviewer").inner_text() == signed
    await page.locator("#reason").fill("not this quarter")
    assert (await submitted(page, "Reject")).status == 303
    (decided,) = await decisions_on_kafka(herald, review_id)
    assert (decided.reviewer, decided.reason) == (signed, "not this quarter")
    await context.close()


async def test_an_execution_in_doubt_is_resolved_from_its_page(herald, browser) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"uidoubt{secrets.token_hex(3)}")
    contact_id = f"d{secrets.token_hex(3)}"
    why = "found claimed after a restart; SMTP cannot be asked whether it took the message"
    executed = await reported_in_doubt(herald, tenant, contact_id, why)
    review_id = (await queued(herald, tenant, {executed.action_id}))[executed.action_id]["review_id"]
    base = herald.services.review_url

    context = await signed_in(browser)
    page = await context.new_page()
    await page.goto(f"{base}/ui?tenant={tenant}&kind=in_doubt")
    row = page.locator(f'tr[data-review-id="{review_id}"]')
    assert "in doubt" in await row.inner_text() and why in await row.inner_text()
    await row.get_by_role("link").click()
    await page.wait_for_url(f"**/ui/reviews/{review_id}")
    assert await page.locator("#why").inner_text() == why
    assert await page.locator("#summary").inner_text() == executed.summary
    assert await page.get_by_role("button", name="Approve").count() == 0  # resolved, never approved or re-sent

    # neither what was found nor how: both asked for, next to their fields
    refused = await submitted(page, "Record the finding")
    assert refused.status == 422
    assert "Choose what the check found" in await page.locator("#outcome-error").inner_text()
    assert "how it was checked" in await page.locator("#reason-error").inner_text()

    how = "in the recipient's inbox at 10:02, Message-ID matches"
    await page.get_by_label("It happened").check()
    await page.locator("#reason").fill(how)
    assert (await submitted(page, "Record the finding")).status == 303
    assert "Resolved as happened" in await page.locator("#flash").inner_text()

    def resolutions(records) -> list[ExecutionResolved]:  # type: ignore[no-untyped-def]
        return [b for b in bodies(records, ExecutionResolved, executed.action_id) if b.action_id == executed.action_id]

    (resolved,) = resolutions(
        await read_topic(herald.bootstrap, herald.topic(EXECUTED), timeout=30, until=lambda rs: bool(resolutions(rs)))
    )
    assert (resolved.outcome.value, resolved.reviewer, resolved.reason) == ("happened", REVIEWER, how)
    assert resolved.review_id == review_id
    await context.close()


async def test_a_post_without_the_sessions_csrf_token_changes_nothing(herald, browser) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"uicsrf{secrets.token_hex(3)}")
    action = await escalated_email(herald, tenant, f"x{secrets.token_hex(3)}", subject="Hello", body="A short note.")
    review_id = (await queued(herald, tenant, {action.action_id}))[action.action_id]["review_id"]
    url = f"{herald.services.review_url}/ui/reviews/{review_id}"
    context = await signed_in(browser)
    page = await context.new_page()
    await page.goto(url)  # the session's token is now in the cookie and the form
    form = {"reviewer": "mallory@elsewhere.example", "reason": "forged"}  # a typed name is never read

    # with the session cookie but without the field, or with a wrong one: refused
    missing = await page.request.post(f"{url}/reject", form=form, max_redirects=0)
    assert missing.status == 403, await missing.text()
    wrong = await page.request.post(f"{url}/reject", form={**form, "csrf_token": "x" * 43}, max_redirects=0)
    assert wrong.status == 403

    # a page of another origin on the same host (so the browser still sends the cookie along) posting a form
    # here: it cannot know the token
    lure = FastAPI()

    @lure.get("/")
    async def page_with_a_form() -> HTMLResponse:
        return HTMLResponse(
            f'<form method="post" action="{url}/reject"><input name="reviewer" value="mallory">'
            '<input name="reason" value="forged"><input name="csrf_token" value="guess"><button>Go</button></form>'
        )

    async with loopback(lure) as elsewhere:
        await page.goto(elsewhere)
        async with page.expect_response(lambda r: r.request.method == "POST") as posted:
            await page.get_by_role("button", name="Go").click()
        assert (await posted.value).status == 403
        assert "nothing was changed" in await page.locator("#problem").inner_text()
    assert (await review_state(herald, review_id))["status"] == "pending"

    # the same request with the page's own token goes through: the token is what was missing
    await page.goto(url)
    token = await page.locator("input[name=csrf_token]").first.input_value()
    accepted = await page.request.post(f"{url}/reject", form={**form, "csrf_token": token}, max_redirects=0)
    assert accepted.status == 303
    state = await review_state(herald, review_id)
    assert (state["status"], state["reviewer"]) == ("rejected", REVIEWER)  # the signed-in person, not mallory
    await context.close()


async def test_a_reviewer_approves_their_own_wording(herald, browser) -> None:  # type: ignore[no-untyped-def]
    """The approve form holds the draft; what the reviewer changes there is what is sent — after the guard has
    checked the new wording — and the item says it was approved with the reviewer's wording."""
    tenant = herald.add_tenant(f"ui{secrets.token_hex(3)}")
    draft = await escalated_email(
        herald, tenant, f"{secrets.token_hex(3)}e", subject="Following up", body="Hi Jordan,\n\nA draft.\n"
    )
    review_id = (await queued(herald, tenant, {draft.action_id}))[draft.action_id]["review_id"]
    page = await (await signed_in(browser)).new_page()
    await page.goto(f"{herald.services.review_url}/ui/reviews/{review_id}")
    assert await page.locator("#subject").input_value() == "Following up"
    assert await page.locator("#body_text").input_value() == "Hi Jordan,\n\nA draft.\n"
    await page.locator("#subject").fill("")
    refused = await submitted(page, "Approve")
    assert refused.status == 422 and await page.locator("#subject-error").count() == 1
    assert (await review_state(herald, review_id))["status"] == "pending"

    await page.locator("#subject").fill("Jordan, the routes you asked about")
    await page.locator("#body_text").fill("Hi Jordan,\n\nWritten by a person, line two.\n")
    approved = await submitted(page, "Approve")
    assert approved.status == 303
    (decided,) = await decisions_on_kafka(herald, review_id)
    assert decided.edit is not None and decided.edit.subject == "Jordan, the routes you asked about"
    assert decided.edit.body_text == "Hi Jordan,\n\nWritten by a person, line two.\n"  # LF, as typed
    (mail,) = await eventually(lambda: mails_to(herald.maildir, draft.recipient), timeout=60, what="the email")
    assert mail["Subject"] == "Jordan, the routes you asked about"
    assert "Written by a person, line two." in part_of(mail, "plain")
    await page.goto(f"{herald.services.review_url}/ui/reviews/{review_id}")
    assert "Jordan, the routes you asked about" in await page.locator("#edit").inner_text()


async def test_the_queue_pages_oldest_first(herald, browser) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"uipage{secrets.token_hex(3)}")
    queued_in_order = []
    for n in range(3):
        executed = await reported_in_doubt(herald, tenant, f"p{secrets.token_hex(3)}{n}", f"in doubt {n}")
        await queued(herald, tenant, {executed.action_id})  # one by one: the queue's order is known
        queued_in_order.append(executed.action_id)

    async with herald.review_client() as client:
        pages = [
            (await client.get("/v1/reviews", params={"tenant": tenant, "limit": 2, "offset": offset})).json()
            for offset in (0, 2)
        ]
    assert [[i["action_id"] for i in p] for p in pages] == [queued_in_order[:2], queued_in_order[2:]]

    async with restarted_with(herald, "review-0", {"HERALD_REVIEW_UI_PAGE_SIZE": "2"}):
        page = await (await signed_in(browser)).new_page()
        await page.goto(f"{herald.services.review_url}/ui?tenant={tenant}&kind=in_doubt")
        rows = page.locator("table.queue tbody tr")

        async def shown() -> list[str]:
            ids = [await rows.nth(n).get_attribute("data-review-id") for n in range(await rows.count())]
            return [str(i).removeprefix("doubt-") for i in ids]

        assert await shown() == queued_in_order[:2]
        assert "Items 1–2" in await page.locator("p.count").inner_text()
        assert await page.locator("#previous-page").count() == 0
        await page.locator("#next-page").click()
        assert await shown() == queued_in_order[2:]
        assert await page.locator("#next-page").count() == 0
        await page.locator("#previous-page").click()
        assert await shown() == queued_in_order[:2]

        # the audit pages the other way, newest first, in pages of the same size
        async def all_audited() -> list[dict[str, Any]] | None:
            records = await audit_api(herald, tenant=tenant)
            return records if {r["action_id"] for r in records} >= set(queued_in_order) else None

        records = await eventually(all_audited, timeout=60, what="the in-doubt reports in the audit")
        newest_first = [f"{r['partition']}-{r['offset']}" for r in reversed(records)]
        await page.goto(f"{herald.services.review_url}/ui/audit?tenant={tenant}")
        assert await audit_rows(page) == newest_first[:2]
        assert "Records 1–2, newest first" in await page.locator("p.count").inner_text()
        await page.locator("#next-page").click()
        await page.wait_for_url(lambda url: url.endswith("page=2"))
        assert await audit_rows(page) == newest_first[2:4]
        await page.locator("#previous-page").click()
        await page.wait_for_url(lambda url: url.endswith("page=1"))
        assert await audit_rows(page) == newest_first[:2]


async def test_the_audit_page_finds_a_contacts_records_newest_first(herald, browser) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"uiaudit{secrets.token_hex(3)}")
    contact_id = f"a{secrets.token_hex(3)}"
    body = f"Hi Jordan,\n\n{SCRIPT}\nWe cut dispatch time by 30%."
    action = await escalated_email(herald, tenant, contact_id, subject="Your Q3 routes", body=body)
    review_id = (await queued(herald, tenant, {action.action_id}))[action.action_id]["review_id"]
    base = herald.services.review_url
    context = await signed_in(browser)
    page = await context.new_page()

    # rejected on its page
    await page.goto(f"{base}/ui/reviews/{review_id}")
    reason = "Not before their contract renews"
    await page.locator("#reason").fill(reason)
    assert (await submitted(page, "Reject")).status == 303

    # the audit from the header's link, searched by tenant and contact
    await page.locator("header nav").get_by_role("link", name="Audit").click()
    await page.wait_for_url(f"{base}/ui/audit")
    assert await page.locator("table.audit").count() == 0  # no tenant named: nothing searched yet
    await page.locator("#tenant").fill(tenant)
    await page.locator("#contact_id").fill(contact_id)
    answer = await searched(page)
    assert answer.status == 200
    assert "default-src 'self'" in (await answer.all_headers())["content-security-policy"]

    # once the guard's block after the rejection is indexed, the page shows the API's records, newest first
    async def everything_shown() -> list[dict[str, Any]] | None:
        records = await audit_api(herald, tenant=tenant, contact_id=contact_id)
        if "herald.action.blocked.v1" not in {r["type"] for r in records}:
            return None
        await page.reload()
        newest_first = [f"{r['partition']}-{r['offset']}" for r in reversed(records)]
        return records if await audit_rows(page) == newest_first else None

    records = await eventually(everything_shown, timeout=60, interval=0.5, what="the chain on the audit page")
    times = [datetime.fromisoformat(r["occurred_at"]) for r in records]
    assert times == sorted(times)  # the API's order is oldest first, so the page's is newest first

    def row(record_type: str) -> Locator:
        return page.locator(f'table.audit tbody tr[data-type="{record_type}"]')

    shown = [await page.locator("table.audit tbody tr td.what").nth(n).inner_text() for n in range(len(records))]
    said = ["email proposed", "sent to review", "rejected by reviewer", "blocked by guard"]
    assert all(words in shown for words in said), shown
    assert [shown.index(words) for words in reversed(said)] == sorted(shown.index(words) for words in said)
    assert await row("herald.action.escalated.v1").locator("td.rules").inner_text() == "escalation.vip"
    assert await row("herald.action.blocked.v1").locator("td.rules").inner_text() == "review.rejected"
    rejection = await row("herald.review.decided.v1").locator("td.summary").inner_text()
    assert REVIEWER in rejection and reason in rejection
    for record_type in ("herald.action.proposed.v1", "herald.action.escalated.v1", "herald.review.decided.v1"):
        cells = await row(record_type).inner_text()
        assert tenant in cells and contact_id in cells and action.action_id in cells, cells

    # the draft's script reached the proposal's summary: shown as text, never run
    proposal = await row("herald.action.proposed.v1").locator("td.summary").inner_text()
    assert "Your Q3 routes" in proposal and SCRIPT in proposal
    assert await page.locator("script").count() == 0
    assert await page.evaluate("window.__draft_script_ran") is None

    # filtered by the rule that stopped it: the block alone
    await page.locator("#rule").fill("review.rejected")
    assert (await searched(page)).status == 200
    assert [await r.get_attribute("data-type") for r in await page.locator("table.audit tbody tr").all()] == [
        "herald.action.blocked.v1"
    ]

    # filtered by the rule that sent it to review: the escalation and the review request it made (neither is a
    # block, whose one rule the index names on its own)
    await page.locator("#rule").fill("escalation.vip")
    assert (await searched(page)).status == 200
    assert {await r.get_attribute("data-type") for r in await page.locator("table.audit tbody tr").all()} == {
        "herald.action.escalated.v1",
        "herald.review.requested.v1",
    }

    # the action opens "why did it do that?", which leads back to all of the contact's records
    await page.locator("#rule").fill("")
    await searched(page)
    await row("herald.action.proposed.v1").locator("td.action a").click()
    await page.wait_for_url(f"**/ui/explain/{action.action_id}")
    assert "rejected" in await page.locator("#story-review").inner_text()
    await page.locator("#contact-audit").click()
    await page.wait_for_url(lambda url: "/ui/audit?" in url and f"contact_id={contact_id}" in url)
    assert len(await audit_rows(page)) >= len(records)

    # a since that is no date: said next to the field, with what was typed, and nothing searched
    await page.locator("#since").fill("2026-02-30")
    refused = await searched(page)
    assert refused.status == 422
    assert "Not a date or time" in await page.locator("#since-error").inner_text()
    assert await page.locator("#since").get_attribute("aria-describedby") == "since-error"
    assert await page.locator("#since").input_value() == "2026-02-30"
    assert await page.locator("#contact_id").input_value() == contact_id
    assert await page.locator("table.audit").count() == 0
    await context.close()
