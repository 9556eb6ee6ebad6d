"""Reading knowledge documents (Markdown, HTML, PDF, plain text) into one shape the chunker understands.

Every format becomes a `Document`: a title, tags, and `text` split into `Block`s (a paragraph,
list item or table row) that each know their section path (the headings above them) and their
character offsets in `text`. For Markdown and plain text, `text` is the document as written, so
offsets cite the source; for HTML and PDF it is the extracted text (tags and layout removed).
Pure functions: no I/O.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass

import yaml
from bs4 import BeautifulSoup, Tag
from pypdf import PdfReader
from pypdf.errors import PdfReadError

from herald_core.contracts import MAX_DOCUMENT_BYTES, MEDIA_TYPE_BY_SUFFIX, MediaType

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_HTML_DROP = ("script", "style", "nav", "footer", "header", "aside", "form", "noscript", "template", "svg")
_HTML_BLOCKS = ("p", "li", "pre", "blockquote", "dt", "dd", "figcaption", "tr")
_HTML_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")


class DocumentError(ValueError):
    """The document cannot be read: the reason is said to whoever submitted it."""


@dataclass(frozen=True)
class Block:
    section_path: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    collection: str
    tags: tuple[str, ...]
    text: str
    blocks: tuple[Block, ...]


def media_type_for(filename: str) -> MediaType | None:
    """The media type a file name says, or None for a kind Herald does not read."""
    suffix = "." + filename.lower().rsplit(".", 1)[-1] if "." in filename else ""
    return MEDIA_TYPE_BY_SUFFIX.get(suffix)


def parse_document(doc_id: str, collection: str, media_type: MediaType, content: bytes) -> Document:
    """Read `content` as `media_type`; raises `DocumentError` with the reason when it cannot be read."""
    if len(content) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{len(content)} bytes is over the {MAX_DOCUMENT_BYTES} byte limit for one document")
    if not content.strip():
        raise DocumentError("the document is empty")
    if media_type is MediaType.PDF:
        document = _parse_pdf(doc_id, collection, content)
    else:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(f"not UTF-8 text (byte {exc.start})") from exc
        if "\x00" in text:
            raise DocumentError("text contains NUL bytes: a binary file submitted as text?")
        if media_type is MediaType.MARKDOWN:
            document = _parse_markdown(doc_id, collection, text)
        elif media_type is MediaType.HTML:
            document = _parse_html(doc_id, collection, text)
        else:
            document = _parse_plain(doc_id, collection, text)
    if not document.blocks:
        raise DocumentError("no readable text in the document")
    return document


# ---------------------------------------------------------------- Markdown


def _front_matter(doc_id: str, text: str) -> tuple[dict[str, object], int]:
    if not text.startswith("---\n"):
        return {}, 0
    end = text.find("\n---", 4)
    if end == -1:
        return {}, 0
    try:
        loaded = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as exc:
        raise DocumentError(f"front matter is not valid YAML: {exc}") from exc
    if not isinstance(loaded, dict):
        raise DocumentError("front matter is not a mapping")
    line_end = text.find("\n", end + 4)
    return loaded, (line_end + 1 if line_end != -1 else len(text))


def _tags(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(str(t) for t in value)
    if isinstance(value, str):
        return tuple(t.strip() for t in value.split(",") if t.strip())
    return ()


def _parse_markdown(doc_id: str, collection: str, text: str) -> Document:
    meta, offset = _front_matter(doc_id, text)
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []
    first_heading: str | None = None
    position = offset
    block_start: int | None = None
    in_fence = False

    def close(at: int) -> None:
        nonlocal block_start
        if block_start is not None:
            blocks.append(Block(tuple(t for _, t in path), block_start, at))
            block_start = None

    for line in text[offset:].splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line.rstrip("\n"))
        if heading:
            close(position)
            level, title = len(heading.group(1)), heading.group(2).strip()
            first_heading = first_heading or title
            path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
        elif not stripped and not in_fence:
            close(position)
        elif _LIST_ITEM.match(line) and not in_fence:
            close(position)  # each list item is a block of its own
            block_start = position
        elif block_start is None:
            block_start = position
        position += len(line)
    close(position)
    return Document(
        doc_id=doc_id,
        title=str(meta.get("title") or first_heading or doc_id),
        collection=str(meta.get("collection") or collection),
        tags=_tags(meta.get("tags")),
        text=text,
        blocks=tuple(blocks),
    )


# ---------------------------------------------------------------- plain text


def _parse_plain(doc_id: str, collection: str, text: str) -> Document:
    """First non-empty line is the title; paragraphs are separated by blank lines."""
    blocks: list[Block] = []
    title: str | None = None
    for match in re.finditer(r"\S(?:.*?)(?=\n\s*\n|\Z)", text, flags=re.S):
        start, end = match.start(), match.start() + len(match.group(0).rstrip())
        if title is None and "\n" not in match.group(0).strip():
            title = match.group(0).strip()
            continue
        blocks.append(Block((), start, end))
    return Document(doc_id, title or doc_id, collection, (), text, tuple(blocks))


# ---------------------------------------------------------------- HTML


class _TextBuilder:
    """Collects extracted text and the blocks' offsets in it."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.length = 0
        self.blocks: list[Block] = []

    def add(self, text: str, path: tuple[str, ...], *, block: bool) -> None:
        start = self.length
        self.parts.append(text + "\n\n")
        self.length += len(text) + 2
        if block:
            self.blocks.append(Block(path, start, start + len(text)))

    @property
    def text(self) -> str:
        return "".join(self.parts)


def _clean(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _parse_html(doc_id: str, collection: str, html: str) -> Document:
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup.find_all(_HTML_DROP):
        tag.decompose()
    title_tag = soup.find("title")
    keywords = soup.find("meta", attrs={"name": "keywords"})
    body = soup.body or soup
    builder = _TextBuilder()
    path: list[tuple[int, str]] = []
    first_heading: str | None = None
    for element in body.find_all([*_HTML_HEADINGS, *_HTML_BLOCKS]):
        if not isinstance(element, Tag):
            continue
        # a <p> inside an <li> (or a cell inside a row) is read with its container, once
        if element.find_parent(_HTML_BLOCKS) is not None:
            continue
        if element.name in _HTML_HEADINGS:
            title = _clean(element.get_text(" "))
            if not title:
                continue
            level = int(element.name[1])
            first_heading = first_heading or title
            path = [(lvl, t) for lvl, t in path if lvl < level] + [(level, title)]
            builder.add(title, tuple(t for _, t in path), block=False)
            continue
        if element.name == "tr":
            text = " | ".join(_clean(c.get_text(" ")) for c in element.find_all(["th", "td"]))
        else:
            text = _clean(element.get_text(" "))
        if text.strip(" |"):
            builder.add(text, tuple(t for _, t in path), block=True)
    title = _clean(title_tag.get_text(" ")) if isinstance(title_tag, Tag) else ""
    tags = _tags(keywords.get("content")) if isinstance(keywords, Tag) else ()
    return Document(doc_id, title or first_heading or doc_id, collection, tags, builder.text, tuple(builder.blocks))


# ---------------------------------------------------------------- PDF


def _parse_pdf(doc_id: str, collection: str, content: bytes) -> Document:
    """Text of each page; a page's paragraphs get the section path ("page N") for citation."""
    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise DocumentError("the PDF is encrypted")
        pages = [page.extract_text() or "" for page in reader.pages]
        info_title = reader.metadata.title if reader.metadata else None
    except DocumentError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise DocumentError(f"not a readable PDF: {exc}") from exc
    builder = _TextBuilder()
    for number, page in enumerate(pages, start=1):
        for paragraph in re.split(r"\n\s*\n", page):
            text = _clean(paragraph)
            if text:
                builder.add(text, (f"page {number}",), block=True)
    first = builder.text[: builder.blocks[0].end] if builder.blocks else ""
    return Document(
        doc_id, str(info_title or first[:120] or doc_id), collection, (), builder.text, tuple(builder.blocks)
    )
