"""Which failures are retried and which dead-letter the message: decided once, for every consumer."""

from __future__ import annotations

import asyncpg
import grpc
import httpx
import pytest
from aiokafka.errors import KafkaConnectionError, RecordTooLargeError
from pydantic import BaseModel, ValidationError

from herald_core.bus import Rejected, TransientError, grpc_code_is_transient, http_status_is_transient, is_transient


class _RpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def _http(status: int) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "https://api.example.com/x")
    return httpx.HTTPStatusError("x", request=request, response=httpx.Response(status, request=request))


def _validation_error() -> ValidationError:
    class Model(BaseModel):
        n: int

    try:
        Model.model_validate({"n": "x"})
    except ValidationError as exc:
        return exc
    raise AssertionError("unreachable")


@pytest.mark.parametrize(
    "exc",
    [
        TransientError("down"),
        _RpcError(grpc.StatusCode.UNAVAILABLE),
        _RpcError(grpc.StatusCode.DEADLINE_EXCEEDED),
        _RpcError(grpc.StatusCode.RESOURCE_EXHAUSTED),
        _http(503),
        _http(429),
        _http(408),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        asyncpg.exceptions.CannotConnectNowError("starting"),
        asyncpg.exceptions.SerializationError("conflict"),
        asyncpg.exceptions.DeadlockDetectedError("deadlock"),
        asyncpg.exceptions.QueryCanceledError("statement timeout"),
        asyncpg.InterfaceError("connection is closed"),
        KafkaConnectionError(),
        ConnectionRefusedError(),
        TimeoutError(),
        OSError("network unreachable"),
    ],
    ids=repr,
)
def test_failures_that_can_heal_are_retried(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        Rejected("no"),
        _RpcError(grpc.StatusCode.INVALID_ARGUMENT, "query over 2,000 characters"),
        _RpcError(grpc.StatusCode.NOT_FOUND),
        _RpcError(grpc.StatusCode.PERMISSION_DENIED),
        _RpcError(grpc.StatusCode.FAILED_PRECONDITION),
        _http(400),
        _http(404),
        _http(422),
        asyncpg.exceptions.UntranslatableCharacterError("unsupported Unicode escape sequence"),
        asyncpg.exceptions.CharacterNotInRepertoireError('invalid byte sequence for encoding "UTF8": 0x00'),
        asyncpg.exceptions.NumericValueOutOfRangeError("out of range"),
        asyncpg.exceptions.UniqueViolationError("duplicate"),
        asyncpg.exceptions.DataError("invalid input for query argument $1: [1] (expected str, got list)"),
        RecordTooLargeError(),
        TypeError("unhashable type: 'list'"),
        ValueError("bad"),
        KeyError("k"),
        _validation_error(),
        RuntimeError("a bug"),
    ],
    ids=repr,
)
def test_failures_a_retry_repeats_are_dead_lettered(exc: BaseException) -> None:
    assert not is_transient(exc)


def test_status_codes_are_classified_in_one_place() -> None:
    assert [
        s for s in (200, 400, 401, 403, 404, 408, 409, 422, 425, 429, 500, 502, 503) if http_status_is_transient(s)
    ] == [
        408,
        425,
        429,
        500,
        502,
        503,
    ]
    assert grpc_code_is_transient(grpc.StatusCode.UNAVAILABLE)
    assert not grpc_code_is_transient(grpc.StatusCode.INVALID_ARGUMENT)
    assert not grpc_code_is_transient(None)
