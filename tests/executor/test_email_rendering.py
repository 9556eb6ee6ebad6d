"""The email the executor builds from an approved send_email: plain and HTML parts of the same approved words,
the draft escaped in the HTML (it cannot add markup or links), one-click unsubscribe, Message-ID from the action."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

from herald_executor.logic import render_email
from support import email_action

BODY = "Hi Jordan,\n\nTwo things:\n- <script>alert(1)</script>\n- 62% faster & cheaper\n\nMaya"


def test_an_email_has_plain_and_html_parts_of_the_approved_words_and_nothing_injected() -> None:
    action = email_action("acme", contact_id="5100001", email="jordan@northwind.example", body_text=BODY)
    message = render_email(
        action,
        sender_name="Maya from Acme Relay",
        sender_address="maya@acmerelay.example",
        unsubscribe_url="https://acmerelay.example/unsubscribe",
        domain="acmerelay.example",
    )
    parsed = message_from_bytes(message.as_bytes(), policy=default)
    assert parsed.get_content_type() == "multipart/alternative"
    plain = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert BODY in plain and "Unsubscribe: https://acmerelay.example/unsubscribe?t=acme&c=5100001" in plain
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<p>Two things:</p><ul><li>&lt;script&gt;" in page and "<li>62% faster &amp; cheaper</li></ul>" in page
    assert 'href="https://acmerelay.example/unsubscribe?t=acme&amp;c=5100001"' in page
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"] == f"<{action.action_id.lower()}@acmerelay.example>"
