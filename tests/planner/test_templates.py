"""Template drafts: the contact's own company is never told to it as another's story, passages are chosen for
its role and industry, a follow-up says something the first email did not, a refusal's terms are left out of
the redraft, and a reviewer's edit of one contact's draft changes the next draft of that segment."""

from __future__ import annotations

from datetime import UTC, datetime

from herald_core.contracts import ContactFacts, EvidenceRef
from herald_planner.logic import DraftRequest, EarlierTouch, ReviewerExample
from herald_planner.templates import (
    apply_examples,
    draft_from_template,
    generalize,
    names_company,
    refused_terms,
    template_draft,
)

JORDAN = ContactFacts(
    contact_id="1",
    email="jordan@northwind.example",
    first_name="Jordan",
    company="Northwind Freight",
    job_title="Head of Operations",
    industry="logistics",
)
PASSAGES = [
    EvidenceRef(
        chunk_id="n#0",
        doc_id="customers/northwind",
        title="Customer story: Northwind Freight (logistics)",
        score=0.9,
        quote="Northwind Freight cut carrier-exception handling time by 62% in the first quarter on Acme Relay.",
    ),
    EvidenceRef(
        chunk_id="b#0",
        doc_id="customers/brightpath",
        title="Customer story: BrightPath Clinics (healthcare)",
        score=0.8,
        quote="BrightPath reduced referral processing time by 45% with Acme Relay.",
    ),
    EvidenceRef(
        chunk_id="d#0",
        doc_id="customers/delta",
        title="Customer story: Delta Cargo (logistics)",
        score=0.7,
        quote="Delta Cargo operations teams cut exception handling time by 40% with Acme Relay.",
    ),
    EvidenceRef(
        chunk_id="k#0",
        doc_id="product/alerts",
        title="Alerts for logistics operations",
        score=0.6,
        quote="Late-shipment alerts reach the right dispatcher in seconds.",
    ),
]


def _request(contact: ContactFacts = JORDAN, **fields: object) -> DraftRequest:
    return DraftRequest(
        tenant_id="acme",
        contact=contact,
        evidence=PASSAGES,
        memories=(),
        company_name="Acme Relay",
        sender="Maya",
        **fields,  # type: ignore[arg-type]
    )


def test_the_contacts_own_company_is_never_told_to_it_as_a_customer_story() -> None:
    draft = template_draft(JORDAN, PASSAGES, company_name="Acme Relay", sender="Maya")
    assert "Northwind Freight cut" not in draft.body_text
    assert "n#0" not in draft.chunks
    other = JORDAN.model_copy(update={"company": "Fabrikam Logistics"})
    assert (
        "Northwind Freight cut" in template_draft(other, PASSAGES, company_name="Acme Relay", sender="Maya").body_text
    )
    assert names_company("At Northwind we ship", "Northwind Freight")
    assert not names_company("The team shipped", "The Team Co")


def test_passages_about_the_contacts_industry_and_role_come_first() -> None:
    draft = template_draft(JORDAN, PASSAGES, company_name="Acme Relay", sender="Maya")
    assert draft.chunks[0] == "d#0", "the logistics operations story before the healthcare one"
    assert draft.chunks.index("b#0") > draft.chunks.index("k#0")


def test_a_follow_up_quotes_no_passage_an_earlier_touch_quoted_and_goes_in_its_thread() -> None:
    first = draft_from_template(_request())
    second = draft_from_template(
        _request(touch=2, touches=3, earlier=(EarlierTouch(1, first.subject, first.body_text, first.chunks),))
    )
    assert not set(second.chunks) & set(first.chunks)
    assert second.subject == f"Re: {first.subject}"
    last = draft_from_template(
        _request(
            touch=3,
            touches=3,
            earlier=(
                EarlierTouch(1, first.subject, first.body_text, first.chunks),
                EarlierTouch(2, second.subject, second.body_text, second.chunks),
            ),
        )
    )
    assert len(last.body_text) < len(first.body_text) and last.body_text not in (first.body_text, second.body_text)


def test_a_redraft_leaves_out_what_the_refusal_quoted() -> None:
    reasons = (
        "content.grounded: a claim no evidence passage supports: percentage “40%”: no passage says it",
        "content.banned_phrases: words our brand rules forbid: late-shipment alerts, risk-free",
    )
    assert refused_terms(reasons) == ["40%", "late-shipment alerts", "risk-free"]
    redraft = draft_from_template(_request(feedback=reasons))
    assert "40%" not in redraft.body_text and "Late-shipment alerts" not in redraft.body_text
    assert "drafted again after" in redraft.rationale


def test_a_reviewers_edit_of_one_contacts_draft_changes_the_next_draft_of_the_segment() -> None:
    original = draft_from_template(_request())
    edited_body = original.body_text.replace(
        "Would a 20-minute call next week be useful to see how this would look for Northwind Freight?",
        "Could I show you, in 15 minutes, how Northwind Freight's exception queue would run on Acme Relay?",
    ).replace("Best,\nMaya", "Thanks,\nMaya")
    example = ReviewerExample(
        review_id="r1",
        reviewer="dana@acme.example",
        decision="approved",
        reason="less pushy",
        original_subject=generalize(original.subject, JORDAN, "Maya"),
        original_body=generalize(original.body_text, JORDAN, "Maya"),
        edited_subject="{first_name}, a question about {company}'s exceptions",
        edited_body=generalize(edited_body, JORDAN, "Maya"),
        decided_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    sam = JORDAN.model_copy(update={"first_name": "Sam", "company": "Fabrikam Logistics", "contact_id": "2"})
    learned = draft_from_template(_request(sam, examples=(example,)))
    assert "Could I show you, in 15 minutes, how Fabrikam Logistics's exception queue" in learned.body_text
    assert "20-minute call" not in learned.body_text and "Thanks,\nMaya" in learned.body_text
    assert learned.subject == "Sam, a question about Fabrikam Logistics's exceptions"
    assert "Northwind Freight's" not in learned.body_text + learned.subject, "the example taught wording, not a name"
    assert "dana@acme.example" in learned.rationale
    # a rejection without an edit changes no words
    rejected = ReviewerExample(**{**example.__dict__, "decision": "rejected", "edited_body": None})
    assert apply_examples(original, _request(examples=(rejected,))) == original
