"""LLM drafting through the real `anthropic` SDK, against a loopback server that speaks the Messages API.

The server records what the SDK sent (model, tools, forced tool choice, the passages) and answers
the way the API does: a `tool_use` block with the draft. A model that answers without calling the
tool makes the planner fall back to its template.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Request

from herald_core.contracts import ContactFacts, EvidenceRef
from herald_planner.adapters.llm import LlmDrafter

EVIDENCE = [
    EvidenceRef(
        chunk_id="customers/logistics-northwind#000",
        doc_id="customers/logistics-northwind",
        title="Customer story: Northwind Freight",
        score=0.9,
        quote="Northwind Freight cut carrier-exception handling time by 62% in the first quarter.",
    ),
]
CONTACT = ContactFacts(
    contact_id="5100001",
    email="jordan.reyes@northwindfreight.example",
    first_name="Jordan",
    last_name="Reyes",
    company="Northwind Freight",
    job_title="Head of Operations",
    industry="logistics",
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def messages_api(reply: dict[str, Any]) -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages(request: Request) -> dict[str, Any]:
        body = await request.json()
        received.append({"body": body, "headers": dict(request.headers)})
        return {
            "id": "msg_loopback_1",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": reply["content"],
            "stop_reason": reply.get("stop_reason", "tool_use"),
            "stop_sequence": None,
            "usage": {"input_tokens": 321, "output_tokens": 87},
        }

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn exposes only a flag
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        server.should_exit = True
        await task


async def test_draft_comes_from_the_forced_tool_call(monkeypatch: pytest.MonkeyPatch) -> None:
    tool_use = {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "draft_email",
        "input": {
            "subject": "Jordan, 62% faster exceptions at Northwind?",
            "confidence": 0.82,
            "body_text": "Hi Jordan,\n\nNorthwind Freight cut carrier-exception handling by 62%.",
        },
    }
    async with messages_api({"content": [tool_use]}) as (url, received):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        drafter = LlmDrafter("claude-sonnet-5", 800)
        draft = await drafter.draft(CONTACT, EVIDENCE, company_name="Acme Relay", sender="Maya")
        await drafter.client.close()
    assert draft.subject == "Jordan, 62% faster exceptions at Northwind?"
    assert draft.confidence == 0.82
    assert "62%" in draft.body_text
    sent = received[0]
    credentials = sent["headers"].get("x-api-key") or sent["headers"].get("authorization", "")
    assert credentials.endswith("sk-ant-loopback"), sorted(sent["headers"])
    assert sent["body"]["tool_choice"] == {"type": "tool", "name": "draft_email"}
    assert [t["name"] for t in sent["body"]["tools"]] == ["draft_email"]
    assert "customers/logistics-northwind#000" in sent["body"]["messages"][0]["content"]
    assert "never invent prices" in sent["body"]["system"]


async def test_an_answer_without_the_tool_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    async with messages_api(
        {"content": [{"type": "text", "text": "Sure! 90% off today."}], "stop_reason": "end_turn"}
    ) as (url, _):
        monkeypatch.setenv("ANTHROPIC_BASE_URL", url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-loopback")
        drafter = LlmDrafter("claude-sonnet-5", 800)
        with pytest.raises(ValueError, match="did not call draft_email"):
            await drafter.draft(CONTACT, EVIDENCE, company_name="Acme Relay", sender="Maya")
        await drafter.client.close()
