"""Logs, metrics and health: JSON logs with tenant/correlation/action ids, Prometheus metrics,
and `/healthz`, `/readyz`, `/metrics` on every service."""

from __future__ import annotations

import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

MESSAGES_CONSUMED = Counter("herald_messages_consumed_total", "Messages read from Kafka.", ["service", "topic", "type"])
MESSAGES_PUBLISHED = Counter(
    "herald_messages_published_total", "Messages published (audit copies not counted).", ["service", "topic", "type"]
)
DEAD_LETTERS = Counter("herald_dead_letters_total", "Messages sent to a dead-letter topic.", ["service", "reason"])
HANDLER_SECONDS = Histogram(
    "herald_handler_seconds",
    "Time to handle one message.",
    ["service", "topic"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
TRANSACTION_SECONDS = Histogram(
    "herald_kafka_transaction_seconds",
    "Time to commit one batch transaction.",
    ["service"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
BATCH_SIZE = Histogram(
    "herald_batch_size", "Messages per consumed batch.", ["service"], buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500)
)


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON lines on stdout; bind tenant/correlation_id/action_id with `structlog.contextvars`."""
    logging.basicConfig(stream=sys.stdout, level=level.upper(), format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    # client libraries log every request at INFO; keep the service's own lines readable
    for noisy in ("httpx", "aiokafka", "kafka", "weaviate", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


class NotReady:
    """A readiness answer that is not ready and says why (falsy, like `False`)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NotReady({self.reason!r})"


ReadinessCheck = Callable[[], Awaitable["bool | NotReady"]]


def add_ops_routes(app: FastAPI, checks: dict[str, ReadinessCheck]) -> None:
    """Liveness (the process answers), readiness (each named check passes) and metrics."""

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(response: Response) -> dict[str, Any]:
        results: dict[str, bool] = {}
        reasons: dict[str, str] = {}
        for name, check in checks.items():
            try:
                answer = await check()
            except Exception as exc:
                answer = NotReady(f"the check failed: {exc!r}"[:500])
            results[name] = bool(answer)
            if isinstance(answer, NotReady):
                reasons[name] = answer.reason
        ready = all(results.values())
        response.status_code = 200 if ready else 503
        return (
            {"ready": ready, "checks": results, "reasons": reasons} if reasons else {"ready": ready, "checks": results}
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
