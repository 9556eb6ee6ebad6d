"""`herald-retrieval`: run the retrieval service, or one of its commands: `load-kb`, `eval`, `calibrate`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from herald_core.contracts import DocumentIndexed, DocumentRefused
from herald_core.observability import configure_logging
from herald_core.runtime import run
from herald_retrieval import answerability, eval_harness
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.app import create_app, knowledge_base
from herald_retrieval.knowledge import KnowledgeIndexer
from herald_retrieval.settings import Settings


async def load_kb(settings: Settings, tenant: str, directory: Path) -> int:
    """Index every readable file under `directory` straight into the store (no Kafka); 1 if any was refused."""
    async with knowledge_base(settings) as (store, registry):
        answers = await KnowledgeIndexer(store, registry, OnnxEmbedder()).load_directory(tenant, directory)
    refused = [a for a in answers if isinstance(a, DocumentRefused)]
    chunks = sum(a.chunks for a in answers if isinstance(a, DocumentIndexed))
    print(f"loaded {len(answers) - len(refused)} documents as {chunks} chunks into tenant {tenant}")
    for answer in refused:
        print(f"refused {answer.doc_id}: {answer.reason}")
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
    evaluate.add_argument("--unanswerable", type=Path, help="queries the knowledge base does not answer (JSON lines)")
    evaluate.add_argument("--out", type=Path, default=Path("bench/results"))
    calibrate = sub.add_parser(
        "calibrate", help="fit the answerability model on the calibration part of the labelled sets"
    )
    calibrate.add_argument("--kb", type=Path, required=True, help="the knowledge base to index")
    calibrate.add_argument("--queries", type=Path, required=True, help="labelled (answerable) queries")
    calibrate.add_argument("--unanswerable", type=Path, required=True, help="unanswerable queries")
    calibrate.add_argument("--out", type=Path, default=answerability.MODEL_PATH, help="where to write the model")
    args = parser.parse_args()
    settings = Settings()
    if args.command == "calibrate":
        configure_logging("retrieval", "WARNING")
        model = asyncio.run(eval_harness.calibrate(settings, args.kb, args.queries, args.unanswerable))
        args.out.write_text(json.dumps(model.to_json(), indent=2) + "\n")
        print(f"wrote {args.out}: threshold {model.threshold:.3f}, fitted on {dict(model.fitted_on)}")
        return
    if args.command == "eval":
        configure_logging("retrieval", "WARNING")
        report = asyncio.run(
            eval_harness.evaluate(settings, args.kb, args.queries, unanswerable_path=args.unanswerable)
        )
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
