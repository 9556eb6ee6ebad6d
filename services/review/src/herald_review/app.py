"""Review wiring: review requests into a queue; reviewers decide over HTTP; decisions back to the guard.

    herald.review.v1 → on_review                        (queue the request)
    herald.executed.v1 → on_executed                    (queue an execution in doubt, for a person to check)
    GET  /v1/reviews?tenant=&status=&kind=&task=        (the queue: the caller's tenants, or one of them)
    GET  /v1/reviews/{review_id}                        (one item, with the action and the rules that sent it here)
    POST /v1/reviews/{review_id}/approve  {reason?, edit?: {subject?, body_text?}}
    POST /v1/reviews/{review_id}/reject   {reason}
    POST /v1/reviews/{review_id}/resolve  {outcome: happened|did_not_happen, reason}   (in doubt)
    POST /v1/kill-switch                  {tenant?, engaged, reason}   (global without a tenant)
    GET  /v1/explain/{action_id}                        (why: the action's chain, rebuilt from the audit)
    GET  /v1/audit?tenant=&contact_id=&action_id=&rule=&since=&until=&offset=   (the audit index)
    GET  /v1/audit/proposals?tenant=&since=             (what `herald policy backtest` replays)
    /ui …                                               (the reviewers' web UI, web.py: same decisions, as pages)

Every route knows its caller and asks a permission of it for the tenant concerned (api.py, `ROUTE_PERMISSIONS`;
the routes are in api.py and web.py, the use case in decisions.py). Decisions are signed (`decisions.py`) and
published as `ReviewDecided` on herald.review-decision.v1; the guard re-checks every hard rule before it signs
anything. What a person found about an execution in doubt is published as `ExecutionResolved` on
herald.executed.v1. The audit sealer (adapters/sealer.py) chains every audit record into herald.audit-sealed.v1.
"""

from __future__ import annotations

from datetime import timedelta
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI

from herald_core.auth.callers import Authenticator, install_auth
from herald_core.auth.services import ServiceKeys
from herald_core.bus import ConsumerWorker, TransactionalProducer
from herald_core.db import create_pool, migrate, readiness
from herald_core.observability import add_ops_routes
from herald_core.runtime import ServiceRuntime
from herald_core.tenants import TenantDirectory
from herald_core.topics import EXECUTED, REVIEW
from herald_review.adapters.audit_index import AuditIndex
from herald_review.adapters.queue import ReviewQueue
from herald_review.adapters.sealer import AuditSealer
from herald_review.api import add_json_api
from herald_review.decisions import Review
from herald_review.settings import Settings
from herald_review.web import add_web_ui, page_for_denied


async def create_app(settings: Settings | None = None) -> ServiceRuntime:
    settings = settings or Settings()
    common = settings.common
    pool = await create_pool(common.pg_dsn)
    await migrate(pool, "review", Path(str(files("herald_review") / "migrations")))
    producer = TransactionalProducer(common, "review")
    tenants = TenantDirectory(common.tenants_dir)
    keys = ServiceKeys(common.auth.service_keys_dir, "review", common.auth.service_token_seconds)
    if not keys.ready():
        raise SystemExit(f"review: no service key review.pem in {common.auth.service_keys_dir}: it signs decisions")
    review = Review(ReviewQueue(pool), producer, tenants, keys, timedelta(seconds=settings.decision_ttl_seconds))
    worker = ConsumerWorker(common, "review", "queue", {REVIEW: review.on_review, EXECUTED: review.on_executed})
    index = AuditIndex(pool, on_erasure=review.queue.forget)
    sealer = AuditSealer(common, index)
    authenticate = Authenticator(common.auth, keys)
    http = FastAPI(title="herald-review", description="The reviewers' queue and decisions.")
    install_auth(http, authenticate, page_for_denied)

    add_json_api(http, review, index, producer, common.auth.platform_admins)
    add_web_ui(http, review, index, settings.ui_page_size)

    async def producer_ok() -> bool:
        return producer.started

    async def keys_ok() -> bool:
        return keys.ready()

    checks = {
        "postgres": readiness(pool),
        "kafka_producer": producer_ok,
        "consumer": worker.ready,
        "audit_sealer": sealer.ready,
        "signing_key": keys_ok,
    }
    add_ops_routes(http, checks)
    runtime = ServiceRuntime("review", http, settings.http_host, settings.http_port)
    runtime.on_start += [producer.start, worker.start, sealer.start]
    runtime.on_stop += [pool.close, producer.stop, worker.stop, sealer.stop]
    return runtime
