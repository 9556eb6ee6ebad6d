"""The executor's read API (`POST /v1/tools/<tool>`), for the read-only tools the LLM may consult while it drafts.

Only tools the registry marks read-only are asked for: they change nothing outside Herald, so they need no
approval. The executor refuses the others too (403), but the planner never sends one: a tool with side effects
runs only as an `ActionProposed` the guard signs.
"""

from __future__ import annotations

from typing import Any

import httpx

from herald_core.auth.services import ServiceKeys
from herald_core.tools import TOOLS


class ReadToolError(Exception):
    """A read tool gave no answer; `reason` says why in words the model (and a reviewer) can read."""

    def __init__(self, tool: str, reason: str, status: int | None = None) -> None:
        super().__init__(f"{tool}: {reason}" if status is None else f"{tool}: HTTP {status}: {reason}")
        self.tool = tool
        self.reason = reason
        self.status = status


def read_only_tools() -> list[str]:
    """The registry's tools that may be called without an approval."""
    return [name for name, spec in TOOLS.items() if spec.read_only]


def _reason(response: httpx.Response) -> str:
    """The executor's reason for a refusal: its `detail`, a typed failure's message, or the body as text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    if isinstance(body, dict):
        failure = body.get("failure")
        if isinstance(failure, dict) and failure.get("message"):
            return str(failure["message"])[:500]
        if body.get("detail"):
            return str(body["detail"])[:500]
        if body.get("error"):
            return str(body["error"])[:500]
    return str(body)[:500]


class ReadTools:
    def __init__(self, base_url: str, timeout_seconds: float, keys: ServiceKeys) -> None:
        self.client = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout_seconds)
        self.keys = keys  # the executor's read tools answer only Herald's services

    async def call(self, tool: str, tenant: str, tool_input: dict[str, Any]) -> dict[str, Any]:
        """The tool's answer (its output model as JSON), or `ReadToolError` with the status and the executor's
        reason. A tool that is not read-only is refused here, before anything is sent."""
        spec = TOOLS.get(tool)
        if spec is None:
            raise ReadToolError(tool, f"no tool named {tool!r}")
        if not spec.read_only:
            raise ReadToolError(tool, "it changes things outside Herald: only the guard's approval can run it")
        try:
            response = await self.client.post(
                f"/v1/tools/{tool}",
                json={"tenant": tenant, "input": tool_input},
                headers={"Authorization": f"Bearer {self.keys.token('executor')}"},
            )
        except httpx.HTTPError as exc:
            raise ReadToolError(tool, f"the executor did not answer: {exc!r}"[:500]) from exc
        if not response.is_success:
            raise ReadToolError(tool, _reason(response), response.status_code)
        try:
            answer = response.json()
        except ValueError as exc:
            raise ReadToolError(tool, "the executor's answer is not JSON", response.status_code) from exc
        if not isinstance(answer, dict):
            raise ReadToolError(tool, "the executor's answer is not a JSON object", response.status_code)
        return answer

    async def close(self) -> None:
        await self.client.aclose()
