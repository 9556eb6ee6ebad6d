"""Grounding: the claims an email draft makes, and whether a passage of the Acme knowledge base backs each one."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path

import pytest

from herald_retrieval.chunking import chunk_document
from herald_retrieval.documents import media_type_for, parse_document
from herald_retrieval.grounding import Claim, ClaimCheck, Evidence, check_claims, extract_claims

KB = Path(__file__).resolve().parents[2] / "samples" / "acme" / "kb"
PRODUCTS = ("Acme Relay", "Acme Pulse")
COMPETITORS = ("Opsly", "Flowtide")


def kb_passages() -> list[Evidence]:
    """Each section of each knowledge-base document, heading included: the Growth price is only in its heading."""
    passages = []
    for path in sorted(KB.rglob("*.md")):
        doc_id = path.relative_to(KB).with_suffix("").as_posix()
        body = path.read_text(encoding="utf-8").split("\n---\n", 1)[1]
        sections = [s.strip() for s in re.split(r"(?m)^(?=#{1,6} )", body) if s.strip()]
        passages += [Evidence(f"{doc_id}#{i:03d}", section) for i, section in enumerate(sections)]
    return passages


EVIDENCE = kb_passages()


def passage_with(needle: str) -> str:
    """The id of the one knowledge-base passage containing `needle`."""
    ids = [e.passage_id for e in EVIDENCE if needle in e.text]
    assert len(ids) == 1, (needle, ids)
    return ids[0]


def check_of(
    draft: str,
    text: str,
    *,
    competitors: Sequence[str] = COMPETITORS,
    similarity: Callable[[str, Sequence[str]], Sequence[float]] | None = None,
    threshold: float = 0.6,
) -> ClaimCheck:
    """The check of the one claim of `draft` whose span is `text`."""
    checks = check_claims(
        draft, EVIDENCE, products=PRODUCTS, competitors=competitors, similarity=similarity, threshold=threshold
    )
    found = [c for c in checks if c.claim.text == text]
    assert len(found) == 1, [c.claim.text for c in checks]
    assert draft[found[0].claim.start : found[0].claim.end] == text
    return found[0]


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


class Jaccard:
    """Word-set Jaccard similarity that remembers what it was asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, query: str, candidates: Sequence[str]) -> list[float]:
        self.calls.append((query, list(candidates)))
        q = words(query)
        return [len(q & words(c)) / len(q | words(c)) for c in candidates]


def test_the_knowledge_base_holds_the_facts_the_tests_rely_on() -> None:
    assert "## Growth — $49 per seat per month" in (KB / "pricing" / "plans.md").read_text(encoding="utf-8")
    assert passage_with("paying annually saves 15%").startswith("pricing/discount-policy#")
    assert passage_with("Opsly integrates with about 40 systems; Acme Relay has over 180 integrations").startswith(
        "competitors/opsly#"
    )


# --- extraction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("draft", "kind", "text", "value"),
    [
        ("Growth is $49 per seat per month.", "price", "$49 per seat per month", "USD 49"),
        ("Growth is $49.00 today.", "price", "$49.00", "USD 49"),
        ("Growth is USD 49 for you.", "price", "USD 49", "USD 49"),
        ("It costs 49 dollars.", "price", "49 dollars", "USD 49"),
        ("It costs $1,200.50/month.", "price", "$1,200.50/month", "USD 1200.50"),
        ("It costs $1,200 in total.", "price", "$1,200", "USD 1200"),
        ("It costs 1200 USD in total.", "price", "1200 USD", "USD 1200"),
        ("It costs $1200.00 in total.", "price", "$1200.00", "USD 1200"),
        ("It costs €39 a month.", "price", "€39 a month", "EUR 39"),
        ("It costs EUR 39.", "price", "EUR 39", "EUR 39"),
        ("It costs €1,200.5 a year.", "price", "€1,200.5 a year", "EUR 1200.50"),
        ("It costs £29.", "price", "£29", "GBP 29"),
        ("Growth has 99.9% uptime.", "percentage", "99.9%", "99.9%"),
        ("Replies rose 15 % last year.", "percentage", "15 %", "15%"),
        ("Replies rose 15 percent.", "percentage", "15 percent", "15%"),
        ("Replies rose 15.0% last year.", "percentage", "15.0%", "15%"),
        ("Replies rose fifteen percent.", "percentage", "fifteen percent", "15%"),
        ("Paying annually you save 15% on Growth.", "percentage", "save 15%", "15%"),
        ("Take 15% off today.", "percentage", "15% off", "15%"),
        ("Ask about the 20% discount.", "percentage", "20% discount", "20%"),
        ("It ships 2026-03-31.", "date", "2026-03-31", "2026-03-31"),
        ("It ships March 31, 2026.", "date", "March 31, 2026", "2026-03-31"),
        ("It ships 31 March 2026.", "date", "31 March 2026", "2026-03-31"),
        ("It ships in March 2026.", "date", "March 2026", "2026-03"),
        ("It ships in Q2 2026.", "date", "Q2 2026", "2026-Q2"),
        ("It ships in 2026 Q2.", "date", "2026 Q2", "2026-Q2"),
        ("It ships Mar. 5th 2026.", "date", "Mar. 5th 2026", "2026-03-05"),
        ("It ships by March 31.", "date", "March 31", "--03-31"),
        ("Connect 180+ integrations today.", "number", "180+ integrations", "180"),
        ("Opsly connects over 40 systems.", "number", "over 40 systems", "40"),
        ("Enterprise keeps 7 years of audit history.", "number", "7 years", "7"),
        ("Enterprise starts at 50 seats.", "number", "50 seats", "50"),
        ("It reached 12,400 contacts.", "number", "12,400 contacts", "12400"),
        ("Acme Pulse is new.", "product", "Acme Pulse", "Acme Pulse"),
        ("Try acme relay now.", "product", "acme relay", "Acme Relay"),
    ],
)
def test_each_claim_form_is_found_and_normalised(draft: str, kind: str, text: str, value: str) -> None:
    [claim] = extract_claims(draft, products=PRODUCTS)
    assert (claim.kind, claim.text, claim.value) == (kind, text, value)
    assert draft[claim.start : claim.end] == text
    assert claim.sentence == draft


@pytest.mark.parametrize(
    "draft",
    [
        "",
        "Hi Dana, could we talk on Monday or Tuesday afternoon?",
        "Pricing is at https://acme.example/pricing/2026-03-31?plan=49&seats=50 for you.",
        "See https://acme.example/$49-growth?code=save%2015%25&off=15% today.",
        "See acme.example/offers/Q2-2026 today.",
        "Write to ops-49@acme.example, q2-2026@acme.example or sales2026@acme.example for a quote.",
        "What matters:\n1. Faster approvals\n2. Fewer hand-offs",
        "Acme Relacy and Opslyx are not the names we look for.",
    ],
)
def test_drafts_without_claims_give_none(draft: str) -> None:
    assert extract_claims(draft, products=PRODUCTS, competitors=COMPETITORS) == []
    assert check_claims(draft, EVIDENCE, products=PRODUCTS, competitors=COMPETITORS) == []


def test_claims_come_in_draft_order_without_overlaps_and_with_exact_offsets() -> None:
    draft = (
        "Hi Dana,\n\nGrowth is $49 per seat per month for 50 seats, and paying annually saves 15%.\n"
        "Offer ends March 31, 2026 (details: https://acme.example/offer/2026). Acme Relay has 180+ integrations."
    )
    claims = extract_claims(draft, products=PRODUCTS)
    assert [(c.kind, c.text) for c in claims] == [
        ("price", "$49 per seat per month"),
        ("number", "50 seats"),
        ("percentage", "saves 15%"),
        ("date", "March 31, 2026"),
        ("product", "Acme Relay"),
        ("number", "180+ integrations"),
    ]
    for claim in claims:
        assert draft[claim.start : claim.end] == claim.text
        assert claim.text in claim.sentence and claim.sentence in draft
    assert claims[0].sentence == "Growth is $49 per seat per month for 50 seats, and paying annually saves 15%."
    assert all(a.end <= b.start for a, b in pairwise(claims))


@pytest.mark.parametrize(
    ("draft", "text", "sentence"),
    [
        (
            "We help teams, e.g. Northwind, cut 10 hours a week. Growth is $49.",
            "10 hours",
            "We help teams, e.g. Northwind, cut 10 hours a week.",
        ),
        ("Hi Dana,\n\n- Opsly integrates with 40 systems.\n- Growth is $49.", "$49", "Growth is $49."),
        ("Growth is $1,200.50/year. Starter is $19.", "$19", "Starter is $19."),
        (
            "Acme Relay has over 180\nintegrations today. Ask me.",
            "over 180\nintegrations",
            "Acme Relay has over 180\nintegrations today.",
        ),
    ],
)
def test_a_claim_knows_its_sentence(draft: str, text: str, sentence: str) -> None:
    [claim] = [c for c in extract_claims(draft) if c.text == text]
    assert claim.sentence == sentence
    assert draft[claim.start : claim.end] == text


def test_a_competitor_sentence_is_one_claim_alongside_the_claims_inside_it() -> None:
    draft = "Thanks for your time. Opsly integrates with about 40 systems, while Acme Relay has over 180 integrations."
    claims = extract_claims(draft, products=PRODUCTS, competitors=COMPETITORS)
    sentence = "Opsly integrates with about 40 systems, while Acme Relay has over 180 integrations."
    assert [(c.kind, c.text, c.value) for c in claims] == [
        ("competitor", sentence, "Opsly"),
        ("number", "about 40 systems", "40"),
        ("product", "Acme Relay", "Acme Relay"),
        ("number", "over 180 integrations", "180"),
    ]
    assert draft[claims[0].start : claims[0].end] == sentence == claims[0].sentence


# --- support against the knowledge base ------------------------------------------------------


@pytest.mark.parametrize(
    ("draft", "text", "needle", "reason_part"),
    [
        ("Take 25% off if you sign this week.", "25% off", None, "25%"),
        (
            "Growth costs $49 per seat per month.",
            "$49 per seat per month",
            "## Growth — $49",
            "'$49 per seat per month'",
        ),
        ("Growth is $49.00 per seat.", "$49.00 per seat", "## Growth — $49", "$49"),
        ("Growth is USD 49 for each user.", "USD 49", "## Growth — $49", "$49"),
        ("Growth is $59 per seat per month.", "$59 per seat per month", None, "USD 59"),
        ("Starter is $19 per seat per month.", "$19 per seat per month", "## Starter — $19", "$19"),
        ("Paying annually saves 15%.", "saves 15%", "paying annually saves 15%", "15%"),
        ("Sign now and get 20% off.", "20% off", None, "20%"),
        ("Sign now and save 20%.", "save 20%", None, "20%"),
        ("Ops Week went out in May 2026.", "May 2026", "sent in May 2026", "May 2026"),
        ("Ops Week ran in Q2 2026.", "Q2 2026", "sent in May 2026", "May 2026"),
        ("The offer ends March 31, 2026.", "March 31, 2026", None, "2026-03-31"),
        ("The Finance Close sequence went out in November 2025.", "November 2025", "sent in November 2025", "2025"),
        ("You can connect over 180 integrations.", "over 180 integrations", "Acme Relay has over 180", "180"),
        ("Growth includes all 180+ integrations.", "180+ integrations", "Acme Relay has over 180", "180"),
        ("You can connect over 300 integrations.", "over 300 integrations", None, "300 integrations"),
        ("You can connect 40 integrations.", "40 integrations", None, "40 integrations"),
        ("Enterprise keeps 7 years of audit history.", "7 years", "seven years of audit history,", "seven years"),
        ("Acme Relay routes work between people and systems.", "Acme Relay", "Acme Relay", "Acme Relay"),
        ("Acme Pulse forecasts your demand.", "Acme Pulse", None, "Acme Pulse"),
    ],
)
def test_value_and_product_claims_against_the_knowledge_base(
    draft: str, text: str, needle: str | None, reason_part: str
) -> None:
    check = check_of(draft, text)
    assert reason_part in check.reason
    if needle is None:
        assert (check.supported, check.passage_id) == (False, None)
        assert check.reason.startswith("no evidence passage")
    else:
        first = next(e.passage_id for e in EVIDENCE if needle in e.text)
        assert (check.supported, check.passage_id) == (True, first)
        assert check.reason.startswith("found '") and check.reason.endswith(f" in {first}")


def test_the_growth_price_cites_the_plans_passage() -> None:
    check = check_of("Growth costs $49 per seat per month.", "$49 per seat per month")
    assert check.supported
    assert check.passage_id == passage_with("## Growth — $49 per seat per month")
    assert check.passage_id is not None and check.passage_id.startswith("pricing/plans#")
    assert check.claim.value == "USD 49"


def test_an_invented_discount_is_flagged_and_named() -> None:
    draft = "Hi Dana,\n\nTake 25% off if you sign this week. Growth is $49 per seat per month."
    checks = check_claims(draft, EVIDENCE, products=PRODUCTS)
    assert [(c.claim.text, c.supported) for c in checks] == [("25% off", False), ("$49 per seat per month", True)]
    assert "25%" in checks[0].reason
    assert checks[0].claim.sentence == "Take 25% off if you sign this week."


@pytest.mark.parametrize(
    ("order", "expected"),
    [(("a", "b"), "a"), (("b", "a"), "b")],
)
def test_the_first_passage_that_states_the_value_is_cited(order: tuple[str, str], expected: str) -> None:
    evidence = [Evidence(pid, "Growth is $49 per seat per month.") for pid in order]
    [check] = check_claims("Only $49.00 a seat.", evidence)
    assert (check.supported, check.passage_id) == (True, expected)


def test_without_evidence_every_claim_is_unsupported() -> None:
    checks = check_claims("Growth is $49. Acme Relay has 180+ integrations.", [], products=PRODUCTS)
    assert [c.claim.kind for c in checks] == ["price", "product", "number"]
    assert all(not c.supported and c.passage_id is None for c in checks)
    assert {c.reason for c in checks} == {"no evidence passages given"}


def test_a_value_in_a_do_not_say_sentence_is_no_evidence() -> None:
    evidence = [Evidence("rules#000", "Never promise 25% off in email.")]
    [check] = check_claims("Take 25% off this week.", evidence)
    assert not check.supported
    [check] = check_claims("Take 25% off this week.", [Evidence("offers#000", "Spring deal: 25% off.")])
    assert (check.supported, check.passage_id) == (True, "offers#000")


# --- competitor sentences --------------------------------------------------------------------

RESTATED = "Opsly integrates with about 40 systems, while Acme Relay has over 180 integrations."
INVENTED = "Most Opsly customers are switching to us."


@pytest.mark.parametrize("use_similarity", [False, True], ids=["word-overlap", "jaccard"])
@pytest.mark.parametrize(
    ("sentence", "needle"),
    [
        (RESTATED, "Opsly integrates with about 40 systems"),
        (INVENTED, None),
        (
            "Flowtide keeps 30 days of run history, while Acme Relay keeps one year on Growth.",
            "Flowtide keeps 30 days of run history",
        ),
        ("Flowtide is insecure.", None),  # the note says "Do not say Flowtide is insecure"
        ("Opsly sells tooling to small startups.", None),  # the note says large enterprises
        ("Unlike Opsly, Flowtide has no approval steps with escalation.", None),  # Opsly's note says no such thing
    ],
)
def test_competitor_sentences(sentence: str, needle: str | None, use_similarity: bool) -> None:
    draft = f"Hi Dana,\n\n{sentence} Happy to show you."
    similarity = Jaccard() if use_similarity else None
    check = check_of(draft, sentence, similarity=similarity)
    assert check.claim.kind == "competitor" and check.claim.sentence == sentence
    if needle is None:
        assert (check.supported, check.passage_id) == (False, None)
        assert check.reason.startswith("no evidence")
    else:
        assert (check.supported, check.passage_id) == (True, passage_with(needle))
        assert ("similarity" if use_similarity else "word overlap") in check.reason
    if similarity is not None:
        assert similarity.calls, "the similarity function was not consulted"
        for query, candidates in similarity.calls:
            assert query == sentence
            names = [n for n in COMPETITORS if n in sentence]
            assert candidates and all(any(n in c for n in names) for c in candidates)
            assert not any("Do not say" in c or "Never claim" in c for c in candidates)


def test_a_sentence_naming_two_competitors_needs_evidence_for_both() -> None:
    draft = "Opsly and Flowtide sell automation tools."
    flowtide = Evidence("notes/flowtide", "Flowtide sells automation tools.")
    opsly = Evidence("notes/opsly", "Opsly sells automation tools.")
    [check] = check_claims(draft, [flowtide, opsly], competitors=COMPETITORS)
    assert check.claim.value == "Opsly, Flowtide"
    assert (check.supported, check.passage_id) == (True, "notes/opsly")  # the first-named competitor's passage
    assert "notes/opsly" in check.reason and "notes/flowtide" in check.reason
    [check] = check_claims(draft, [flowtide], competitors=COMPETITORS)
    assert (check.supported, check.passage_id, check.reason) == (False, None, "no evidence passage mentions Opsly")


def test_a_competitor_named_nowhere_in_the_evidence_is_unsupported() -> None:
    check = check_of("Workly is slower than us.", "Workly is slower than us.", competitors=("Workly",))
    assert (check.supported, check.reason) == (False, "no evidence passage mentions Workly")


@pytest.mark.parametrize(
    ("threshold", "supported"),
    [(0.5, True), (0.9, True), (0.95, False)],
)
def test_the_similarity_threshold_decides(threshold: float, supported: bool) -> None:
    # Jaccard of the restated sentence and the note's sentence is 12/13 (the draft adds "while").
    check = check_of(RESTATED, RESTATED, similarity=Jaccard(), threshold=threshold)
    assert check.supported is supported


def test_similarity_and_word_overlap_must_both_agree() -> None:
    def never(query: str, candidates: Sequence[str]) -> list[float]:
        return [0.0] * len(candidates)

    def always(query: str, candidates: Sequence[str]) -> list[float]:
        return [1.0] * len(candidates)

    assert check_of(RESTATED, RESTATED).supported
    assert check_of(RESTATED, RESTATED, similarity=always).supported
    assert not check_of(RESTATED, RESTATED, similarity=never).supported
    # a sentence on the same topic is similar, but says something else: similarity alone is not support
    invented = check_of(INVENTED, INVENTED, similarity=always)
    assert not invented.supported
    assert "50% of the claim's words" in invented.reason


def test_a_similarity_with_the_wrong_number_of_scores_is_refused() -> None:
    def one_score(query: str, candidates: Sequence[str]) -> list[float]:
        return [1.0]

    evidence = [Evidence("competitors/opsly#001", "Opsly sells tooling. Opsly integrates with about 40 systems.")]
    with pytest.raises(ValueError, match="1 scores for 2 candidates"):
        check_claims(RESTATED, evidence, competitors=COMPETITORS, similarity=one_score)


def test_claims_are_frozen() -> None:
    claim = Claim("price", "$49", "USD 49", 0, 3, "$49.")
    with pytest.raises(AttributeError):
        claim.value = "USD 59"  # type: ignore[misc]


# --- a price, percentage or date must be stated of the claim's subject ---------------------------


def chunk_evidence(relative: str) -> list[Evidence]:
    """A knowledge-base document as the service cites it: one passage per chunk, headings apart."""
    path = KB / relative
    doc = parse_document(relative.rsplit(".", 1)[0], "product", media_type_for(path.name), path.read_bytes())
    return [Evidence(c.chunk_id, c.text, headings=c.section_path) for c in chunk_document(doc)]


RELEASES = chunk_evidence("product/release-notes-2026.html")
SLA = chunk_evidence("product/sla.md")
PLANS = chunk_evidence("pricing/plans.md")


def only_check(draft: str, evidence: Sequence[Evidence], products: Sequence[str] = ()) -> ClaimCheck:
    checks = [c for c in check_claims(draft, evidence, products=products) if c.claim.kind != "product"]
    assert len(checks) == 1, [(c.claim.kind, c.claim.text) for c in checks]
    return checks[0]


def test_the_release_notes_hold_both_dates_the_binding_tests_rely_on() -> None:
    text = (KB / "product" / "release-notes-2026.html").read_text(encoding="utf-8")
    assert "<h2>Release 2026.2 (March 2026)</h2>" in text and "<h3>Bulk approval on mobile</h3>" in text
    assert "<h2>Release 2026.3 (May 2026)</h2>" in text and "<h3>Loop step</h3>" in text


@pytest.mark.parametrize(
    "draft",
    [
        "Bulk approval on mobile was released in May 2026.",
        "Hi Dana, bulk approval in the mobile app shipped in May 2026.",
        "Bulk approval on mobile, our most requested feature, arrived in Q2 2026.",
    ],
)
def test_a_release_date_stated_of_another_release_does_not_ground_a_feature(draft: str) -> None:
    # May 2026 is in the evidence (the loop step's release, the release table's row), about something else
    check = only_check(draft, RELEASES)
    assert not check.supported and check.passage_id is None
    assert check.reason.startswith("no evidence passage states 2026-")
    assert "is said of something else" in check.reason and "bulk" in check.reason


@pytest.mark.parametrize(
    ("draft", "chunk_heading"),
    [
        ("Bulk approval on mobile was released in March 2026.", "Bulk approval on mobile"),
        ("Bulk approval in the mobile app shipped in Q1 2026.", "Bulk approval on mobile"),
        ("The loop step came out in May 2026.", "Loop step"),
        ("Hi Dana, custom roles arrived in July 2026.", "Custom roles"),
        ("The legacy v1 API will stop working on January 31, 2027.", "Deprecations"),
    ],
)
def test_a_release_date_stated_of_the_feature_grounds_it(draft: str, chunk_heading: str) -> None:
    check = only_check(draft, RELEASES)
    assert check.supported, check.reason
    cited = next(e for e in RELEASES if e.passage_id == check.passage_id)
    # the release table (its first passage) states it too; either is the feature's own line
    assert cited.headings[-1] in (chunk_heading, "Acme Relay release notes 2026"), cited.headings


@pytest.mark.parametrize(
    ("draft", "supported"),
    [
        ("Growth has 99.9% monthly uptime.", True),
        ("Enterprise commits to 99.95% uptime.", True),
        ("Enterprise has 99.9% uptime.", False),
        ("Growth has 99.95% uptime.", False),
        ("Growth and Enterprise have 99.9% uptime.", False),
        ("Acme Relay commits to 99.9% monthly uptime on Growth, with service credits.", True),
    ],
)
def test_a_percentage_belongs_to_the_plan_it_is_stated_of(draft: str, supported: bool) -> None:
    check = only_check(draft, SLA, products=("Acme Relay", "Growth", "Enterprise"))
    assert check.supported is supported, check.reason


@pytest.mark.parametrize(
    ("draft", "supported"),
    [
        ("Growth is $49 per seat per month.", True),
        ("Acme Relay's Growth plan is $49 per seat per month.", True),
        ("Hi Dana, Growth is $49 per seat per month and covers unlimited workflows.", True),
        ("Starter is $19 per seat per month.", True),
        ("Starter is $49 per seat per month.", False),
        ("Growth is $19 per seat per month.", False),
        ("Starter costs $19 and Growth costs $49 per seat per month.", True),
        ("Starter costs $49 and Growth costs $19 per seat per month.", False),
    ],
)
def test_a_price_belongs_to_the_plan_whose_heading_states_it(draft: str, supported: bool) -> None:
    checks = [c for c in check_claims(draft, PLANS, products=("Acme Relay",)) if c.claim.kind == "price"]
    assert checks
    assert all(c.supported for c in checks) is supported, [(c.claim.text, c.reason) for c in checks]


def test_a_value_with_no_subject_in_its_sentence_is_checked_on_the_value_alone() -> None:
    [check] = check_claims("Take 25% off this week.", [Evidence("offers#000", "Spring deal: 25% off.")])
    assert check.supported
    [check] = check_claims("Only $49.00 a seat.", [Evidence("a", "Starter is $19. Growth is $49 per seat.")])
    assert check.supported
