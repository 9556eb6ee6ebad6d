"""A lead is written to whatever its CRM fields hold: names with line breaks or pages of text still make an
email the executor can send (one-line subject and display name of a sane length)."""

from __future__ import annotations

from herald_core.contracts import ContactFacts, EvidenceRef, SendEmailInput
from herald_planner.logic import as_addressed, one_line, recipient_name
from herald_planner.templates import template_draft


def test_one_line_folds_breaks_and_cuts() -> None:
    assert one_line("Ann\r\nMarie  Lee", 100) == "Ann Marie Lee"
    assert one_line("x" * 500, 100) == "x" * 100
    assert one_line(" \n ", 10) is None
    assert one_line(None, 10) is None


def test_a_contact_whose_fields_no_email_header_can_hold_still_gets_a_sendable_email() -> None:
    contact = ContactFacts(
        contact_id="1",
        email="ann@example.com",
        first_name="Ann\r\nBcc: victim@example.com",
        last_name="L" * 300,
        company="Northwind\nFreight",
        industry="logistics",
    )
    addressed = as_addressed(contact)
    evidence = [EvidenceRef(chunk_id="c", doc_id="d", title="t", score=1.0, quote="Teams cut handling time.")]
    draft = template_draft(addressed, evidence, company_name="Acme Relay", sender="Maya")
    email = SendEmailInput(
        to="ann@example.com", to_name=recipient_name(addressed), subject=draft.subject, body_text=draft.body_text
    )
    assert "\n" not in email.subject and "\r" not in (email.to_name or "")
    assert email.subject.startswith("Ann Bcc: victim@example.com, how logistics teams")
    assert len(email.to_name or "") <= 200
