"""Semantic chunking: structure first, meaning second, within bounds; offsets and headings kept for citation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from herald_core.contracts import MediaType
from herald_retrieval.adapters.embedder import OnnxEmbedder
from herald_retrieval.chunking import chunk_document
from herald_retrieval.documents import media_type_for, parse_document

KB = Path(__file__).resolve().parents[2] / "samples" / "acme" / "kb"


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder()


def _kb_documents() -> list[Path]:
    return sorted(p for p in KB.rglob("*") if p.is_file() and media_type_for(p.name) is not None)


@pytest.mark.parametrize("path", _kb_documents(), ids=lambda p: p.relative_to(KB).as_posix())
def test_every_sample_chunk_cites_its_exact_text_and_headings(path: Path, embedder: OnnxEmbedder) -> None:
    media_type = media_type_for(path.name)
    assert media_type is not None
    doc = parse_document(path.stem, path.parent.name, media_type, path.read_bytes())
    chunks = chunk_document(doc, embedder.embed, max_chars=600)
    assert chunks, "every sample document has text"
    for chunk in chunks:
        assert chunk.text == doc.text[chunk.start : chunk.end].strip()
        assert len(chunk.text) <= 600
        if media_type is MediaType.MARKDOWN:
            # the innermost heading of the path is the last heading above the chunk in the source
            headings = re.findall(r"^#{1,6}\s+(.*?)\s*$", doc.text[: chunk.start], flags=re.M)
            assert chunk.section_path[-1:] == tuple(headings[-1:])
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def _markdown(body: str) -> bytes:
    return f"---\ntitle: Test\ncollection: product\n---\n{body}".encode()


def test_a_short_section_is_one_chunk_and_chunks_never_cross_headings(embedder: OnnxEmbedder) -> None:
    doc = parse_document(
        "t",
        "product",
        MediaType.MARKDOWN,
        _markdown(
            "# Plans\n\nStarter is for small teams.\n\nGrowth is for operations teams.\n\n## SSO\n\nSAML only.\n"
        ),
    )
    chunks = chunk_document(doc, embedder.embed)
    assert [(c.section_path, c.text) for c in chunks] == [
        (("Plans",), "Starter is for small teams.\n\nGrowth is for operations teams."),
        (("Plans", "SSO"), "SAML only."),
    ]


def test_a_long_section_is_cut_where_the_topic_changes(embedder: OnnxEmbedder) -> None:
    billing = (
        "Invoices are issued in US dollars on the first day of each month. "
        "Annual plans are invoiced once a year, in advance. "
        "Payment is due within thirty days of the invoice date. "
        "Seats added during a billing period are prorated on the next invoice."
    )
    security = (
        "Customer data is encrypted at rest with AES-256 and in transit with TLS 1.3. "
        "Enterprise customers can bring their own encryption keys. "
        "Our SOC 2 Type II report is available under NDA. "
        "Penetration tests run twice a year by an outside firm."
    )
    # one paragraph, no structure to lean on: only meaning says where billing ends and security starts
    doc = parse_document("t", "product", MediaType.MARKDOWN, _markdown(f"# Notes\n\n{billing} {security}\n"))
    chunks = chunk_document(doc, embedder.embed, max_chars=len(billing) + 40, min_chars=100)
    assert [c.text for c in chunks] == [billing, security]


def test_without_embeddings_a_long_section_is_cut_at_paragraphs(embedder: OnnxEmbedder) -> None:
    paragraphs = [f"Paragraph {n} says something about topic {n}, at some length to fill space." for n in range(6)]
    doc = parse_document("t", "product", MediaType.MARKDOWN, _markdown("# S\n\n" + "\n\n".join(paragraphs) + "\n"))
    chunks = chunk_document(doc, None, max_chars=200, min_chars=50)
    assert all(len(c.text) <= 200 for c in chunks)
    assert "\n\n".join(c.text for c in chunks) == "\n\n".join(paragraphs)
    for chunk in chunks:
        assert chunk.text.startswith("Paragraph") and chunk.text.endswith("space.")


def test_one_sentence_longer_than_the_bound_is_wrapped_at_spaces() -> None:
    sentence = " ".join(["word"] * 400)
    doc = parse_document("t", "product", MediaType.TEXT, f"Title\n\n{sentence}\n".encode())
    chunks = chunk_document(doc, None, max_chars=300)
    assert all(len(c.text) <= 300 for c in chunks)
    assert " ".join(c.text for c in chunks) == sentence
