"""Structure-first chunking of Markdown knowledge documents (pure, no I/O).

Front matter gives the title and collection; the body is split on headings, then paragraphs,
merging small neighbours and splitting long sections at sentence ends, so each chunk stays
within bounds and keeps its section path and character offsets for citation.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import yaml

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    section_path: tuple[str, ...]
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    collection: str
    tags: tuple[str, ...]
    body: str
    body_offset: int


def parse_document(doc_id: str, text: str) -> Document:
    meta: dict[str, object] = {}
    offset = 0
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            loaded = yaml.safe_load(text[4:end]) or {}
            if not isinstance(loaded, dict):
                raise ValueError(f"{doc_id}: front matter is not a mapping")
            meta = loaded
            offset = text.find("\n", end + 4) + 1 if text.find("\n", end + 4) != -1 else len(text)
    tags = meta.get("tags") or []
    return Document(
        doc_id=doc_id,
        title=str(meta.get("title") or doc_id),
        collection=str(meta.get("collection") or "general"),
        tags=tuple(str(t) for t in tags) if isinstance(tags, list) else (),
        body=text[offset:],
        body_offset=offset,
    )


def _chunk_id(doc_id: str, index: int) -> str:
    return f"{doc_id}#{index:03d}-{hashlib.sha1(f'{doc_id}:{index}'.encode()).hexdigest()[:6]}"  # noqa: S324


def chunk_document(doc: Document, text: str, *, max_chars: int = 900, min_chars: int = 150) -> list[Chunk]:
    """Chunks of an already parsed document; `text` is the original it was parsed from (offsets refer to it)."""
    doc_id = doc.doc_id
    # (section path, start, end) spans of paragraphs in the original text
    spans: list[tuple[tuple[str, ...], int, int]] = []
    path: list[tuple[int, str]] = []
    position = doc.body_offset
    paragraph_start: int | None = None
    for line in doc.body.splitlines(keepends=True):
        heading = _HEADING.match(line.rstrip("\n"))
        line_end = position + len(line)
        if heading or not line.strip():
            if paragraph_start is not None:
                spans.append((tuple(t for _, t in path), paragraph_start, position))
                paragraph_start = None
            if heading:
                level = len(heading.group(1))
                path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, heading.group(2).strip())]
        elif paragraph_start is None:
            paragraph_start = position
        position = line_end
    if paragraph_start is not None:
        spans.append((tuple(t for _, t in path), paragraph_start, position))

    pieces: list[tuple[tuple[str, ...], int, int]] = []
    for section, start, end in spans:
        pieces.extend(_split_long(text, section, start, end, max_chars))
    merged: list[tuple[tuple[str, ...], int, int]] = []
    for section, start, end in pieces:
        if merged:
            last_section, last_start, last_end = merged[-1]
            if last_section == section and (end - last_start) <= max_chars and (last_end - last_start) < min_chars:
                merged[-1] = (section, last_start, end)
                continue
        merged.append((section, start, end))
    return [
        Chunk(_chunk_id(doc_id, i), doc_id, section, text[start:end].strip(), start, end)
        for i, (section, start, end) in enumerate(merged)
        if text[start:end].strip()
    ]


def _split_long(text: str, section: tuple[str, ...], start: int, end: int, max_chars: int):  # type: ignore[no-untyped-def]
    if end - start <= max_chars:
        return [(section, start, end)]
    out = []
    chunk_start = start
    cursor = start
    for match in _SENTENCE_END.finditer(text, start, end):
        if match.end() - chunk_start > max_chars and cursor > chunk_start:
            out.append((section, chunk_start, cursor))
            chunk_start = cursor
        cursor = match.end()
    while end - chunk_start > max_chars:
        out.append((section, chunk_start, chunk_start + max_chars))
        chunk_start += max_chars
    out.append((section, chunk_start, end))
    return out
