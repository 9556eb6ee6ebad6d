"""`herald-retrieval`: run the retrieval service, or `herald-retrieval load-kb --tenant T --dir D`."""

from __future__ import annotations

import argparse
import asyncio
from importlib.resources import files
from pathlib import Path

from herald_core.db import create_pool, migrate
from herald_core.observability import configure_logging
from herald_core.runtime import run
from herald_retrieval import eval_harness
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.adapters.registry import DocumentRegistry
from herald_retrieval.app import create_app, make_store
from herald_retrieval.knowledge import KnowledgeIndexer
from herald_retrieval.settings import Settings


async def load_kb(settings: Settings, tenant: str, directory: Path) -> int:
    """Index every readable file under `directory` straight into the store (no Kafka); 1 if any was refused."""
    pool = await create_pool(settings.common.pg_dsn, max_size=2)
    store = make_store(settings)
    try:
        await migrate(pool, "retrieval", Path(str(files("herald_retrieval") / "migrations")))
        await store.connect()
        await store.ensure_schema()
        outcomes = await KnowledgeIndexer(store, DocumentRegistry(pool), OnnxEmbedder()).load_directory(
            tenant, directory
        )
    finally:
        await store.close()
        await pool.close()
    refused = [o for o in outcomes if o.status == "refused"]
    chunks = sum(o.chunks for o in outcomes)
    print(f"loaded {len(outcomes) - len(refused)} documents as {chunks} chunks into tenant {tenant}")
    for outcome in refused:
        print(f"refused {outcome.doc_id}: {outcome.reason}")
    return 1 if refused else 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="herald-retrieval")
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser("load-kb", help="index a directory of documents into a tenant's knowledge base")
    load.add_argument("--tenant", required=True)
    load.add_argument("--dir", type=Path, required=True)
    evaluate = sub.add_parser("eval", help="measure retrieval quality and latency on a labelled query set")
    evaluate.add_argument("--kb", type=Path, required=True, help="the knowledge base to index")
    evaluate.add_argument("--queries", type=Path, required=True, help="labelled queries (JSON lines)")
    evaluate.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    settings = Settings()
    if args.command == "eval":
        configure_logging("retrieval", "WARNING")
        report = asyncio.run(eval_harness.evaluate(settings, args.kb, args.queries))
        json_path, png_path = eval_harness.write_report(report, args.out)
        print(eval_harness.table(report))
        print(f"wrote {json_path} and {png_path}")
        return
    if args.command == "load-kb":
        configure_logging("retrieval", settings.common.log_level)
        raise SystemExit(asyncio.run(load_kb(settings, args.tenant, args.dir)))
    run("retrieval", settings, create_app)


if __name__ == "__main__":
    main()
