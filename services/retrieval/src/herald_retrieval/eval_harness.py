"""The retrieval evaluation run (`make eval-retrieval`): index a knowledge base into a fresh tenant, ask
every labelled query of each system (BM25, vector, hybrid at several alphas, hybrid + fusion re-rank, and
hybrid + LLM re-rank when ANTHROPIC_API_KEY is set) through the service's own search path, and report
quality and latency as JSON and a plot."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.llm_rerank import LlmReranker, llm_configured
from herald_retrieval.adapters.weaviate_store import SearchFilters
from herald_retrieval.app import knowledge_base
from herald_retrieval.evaluation import ChunkRef, Scores, load_queries
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


async def evaluate(
    settings: Settings, kb_dir: Path, queries_path: Path, alphas: tuple[float, ...] = (0.25, 0.4, 0.5, 0.6, 0.75)
) -> dict[str, Any]:
    queries = load_queries(queries_path)
    tenant = f"eval-{secrets.token_hex(4)}"
    embedder = OnnxEmbedder(threads=settings.embed_threads)
    llm = LlmReranker(settings.llm_rerank_model) if llm_configured() else None
    async with knowledge_base(settings) as (store, registry):
        started = time.perf_counter()
        answers = await KnowledgeIndexer(store, registry, embedder).load_directory(tenant, kb_dir)
        index_seconds = time.perf_counter() - started
        corpus = [ChunkRef(p.doc_id, p.section_path) for p in await store.all_chunks(tenant)]
        results: dict[str, dict[str, float]] = {}
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
            for query in queries:
                began = time.perf_counter()
                found = await searcher.search(tenant, query.query, 20, system.mode, system.rerank, SearchFilters())
                scores.add(
                    query, [ChunkRef(p.doc_id, p.section_path) for p in found], corpus, time.perf_counter() - began
                )
            results[system.name] = scores.summary()
        await store.delete_tenant(tenant)
        await registry.remove_tenant(tenant)
    hybrids = {name: r for name, r in results.items() if name.startswith("hybrid a=")}
    best_alpha = max(hybrids, key=lambda name: hybrids[name]["ndcg@10"])
    return {
        "when": datetime.now(UTC).isoformat(),
        "queries": len(queries),
        "documents": len(answers),
        "chunks": len(corpus),
        "index_seconds": index_seconds,
        "configured_alpha": settings.alpha,
        "best_alpha": float(best_alpha.split("=")[1]),
        "systems": results,
    }


def write_report(report: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = out_dir / f"eval-retrieval-{stamp}.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    names = list(report["systems"])
    fig, (quality, latency) = plt.subplots(1, 2, figsize=(13, 4.8))
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
    return "\n".join(lines)
