"""Who writes a draft: the LLM when one is configured and the tenant's daily budget is not spent, else the
template (also when the LLM fails: the calls that led to no draft are still reported, and counted)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from herald_core.contracts import LlmUsageReported
from herald_core.control import LlmBudgets
from herald_core.observability import get_logger
from herald_planner.adapters.guide import BrandGuide
from herald_planner.adapters.llm import DraftingFailed, LlmDrafter
from herald_planner.logic import Draft, DraftRequest
from herald_planner.templates import draft_from_template

log = get_logger("herald.planner")


class Drafter:
    def __init__(self, llm: LlmDrafter | None, budgets: LlmBudgets, guide: BrandGuide | None = None) -> None:
        self.llm = llm
        self.budgets = budgets
        self.guide = guide

    async def draft(self, request: DraftRequest) -> tuple[Draft, Literal["llm", "template"]]:
        spent = self.budgets.exhausted(request.tenant_id) if self.llm is not None else None
        if spent is not None:
            log.info("LLM budget for today spent; drafting from the template", used=spent.used_tokens)
        usage: LlmUsageReported | None = None
        if self.llm is not None and spent is None:
            try:
                guide = await self.guide.for_tenant(request.tenant_id) if self.guide is not None else ""
                draft = await self.llm.draft(
                    request.contact,
                    list(request.evidence),
                    list(request.memories),
                    company_name=request.company_name,
                    sender=request.sender,
                    tenant=request.tenant_id,
                    first_touch=request.campaign,
                    brief=request,
                    guide=guide,
                )
                return draft, "llm"
            except Exception as exc:
                log.warning("LLM drafting failed; using the template", error=repr(exc)[:300])
                # calls that led to no draft still cost tokens: the daily budget counts them
                usage = exc.usage if isinstance(exc, DraftingFailed) else None
        return replace(draft_from_template(request), usage=usage), "template"
