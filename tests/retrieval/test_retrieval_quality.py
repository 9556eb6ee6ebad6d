"""Retrieval quality on the shipped labelled set, and the metrics that measure it."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from herald_retrieval.answerability import load_model
from herald_retrieval.eval_harness import evaluate
from herald_retrieval.evaluation import ChunkRef, LabelledQuery, load_queries, ndcg_at, recall_at, reciprocal_rank

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "acme"

QUERY = LabelledQuery(
    "q", "growth price", "keyword", {"pricing/plans": 2, "pricing/billing": 1}, {"pricing/plans#Growth": 3}
)
GROWTH = ChunkRef("pricing/plans", ("Pricing and plans", "Growth"))
STARTER = ChunkRef("pricing/plans", ("Pricing and plans", "Starter"))
BILLING = ChunkRef("pricing/billing", ("Billing",))
OTHER = ChunkRef("brand/voice", ("Voice",))


def test_a_chunk_is_worth_its_sections_grade_or_else_its_documents() -> None:
    assert QUERY.grade(GROWTH.doc_id, GROWTH.section_path) == 3
    assert QUERY.grade(STARTER.doc_id, STARTER.section_path) == 2
    assert QUERY.grade(OTHER.doc_id, OTHER.section_path) == 0


def test_metrics_match_their_hand_computed_values() -> None:
    corpus = [GROWTH, STARTER, BILLING, OTHER]
    assert ndcg_at(QUERY, [GROWTH, STARTER, BILLING], corpus) == pytest.approx(1.0)
    # ideal: 7, 3/log2(3), 1/2 ; got: 0, 7/log2(3), 3/2
    ideal = 7 + 3 / math.log2(3) + 1 / 2
    assert ndcg_at(QUERY, [OTHER, GROWTH, STARTER], corpus) == pytest.approx((7 / math.log2(3) + 3 / 2) / ideal)
    assert recall_at(QUERY, [OTHER, BILLING]) == 0.0
    assert recall_at(QUERY, [OTHER, STARTER]) == 1.0
    assert reciprocal_rank(QUERY, [OTHER, BILLING, STARTER]) == pytest.approx(1 / 3)
    assert reciprocal_rank(QUERY, [OTHER]) == 0.0


def test_the_shipped_query_set_is_large_labelled_and_points_at_real_documents() -> None:
    queries = load_queries(SAMPLES / "eval" / "retrieval.jsonl")
    assert len(queries) >= 200
    documents = {p.relative_to(SAMPLES / "kb").with_suffix("").as_posix() for p in (SAMPLES / "kb").rglob("*.*")}
    for query in queries:
        assert set(query.relevant) <= documents, query.query_id
        assert {key.split("#", 1)[0] for key in query.sections} <= documents, query.query_id
        assert max([*query.relevant.values(), *query.sections.values()]) == 3, query.query_id


@pytest.mark.weaviate
@pytest.mark.postgres
async def test_hybrid_search_is_at_least_as_good_as_either_retriever_alone_and_the_abstain_signal_is_measured(
    herald,
) -> None:  # type: ignore[no-untyped-def]
    settings = herald.retrieval_settings()
    report = await evaluate(
        settings,
        SAMPLES / "kb",
        SAMPLES / "eval" / "retrieval.jsonl",
        alphas=(settings.alpha,),
        unanswerable_path=SAMPLES / "eval" / "unanswerable.jsonl",
    )
    systems = report["systems"]
    hybrid = systems[f"hybrid a={settings.alpha:.2f}"]
    assert report["queries"] >= 200
    for single in ("bm25", "vector"):
        for metric in ("ndcg@10", "mrr"):
            assert hybrid[metric] >= systems[single][metric], (metric, single, systems)
    # the default re-ranker is kept only where it beats plain hybrid on this set
    if settings.rerank == "fusion":
        assert report["rerank"]["fusion_beats_hybrid"], report["rerank"]
    else:
        assert settings.rerank == "none" and not report["rerank"]["fusion_beats_hybrid"], report["rerank"]

    answerability = report["answerability"]
    held = answerability["held_out"]
    assert held["unanswerable"] >= 40 and held["queries"] - held["unanswerable"] >= 80
    # the verdict tells the two apart better than any system's best score alone
    assert held["auc"] > max(answerability["top_score_auc"].values()) + 0.05, answerability
    # most questions the knowledge base cannot answer are escalated, and most it can are answered
    assert held["abstain_recall"] >= 0.7 and held["answer_precision"] >= 0.75, held
    assert held["abstain_precision"] >= 0.5 and held["answer_recall"] >= 0.5, held
    assert answerability["threshold"] == load_model().threshold
    # vector scores are similarities now: its best score says something (it was 0.0 for every passage)
    assert answerability["top_score_auc"]["vector"] > 0.5
