"""What a workflow's steps may use: retrieval, a drafter, the tenant and the clock (ports the runner fills)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol

from herald_core.contracts import EvidenceRef, LlmUsageReported, MemoryRef
from herald_core.tenants import TenantConfig
from herald_planner.adapters.retrieval import SearchVerdict
from herald_planner.intents import Classification
from herald_planner.logic import Draft, DraftRequest, ReviewerExample
from herald_planner.settings import Settings


class Retrieval(Protocol):
    async def search(
        self, tenant: str, query: str, k: int, collections: list[str] | None = None
    ) -> list[EvidenceRef]: ...

    async def search_with_verdict(
        self, tenant: str, query: str, k: int, collections: list[str] | None = None
    ) -> SearchVerdict: ...

    async def recall(self, tenant: str, contact_id: str, query: str, k: int) -> list[MemoryRef]: ...

    async def resemble(self, text: str, examples: list[tuple[str, str]]) -> dict[str, float]: ...


class Examples(Protocol):
    async def recent(
        self, tenant: str, workflow: str, step: str, segment: str, limit: int = 5
    ) -> list[ReviewerExample]: ...


class ReadTool(Protocol):
    async def call(self, tool: str, tenant: str, tool_input: dict[str, Any]) -> dict[str, Any]: ...


class Reader(Protocol):
    async def read(
        self, tenant: str, text: str, subject: str, today: date
    ) -> tuple[Classification | None, LlmUsageReported | None, str]: ...


class Drafter(Protocol):
    async def draft(self, request: DraftRequest) -> tuple[Draft, Literal["llm", "template"]]: ...


@dataclass(frozen=True)
class Ports:
    retrieval: Retrieval
    drafter: Drafter
    examples: Examples
    settings: Settings
    tenant: TenantConfig
    now: datetime
    reader: Reader | None = None  # the LLM's reading of a reply (none: the offline reading)
    tools: ReadTool | None = None  # the executor's read-only tools (none configured: a step that needs one hands off)
