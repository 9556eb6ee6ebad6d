"""A loopback server speaking Anthropic's Messages API (`POST /v1/messages`) for the demo and the benches: it
drafts with the `draft_email` tool from the request's first passage, and reports usage as the API does with
prompt caching — the request's prefix up to its last `cache_control` block (tools, then system) is written to
the cache the first time and read from it after, when it is long enough to be cached (1,024 tokens, as for
Anthropic's Sonnet models). Tokens are counted as UTF-8 bytes / 4. Never used by the product's code paths:
the planner reaches it only through `ANTHROPIC_BASE_URL`."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request

from herald_stack.loopback import loopback

MIN_CACHED_TOKENS = 1024


def tokens(text: str) -> int:
    return math.ceil(len(text.encode()) / 4)


@dataclass
class MessagesApi:
    url: str = ""
    requests: int = 0
    cached: set[str] = field(default_factory=set)
    usage: list[dict[str, int]] = field(default_factory=list)


def _prefix(body: dict[str, Any]) -> str | None:
    """The cacheable prefix (tools, then system blocks up to the last marked one), or None if none is marked."""
    system = body.get("system")
    blocks = system if isinstance(system, list) else []
    marked = [i for i, block in enumerate(blocks) if isinstance(block, dict) and block.get("cache_control")]
    if not marked:
        return None
    return json.dumps(body.get("tools", []), sort_keys=True) + "".join(b["text"] for b in blocks[: marked[-1] + 1])


def _rest(body: dict[str, Any], prefix: str | None) -> str:
    system = body.get("system")
    if isinstance(system, str):
        head = system
    else:
        texts = [b.get("text", "") for b in system or []]
        head = "".join(texts) if prefix is None else ""
    tools = json.dumps(body.get("tools", []), sort_keys=True) if prefix is None else ""
    return tools + head + json.dumps(body.get("messages", []))


def _draft(body: dict[str, Any]) -> dict[str, Any]:
    content = body["messages"][0]["content"]
    text = content if isinstance(content, str) else json.dumps(content)
    passages = text.split("Passages:\n", 1)[-1].split("\n")
    quote = next((line for line in passages[1:] if line.strip() and not line.startswith("[")), "")
    lead = text.split("\n", 1)[0].removeprefix("Lead: ").split(",", 1)[0].strip() or "there"
    first = lead.split()[0] if lead.split() else "there"
    return {
        "subject": f"{first}, a note from us",
        "body_text": f"Hi {first},\n\n{quote[:400]}\n\nWould a short call next week help?\n",
        "confidence": 0.8,
    }


@asynccontextmanager
async def messages_api() -> AsyncIterator[MessagesApi]:
    state = MessagesApi()
    app = FastAPI()

    @app.post("/v1/messages")
    async def messages(request: Request) -> dict[str, Any]:
        body = await request.json()
        state.requests += 1
        prefix = _prefix(body)
        read = written = 0
        if prefix is not None and tokens(prefix) >= MIN_CACHED_TOKENS:
            key = hashlib.sha256(f"{body.get('model')}\0{prefix}".encode()).hexdigest()
            if key in state.cached:
                read = tokens(prefix)
            else:
                written = tokens(prefix)
                state.cached.add(key)
        uncached = tokens(_rest(body, prefix)) + (tokens(prefix) if prefix is not None and not (read or written) else 0)
        usage = {
            "input_tokens": uncached,
            "output_tokens": 120,
            "cache_read_input_tokens": read,
            "cache_creation_input_tokens": written,
        }
        state.usage.append(usage)
        return {
            "id": f"msg_loopback_{state.requests}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [
                {"type": "tool_use", "id": f"toolu_{state.requests}", "name": "draft_email", "input": _draft(body)}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": usage,
        }

    async with loopback(app) as url:
        state.url = url
        yield state
