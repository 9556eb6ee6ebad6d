"""Semantic chunking: document structure first, then meaning, within size bounds (pure, no I/O).

A chunk never crosses a heading: each section (the blocks under one heading path) is a chunk
when it fits in `max_chars`. A longer section is cut at its weakest link, found by embedding
its sentences and comparing neighbours (a paragraph boundary counts as a weaker link than a
sentence boundary inside a paragraph), recursively, until every piece fits. Each chunk keeps
its section path and its character offsets in the document's text, for citation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from herald_retrieval.documents import Block, Document

# a sentence ends at . ! or ? followed by space and something that can start a sentence
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9$€£])")
# how much weaker a paragraph boundary is than a sentence boundary, in cosine-similarity units
PARAGRAPH_BONUS = 0.15

Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    section_path: tuple[str, ...]
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class _Sentence:
    start: int
    end: int
    opens_block: bool


def chunk_document(
    doc: Document, embed: Embed | None = None, *, max_chars: int = 900, min_chars: int = 200
) -> list[Chunk]:
    """The document's chunks; without `embed`, long sections are cut at paragraph boundaries nearest the middle."""
    spans: list[tuple[tuple[str, ...], int, int]] = []
    for section_path, blocks in _sections(doc.blocks):
        sentences = [s for block in blocks for s in _sentences(doc.text, block)]
        if not sentences:
            continue
        for first, last in _split(doc.text, sentences, embed, max_chars, min_chars):
            spans.extend(_hard_wrap(doc.text, section_path, sentences[first].start, sentences[last].end, max_chars))
    chunks = []
    for section_path, start, end in spans:
        text = doc.text[start:end].strip()
        if text:
            digest = hashlib.sha256(f"{doc.doc_id}\x00{text}".encode()).hexdigest()[:8]
            chunk_id = f"{doc.doc_id}#{len(chunks):03d}-{digest}"
            chunks.append(Chunk(chunk_id, doc.doc_id, section_path, text, start, end))
    return chunks


def _sections(blocks: Sequence[Block]) -> list[tuple[tuple[str, ...], list[Block]]]:
    sections: list[tuple[tuple[str, ...], list[Block]]] = []
    for block in blocks:
        if sections and sections[-1][0] == block.section_path:
            sections[-1][1].append(block)
        else:
            sections.append((block.section_path, [block]))
    return sections


def _sentences(text: str, block: Block) -> list[_Sentence]:
    out: list[_Sentence] = []
    start = block.start
    for match in _SENTENCE_END.finditer(text, block.start, block.end):
        out.append(_Sentence(start, match.start() + len(match.group(0).rstrip()), opens_block=not out))
        start = match.end()
    if text[start : block.end].strip():
        out.append(_Sentence(start, block.end, opens_block=not out))
    return out


def _split(
    text: str, sentences: list[_Sentence], embed: Embed | None, max_chars: int, min_chars: int
) -> list[tuple[int, int]]:
    """Ranges [first, last] of sentence indexes, each as short as `max_chars` allows, cut at the weakest links."""
    # link[i] is how strongly sentence i holds to sentence i + 1: lower is a better place to cut
    if embed is not None and len(sentences) > 1 and sentences[-1].end - sentences[0].start > max_chars:
        vectors = embed([text[s.start : s.end] for s in sentences])
        similarity = np.einsum("ij,ij->i", vectors[:-1], vectors[1:])
    else:
        similarity = np.ones(max(len(sentences) - 1, 0))
    link = [
        float(similarity[i]) - (PARAGRAPH_BONUS if sentences[i + 1].opens_block else 0.0)
        for i in range(len(similarity))
    ]

    def size(first: int, last: int) -> int:
        return sentences[last].end - sentences[first].start

    def cut(first: int, last: int) -> list[tuple[int, int]]:
        if first == last or size(first, last) <= max_chars:
            return [(first, last)]
        candidates = range(first, last)  # cut after sentence i
        # prefer cuts that leave both sides at least min_chars; the weakest link wins, the middle breaks ties
        balanced = [i for i in candidates if size(first, i) >= min_chars and size(i + 1, last) >= min_chars]
        middle = (sentences[first].start + sentences[last].end) / 2
        best = min(balanced or candidates, key=lambda i: (round(link[i], 6), abs(sentences[i].end - middle)))
        return cut(first, best) + cut(best + 1, last)

    return cut(0, len(sentences) - 1)


def _hard_wrap(
    text: str, section_path: tuple[str, ...], start: int, end: int, max_chars: int
) -> list[tuple[tuple[str, ...], int, int]]:
    """A single sentence longer than `max_chars` is cut at the last space before the bound."""
    out = []
    while end - start > max_chars:
        space = text.rfind(" ", start + max_chars // 2, start + max_chars)
        cut = space if space != -1 else start + max_chars
        out.append((section_path, start, cut))
        start = cut
    out.append((section_path, start, end))
    return out
