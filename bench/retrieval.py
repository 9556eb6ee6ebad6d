"""`make bench` (second part) / `make bench-retrieval`: the knowledge base at scale.

A fresh tenant gets the sample knowledge base plus generated marketing documents, through the same
indexing path as the Kafka intake (parse → semantic chunks → embeddings → Weaviate + registry),
until it holds at least `--chunks` chunks. Then every labelled query of the shipped evaluation set
is asked, twice, and timed:

- weaviate hybrid (vector given) — the client's hybrid query with a precomputed query vector: the
  baseline, and "search without embedding";
- query embedding — MiniLM on the CPU, alone;
- Herald search (hybrid) — the service's search path, query embedding included (cache emptied);
- Herald search (bm25) — keywords alone, no embedding.

It reports ingestion chunks/s, p50/p95/p99 per system, Herald's search as a ratio of the baseline,
and NDCG@10 / MRR of the labelled queries with the generated documents as distractors.
Results: bench/results/retrieval-<timestamp>.json and .png (and retrieval-latest.*).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import secrets
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import machine, save
from herald_core.contracts import DocumentIndexed, MediaType
from herald_core.observability import configure_logging
from herald_core.settings import CommonSettings
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.weaviate_store import SearchFilters
from herald_retrieval.app import knowledge_base
from herald_retrieval.evaluation import ChunkRef, Scores, load_queries
from herald_retrieval.knowledge import KnowledgeIndexer
from herald_retrieval.search import Searcher
from herald_retrieval.settings import Settings
from herald_stack.cli import up
from herald_stack.config import REPO_ROOT, StackConfig

SAMPLES = REPO_ROOT / "samples" / "acme"
DIRECTION_MS = {"without embedding": 15.0, "with embedding": 40.0}
COMPANIES = ["Northwind", "Globex", "Initech", "Umbrella", "Stark Freight", "Wayne Retail", "Hooli", "Vandelay"]
INDUSTRIES = ["logistics", "retail", "healthcare", "manufacturing", "fintech", "education", "hospitality"]


def sentence_pool() -> list[str]:
    """Every sentence of the sample knowledge base's Markdown (headings and front matter left out)."""
    sentences: list[str] = []
    for path in sorted((SAMPLES / "kb").rglob("*.md")):
        body = path.read_text().split("\n---\n", 1)[-1]
        for line in body.splitlines():
            line = line.strip(" -*>|")
            if line and not line.startswith("#") and len(line) > 40:
                sentences.extend(s for s in re.split(r"(?<=[.!?])\s+", line) if len(s) > 30)
    return sentences


def generated_document(n: int, pool: list[str], rng: random.Random, sections: int = 10) -> bytes:
    """A campaign-notes document: `sections` headed sections of 3-7 sentences from the pool, with names,
    industries and numbers varied so no two documents say quite the same thing."""
    company, industry = rng.choice(COMPANIES), rng.choice(INDUSTRIES)
    lines = [f"# Campaign notes {n}: {company} ({industry})", ""]
    for s in range(sections):
        lines += [f"## {industry.title()} play {s + 1}", ""]
        picked = rng.sample(pool, rng.randint(3, 7))
        text = " ".join(picked)
        text = re.sub(r"\b\d+(?=%)", lambda _: str(rng.randint(5, 80)), text)
        lines += [text.replace("Acme Relay", rng.choice(["Acme Relay", "the platform"])), ""]
    return "\n".join(lines).encode()


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": round(cut[49], 2), "p95": round(cut[94], 2), "p99": round(cut[98], 2), "n": len(ordered)}


async def run(settings: Settings, min_chunks: int, rounds: int) -> dict[str, Any]:
    queries = load_queries(SAMPLES / "eval" / "retrieval.jsonl")
    tenant = f"bench-{secrets.token_hex(3)}"
    embedder = OnnxEmbedder(threads=settings.embed_threads)
    rng = random.Random(7)
    pool = sentence_pool()
    async with knowledge_base(settings) as (store, registry):
        indexer = KnowledgeIndexer(store, registry, embedder)
        try:
            sample = await indexer.load_directory(tenant, SAMPLES / "kb")
            chunks = sum(a.chunks for a in sample if isinstance(a, DocumentIndexed))
            started, generated_chunks, documents = time.perf_counter(), 0, 0
            while chunks + generated_chunks < min_chunks:
                content = generated_document(documents, pool, rng)
                answer = await indexer.add(
                    tenant, f"campaigns/generated-{documents:05d}", "campaigns", MediaType.MARKDOWN, content
                )
                assert isinstance(answer, DocumentIndexed), answer
                generated_chunks += answer.chunks
                documents += 1
                if documents % 100 == 0:
                    rate = generated_chunks / (time.perf_counter() - started)
                    print(f"  indexed {chunks + generated_chunks:,} chunks ({rate:,.0f} chunks/s)", flush=True)
            ingest_seconds = time.perf_counter() - started
            total = await store.count(tenant)
            print(f"knowledge base: {total:,} chunks; ingestion {generated_chunks / ingest_seconds:,.1f} chunks/s")

            embedded = embedder.embed([q.query for q in queries])
            vectors = {q.query: [float(x) for x in v] for q, v in zip(queries, embedded, strict=True)}
            searcher = Searcher(store, embedder, alpha=settings.alpha, rerank_depth=settings.rerank_depth)
            corpus = [ChunkRef(p.doc_id, p.section_path) for p in await store.all_chunks(tenant)]
            timings: dict[str, list[float]] = {
                "weaviate hybrid (vector given)": [],
                "query embedding": [],
                "Herald search (hybrid)": [],
                "Herald search (bm25)": [],
            }
            quality = Scores()
            for query in queries[:20]:  # warm up caches and connections
                await store.search(tenant, "hybrid", query.query, vectors[query.query], 10, alpha=settings.alpha)
            for round_ in range(rounds):
                embedder.forget()
                for query in queries:
                    began = time.perf_counter()
                    await store.search(tenant, "hybrid", query.query, vectors[query.query], 10, alpha=settings.alpha)
                    timings["weaviate hybrid (vector given)"].append((time.perf_counter() - began) * 1000)
                    began = time.perf_counter()
                    embedder.embed([query.query])
                    timings["query embedding"].append((time.perf_counter() - began) * 1000)
                    began = time.perf_counter()
                    found = await searcher.search(tenant, query.query, 10, "hybrid", "none", SearchFilters())
                    seconds = time.perf_counter() - began
                    timings["Herald search (hybrid)"].append(seconds * 1000)
                    if round_ == 0:
                        quality.add(query, [ChunkRef(p.doc_id, p.section_path) for p in found], corpus, seconds)
                    began = time.perf_counter()
                    await searcher.search(tenant, query.query, 10, "bm25", "none", SearchFilters())
                    timings["Herald search (bm25)"].append((time.perf_counter() - began) * 1000)
        finally:
            await store.delete_tenant(tenant)
            await registry.remove_tenant(tenant)
    latency = {name: percentiles(samples) for name, samples in timings.items()}
    summary = quality.summary()
    return {
        "tenant_chunks": total,
        "generated_documents": documents,
        "ingestion": {
            "chunks": generated_chunks,
            "seconds": round(ingest_seconds, 1),
            "chunks_per_second": round(generated_chunks / ingest_seconds, 1),
            "embed_threads": settings.embed_threads,
        },
        "queries": len(queries),
        "rounds": rounds,
        "alpha": settings.alpha,
        "latency_ms": latency,
        "ratios": {
            "herald_hybrid_p50_vs_weaviate": round(
                latency["Herald search (hybrid)"]["p50"] / latency["weaviate hybrid (vector given)"]["p50"], 2
            ),
            "herald_hybrid_p95_vs_weaviate": round(
                latency["Herald search (hybrid)"]["p95"] / latency["weaviate hybrid (vector given)"]["p95"], 2
            ),
        },
        "direction_ms": {
            "p95 without embedding": DIRECTION_MS["without embedding"],
            "p95 with embedding": DIRECTION_MS["with embedding"],
        },
        "quality_with_distractors": {k: round(v, 3) for k, v in summary.items() if k in ("ndcg@10", "mrr")},
    }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), gridspec_kw={"width_ratios": [3, 1]})
    names = list(result["latency_ms"])
    p50 = [result["latency_ms"][n]["p50"] for n in names]
    p95 = [result["latency_ms"][n]["p95"] for n in names]
    xs = range(len(names))
    left.bar([x - 0.2 for x in xs], p50, width=0.4, label="p50", color="#90cdf4")
    bars = left.bar([x + 0.2 for x in xs], p95, width=0.4, label="p95", color="#2b6cb0")
    left.bar_label(bars, labels=[f"{v:.1f}" for v in p95], fontsize=8)
    left.axhline(DIRECTION_MS["without embedding"], color="#718096", linestyle=":", label="15 ms (no embedding)")
    left.axhline(DIRECTION_MS["with embedding"], color="#c53030", linestyle="--", label="40 ms (with embedding)")
    left.set_xticks(list(xs), [n.replace(" (", "\n(") for n in names], fontsize=8)
    left.set_ylabel("ms per query")
    left.set_title(f"Search over {result['tenant_chunks']:,} chunks ({result['queries']} queries × {result['rounds']})")
    left.legend(fontsize=8)
    ingestion = result["ingestion"]
    right.bar(["ingestion"], [ingestion["chunks_per_second"]], color="#2f855a")
    right.set_ylabel("chunks per second (parse, chunk, embed, store)")
    right.set_title(f"{ingestion['chunks']:,} chunks in {ingestion['seconds']:.0f} s")
    fig.suptitle(f"herald retrieval bench {result['started_at']} on {result['machine']['cpus']} CPU(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000, help="at least this many chunks in the knowledge base")
    parser.add_argument("--rounds", type=int, default=2, help="times each labelled query is asked")
    args = parser.parse_args()
    configure_logging("retrieval", "WARNING")  # progress lines here, not a log line per document
    config = StackConfig()
    up(config, topics=False)
    started_at = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    settings = Settings(
        common=CommonSettings(pg_dsn=config.pg_dsn),
        weaviate_http_port=config.weaviate_http_port,
        weaviate_grpc_port=config.weaviate_grpc_port,
        collection="BenchChunk",
    )
    result = {
        "started_at": started_at,
        "machine": machine(),
        **asyncio.run(run(settings, args.chunks, args.rounds)),
    }
    for name, stats in result["latency_ms"].items():
        print(f"  {name:32} p50 {stats['p50']:7.2f} ms  p95 {stats['p95']:7.2f} ms  p99 {stats['p99']:7.2f} ms")
    print(f"  Herald hybrid search p95 = {result['ratios']['herald_hybrid_p95_vs_weaviate']}× Weaviate's own query")
    print(
        f"  quality with {result['generated_documents']} generated distractor documents: "
        f"{result['quality_with_distractors']}"
    )
    save(f"retrieval-{started_at}", "retrieval-latest", result, plot)


if __name__ == "__main__":
    main()
