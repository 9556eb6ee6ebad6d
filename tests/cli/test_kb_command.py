"""`herald kb add|delete` against the running stack: what a platform engineer types, and what they see."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import grpc
import pytest

from herald_core.contracts import MAX_DOCUMENT_BYTES
from herald_core.grpc.herald.v1 import retrieval_pb2, retrieval_pb2_grpc
from support import herald_command

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.weaviate, pytest.mark.e2e]


def search(herald, tenant: str, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    with grpc.insecure_channel(herald.services.retrieval_target) as channel:
        stub = retrieval_pb2_grpc.RetrievalStub(channel)
        response = stub.Search(
            retrieval_pb2.SearchRequest(tenant=tenant, query=query, k=5),
            metadata=(("authorization", herald.service_headers("retrieval")["Authorization"]),),
        )
    return [p.doc_id for p in response.passages]


@pytest.fixture
def web(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback web server over a directory, for `--urls`."""
    root = tmp_path / "site"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def test_kb_add_indexes_a_directory_refuses_what_it_cannot_read_and_keeps_the_rest(herald, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tenant = herald.add_tenant(f"cli{secrets.token_hex(3)}")
    kb = tmp_path / "kb"
    (kb / "product").mkdir(parents=True)
    (kb / "brand").mkdir()
    (kb / "product" / "lighthouse.md").write_text("# Lighthouse\n\nThe lighthouse dashboard shows every stalled run.\n")
    (kb / "brand" / "press.html").write_text(
        "<html><head><title>Press kit</title></head><body><h1>Press kit</h1>"
        "<p>Acme Relay was founded by the kestrel team in 2019.</p></body></html>"
    )
    (kb / "brand" / "huge.md").write_text("# Huge\n\n" + "word " * (MAX_DOCUMENT_BYTES // 5 + 10))
    (kb / "brand" / "legacy.txt").write_bytes("Caf\u00e9 notes".encode("latin-1"))
    (kb / "brand" / "logo.png").write_bytes(b"\x89PNG\r\n")

    result = herald_command(herald, "kb", "add", "--tenant", tenant, str(kb))
    out = result.stderr
    assert result.returncode == 1, out  # something was refused
    assert "product/lighthouse" in out and "brand/press" in out
    assert "byte limit" in out and "not UTF-8" in out and "not a kind of document" in out
    assert "2 indexed" in out and "3 refused" in out
    assert search(herald, tenant, "lighthouse dashboard stalled runs")[0] == "product/lighthouse"
    assert search(herald, tenant, "who founded the company kestrel")[0] == "brand/press"
    assert "brand/huge" not in search(herald, tenant, "word word word")

    # the same base keeps a document's id when only its folder is added again
    again = herald_command(herald, "kb", "add", "--tenant", tenant, "--base", str(kb), str(kb / "product"))
    assert again.returncode == 0, again.stderr
    assert "1 unchanged" in again.stderr

    deleted = herald_command(herald, "kb", "delete", "--tenant", tenant, "product/lighthouse")
    assert deleted.returncode == 0, deleted.stderr
    assert "1 deleted" in deleted.stderr
    assert "product/lighthouse" not in search(herald, tenant, "lighthouse dashboard stalled runs")


def test_kb_add_fetches_a_url_list_and_reports_the_ones_it_could_not_fetch(herald, tmp_path: Path, web) -> None:  # type: ignore[no-untyped-def]
    base, root = web
    tenant = herald.add_tenant(f"cli{secrets.token_hex(3)}")
    (root / "guide.html").write_text(
        "<html><head><title>Setup guide</title></head><body><h1>Setup</h1>"
        "<p>Connect the marigold connector before inviting the team.</p></body></html>"
    )
    (root / "faq.txt").write_text("FAQ\n\nThe tamarind export runs nightly.\n")
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# docs\n{base}/guide.html\n{base}/faq.txt\n{base}/missing.html\n")

    result = herald_command(herald, "kb", "add", "--tenant", tenant, "--collection", "product", "--urls", str(urls))
    assert result.returncode == 1, result.stderr
    assert "could not fetch" in result.stderr and "404" in result.stderr
    assert "2 indexed" in result.stderr
    assert search(herald, tenant, "marigold connector")[0] == "127.0.0.1/guide"
    assert search(herald, tenant, "tamarind export nightly")[0] == "127.0.0.1/faq"
