"""The retrieval evaluation run (`make eval-retrieval`): index a knowledge base into a fresh tenant, ask
every labelled query of each system (BM25, vector, hybrid at several alphas, hybrid + fusion re-rank, and
hybrid + LLM re-rank when ANTHROPIC_API_KEY is set) through the service's own search path, and report
quality and latency as JSON and a plot.

With a set of unanswerable queries, it also measures the answerability verdict on the held-out part of
both sets (`evaluation.part_of`): precision and recall of abstaining and of answering, AUC and the shipped
threshold, beside how well each system's best score alone tells the two apart. `calibrate` fits the
verdict's model on the calibration part.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.llm_rerank import LlmReranker, llm_configured
from herald_retrieval.adapters.weaviate_store import SearchFilters, WeaviateKnowledgeStore
from herald_retrieval.answerability import FEATURES, AnswerabilityModel, agreement, auc, fit, load_model
from herald_retrieval.app import knowledge_base
from herald_retrieval.evaluation import (
    CALIBRATION,
    HELD_OUT,
    ChunkRef,
    Scores,
    load_queries,
    load_unanswerable,
    part_of,
)
from herald_retrieval.knowledge import KnowledgeIndexer
from herald_retrieval.search import Searcher
from herald_retrieval.settings import Settings


@dataclass(frozen=True)
class System:
    name: str
    mode: str
    rerank: str = "none"
    alpha: float | None = None


def systems(alphas: tuple[float, ...], *, llm: bool) -> list[System]:
    return [
        System("bm25", "bm25"),
        System("vector", "vector"),
        *(System(f"hybrid a={a:.2f}", "hybrid", alpha=a) for a in alphas),
        System("hybrid+fusion", "hybrid", rerank="fusion"),
        *([System("hybrid+llm", "hybrid", rerank="llm")] if llm else []),
    ]


@dataclass(frozen=True)
class Asked:
    """One query of either set, with what the evaluation needs to know of it."""

    query_id: str
    query: str
    style: str
    answerable: bool

    @property
    def part(self) -> str:
        return part_of(self.query_id)


def asked(queries_path: Path, unanswerable_path: Path | None) -> list[Asked]:
    answerable = [Asked(q.query_id, q.query, q.style, True) for q in load_queries(queries_path)]
    unanswerable = (
        [Asked(q.query_id, q.query, q.style, False) for q in load_unanswerable(unanswerable_path)]
        if unanswerable_path
        else []
    )
    ids = [a.query_id for a in answerable + unanswerable]
    if len(set(ids)) != len(ids):
        raise ValueError("query ids must be unique across the answerable and unanswerable sets")
    return answerable + unanswerable


@contextlib.asynccontextmanager
async def indexed(
    settings: Settings, kb_dir: Path, embedder: OnnxEmbedder
) -> AsyncIterator[tuple[WeaviateKnowledgeStore, str, int, list[ChunkRef], float]]:
    """A fresh tenant holding the knowledge base (removed afterwards): store, tenant, documents, chunks, seconds."""
    tenant = f"eval-{secrets.token_hex(4)}"
    async with knowledge_base(settings) as (store, registry):
        started = time.perf_counter()
        answers = await KnowledgeIndexer(store, registry, embedder).load_directory(tenant, kb_dir)
        index_seconds = time.perf_counter() - started
        try:
            corpus = [ChunkRef(p.doc_id, p.section_path) for p in await store.all_chunks(tenant)]
            yield store, tenant, len(answers), corpus, index_seconds
        finally:
            await store.delete_tenant(tenant)
            await registry.remove_tenant(tenant)


async def features_per_query(searcher: Searcher, tenant: str, queries: Sequence[Asked]) -> list[dict[str, float]]:
    return [await searcher.features_of(tenant, q.query) for q in queries]


async def calibrate(
    settings: Settings, kb_dir: Path, queries_path: Path, unanswerable_path: Path, *, l2: float = 1.0
) -> AnswerabilityModel:
    """The answerability model fitted on the calibration part of both sets (the held-out part is not read)."""
    queries = [q for q in asked(queries_path, unanswerable_path) if q.part == CALIBRATION]
    embedder = OnnxEmbedder(threads=settings.embed_threads)
    async with indexed(settings, kb_dir, embedder) as (store, tenant, _, _, _):
        searcher = Searcher(store, embedder, alpha=settings.alpha, rerank_depth=settings.rerank_depth)
        rows = await features_per_query(searcher, tenant, queries)
    model = fit(rows, [q.answerable for q in queries], l2=l2)
    return AnswerabilityModel(
        model.features,
        model.mean,
        model.scale,
        model.weights,
        model.bias,
        model.threshold,
        {**model.fitted_on, "alpha": settings.alpha, "queries": f"{queries_path.name} + {unanswerable_path.name}"},
    )


async def evaluate(
    settings: Settings,
    kb_dir: Path,
    queries_path: Path,
    alphas: tuple[float, ...] = (0.25, 0.4, 0.5, 0.6, 0.75),
    *,
    unanswerable_path: Path | None = None,
    model: AnswerabilityModel | None = None,
) -> dict[str, Any]:
    labelled = load_queries(queries_path)
    everything = asked(queries_path, unanswerable_path)
    unanswerable = [q for q in everything if not q.answerable]
    embedder = OnnxEmbedder(threads=settings.embed_threads)
    llm = LlmReranker(settings.llm_rerank_model) if llm_configured() else None
    if unanswerable and model is None:
        model = load_model()
    top_scores: dict[str, dict[str, float]] = {}
    async with indexed(settings, kb_dir, embedder) as (store, tenant, documents, corpus, index_seconds):
        results: dict[str, dict[str, Any]] = {}
        for system in systems(alphas, llm=llm is not None):
            searcher = Searcher(
                store,
                embedder,
                alpha=system.alpha if system.alpha is not None else settings.alpha,
                rerank_depth=settings.rerank_depth,
                llm=llm,
                llm_depth=settings.llm_rerank_depth,
            )
            embedder.forget()  # each system pays for its own query embeddings
            scores = Scores()
            by_style: dict[str, Scores] = {}
            best: dict[str, float] = {}
            for query in labelled:
                began = time.perf_counter()
                found = await searcher.search(tenant, query.query, 20, system.mode, system.rerank, SearchFilters())
                seconds = time.perf_counter() - began
                ranked = [ChunkRef(p.doc_id, p.section_path) for p in found]
                scores.add(query, ranked, corpus, seconds)
                by_style.setdefault(query.style, Scores()).add(query, ranked, corpus, seconds)
                best[query.query_id] = found[0].score if found else 0.0
            for query in unanswerable:
                found = await searcher.search(tenant, query.query, 1, system.mode, system.rerank, SearchFilters())
                best[query.query_id] = found[0].score if found else 0.0
            results[system.name] = {
                **scores.summary(),
                "ndcg@10_by_style": {style: s.summary()["ndcg@10"] for style, s in sorted(by_style.items())},
            }
            top_scores[system.name] = best
        searcher = Searcher(store, embedder, alpha=settings.alpha, rerank_depth=settings.rerank_depth)
        rows = await features_per_query(searcher, tenant, everything) if unanswerable else []
    hybrids = {name: r for name, r in results.items() if name.startswith("hybrid a=")}
    best_alpha = max(hybrids, key=lambda name: hybrids[name]["ndcg@10"])
    report: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(),
        "queries": len(labelled),
        "documents": documents,
        "chunks": len(corpus),
        "index_seconds": index_seconds,
        "configured_alpha": settings.alpha,
        "configured_rerank": settings.rerank,
        "best_alpha": float(best_alpha.split("=")[1]),
        "systems": results,
        "rerank": rerank_comparison(results, settings.alpha),
    }
    if model is not None:
        report["answerability"] = answerability_report(everything, rows, model, top_scores)
    return report


def rerank_comparison(results: dict[str, dict[str, Any]], alpha: float) -> dict[str, Any]:
    """Fusion re-ranking against plain hybrid at the configured alpha: overall and per query style."""
    hybrid = results.get(f"hybrid a={alpha:.2f}")
    fusion = results.get("hybrid+fusion")
    if hybrid is None or fusion is None:
        return {}
    styles = {
        style: {"hybrid": value, "fusion": fusion["ndcg@10_by_style"].get(style, 0.0)}
        for style, value in hybrid["ndcg@10_by_style"].items()
    }
    return {
        "hybrid_ndcg@10": hybrid["ndcg@10"],
        "fusion_ndcg@10": fusion["ndcg@10"],
        "hybrid_p50_ms": hybrid["p50_ms"],
        "fusion_p50_ms": fusion["p50_ms"],
        "fusion_beats_hybrid": fusion["ndcg@10"] > hybrid["ndcg@10"],
        "styles_where_fusion_beats_hybrid": sorted(s for s, v in styles.items() if v["fusion"] > v["hybrid"]),
        "by_style": styles,
    }


def answerability_report(
    everything: Sequence[Asked],
    rows: Sequence[dict[str, float]],
    model: AnswerabilityModel,
    top_scores: dict[str, dict[str, float]],
) -> dict[str, Any]:
    parts: dict[str, Any] = {}
    for part in (CALIBRATION, HELD_OUT):
        chosen = [(q, row) for q, row in zip(everything, rows, strict=True) if q.part == part]
        labels = [q.answerable for q, _ in chosen]
        probabilities = [model.probability(row) for _, row in chosen]
        parts[part] = agreement(probabilities, labels, model.threshold).to_json()
    held = [(q, row) for q, row in zip(everything, rows, strict=True) if q.part == HELD_OUT]
    labels = [q.answerable for q, _ in held]
    by_style = {}
    for style in sorted({q.style for q, _ in held}):
        chosen = [(q, row) for q, row in held if q.style == style]
        unanswered = [row for q, row in chosen if not q.answerable]
        answered = [row for q, row in chosen if q.answerable]
        by_style[style] = {
            "abstain_recall": _share(unanswered, model),
            "answer_recall": 1.0 - _share(answered, model),
            "queries": len(chosen),
        }
    return {
        "threshold": model.threshold,
        "features": list(model.features),
        "held_out": parts[HELD_OUT],
        "calibration": parts[CALIBRATION],
        "held_out_by_style": by_style,
        # each input alone, and each system's best score alone, on the held-out part
        "feature_auc": {f: auc([row[f] for _, row in held], labels) for f in FEATURES},
        "top_score_auc": {name: auc([best[q.query_id] for q, _ in held], labels) for name, best in top_scores.items()},
    }


def _share(rows: Sequence[dict[str, float]], model: AnswerabilityModel) -> float:
    """The share of these queries the verdict abstains on."""
    return sum(1 for row in rows if model.probability(row) < model.threshold) / len(rows) if rows else 0.0


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = out_dir / f"eval-retrieval-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    names = list(report["systems"])
    answerability = report.get("answerability")
    fig, axes = plt.subplots(1, 3 if answerability else 2, figsize=(19 if answerability else 13, 4.8))
    quality, latency = axes[0], axes[1]
    width = 0.27
    for offset, metric in enumerate(("ndcg@10", "recall@20", "mrr")):
        quality.bar(
            [i + (offset - 1) * width for i in range(len(names))],
            [report["systems"][n][metric] for n in names],
            width,
            label=metric,
        )
    quality.set_xticks(range(len(names)), names, rotation=30, ha="right")
    quality.set_ylim(0, 1)
    quality.set_title(f"quality over {report['queries']} labelled queries ({report['chunks']} chunks)")
    quality.legend()
    latency.bar(names, [report["systems"][n]["p50_ms"] for n in names], label="p50")
    latency.bar(names, [report["systems"][n]["p95_ms"] for n in names], alpha=0.4, label="p95")
    latency.set_ylabel("ms per search (embedding included)")
    latency.tick_params(axis="x", rotation=30)
    latency.legend()
    if answerability:
        held = answerability["held_out"]
        labels = ["abstain\nprecision", "abstain\nrecall", "answer\nprecision", "answer\nrecall", "AUC"]
        values = [
            held["abstain_precision"],
            held["abstain_recall"],
            held["answer_precision"],
            held["answer_recall"],
            held["auc"],
        ]
        bars = axes[2].bar(labels, values, color="tab:purple")
        axes[2].bar_label(bars, fmt="%.2f")
        best_score = max(answerability["top_score_auc"].values())
        axes[2].axhline(best_score, color="grey", linestyle="--", label=f"best top-score AUC alone {best_score:.2f}")
        axes[2].set_ylim(0, 1.05)
        axes[2].set_title(
            f"answerability on held-out ({held['queries']} queries, {held['unanswerable']} unanswerable), "
            f"threshold {answerability['threshold']:.2f}",
            fontsize=9,
        )
        axes[2].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    png_path = json_path.with_suffix(".png")
    fig.savefig(png_path, dpi=110)
    plt.close(fig)
    return json_path, png_path


def table(report: dict[str, Any]) -> str:
    lines = [
        f"{report['queries']} queries over {report['documents']} documents ({report['chunks']} chunks, "
        f"indexed in {report['index_seconds']:.1f} s); best hybrid alpha {report['best_alpha']:.2f} "
        f"(configured {report['configured_alpha']:.2f})",
        f"{'system':<16}{'ndcg@10':>9}{'recall@20':>11}{'mrr':>7}{'p50 ms':>9}{'p95 ms':>9}",
    ]
    for name, r in report["systems"].items():
        lines.append(
            f"{name:<16}{r['ndcg@10']:>9.3f}{r['recall@20']:>11.3f}{r['mrr']:>7.3f}{r['p50_ms']:>9.1f}{r['p95_ms']:>9.1f}"
        )
    rerank = report.get("rerank")
    if rerank:
        lines.append(
            f"fusion re-rank {'beats' if rerank['fusion_beats_hybrid'] else 'does not beat'} plain hybrid: "
            f"NDCG@10 {rerank['fusion_ndcg@10']:.3f} vs {rerank['hybrid_ndcg@10']:.3f}, p50 "
            f"{rerank['fusion_p50_ms']:.1f} vs {rerank['hybrid_p50_ms']:.1f} ms; better on styles: "
            f"{', '.join(rerank['styles_where_fusion_beats_hybrid']) or 'none'}"
        )
    answerability = report.get("answerability")
    if answerability:
        held = answerability["held_out"]
        lines.append(
            f"answerability on held-out ({held['queries']} queries, {held['unanswerable']} unanswerable, "
            f"threshold {answerability['threshold']:.3f}): abstain precision {held['abstain_precision']:.3f} "
            f"recall {held['abstain_recall']:.3f}; answer precision {held['answer_precision']:.3f} "
            f"recall {held['answer_recall']:.3f}; AUC {held['auc']:.3f}"
        )
        lines.append(
            "top score alone, AUC on held-out: "
            + ", ".join(f"{name} {value:.3f}" for name, value in answerability["top_score_auc"].items())
        )
    return "\n".join(lines)
