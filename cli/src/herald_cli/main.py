"""The `herald` command: a tenant's knowledge base (`herald kb`), and more to come."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from herald_cli import kb
from herald_core.settings import CommonSettings

app = typer.Typer(help="Herald's command line. Reads HERALD_* settings (Kafka bootstrap, topic prefix).")
kb_app = typer.Typer(help="A tenant's knowledge base: add, replace and delete documents.")
app.add_typer(kb_app, name="kb")

Tenant = Annotated[str, typer.Option("--tenant", "-t", help="The Herald tenant id.")]
Wait = Annotated[bool, typer.Option(help="Wait for the retrieval service's answer for every document.")]
Timeout = Annotated[float, typer.Option(help="Seconds to wait for the answers.")]


@kb_app.command("add")
def kb_add(
    tenant: Tenant,
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or directories (top folders = collections).")
    ] = None,
    urls: Annotated[Path | None, typer.Option("--urls", help="A file of URLs to fetch, one per line.")] = None,
    collection: Annotated[str | None, typer.Option(help="Put every document in this collection.")] = None,
    base: Annotated[
        Path | None, typer.Option(help="Document ids are paths relative to this directory (default: each one given).")
    ] = None,
    wait: Wait = True,
    timeout: Timeout = 300.0,
) -> None:
    """Add or replace documents (Markdown, HTML, PDF, plain text); unchanged ones cost nothing."""
    console = Console(stderr=True)
    candidates = kb.from_paths(paths or [], collection, base)
    if urls is not None:
        lines = [line.strip() for line in urls.read_text().splitlines()]
        candidates += asyncio.run(kb.from_urls([u for u in lines if u and not u.startswith("#")], collection))
    if not candidates:
        raise typer.BadParameter("nothing to add: give files, directories or --urls")
    code = asyncio.run(kb.add(CommonSettings(), tenant, candidates, wait=wait, timeout=timeout, console=console))
    raise typer.Exit(code)


@kb_app.command("delete")
def kb_delete(
    tenant: Tenant,
    doc_ids: Annotated[list[str], typer.Argument(help="Ids of the documents to remove (e.g. pricing/plans).")],
    wait: Wait = True,
    timeout: Timeout = 60.0,
) -> None:
    """Remove documents and every chunk of them from the tenant's knowledge base."""
    console = Console(stderr=True)
    code = asyncio.run(kb.delete(CommonSettings(), tenant, doc_ids, wait=wait, timeout=timeout, console=console))
    raise typer.Exit(code)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
