"""Planner wiring: one runner for every registered workflow, and the firer of their durable timers.

Handlers, by topic (each is `Runner.on_message`; the topics are those carrying a type a workflow handles):
    herald.events.v1          upstream facts: start runs (ContactCreated), end sequences (replies, meetings,
                              opt-outs, lifecycle changes), forget runs (ContactErased)
    herald.decision.v1        the guard blocked, escalated or deferred a run's action
    herald.executed.v1        the executor ran (or refused) it; a person's check of one in doubt
    herald.workflow-timer.v1  a run's timer reached its deadline (published by the firer)
    herald.review-decision.v1 a reviewer's edit or reason: an example for later drafts like it
    herald.plan.v1            (the tasks worker, `TaskRunner.on_message`) a campaign task accepted: carried through

HTTP (on the ops port): `POST /v1/tasks`, `GET /v1/tasks/<id>` (`tasks.api`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI

from herald_core.auth.services import ServiceKeys
from herald_core.bus import ConsumerWorker, TransactionalProducer
from herald_core.control import LlmBudgets
from herald_core.db import create_pool, migrate, readiness
from herald_core.observability import add_ops_routes, get_logger
from herald_core.runtime import ServiceRuntime
from herald_core.tenants import TenantConfig, TenantDirectory
from herald_core.topics import PLAN
from herald_planner.adapters.drafter import Drafter
from herald_planner.adapters.examples import DraftExamples
from herald_planner.adapters.guide import BrandGuide
from herald_planner.adapters.llm import LlmDrafter, llm_configured
from herald_planner.adapters.reader import LlmReader, ReplyReader
from herald_planner.adapters.retrieval import RetrievalClient
from herald_planner.adapters.runs import WorkflowRuns
from herald_planner.adapters.tools import ReadTools
from herald_planner.engine.firer import TimerFirer
from herald_planner.engine.ports import Ports
from herald_planner.engine.runner import Runner
from herald_planner.settings import Settings
from herald_planner.tasks.api import TaskApi, add_task_routes
from herald_planner.tasks.carry import TaskRunner
from herald_planner.tasks.planning import LlmTaskPlanner
from herald_planner.tasks.segments import IngestSegments
from herald_planner.tasks.store import TaskStore
from herald_planner.workflows import DEFAULT_WORKFLOWS, REGISTRY

log = get_logger("herald.planner")


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn, max_size=settings.concurrency + 4)
    await migrate(pool, "planner", Path(str(files("herald_planner") / "migrations")))
    service_keys = ServiceKeys(common.auth.service_keys_dir, "planner", common.auth.service_token_seconds)
    retrieval = RetrievalClient(settings.retrieval_target, settings.retrieval_timeout_seconds, service_keys)
    # read-only tools (the executor's read API): what the LLM may consult while drafting, and a calendar's free slots
    read_tools = (
        ReadTools(settings.executor_url, settings.executor_timeout_seconds, service_keys)
        if settings.executor_url
        else None
    )
    llm = (
        LlmDrafter(settings.anthropic_model, settings.anthropic_max_tokens, read_tools, settings.max_tool_rounds)
        if llm_configured()
        else None
    )
    if llm is None:
        log.info("ANTHROPIC_API_KEY not set: drafting from templates")
    budgets = LlmBudgets(common, "planner")
    drafter = Drafter(llm, budgets, BrandGuide(retrieval))
    reader = ReplyReader(LlmReader(settings.anthropic_model) if llm_configured() else None, budgets)
    offset = timedelta(seconds=settings.clock_offset_seconds)

    def now() -> datetime:
        """The planner's clock (`clock_offset_seconds` moves it, for drills and tests of waits)."""
        return datetime.now(UTC) + offset

    examples = DraftExamples(pool)

    def ports_for(tenant: TenantConfig) -> Ports:
        return Ports(
            retrieval=retrieval,
            drafter=drafter,
            examples=examples,
            settings=settings,
            tenant=tenant,
            now=now(),
            reader=reader,
            tools=read_tools,
        )

    runs = WorkflowRuns(pool)
    runner = Runner(
        REGISTRY, runs, TenantDirectory(common.tenants_dir), ports_for, now, DEFAULT_WORKFLOWS, examples, service_keys
    )
    worker = ConsumerWorker(
        common,
        "planner",
        "workflows",
        dict.fromkeys(runner.topics, runner.on_message),
        concurrency=settings.concurrency,
    )
    firer = TimerFirer(
        runs,
        TransactionalProducer(common, "planner", name="timers"),
        now,
        interval=settings.timer_poll_seconds,
        lease_seconds=settings.timer_lease_seconds,
        keep_days=settings.keep_days,
    )

    # campaign tasks: a brief over a segment, its own small state machine (`planner.tasks`), driven through Kafka
    tenants = TenantDirectory(common.tenants_dir)
    task_store = TaskStore(pool)
    segments = IngestSegments(settings.ingest_url, settings.ingest_timeout_seconds, service_keys)
    task_runner = TaskRunner(task_store, segments, retrieval, tenants, now, evidence_k=settings.task_evidence_k)
    task_worker = ConsumerWorker(common, "planner", "tasks", {PLAN: task_runner.on_message})
    task_producer = TransactionalProducer(common, "planner", name="task-edge")
    task_planner = (
        LlmTaskPlanner(settings.anthropic_model, max_steps=settings.task_max_steps) if llm_configured() else None
    )
    task_api = TaskApi(
        tenants,
        task_store,
        segments,
        task_producer,
        llm_configured,
        now,
        planner=task_planner,
        budgets=budgets,
        retrieval=retrieval,
        read_tools=read_tools,
    )

    http = FastAPI(title="herald-planner")
    add_task_routes(http, task_api)
    add_ops_routes(
        http,
        {
            "postgres": readiness(pool),
            "llm_budgets": budgets.ready,
            "consumer": worker.ready,
            "timers": firer.ready,
            "tasks": task_worker.ready,
        },
    )
    runtime = ServiceRuntime("planner", http, settings.ops_host, settings.ops_port)
    runtime.on_start += [budgets.start, worker.start, firer.start, task_producer.start, task_worker.start]
    runtime.on_stop += [
        task_worker.stop,
        task_producer.stop,
        firer.stop,
        worker.stop,
        budgets.stop,
        segments.close,
        retrieval.close,
        pool.close,
    ]
    if read_tools is not None:
        runtime.on_stop.append(read_tools.close)
    return runtime
