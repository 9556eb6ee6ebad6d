"""`herald-retrieval`: run the retrieval service, or `herald-retrieval load-kb --tenant T --dir D`."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from herald_core.observability import configure_logging
from herald_core.runtime import run
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.app import create_app, load_knowledge_base, make_store
from herald_retrieval.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(prog="herald-retrieval")
    sub = parser.add_subparsers(dest="command")
    load = sub.add_parser("load-kb", help="load a directory of Markdown documents into a tenant's knowledge base")
    load.add_argument("--tenant", required=True)
    load.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    settings = Settings()
    if args.command == "load-kb":
        configure_logging("retrieval", settings.common.log_level)

        async def load_kb() -> None:
            store = make_store(settings)
            await store.connect()
            try:
                docs, chunks = await load_knowledge_base(store, OnnxEmbedder(), args.tenant, args.dir)
            finally:
                await store.close()
            print(f"loaded {docs} documents as {chunks} chunks into tenant {args.tenant}")

        asyncio.run(load_kb())
    else:
        run("retrieval", settings, create_app)


if __name__ == "__main__":
    main()
