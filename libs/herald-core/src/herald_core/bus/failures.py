"""Why a message could not be handled, decided in one place: will retrying heal it, or never?

Every consumer (the workers, the followers of compacted topics, the consent feeds, the audit sealer) asks
`is_transient(exc)`. A failure that can heal — a broker, a database or a downstream unavailable, a timeout,
a rate limit — is retried with backoff, up to a bound; anything else (a body that fails validation, a
downstream's INVALID_ARGUMENT or 4xx, a value the database refuses, an unexpected type) will fail the same
way on every retry, so the message goes to its dead-letter topic with the reason and the consumer moves on.
A gRPC status and an HTTP status are classified here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import asyncpg
import grpc
import httpx
from aiokafka.errors import KafkaError


class Rejected(Exception):
    """Raised by a handler for a message it will never accept: dead-lettered with this reason."""


class TransientError(Exception):
    """A handler failure worth retrying (a dependency is down); the batch is read again after a backoff."""


#: gRPC codes a retry can outlive (the server or the network, not the request); the rest say the request is wrong
TRANSIENT_GRPC_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)

# Postgres refusals that heal: the server going away or refusing connections, lock and serialization conflicts,
# a statement cancelled (timeout). Everything else it answers (a value it cannot store, a constraint) is final.
_TRANSIENT_POSTGRES = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.LockNotAvailableError,
    asyncpg.exceptions.QueryCanceledError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def http_status_is_transient(status: int) -> bool:
    """An HTTP answer worth asking again: a timeout, too early, rate limited, or the server's own trouble."""
    return status in (408, 425, 429) or status >= 500


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """A `Retry-After` given in seconds (a date is not worth honouring to the second here), else None."""
    value = headers.get("Retry-After", "").strip()
    return float(value) if value.replace(".", "", 1).isdigit() else None


def grpc_code_is_transient(code: grpc.StatusCode | None) -> bool:
    return code in TRANSIENT_GRPC_CODES


def is_transient(exc: BaseException) -> bool:
    """True if retrying may succeed; False if the message itself is the problem (dead-letter it)."""
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, Rejected):
        return False
    if isinstance(exc, grpc.RpcError):
        code = exc.code() if callable(getattr(exc, "code", None)) else None
        return grpc_code_is_transient(code)
    if isinstance(exc, httpx.HTTPStatusError):
        return http_status_is_transient(exc.response.status_code)
    if isinstance(exc, httpx.TransportError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        return isinstance(exc, _TRANSIENT_POSTGRES)
    if isinstance(exc, asyncpg.InterfaceError):
        # the client's own: a closed connection heals; an argument of the wrong type (a ValueError) never does
        return not isinstance(exc, ValueError)
    if isinstance(exc, KafkaError):
        return bool(getattr(exc, "retriable", False))
    return isinstance(exc, OSError | asyncio.TimeoutError)


def reason_of(exc: BaseException, limit: int = 1000) -> str:
    """The failure in words for a dead letter: its kind and message (a gRPC error by its status and details)."""
    if isinstance(exc, grpc.RpcError) and callable(getattr(exc, "code", None)):
        details = exc.details() if callable(getattr(exc, "details", None)) else ""
        return f"{exc.code().name}: {details}"[:limit]
    if isinstance(exc, httpx.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {exc.request.url}"[:limit]
    return f"{type(exc).__name__}: {exc}"[:limit]
