"""`herald kb`: submit documents to a tenant's knowledge base over Kafka and wait for what became of them.

Documents go to `herald.knowledge.v1` (one transaction per batch, each with its audit copy);
the retrieval service answers each on `herald.knowledge-indexed.v1`, under the run's
correlation id, which is how this command knows its own answers from anyone else's. What can
be told here (a file too big, empty, not UTF-8, of a kind Herald does not read) is refused
here, and the rest of the batch still goes.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from aiokafka import AIOKafkaConsumer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from herald_core.bus import Outbound, TransactionalProducer, Unreadable, read_record, tail_reader
from herald_core.contracts import (
    MAX_DOCUMENT_BYTES,
    MEDIA_TYPE_BY_SUFFIX,
    DocumentDeleted,
    DocumentIndexed,
    DocumentRefused,
    DocumentSubmitted,
    MediaType,
)
from herald_core.envelope import Envelope
from herald_core.ids import new_id
from herald_core.settings import CommonSettings
from herald_core.topics import KNOWLEDGE, KNOWLEDGE_INDEXED, document_key

SOURCE = "herald/cli"
CONTENT_TYPES = {"text/markdown": MediaType.MARKDOWN, "text/html": MediaType.HTML, "application/pdf": MediaType.PDF}
_DOC_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._/-]+")
PUBLISH_BATCH = 20


@dataclass(frozen=True)
class Candidate:
    doc_id: str
    collection: str
    source: str
    media_type: MediaType | None = None
    content: bytes = b""
    problem: str | None = None  # why it is refused before it is sent


@dataclass(frozen=True)
class Result:
    doc_id: str
    status: str  # indexed | unchanged | deleted | refused | pending
    chunks: int = 0
    detail: str = ""


def doc_id_for(relative: str) -> str:
    cleaned = _DOC_ID_UNSAFE.sub("-", relative).strip("-/.")
    return cleaned[:200] or "document"


def check(candidate: Candidate) -> Candidate:
    """Refuse here what the service would refuse anyway, with the reason."""
    if candidate.problem is not None:
        return candidate
    problem = None
    if candidate.media_type is None:
        problem = "not a kind of document Herald reads (Markdown, HTML, PDF, plain text)"
    elif len(candidate.content) > MAX_DOCUMENT_BYTES:
        problem = f"{len(candidate.content)} bytes is over the {MAX_DOCUMENT_BYTES} byte limit for one document"
    elif not candidate.content.strip():
        problem = "the document is empty"
    elif candidate.media_type is not MediaType.PDF:
        try:
            candidate.content.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"not UTF-8 text (byte {exc.start})"
    return candidate if problem is None else Candidate(**{**candidate.__dict__, "problem": problem})


def from_paths(paths: Iterable[Path], collection: str | None, base: Path | None = None) -> list[Candidate]:
    """Files, and every file under directories.

    A document's id is its path (without suffix) relative to `base`, or else to the directory it
    was found in (a file given by name: its stem); the first folder of that path names its
    collection unless `collection` says otherwise. Give the same `base` every time and a
    document keeps its id whether its folder or the whole tree is added.
    """
    found: list[Candidate] = []
    for path in paths:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        root = base or (path if path.is_dir() else path.parent)
        for file in files:
            try:
                relative = file.resolve().relative_to(root.resolve())
            except ValueError:
                relative = Path(file.name)
            folder = relative.parts[0] if len(relative.parts) > 1 else "general"
            doc_id = doc_id_for(relative.with_suffix("").as_posix())
            if not file.is_file():
                found.append(Candidate(doc_id, collection or folder, str(file), problem="no such file"))
                continue
            found.append(
                Candidate(
                    doc_id,
                    collection or folder,
                    str(file),
                    MEDIA_TYPE_BY_SUFFIX.get(file.suffix.lower()),
                    file.read_bytes(),
                )
            )
    return [check(c) for c in found]


async def from_urls(urls: Sequence[str], collection: str | None, timeout: float = 30.0) -> list[Candidate]:
    """Fetch each URL; its host and path name the document, its Content-Type (or suffix) says how to read it."""
    found: list[Candidate] = []
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
        for url in urls:
            parts = urlsplit(url)
            path = Path(parts.path)
            doc_id = doc_id_for(f"{parts.hostname or 'web'}{path.with_suffix('') if path.suffix else path}")
            try:
                response = await client.get(url)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                found.append(Candidate(doc_id, collection or "web", url, problem=f"could not fetch: {exc}"))
                continue
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            media_type = CONTENT_TYPES.get(content_type) or MEDIA_TYPE_BY_SUFFIX.get(Path(parts.path).suffix.lower())
            if media_type is None and content_type == "text/plain":
                media_type = MediaType.TEXT
            found.append(Candidate(doc_id, collection or "web", url, media_type, response.content))
    return [check(c) for c in found]


def _submission(candidate: Candidate) -> DocumentSubmitted:
    assert candidate.media_type is not None
    if candidate.media_type is MediaType.PDF:
        return DocumentSubmitted(
            doc_id=candidate.doc_id,
            collection=candidate.collection,
            media_type=candidate.media_type,
            content_base64=base64.b64encode(candidate.content).decode(),
            source_uri=candidate.source,
        )
    return DocumentSubmitted(
        doc_id=candidate.doc_id,
        collection=candidate.collection,
        media_type=candidate.media_type,
        content=candidate.content.decode("utf-8"),
        source_uri=candidate.source,
    )


class KnowledgeClient:
    def __init__(self, common: CommonSettings, tenant: str, console: Console | None = None) -> None:
        self.common = common
        self.tenant = tenant
        self.console = console or Console(stderr=True)
        self.correlation_id = new_id()

    def _envelope(self, body: DocumentSubmitted | DocumentDeleted) -> Envelope:
        return Envelope.new_chain(
            source=SOURCE,
            type=body.TYPE,
            subject=f"document/{body.doc_id}",
            tenant=self.tenant,
            correlation_id=self.correlation_id,
        )

    async def submit(
        self, bodies: Sequence[DocumentSubmitted | DocumentDeleted], *, wait: bool, timeout: float
    ) -> list[Result]:
        """Publish `bodies`; with `wait`, read the service's answers until each has one or `timeout` passes."""
        if not bodies:
            return []
        consumer = await tail_reader(self.common, KNOWLEDGE_INDEXED) if wait else None
        producer = TransactionalProducer(self.common, "cli", name=f"kb-{self.correlation_id}")
        await producer.start()
        try:
            with self._progress() as progress:
                task = progress.add_task("sending", total=len(bodies))
                for first in range(0, len(bodies), PUBLISH_BATCH):
                    batch = bodies[first : first + PUBLISH_BATCH]
                    await producer.publish(
                        [Outbound(KNOWLEDGE, document_key(self.tenant, b.doc_id), self._envelope(b), b) for b in batch]
                    )
                    progress.advance(task, len(batch))
        finally:
            await producer.stop()
        if consumer is None:
            return [Result(b.doc_id, "sent") for b in bodies]
        try:
            return await self._collect(consumer, [b.doc_id for b in bodies], timeout)
        finally:
            await consumer.stop()

    async def _collect(self, consumer: AIOKafkaConsumer, doc_ids: list[str], timeout: float) -> list[Result]:
        waiting = set(doc_ids)
        results: dict[str, Result] = {}
        deadline = time.monotonic() + timeout
        with self._progress() as progress:
            task = progress.add_task("indexing", total=len(waiting))
            while waiting and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        inbound = read_record(record, KNOWLEDGE_INDEXED)
                        if isinstance(inbound, Unreadable) or inbound.envelope.correlation_id != self.correlation_id:
                            continue
                        body = inbound.body
                        if isinstance(body, DocumentIndexed) and body.doc_id in waiting:
                            results[body.doc_id] = Result(body.doc_id, body.status, body.chunks, body.title)
                        elif isinstance(body, DocumentRefused) and body.doc_id in waiting:
                            results[body.doc_id] = Result(body.doc_id, "refused", detail=body.reason)
                        else:
                            continue
                        waiting.discard(body.doc_id)
                        progress.advance(task)
        for doc_id in waiting:
            results[doc_id] = Result(doc_id, "pending", detail=f"no answer within {timeout:.0f} s")
        return [results[d] for d in doc_ids]

    def _progress(self) -> Progress:
        return Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )


def report(console: Console, results: Sequence[Result]) -> int:
    """Print a table of outcomes; the exit code: 0 all done, 1 something refused, 2 something unanswered."""
    table = Table("document", "status", "chunks", "detail")
    for result in results:
        colour = {"refused": "red", "pending": "yellow"}.get(result.status, "green")
        table.add_row(result.doc_id, f"[{colour}]{result.status}[/]", str(result.chunks or ""), result.detail)
    console.print(table)
    for result in results:
        if result.status in ("refused", "pending"):
            console.print(f"{result.status} {result.doc_id}: {result.detail}", soft_wrap=True, markup=False)
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    console.print(", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    if counts.get("pending"):
        return 2
    return 1 if counts.get("refused") else 0


async def add(
    common: CommonSettings,
    tenant: str,
    candidates: list[Candidate],
    *,
    wait: bool,
    timeout: float,
    console: Console,
) -> int:
    refused_here = [Result(c.doc_id, "refused", detail=f"{c.source}: {c.problem}") for c in candidates if c.problem]
    sendable = [_submission(c) for c in candidates if not c.problem]
    client = KnowledgeClient(common, tenant, console)
    answered = await client.submit(sendable, wait=wait, timeout=timeout)
    return report(console, [*answered, *refused_here])


async def delete(
    common: CommonSettings, tenant: str, doc_ids: list[str], *, wait: bool, timeout: float, console: Console
) -> int:
    client = KnowledgeClient(common, tenant, console)
    answered = await client.submit([DocumentDeleted(doc_id=d) for d in doc_ids], wait=wait, timeout=timeout)
    return report(console, answered)
