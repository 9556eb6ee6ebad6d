"""How a tool is called: within the tool's concurrency limit, with a timeout per attempt, retried with backoff
for retryable failures that certainly changed nothing, and asked to reconcile when a call was cut off.

The ledger (claimed → sent / failed / in_doubt) is the caller's; this module turns one call into an
`Outcome` the caller records:

    done         the side effect happened (the tool's output)
    failed       the downstream refused for good (a typed failure)
    not_started  it certainly did not happen and may be tried later (the claim is released)
    in_doubt     it may have happened and the downstream cannot say: surfaced, never repeated
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import structlog
from prometheus_client import Counter, Gauge, Histogram
from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from herald_core.contracts import ActionProposed, FailureKind, ToolFailure
from herald_core.tenants import TenantConfig
from herald_executor.logic import Reconciled, ToolAdapter, ToolError

CALLS = Counter(
    "herald_executor_tool_calls_total",
    "Tool calls by tool and outcome (done, failed, not_started, in_doubt, reconciled_done, retried).",
    ["tool", "outcome"],
)
SECONDS = Histogram(
    "herald_executor_tool_seconds",
    "Time of one tool call (all its attempts), by tool.",
    ["tool"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
IN_FLIGHT = Gauge("herald_executor_tool_in_flight", "Tool calls under way, by tool.", ["tool"])
log = structlog.get_logger("herald.executor.tools")


@dataclass(frozen=True)
class Outcome:
    status: Literal["done", "failed", "not_started", "in_doubt"]
    output: dict[str, Any] | None = None
    failure: ToolFailure | None = None


@dataclass(frozen=True)
class Discipline:
    """Per-tool limits (the executor's settings)."""

    timeout_seconds: float
    concurrency: int
    attempts: int
    max_backoff_seconds: float


def _safe_to_retry(exc: BaseException) -> bool:
    return isinstance(exc, ToolError) and exc.kind is FailureKind.RETRYABLE and not exc.may_have_applied


def _wait(max_backoff: float) -> Any:
    backoff = wait_exponential_jitter(multiplier=0.1, max=max_backoff)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        asked = exc.retry_after if isinstance(exc, ToolError) else None
        return min(asked, max_backoff) if asked is not None else backoff(state)

    return wait


class ToolRunner:
    def __init__(self, adapters: Mapping[str, ToolAdapter], discipline: Mapping[str, Discipline]) -> None:
        self.adapters = dict(adapters)
        self.discipline = dict(discipline)
        self._slots = {tool: asyncio.Semaphore(self.discipline[tool].concurrency) for tool in self.adapters}

    def has(self, tool: str) -> bool:
        return tool in self.adapters

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> Outcome:
        """Call the tool for a freshly claimed action."""
        return await self._call(action, tenant, reconciling=False)

    async def resume(self, action: ActionProposed, tenant: TenantConfig, *, may_run: bool = True) -> Outcome:
        """An action found claimed (a crash cut its call off): ask the downstream first, act only if it is safe —
        and allowed (`may_run`: the approval still holds, consent, no kill switch); else `not_started`."""
        return await self._call(action, tenant, reconciling=True, may_run=may_run)

    async def _call(
        self, action: ActionProposed, tenant: TenantConfig, *, reconciling: bool, may_run: bool = True
    ) -> Outcome:
        tool, rules = action.tool, self.discipline[action.tool]
        adapter = self.adapters[tool]
        async with self._slots[tool]:
            IN_FLIGHT.labels(tool).inc()
            started = time.perf_counter()
            try:
                if reconciling:
                    verdict, output = await self._reconcile(adapter, action, tenant, rules)
                    if verdict is not Reconciled.SAFE_TO_RUN:
                        return self._counted(tool, self._reconciled(verdict, output, "found claimed after a restart"))
                    if not may_run:
                        why = "found claimed after a restart; it had not happened and may not start now"
                        failure = ToolFailure(kind=FailureKind.PERMANENT, code="not_run", message=why)
                        return self._counted(tool, Outcome("not_started", failure=failure))
                outcome = await self._attempts(adapter, action, tenant, rules)
                return self._counted(tool, outcome)
            finally:
                IN_FLIGHT.labels(tool).dec()
                SECONDS.labels(tool).observe(time.perf_counter() - started)

    async def _attempts(
        self, adapter: ToolAdapter, action: ActionProposed, tenant: TenantConfig, rules: Discipline
    ) -> Outcome:
        def count_retry(state: RetryCallState) -> None:
            CALLS.labels(action.tool, "retried").inc()
            log.info("retrying tool call", tool=action.tool, attempt=state.attempt_number)

        try:
            async for attempt in AsyncRetrying(
                stop=stop_after_attempt(rules.attempts),
                wait=_wait(rules.max_backoff_seconds),
                retry=retry_if_exception(_safe_to_retry),
                before_sleep=count_retry,
                reraise=True,
            ):
                with attempt:
                    async with asyncio.timeout(rules.timeout_seconds):
                        output = await adapter.run(action, tenant)
            return Outcome("done", output.model_dump(mode="json"))
        except ToolError as exc:
            if _safe_to_retry(exc):
                log.warning("tool unavailable; the action is read again later", tool=action.tool, error=str(exc))
                return Outcome("not_started", failure=exc.failure)
            if not exc.may_have_applied:
                return Outcome("failed", failure=exc.failure)
            cut_off = str(exc)
        except TimeoutError:
            cut_off = f"no answer within {rules.timeout_seconds:g}s"
        except Exception as exc:  # the call broke off: the downstream decides what happened
            cut_off = f"{type(exc).__name__}: {exc}"
        log.warning("tool call cut off; reconciling", tool=action.tool, error=cut_off)
        verdict, output = await self._reconcile(adapter, action, tenant, rules)
        if verdict is Reconciled.SAFE_TO_RUN:
            return Outcome(
                "not_started", failure=ToolFailure(kind=FailureKind.RETRYABLE, code="cut_off", message=cut_off)
            )
        return self._reconciled(verdict, output, cut_off)

    @staticmethod
    async def _reconcile(
        adapter: ToolAdapter, action: ActionProposed, tenant: TenantConfig, rules: Discipline
    ) -> tuple[Reconciled, BaseModel | None]:
        try:
            async with asyncio.timeout(rules.timeout_seconds):
                return await adapter.reconcile(action, tenant)
        except Exception as exc:  # the downstream cannot answer now: that is not an answer
            log.warning("reconciliation failed", tool=action.tool, error=repr(exc))
            return Reconciled.UNKNOWN, None

    @staticmethod
    def _reconciled(verdict: Reconciled, output: BaseModel | None, why: str) -> Outcome:
        if verdict is Reconciled.DONE and output is not None:
            return Outcome("done", output.model_dump(mode="json"))
        return Outcome(
            "in_doubt",
            failure=ToolFailure(
                kind=FailureKind.NEEDS_HUMAN,
                code="in_doubt",
                message=f"{why}; the downstream cannot say whether it acted, so it is not repeated"[:2000],
            ),
        )

    @staticmethod
    def _counted(tool: str, outcome: Outcome) -> Outcome:
        CALLS.labels(tool, outcome.status).inc()
        return outcome
