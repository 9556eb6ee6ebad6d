"""Campaign tasks without Kafka: the brief's model refuses what it cannot run (naming the field), the audience is
split between the variants evenly and the same way every time, the state machine goes only forward, and a draft
quotes only retrieved passages."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from herald_core.contracts import CampaignBrief, ContactFacts, EvidenceRef, SegmentFilter
from herald_planner.tasks.drafts import campaign_draft, variant_passages
from herald_planner.tasks.logic import FINAL, NEXT, IllegalStep, in_segment, review_reason, split, step

BRIEF = {
    "campaign_id": "approvals-launch",
    "topic": "the new approvals feature",
    "goal": "book a demo",
    "segment": {"industries": ["logistics"], "seniorities": ["c_level"]},
    "variants": {"proof": "lead with a customer result", "question": "open with a question"},
}


def _contacts(n: int) -> list[ContactFacts]:
    return [ContactFacts(contact_id=str(7000 + i), email=f"c{i}@northwind.example") for i in range(n)]


def _field_of(exc: pytest.ExceptionInfo[ValidationError]) -> set[str]:
    return {".".join(str(p) for p in e["loc"]) for e in exc.value.errors()}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"variants": {}}, "variants"),
        ({"variants": {f"v{i}": "an angle" for i in range(6)}}, "variants"),
        ({"max_contacts": 5001}, "max_contacts"),
        ({"segment": {"limit": 10_000}}, "segment.limit"),
        ({"segment": {"company_size": {"min": 500, "max": 100}}}, "segment.company_size"),
        ({"segment": {"seniorities": ["intern"]}}, "segment.seniorities.0"),
        ({"segment": {"countries": ["usa"]}}, "segment.countries.0"),
        ({"topic": "two\nlines"}, "topic"),
        ({"campaign_id": "no spaces"}, "campaign_id"),
        ({"audience": "everyone"}, "audience"),
    ],
)
def test_a_brief_it_cannot_run_is_refused_naming_the_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        CampaignBrief.model_validate({**BRIEF, **change})
    assert field in _field_of(refused)


def test_a_brief_reads_with_its_defaults() -> None:
    brief = CampaignBrief.model_validate(BRIEF)
    assert brief.max_contacts == 1000
    assert brief.segment == SegmentFilter(industries=("logistics",), seniorities=("c_level",))


def test_the_audience_is_split_evenly_and_the_same_way_every_time() -> None:
    contacts = _contacts(101)
    variants = {"proof": "a", "question": "b", "short": "c"}
    first = split("approvals-launch", contacts, variants)
    assert set(first) == {c.contact_id for c in contacts}
    counts = {name: list(first.values()).count(name) for name in variants}
    assert sorted(counts.values()) == [33, 34, 34]
    # the same audience, listed and named in another order: the same split
    assert split("approvals-launch", list(reversed(contacts)), dict(reversed(list(variants.items())))) == first
    # another campaign splits the same contacts otherwise (a contact is not always in the first variant)
    assert split("another-campaign", contacts, variants) != first


def test_one_variant_takes_everyone() -> None:
    assert set(split("c", _contacts(5), {"only": "a"}).values()) == {"only"}


def test_the_state_machine_goes_forward_once_and_ends() -> None:
    path = ["accepted", "retrieving", "drafting", "selecting", "proposed", "done"]
    for current, to in itertools.pairwise(path):
        assert step(current, to) == to  # type: ignore[arg-type]
    with pytest.raises(IllegalStep):
        step("proposed", "proposed")  # a batch is proposed once
    with pytest.raises(IllegalStep):
        step("accepted", "proposed")  # no step skipped
    for final in FINAL:
        assert NEXT[final] == frozenset()
    # a carry cut off before its batch published nothing, and starts again
    assert step("selecting", "retrieving") == "retrieving"


def test_seniority_is_read_from_the_title() -> None:
    segment = SegmentFilter(seniorities=("c_level", "vp"))
    assert in_segment(ContactFacts(contact_id="1", job_title="COO"), segment)
    assert in_segment(ContactFacts(contact_id="2", job_title="Head of Operations"), segment)
    assert not in_segment(ContactFacts(contact_id="3", job_title="Dispatcher"), segment)
    assert in_segment(ContactFacts(contact_id="4", job_title="Dispatcher"), SegmentFilter())


def test_each_variant_leads_with_another_passage_and_a_draft_quotes_only_passages() -> None:
    evidence = [
        EvidenceRef(
            chunk_id=f"c{i}", doc_id=f"doc{i}", title=f"t{i}", score=1.0, quote=f"Passage number {i} says a thing."
        )
        for i in range(3)
    ]
    passages = variant_passages(evidence, {"question": "b", "proof": "a"})
    assert [p.chunk_id for p in passages["proof"]] == ["c0", "c1", "c2"]
    assert [p.chunk_id for p in passages["question"]] == ["c1", "c2", "c0"]
    contact = ContactFacts(contact_id="1", email="a@b.example", first_name="Ana", company="Northwind")
    draft = campaign_draft(
        contact, passages["question"], topic="the approvals feature", company_name="Acme Relay", sender="Maya"
    )
    assert draft.subject == "Ana, the approvals feature"
    assert draft.body_text.startswith("Hi Ana,")
    assert draft.chunks[0] == "c1"
    claims = [line for line in draft.body_text.splitlines() if line.startswith("- ")]
    assert claims and all(line[2:] in {e.quote for e in evidence} for line in claims)


def test_the_review_reason_names_the_task_and_its_size() -> None:
    assert review_reason("task-1", 3) == "campaign task task-1: 3 sends, reviewed as a batch"
