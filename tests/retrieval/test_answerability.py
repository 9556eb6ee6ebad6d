"""The answerability verdict (pure): its inputs, its fitted model, the split of the labelled sets it is
calibrated and judged on, and the measures the evaluation reports."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from herald_retrieval.answerability import (
    FEATURES,
    AnswerabilityModel,
    Candidate,
    Vocabulary,
    agreement,
    auc,
    best_threshold,
    features,
    fit,
    load_model,
)
from herald_retrieval.evaluation import CALIBRATION, HELD_OUT, load_queries, load_unanswerable, part_of

EVAL = Path(__file__).resolve().parents[2] / "samples" / "acme" / "eval"
KB = EVAL.parent / "kb"

VOCABULARY = Vocabulary.of(
    [
        "Growth costs $49 per seat per month and includes the API.",
        "Starter costs $19 per seat per month.",
        "Audit records are kept for seven years on Enterprise.",
        "Every plan includes the mobile app.",
    ]
)


def candidate(text: str, score: float = 0.9, similarity: float = 0.6) -> Candidate:
    return Candidate(text, score, similarity)


def test_a_word_no_chunk_uses_weighs_most_and_a_common_one_least() -> None:
    assert VOCABULARY.chunks == 4
    assert VOCABULARY.weight("kubernet") == pytest.approx(1.0)
    # "seven" is in one chunk, "cost" in two
    assert 1.0 > VOCABULARY.weight("seven") > VOCABULARY.weight("cost") > 0.0


def test_a_query_the_best_passage_covers_has_nothing_missing() -> None:
    values = features("Growth seat cost", [candidate("Growth costs $49 per seat per month.", 0.95, 0.7)], VOCABULARY)
    assert set(values) == set(FEATURES)
    assert values["coverage"] == 1.0 and values["missing_weight"] == 0.0
    assert values["unknown_words"] == 0.0 and values["unknown_names"] == 0.0
    assert values["best_similarity"] == 0.7 and values["hybrid_top"] == 0.95


def test_a_word_the_passages_lack_lowers_coverage_by_its_rarity() -> None:
    passages = [candidate("Growth costs $49 per seat per month."), candidate("Every plan includes the mobile app.")]
    values = features("Growth seat price", passages, VOCABULARY)
    # "price" is in no chunk at all: unknown, and missing from the best passage with the highest rarity
    assert values["unknown_words"] == pytest.approx(1 / 3)
    assert values["missing_weight"] == pytest.approx(1.0)
    weights = [VOCABULARY.weight(w) for w in ("growth", "seat", "price")]
    assert values["coverage"] == pytest.approx(sum(weights[:2]) / sum(weights))


def test_a_name_the_knowledge_base_never_uses_is_counted() -> None:
    values = features(
        "Does Growth integrate with Zapier and ServiceNow?",
        [candidate("Growth costs $49 per seat per month and includes the API.")],
        VOCABULARY,
    )
    assert values["unknown_names"] == 2.0  # Growth is known, Zapier and ServiceNow are not
    assert values["unknown_words"] == pytest.approx(3 / 4)  # integrate, zapier, servicenow of four words
    assert values["missing_weight"] == pytest.approx(1.0)


def test_no_candidates_means_nothing_covered() -> None:
    values = features("seven years of audit records", [], VOCABULARY)
    assert values["coverage"] == 0.0 and values["hybrid_top"] == 0.0 and values["best_similarity"] == 0.0


def rows_and_labels() -> tuple[list[dict[str, float]], list[bool]]:
    """Answerable when coverage is high; the other inputs are noise the fit must learn to ignore."""
    rows, labels = [], []
    for i in range(40):
        coverage = i / 39
        rows.append(
            {
                "coverage": coverage,
                "unknown_words": (i * 7 % 10) / 10,
                "unknown_names": float(i % 2),
                "missing_weight": (i * 3 % 10) / 10,
                "best_similarity": 0.5 + (i * 5 % 10) / 100,
                "hybrid_top": 0.8 + (i % 3) / 20,
            }
        )
        labels.append(coverage >= 0.5)
    return rows, labels


def test_the_fitted_model_separates_what_the_labels_separate() -> None:
    rows, labels = rows_and_labels()
    model = fit(rows, labels)
    verdicts = [model.verdict(row) for row in rows]
    assert [v.answerable for v in verdicts] == labels
    assert max(abs(w) for w in model.weights) == abs(model.weights[model.features.index("coverage")])
    assert model.fitted_on["answerable"] == sum(labels) and model.fitted_on["unanswerable"] == 40 - sum(labels)
    low = model.verdict(rows[0])
    assert not low.answerable and low.probability < low.threshold
    assert low.reason.startswith("not answered by the knowledge base: the passages use 0%")
    again = AnswerabilityModel.from_json(json.loads(json.dumps(model.to_json())))
    assert again.probability(rows[10]) == pytest.approx(model.probability(rows[10]))


def test_fitting_needs_both_kinds_of_query() -> None:
    rows, _ = rows_and_labels()
    with pytest.raises(ValueError, match="both answerable and unanswerable"):
        fit(rows, [True] * len(rows))
    with pytest.raises(ValueError, match="40 feature rows for 3 labels"):
        fit(rows, [True, False, True])


def test_the_threshold_maximises_balanced_accuracy() -> None:
    # three answerable above 0.6, one below; two unanswerable at 0.2 and 0.55
    threshold = best_threshold([0.9, 0.8, 0.7, 0.3, 0.2, 0.55], [True, True, True, True, False, False])
    assert threshold == pytest.approx((0.55 + 0.7) / 2)


def test_agreement_matches_hand_counted_precision_and_recall() -> None:
    probabilities = [0.9, 0.8, 0.4, 0.7, 0.3, 0.2]
    answerable = [True, True, True, False, False, False]
    measured = agreement(probabilities, answerable, threshold=0.5)
    # abstained on 0.4 (answerable), 0.3 and 0.2 (unanswerable); answered 0.9, 0.8 and 0.7 (unanswerable)
    assert measured.abstain_precision == pytest.approx(2 / 3)
    assert measured.abstain_recall == pytest.approx(2 / 3)
    assert measured.answer_precision == pytest.approx(2 / 3)
    assert measured.answer_recall == pytest.approx(2 / 3)
    # of the nine (answerable, unanswerable) pairs only 0.4 below 0.7 is out of order
    assert measured.auc == pytest.approx(auc(probabilities, answerable)) == pytest.approx(8 / 9)
    assert (measured.queries, measured.unanswerable) == (6, 3)


def test_auc_counts_ties_half_and_needs_both_classes() -> None:
    assert auc([0.5, 0.5], [True, False]) == 0.5
    assert auc([0.9, 0.1], [True, False]) == 1.0
    with pytest.raises(ValueError, match="both positive and negative"):
        auc([0.9], [True])


def test_a_damaged_model_is_refused_with_the_reason() -> None:
    good = load_model().to_json()
    for damage, reason in (
        ({"weights": [1.0]}, "one mean, scale and weight per feature"),
        ({"threshold": 1.5}, "strictly between 0 and 1"),
        ({"features": ["coverage", "luck", *FEATURES[2:]]}, "unknown answerability features"),
        ({"scale": [0.0] * len(FEATURES)}, "scale must be positive"),
        ({"bias": "high"}, "not an answerability model"),
    ):
        with pytest.raises(ValueError, match=reason):
            AnswerabilityModel.from_json({**good, **damage})
    with pytest.raises(ValueError, match="needs the features"):
        load_model().probability({"coverage": 1.0})


def test_the_shipped_model_was_fitted_on_the_calibration_part_of_the_shipped_sets() -> None:
    model = load_model()
    assert set(model.features) == set(FEATURES)
    answerable = [q for q in load_queries(EVAL / "retrieval.jsonl") if part_of(q.query_id) == CALIBRATION]
    unanswerable = [q for q in load_unanswerable(EVAL / "unanswerable.jsonl") if part_of(q.query_id) == CALIBRATION]
    # a changed query set needs `herald-retrieval calibrate` again (README, "Retrieval")
    assert (model.fitted_on["answerable"], model.fitted_on["unanswerable"]) == (len(answerable), len(unanswerable))


def test_the_split_is_fixed_by_id_and_leaves_enough_of_each_kind_held_out() -> None:
    assert part_of("q001") == part_of("q001")
    answerable = load_queries(EVAL / "retrieval.jsonl")
    unanswerable = load_unanswerable(EVAL / "unanswerable.jsonl")
    for queries in (answerable, unanswerable):
        parts = Counter(part_of(q.query_id) for q in queries)
        assert set(parts) == {CALIBRATION, HELD_OUT}
        assert parts[HELD_OUT] >= len(queries) / 3


def test_the_unanswerable_set_is_large_varied_and_distinct_from_the_labelled_one() -> None:
    unanswerable = load_unanswerable(EVAL / "unanswerable.jsonl")
    assert len(unanswerable) >= 80
    assert len({q.query_id for q in unanswerable}) == len(unanswerable)
    assert not {q.query_id for q in unanswerable} & {q.query_id for q in load_queries(EVAL / "retrieval.jsonl")}
    assert {q.style for q in unanswerable} == {"keyword", "question", "paraphrase", "exact"}
    kb_text = " ".join(p.read_text(encoding="utf-8") for p in KB.rglob("*.*")).lower()
    # the names these queries ask about are nowhere in the knowledge base
    for name in ("soc 3", "kubernetes", "zapier", "workday", "servicenow", "enterprise plus", "gartner"):
        assert name in " ".join(q.query.lower() for q in unanswerable) and name not in kb_text, name


def test_a_line_that_is_not_an_unanswerable_query_is_refused_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    path.write_text('{"id": "u1", "query": "SOC 3"}\n{"id": "u2", "query": "x", "relevant": {"pricing/plans": 3}}\n')
    with pytest.raises(ValueError, match=r"u\.jsonl:2: .*grades no document"):
        load_unanswerable(path)
    path.write_text('{"query": "no id"}\n')
    with pytest.raises(ValueError, match=r"u\.jsonl:1: not an unanswerable query"):
        load_unanswerable(path)
