"""Reading documents of every kind Herald accepts, and refusing what cannot be read, with the reason."""

from __future__ import annotations

import pytest
from fpdf import FPDF

from herald_core.contracts import MAX_DOCUMENT_BYTES, MediaType
from herald_retrieval.documents import DocumentError, media_type_for, parse_document

HTML = b"""<!doctype html>
<html lang="en"><head><title>Release notes 2026</title><meta name="keywords" content="releases, product">
<script>var tracking = "Starter costs nothing";</script></head>
<body>
<nav><a href="/">Home</a> <a href="/pricing">Pricing menu link</a></nav>
<h1>Release notes 2026</h1>
<p>Three releases shipped this year.</p>
<h2>March release</h2>
<ul><li>Approval steps can <b>expire</b> after 48 hours.</li><li>Slack notifications.</li></ul>
<h3>Fixes</h3>
<p>Audit export handles 10,000 rows.</p>
<table><tr><th>Plan</th><th>Price</th></tr><tr><td>Growth</td><td>$49</td></tr></table>
<footer>Copyright Acme Relay. Unsubscribe footer text.</footer>
</body></html>"""


def pdf_bytes(*pages: str, title: str = "Security whitepaper") -> bytes:
    pdf = FPDF()
    pdf.set_title(title)
    pdf.set_font("helvetica", size=11)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def test_markdown_keeps_front_matter_sections_and_source_offsets() -> None:
    text = (
        "---\ntitle: Pricing and plans\ncollection: pricing\ntags: [pricing, plans]\n---\n"
        "# Pricing and plans\n\nAll prices are in US dollars.\n\n## Growth\n\nFor teams at scale.\n\n"
        "- unlimited workflows\n- the API\n\n### Add-ons\n\nExtra audit history.\n"
    )
    doc = parse_document("pricing/plans", "general", MediaType.MARKDOWN, text.encode())
    assert (doc.title, doc.collection, doc.tags) == ("Pricing and plans", "pricing", ("pricing", "plans"))
    found = [(b.section_path, text[b.start : b.end].strip()) for b in doc.blocks]
    assert found == [
        (("Pricing and plans",), "All prices are in US dollars."),
        (("Pricing and plans", "Growth"), "For teams at scale."),
        (("Pricing and plans", "Growth"), "- unlimited workflows"),
        (("Pricing and plans", "Growth"), "- the API"),
        (("Pricing and plans", "Growth", "Add-ons"), "Extra audit history."),
    ]


def test_html_reads_headings_lists_and_tables_and_drops_navigation_scripts_and_footer() -> None:
    doc = parse_document("product/release-notes-2026", "product", MediaType.HTML, HTML)
    assert doc.title == "Release notes 2026"
    assert doc.tags == ("releases", "product")
    blocks = [(b.section_path, doc.text[b.start : b.end]) for b in doc.blocks]
    assert blocks == [
        (("Release notes 2026",), "Three releases shipped this year."),
        (("Release notes 2026", "March release"), "Approval steps can expire after 48 hours."),
        (("Release notes 2026", "March release"), "Slack notifications."),
        (("Release notes 2026", "March release", "Fixes"), "Audit export handles 10,000 rows."),
        (("Release notes 2026", "March release", "Fixes"), "Plan | Price"),
        (("Release notes 2026", "March release", "Fixes"), "Growth | $49"),
    ]
    for boilerplate in ("Pricing menu link", "Unsubscribe footer", "tracking"):
        assert boilerplate not in doc.text


def test_pdf_text_is_read_page_by_page_with_the_page_as_section() -> None:
    content = pdf_bytes(
        "Acme Relay encrypts data at rest with AES-256.\n\nCustomers on Enterprise may bring their own key.",
        "Audit history is kept for seven years on Enterprise.",
    )
    doc = parse_document("product/security-whitepaper", "product", MediaType.PDF, content)
    assert doc.title == "Security whitepaper"
    pages = {
        page: " ".join(doc.text[b.start : b.end] for b in doc.blocks if b.section_path == (page,))
        for page in ("page 1", "page 2")
    }
    assert "AES-256" in pages["page 1"] and "bring their own key" in pages["page 1"]
    assert "seven years" in pages["page 2"] and "AES-256" not in pages["page 2"]


def test_plain_text_takes_its_first_line_as_title() -> None:
    text = "Analyst briefing notes\n\nOpsly focuses on ticketing.\n\nFlowtide targets small teams.\n"
    doc = parse_document("competitors/analyst-briefing", "competitors", MediaType.TEXT, text.encode())
    assert doc.title == "Analyst briefing notes"
    assert [text[b.start : b.end] for b in doc.blocks] == [
        "Opsly focuses on ticketing.",
        "Flowtide targets small teams.",
    ]


@pytest.mark.parametrize(
    ("media_type", "content", "reason"),
    [
        (MediaType.MARKDOWN, b"", "empty"),
        (MediaType.MARKDOWN, b"   \n\n  ", "empty"),
        (MediaType.MARKDOWN, b"x" * (MAX_DOCUMENT_BYTES + 1), "byte limit"),
        (MediaType.TEXT, "caf\u00e9".encode("latin-1") + b" menu", "not UTF-8"),
        (MediaType.TEXT, b"binary\x00\x01\x02 stuff", "NUL"),
        (MediaType.MARKDOWN, b"---\ntitle: [unclosed\n---\nbody text\n", "front matter"),
        (MediaType.MARKDOWN, b"---\n- a list\n---\nbody text\n", "front matter is not a mapping"),
        (MediaType.MARKDOWN, b"---\ntitle: only a title\n---\n# Heading only\n", "no readable text"),
        (MediaType.HTML, b"<html><body><nav>menu</nav><script>x()</script></body></html>", "no readable text"),
        (MediaType.PDF, b"%PDF-1.7 this is not really a pdf", "not a readable PDF"),
        (MediaType.PDF, b"plain words, no PDF at all", "not a readable PDF"),
    ],
)
def test_unreadable_documents_are_refused_with_the_reason(media_type: MediaType, content: bytes, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason):
        parse_document("bad/doc", "general", media_type, content)


def test_a_pdf_with_no_text_is_refused() -> None:
    pdf = FPDF()
    pdf.add_page()
    with pytest.raises(DocumentError, match="no readable text"):
        parse_document("scan", "general", MediaType.PDF, bytes(pdf.output()))


def test_media_types_come_from_file_names() -> None:
    assert media_type_for("plans.md") is MediaType.MARKDOWN
    assert media_type_for("notes.HTML") is MediaType.HTML
    assert media_type_for("paper.pdf") is MediaType.PDF
    assert media_type_for("call.txt") is MediaType.TEXT
    assert media_type_for("logo.png") is None
    assert media_type_for("README") is None
