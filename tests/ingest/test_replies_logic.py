"""Reading a person's reply, raw, no servers: the thread it is in, only the new text (quoted history and signature
removed, in the clients' usual shapes and several languages), out-of-office replies with the day they end, and
every kind of message that is not a readable reply refused or marked with its reason."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from herald_ingest.replies import MAX_NEW_TEXT, UnreadableReply, html_text, read_reply, return_date

SAMPLES = Path(__file__).parent / "samples"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
HERALD_ID = "<01jdq3x8k2m9v4r7t5w6y8z0ab@herald.acmerelay.example>"


def raw(body: str = "Sounds good.", *, html: str | None = None, charset: str = "utf-8", **headers: str) -> bytes:
    message = EmailMessage()
    defaults = {
        "From": "Jane Doe <Jane.Doe@Acme.example>",
        "To": "hello@ledgerly.example",
        "Subject": "Re: Close the books faster",
        "Date": "Tue, 01 Dec 2026 15:04:05 +0100",
        "Message-ID": "<CAF=reply.1@mail.acme.example>",
        "In-Reply-To": HERALD_ID,
    }
    for name, value in {**defaults, **{k.replace("_", "-"): v for k, v in headers.items()}}.items():
        if value:
            message[name] = value
    message.set_content(body, charset=charset)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def test_a_reply_reads_as_its_sender_thread_and_new_text() -> None:
    body = (
        "Yes, please send the pricing for 50 seats.\n\n-- \nJane Doe\nHead of Finance, Acme\n\n"
        "On Tue, 1 Dec 2026 at 10:00, Ledgerly <hello@ledgerly.example> wrote:\n> Hi Jane,\n> we help teams close.\n"
    )
    reply = read_reply(raw(body, References=f"<older@x.example> {HERALD_ID}"), NOW)
    assert reply.from_address == "jane.doe@acme.example"
    assert reply.text == "Yes, please send the pricing for 50 seats."
    assert reply.message_id == "<CAF=reply.1@mail.acme.example>"
    assert reply.in_reply_to == HERALD_ID
    assert reply.references == ("<older@x.example>", HERALD_ID)
    assert reply.thread == (HERALD_ID, "<older@x.example>")  # In-Reply-To first, then the newest reference
    assert reply.sent_at == datetime(2026, 12, 1, 14, 4, 5, tzinfo=UTC)
    assert (reply.out_of_office, reply.automatic, reply.clipped) == (False, None, False)


@pytest.mark.parametrize(
    ("body", "new"),
    [
        # Gmail
        ("Not now, maybe in March.\n\nOn Tue, Dec 1, 2026 at 10:00 AM Ledgerly <a@b.example> wrote:\n> hi", None),
        # Apple Mail on a phone
        ("Not now, maybe in March.\n\nSent from my iPhone\n\n> On 1 Dec 2026, at 10:00, Ledgerly wrote:\n> hi", None),
        # Outlook's header block
        (
            "Not now, maybe in March.\n\nFrom: Ledgerly <hello@ledgerly.example>\nSent: Tuesday, December 1, 2026 "
            "10:00 AM\nTo: Jane <jane@acme.example>\nSubject: Close faster\n\nHi Jane",
            None,
        ),
        ("Not now, maybe in March.\n\n-----Original Message-----\nFrom: Ledgerly\nhi", None),
        # German, with a closing
        (
            "Danke, bitte rufen Sie mich an.\n\nMit freundlichen Grüßen\nHans Müller\n\n"
            "Am 01.12.2026 um 10:00 schrieb Ledgerly <hello@ledgerly.example>:\n> Hallo",
            "Danke, bitte rufen Sie mich an.",
        ),
        # French
        (
            "Merci, pas pour le moment.\n\nLe mar. 1 déc. 2026 à 10:00, Ledgerly <a@b.example> a écrit :\n> Bonjour",
            "Merci, pas pour le moment.",
        ),
    ],
)
def test_quoted_history_and_signatures_are_removed(body: str, new: str | None) -> None:
    assert read_reply(raw(body), NOW).text == (new or "Not now, maybe in March.")


def test_an_html_only_reply_is_read_as_text_without_its_quote() -> None:
    message = EmailMessage()
    message["From"] = "jane@acme.example"
    message["Subject"] = "Re: hello"
    message["Message-ID"] = "<html.1@acme.example>"
    message.set_content(
        "<html><head><style>p {color: red}</style></head><body><div>Can we talk <b>Thursday</b>?</div>"
        "<div>Jane</div><div class='gmail_quote'><div>On Tue, Ledgerly wrote:</div>"
        "<blockquote>Hi Jane, we help teams close.</blockquote></div></body></html>",
        subtype="html",
    )
    reply = read_reply(message.as_bytes(), NOW)
    assert reply.text == "Can we talk Thursday?\nJane"


def test_html_text_keeps_blocks_as_lines_and_marks_quotes() -> None:
    assert html_text("<p>One</p><p>Two<br>three</p><blockquote>old</blockquote>") == "One\nTwo\nthree\n> old"


def test_a_latin_1_reply_is_decoded_by_its_declared_charset() -> None:
    reply = read_reply(raw("Grüße aus München: bitte später.", charset="iso-8859-1"), NOW)
    assert reply.text == "Grüße aus München: bitte später."


def test_the_new_text_is_clipped_and_says_so() -> None:
    reply = read_reply(raw("word " * 4000), NOW)
    assert len(reply.text) == MAX_NEW_TEXT and reply.clipped


def test_a_message_without_its_own_id_is_known_by_its_bytes() -> None:
    message = raw("Sounds good.", Message_ID="")
    assert read_reply(message, NOW).message_id.startswith("sha256:")
    assert read_reply(message, NOW).message_id == read_reply(message, NOW).message_id


def test_an_outlook_out_of_office_is_marked_with_its_return_day() -> None:
    reply = read_reply((SAMPLES / "autoreply_out_of_office.eml").read_bytes(), NOW)
    assert reply.out_of_office
    assert reply.returns_on == date(2026, 11, 30)  # "until Monday, November 30", read from its Date (24 November)
    assert reply.in_reply_to == HERALD_ID and reply.from_address == "jordan.reyes@northwind.example"


@pytest.mark.parametrize(
    "headers",
    [
        {"Auto_Submitted": "auto-replied"},
        {"X_Autoreply": "yes"},
        {"X_Autorespond": "Out of office"},
        {"Precedence": "auto_reply"},
        {"Subject": "Out of Office: Close the books faster"},
        {"Subject": "Abwesenheitsnotiz: Close the books faster"},
    ],
)
def test_the_usual_autoresponder_marks_make_a_reply_out_of_office(headers: dict[str, str]) -> None:
    reply = read_reply(raw("I am away and back on 14 December 2026.", **headers), NOW)
    assert reply.out_of_office and reply.returns_on == date(2026, 12, 14) and reply.automatic is None


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Auto_Submitted": "auto-generated"}, "an automatic message (Auto-Submitted: auto-generated)"),
        ({"Precedence": "bulk"}, "a bulk message (Precedence: bulk)"),
        ({"Precedence": "list"}, "a list message (Precedence: list)"),
    ],
)
def test_other_automatic_messages_are_not_replies(headers: dict[str, str], why: str) -> None:
    reply = read_reply(raw("Your ticket #4411 was received.", **headers), NOW)
    assert not reply.out_of_office
    assert reply.automatic is not None and reply.automatic.startswith(why)


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("I am out of the office until Monday, December 14, with limited access.", date(2026, 12, 14)),
        ("I'll be back on 2026-12-21.", date(2026, 12, 21)),
        ("Returning 4 January. For urgent matters call Sam.", date(2027, 1, 4)),  # no year: the next one
        ("I am away through Jan 8th and will answer then.", date(2027, 1, 8)),
        ("Ich bin ab dem 14.12.2026 wieder erreichbar.", date(2026, 12, 14)),
        ("Ich bin ab dem 04.01.2027 wieder im Büro.", date(2027, 1, 4)),  # dotted: day first
        ("Je serai de retour le 15/12/2026.", date(2026, 12, 15)),  # day first: 15 cannot be a month
        ("Back on Monday.", date(2026, 12, 7)),  # the next Monday after 2 December 2026 (a Wednesday)
        ("I am on vacation with limited access to email.", None),
        ("Back in 2031, on sabbatical.", None),  # more than a year ahead
        ("Our office moved on 3 March 2019.", None),  # no cue; and in the past
    ],
)
def test_the_return_day_is_read_from_the_text(text: str, day: date | None) -> None:
    assert return_date(text, date(2026, 12, 2)) == day


@pytest.mark.parametrize(
    ("message", "status", "code"),
    [
        (raw("Sounds good.", From=""), 422, "no_sender"),
        (raw("Sounds good.", From="not an address"), 422, "no_sender"),
        (b"From: jane@acme.example\r\nSubject: hi\r\nContent-Type: image/png\r\n\r\niVBORw0KGgo=\r\n", 422, "no_text"),
        (
            b"From: jane@acme.example\r\nContent-Type: text/plain; charset=x-klingon\r\n\r\nnuqneH\r\n",
            422,
            "undecodable",
        ),
        (
            b"From: jane@acme.example\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: 8bit\r\n\r\ncaf\xe9 \xff\xfe\r\n",
            422,
            "undecodable",
        ),
        (b"From: jane@acme.example\r\nContent-Type: text/plain\r\n\r\ncaf\xe9\r\n", 422, "undecodable"),
        (raw("x" * 250_000), 413, "reply_too_large"),
    ],
)
def test_what_cannot_be_read_as_a_reply_is_refused_with_its_reason(message: bytes, status: int, code: str) -> None:
    with pytest.raises(UnreadableReply) as refused:
        read_reply(message, NOW)
    assert (refused.value.status, refused.value.code) == (status, code)
    assert refused.value.reason and refused.value.message_id


def test_a_bomb_of_nested_parts_is_refused() -> None:
    depth = 200
    head = b"".join(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i) for i in range(depth))
    message = b"From: jane@acme.example\r\n" + head + b"Content-Type: text/plain\r\n\r\nhi\r\n"
    with pytest.raises(UnreadableReply) as refused:
        read_reply(message, NOW)
    assert refused.value.code == "too_deep"


def test_an_answer_between_the_quotes_keeps_only_the_answers() -> None:
    body = "> Would Thursday work?\nYes, 10am.\n> And for how many seats?\nAbout 50.\n"
    assert read_reply(raw(body), NOW).text == "Yes, 10am.\nAbout 50."


def test_a_message_that_only_quotes_has_no_new_text() -> None:
    body = "On Tue, 1 Dec 2026 at 10:00, Maya <maya@acmerelay.example> wrote:\n> Hi Jane\n"
    assert read_reply(raw(body), NOW).text == ""


def test_a_gmail_reply_reads_from_its_plain_part_without_quote_or_signature() -> None:
    reply = read_reply((SAMPLES / "reply_gmail_question.eml").read_bytes(), NOW)
    assert reply.text == (
        "Hi Maya,\n\nInteresting — does the dock scheduling work with our Manhattan WMS?\n"
        "We run about 40 doors across two sites."
    )  # the closing ("Thanks, Jordan") goes with the signature
    assert reply.in_reply_to == HERALD_ID and reply.sent_at == datetime(2026, 11, 25, 14, 2, 3, tzinfo=UTC)
