"""`POST /v1/inbound/{tenant}/email` with a person's reply, raw: matched to the email Herald sent by its thread
(In-Reply-To, References, or Herald's Message-ID scheme when the send was in doubt), else to the contact holding
the sender's address; published once as `ReplyReceived` on herald.events.v1 with only the new text; automatic
messages, replies with nothing new and strangers left aside with the reason on the audit; what cannot be read as
a reply refused with its 4xx. The sent emails come from herald.executed.v1, published here as the executor does."""

from __future__ import annotations

import secrets
from email.message import EmailMessage
from typing import Any

import pytest

from herald_core.contracts import (
    ActionExecuted,
    ContactErased,
    EventRejected,
    ExecutionStatus,
    ReplyMatch,
    ReplyReceived,
)
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.topics import AUDIT, EVENTS, EXECUTED, contact_key
from support import eventually, publish_audited

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

DOMAIN = "herald.acmerelay.example"


@pytest.fixture(scope="module")
async def people(ingest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Contacts of the session's tenant (seeded with the real command): two share one address."""
    contacts = {
        "jane": ingest.contact(email=f"jane-{secrets.token_hex(3)}@acme.example", first_name="Jane"),
        "ravi": ingest.contact(email=f"ravi-{secrets.token_hex(3)}@acme.example", first_name="Ravi"),
        "twin_a": ingest.contact(email="shared-inbox@twins.example"),
        "twin_b": ingest.contact(email="shared-inbox@twins.example"),
    }
    await ingest.seeded(ingest.tenant, list(contacts.values()), tmp_path_factory.mktemp("replies"))
    return contacts


async def sent(ingest, contact: dict[str, Any], *, in_doubt: bool = False) -> tuple[str, str, str]:  # type: ignore[no-untyped-def]
    """Report an email to `contact` as the executor does (herald.executed.v1); wait until ingest has kept it.
    Returns (its Message-ID, action id, workflow id)."""
    action_id, workflow_id = new_id(), f"wf-{new_id()}"
    message_id = f"<{action_id.lower()}@{DOMAIN}>"
    contact_id = str(contact["contact_id"])
    executed = ActionExecuted(
        action_id=action_id,
        workflow_id=workflow_id,
        contact_id=contact_id,
        tool="send_email",
        status=ExecutionStatus.IN_DOUBT if in_doubt else ExecutionStatus.SUCCEEDED,
        result={} if in_doubt else {"message_id": message_id, "smtp_reply": "250 ok"},
    )
    envelope = Envelope.new_chain(source="herald/executor", type=executed.TYPE, tenant=ingest.tenant)
    key = contact_key(ingest.tenant, contact_id)
    await publish_audited(ingest.bootstrap, ingest.prefix, EXECUTED, key, envelope, executed)
    pool = await ingest.db()
    statement = "SELECT 1 FROM ingest.sent_emails WHERE tenant = $1 AND action_id = $2"
    await eventually(lambda: pool.fetchval(statement, ingest.tenant, action_id), what="the sent email kept")
    return message_id, action_id, workflow_id


def reply(sender: str, body: str = "Sounds good, tell me more.", **headers: str) -> tuple[bytes, str]:
    """A reply as a mail client writes it; returns (bytes, its Message-ID)."""
    message = EmailMessage()
    message_id = f"<{secrets.token_hex(8)}@mail.acme.example>"
    fields = {"From": sender, "To": "hello@acmerelay.example", "Subject": "Re: Cutting dwell time"}
    fields |= {"Date": "Wed, 02 Dec 2026 09:30:00 +0000", "Message-ID": message_id}
    for name, value in {**fields, **{k.replace("_", "-"): v for k, v in headers.items()}}.items():
        if value:
            message[name] = value
    message.set_content(body)
    return message.as_bytes(), message_id


async def post(ingest, raw: bytes, tenant: str | None = None, traceparent: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "message/rfc822", **({"traceparent": traceparent} if traceparent else {})}
    return await ingest.client.post(f"/v1/inbound/{tenant or ingest.tenant}/email", content=raw, headers=headers)


async def published(ingest, message_id: str) -> list[ReplyReceived]:  # type: ignore[no-untyped-def]
    records = [r for r in await ingest.read(EVENTS) if r.type == ReplyReceived.TYPE]
    return [body for body in (r.body(ReplyReceived) for r in records) if body.message_id == message_id]


async def test_a_reply_in_its_thread_is_published_with_its_contact_run_and_only_the_new_text(ingest, people) -> None:  # type: ignore[no-untyped-def]
    jane = people["jane"]
    herald_id, action_id, workflow_id = await sent(ingest, jane)
    body = (
        "Can you send the pricing for 50 seats?\n\nBest,\nJane\n\n"
        "On Tue, 1 Dec 2026 at 10:00, Maya <maya@acmerelay.example> wrote:\n> Hi Jane,\n> we cut dwell time.\n"
    )
    raw, message_id = reply(f"Jane <{jane['email']}>", body, In_Reply_To=herald_id, References=herald_id)
    response = await post(ingest, raw)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 1, "duplicates": 0, "ignored": []}

    [received] = await published(ingest, message_id)
    assert received.contact.contact_id == str(jane["contact_id"])
    assert (received.matched_by, received.in_reply_to) == (ReplyMatch.IN_REPLY_TO, herald_id)
    assert (received.answers_action_id, received.answers_workflow_id) == (action_id, workflow_id)
    assert received.text == "Can you send the pricing for 50 seats?"
    assert received.from_address == jane["email"]
    assert not received.out_of_office
    [record] = [
        r for r in await ingest.read(EVENTS) if r.type == ReplyReceived.TYPE and r.json()["message_id"] == message_id
    ]
    assert record.key == contact_key(ingest.tenant, str(jane["contact_id"]))
    assert record.value in {r.value for r in await ingest.read(AUDIT)}  # its audit copy, in the same transaction


async def test_the_same_reply_delivered_twice_is_published_once(ingest, people) -> None:  # type: ignore[no-untyped-def]
    herald_id, _, _ = await sent(ingest, people["jane"])
    raw, message_id = reply(people["jane"]["email"], In_Reply_To=herald_id)
    assert (await post(ingest, raw)).status_code == 202
    again = await post(ingest, raw)
    assert again.status_code == 200 and again.json() == {"accepted": 0, "duplicates": 1, "ignored": []}
    assert len(await published(ingest, message_id)) == 1


async def test_a_reply_is_threaded_by_its_references_when_its_in_reply_to_is_another_message(ingest, people) -> None:  # type: ignore[no-untyped-def]
    herald_id, action_id, _ = await sent(ingest, people["ravi"])
    # a colleague forwarded it and Ravi answers the forward: In-Reply-To names the forward, References the thread
    raw, message_id = reply(
        people["ravi"]["email"],
        In_Reply_To="<fwd.77@mail.acme.example>",
        References=f"{herald_id} <fwd.77@mail.acme.example>",
    )
    assert (await post(ingest, raw)).status_code == 202
    [received] = await published(ingest, message_id)
    assert (received.matched_by, received.in_reply_to, received.answers_action_id) == (
        ReplyMatch.REFERENCES,
        herald_id,
        action_id,
    )


async def test_a_reply_to_an_email_sent_in_doubt_is_threaded_by_heralds_message_id_scheme(ingest, people) -> None:  # type: ignore[no-untyped-def]
    herald_id, action_id, _ = await sent(ingest, people["ravi"], in_doubt=True)  # no Message-ID was reported
    raw, message_id = reply(people["ravi"]["email"], In_Reply_To=herald_id)
    assert (await post(ingest, raw)).status_code == 202
    [received] = await published(ingest, message_id)
    assert (received.matched_by, received.answers_action_id) == (ReplyMatch.IN_REPLY_TO, action_id)


async def test_a_colleague_answering_in_the_thread_is_the_threads_contact_from_another_address(ingest, people) -> None:  # type: ignore[no-untyped-def]
    herald_id, _, _ = await sent(ingest, people["jane"])
    raw, message_id = reply("Omar <omar@acme.example>", "Jane is out, I handle this now.", In_Reply_To=herald_id)
    assert (await post(ingest, raw)).status_code == 202
    [received] = await published(ingest, message_id)
    assert received.contact.contact_id == str(people["jane"]["contact_id"])
    assert received.from_address == "omar@acme.example"


async def test_a_reply_without_a_known_thread_is_matched_by_its_sender(ingest, people) -> None:  # type: ignore[no-untyped-def]
    raw, message_id = reply(people["ravi"]["email"].upper(), In_Reply_To="<unknown.1@elsewhere.example>")
    assert (await post(ingest, raw)).status_code == 202
    [received] = await published(ingest, message_id)
    assert received.matched_by is ReplyMatch.SENDER
    assert (received.contact.contact_id, received.in_reply_to, received.answers_action_id) == (
        str(people["ravi"]["contact_id"]),
        None,
        None,
    )


async def test_an_out_of_office_reply_is_published_as_one_with_its_return_day(ingest, people) -> None:  # type: ignore[no-untyped-def]
    herald_id, _, _ = await sent(ingest, people["jane"])
    raw, message_id = reply(
        people["jane"]["email"],
        "I am out of the office until Monday, December 14, 2026. For urgent matters call Omar.",
        In_Reply_To=herald_id,
        Subject="Automatic reply: Cutting dwell time",
        Auto_Submitted="auto-replied",
    )
    assert (await post(ingest, raw)).status_code == 202
    [received] = await published(ingest, message_id)
    assert (
        received.out_of_office and received.returns_on is not None and received.returns_on.isoformat() == "2026-12-14"
    )


# name → (sender key or address, body, headers, the reason said and audited)
LEFT_ASIDE: dict[str, tuple[str, str, dict[str, str], str]] = {
    "automatic": (
        "jane",
        "Ticket #4411 received.",
        {"Auto_Submitted": "auto-generated"},
        "automatic: an automatic message (Auto-Submitted: auto-generated), not a person's reply",
    ),
    "nothing_new": (
        "jane",
        "On Tue, 1 Dec 2026 at 10:00, Maya <maya@acmerelay.example> wrote:\n> Hi Jane",
        {},
        "nothing_new: the reply adds no text to what it quotes",
    ),
    "unknown_sender": (
        "stranger@nowhere.example",
        "Who are you?",
        {"In_Reply_To": "<nothing.we.sent@elsewhere.example>"},
        "unknown_sender: neither its thread nor its sender is known: no email Herald sent, no contact",
    ),
    "ambiguous_sender": (
        "shared-inbox@twins.example",
        "Yes please.",
        {},
        "ambiguous_sender: no known thread, and 2 contacts hold the sender's address",
    ),
}


@pytest.mark.parametrize("case", list(LEFT_ASIDE))
async def test_what_is_not_a_known_persons_reply_is_left_aside_on_the_audit(ingest, people, case: str) -> None:  # type: ignore[no-untyped-def]
    sender, body, headers, reason = LEFT_ASIDE[case]
    raw, message_id = reply(people[sender]["email"] if sender in people else sender, body, **headers)
    traceparent, trace = ingest.new_traceparent()
    response = await post(ingest, raw, traceparent=traceparent)
    assert response.status_code == 202, response.text
    assert response.json() == {
        "accepted": 0,
        "duplicates": 0,
        "ignored": [{"recipient": None, "reason": reason.split(": ", 1)[1]}],
    }
    assert await published(ingest, message_id) == []
    [audited] = [r for r in await ingest.read(AUDIT) if ingest.trace_of(r) == trace]
    left_aside = audited.body(EventRejected)
    assert (left_aside.status_code, left_aside.reason, left_aside.upstream_event_id) == (202, reason, message_id)
    assert "@" not in left_aside.reason


def _unreadable() -> dict[str, tuple[bytes, int, str]]:
    return {
        "no_sender": (reply("")[0], 422, "no_sender"),
        "no_text": (b"From: jane@acme.example\r\nContent-Type: image/png\r\n\r\niVBORw0KGgo=\r\n", 422, "no_text"),
        "unknown_charset": (
            b"From: jane@acme.example\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nnuqneH\r\n",
            422,
            "undecodable",
        ),
        "not_in_its_charset": (
            b"From: jane@acme.example\r\nContent-Type: text/plain; charset=utf-8\r\n\r\ncaf\xe9\r\n",
            422,
            "undecodable",
        ),
        "oversize_text": (reply("jane@acme.example", "x" * 300_000)[0], 413, "reply_too_large"),
    }


@pytest.mark.parametrize("case", list(_unreadable()))
async def test_what_cannot_be_read_as_a_reply_gets_its_4xx_and_the_audit_says_why(ingest, people, case: str) -> None:  # type: ignore[no-untyped-def]
    raw, status, error = _unreadable()[case]
    traceparent, trace = ingest.new_traceparent()
    response = await post(ingest, raw, traceparent=traceparent)
    endpoint = f"/v1/inbound/{ingest.tenant}/email"
    await ingest.assert_refused(response, trace, status=status, error=error, tenant=ingest.tenant, endpoint=endpoint)
    # and the edge carries on
    fine, message_id = reply(people["ravi"]["email"])
    assert (await post(ingest, fine)).status_code == 202
    assert len(await published(ingest, message_id)) == 1


async def test_erasing_a_contact_forgets_the_emails_sent_to_it(ingest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    contact = ingest.contact(email=f"gone-{secrets.token_hex(3)}@acme.example")
    await ingest.seeded(ingest.tenant, [contact], tmp_path)
    herald_id, action_id, _ = await sent(ingest, contact)
    erasure = {
        "specversion": "1.0",
        "id": f"ce-{secrets.token_hex(6)}",
        "source": "dsar-portal",
        "type": ContactErased.TYPE,
        "tenant": ingest.tenant,
        "datacontenttype": "application/json",
        "data": {
            "contact_id": str(contact["contact_id"]),
            "upstream_source": "dsar-portal",
            "upstream_event_id": new_id(),
            "occurred_at": "2026-12-02T09:00:00Z",
        },
    }
    response = await ingest.post_cloudevent(erasure)
    assert response.status_code == 202, response.text
    pool = await ingest.db()
    assert await pool.fetchval("SELECT count(*) FROM ingest.sent_emails WHERE action_id = $1", action_id) == 0
    raw, _ = reply(contact["email"], In_Reply_To=herald_id)
    assert (await post(ingest, raw)).json()["ignored"][0]["reason"].startswith("neither its thread nor its sender")


async def test_a_contact_sent_to_herald_as_a_cloudevent_is_known_to_its_replies(ingest) -> None:  # type: ignore[no-untyped-def]
    contact_id = f"ce-{secrets.token_hex(4)}"
    address = f"{contact_id}@globex.example"
    created = {
        "specversion": "1.0",
        "id": f"ce-{secrets.token_hex(6)}",
        "source": "reverse-etl/hightouch",
        "type": "herald.contact.created.v1",
        "tenant": ingest.tenant,
        "datacontenttype": "application/json",
        "data": {
            "contact": {"contact_id": contact_id, "email": address, "first_name": "Dana", "company": "Globex"},
            "upstream_source": "warehouse",
            "upstream_event_id": new_id(),
            "occurred_at": "2026-12-02T09:00:00Z",
        },
    }
    assert (await ingest.post_cloudevent(created)).status_code == 202
    raw, message_id = reply(f"Dana <{address}>", "Interesting, what does it cost?")
    assert (await post(ingest, raw)).status_code == 202
    [received] = await published(ingest, message_id)
    assert (received.contact.contact_id, received.contact.first_name) == (contact_id, "Dana")
