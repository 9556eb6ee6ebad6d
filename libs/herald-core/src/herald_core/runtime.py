"""Running a service: start its parts, serve HTTP (API and/or health/metrics), stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from herald_core.observability import configure_logging, get_logger
from herald_core.settings import ServiceSettings

log = get_logger("herald.runtime")


@dataclass
class ServiceRuntime:
    """What `create_app()` returns: the HTTP app plus the async start/stop of everything else."""

    name: str
    http: FastAPI
    host: str
    port: int
    on_start: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_stop: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    async def start(self) -> None:
        for hook in self.on_start:
            await hook()

    async def stop(self) -> None:
        for hook in reversed(self.on_stop):
            with contextlib.suppress(Exception):
                await hook()

    async def serve(self) -> None:
        await self.start()
        # proxy_headers off: the peer address is the socket's, never an X-Forwarded-For a client wrote (which
        # addresses are trusted proxies is the authenticator's decision, `HERALD_AUTH_TRUSTED_PROXIES`)
        config = uvicorn.Config(
            self.http,
            host=self.host,
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            proxy_headers=False,
        )
        server = _QuietServer(config)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        http_task = asyncio.create_task(server.serve())
        http_task.add_done_callback(lambda _: stop.set())  # the HTTP server could not bind, or ended
        log.info("service started", http=f"{self.host}:{self.port}")
        await stop.wait()
        server.should_exit = True
        try:
            await http_task
        except SystemExit as exc:
            await self.stop()
            raise SystemExit(f"{self.name}: HTTP server failed to start on {self.host}:{self.port}") from exc
        await self.stop()
        log.info("service stopped")


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the runtime owns SIGTERM so it can stop cleanly."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


S = TypeVar("S", bound=ServiceSettings)


def run(service: str, settings: S, create_app: Callable[[S], Awaitable[ServiceRuntime]]) -> None:
    """The body of every `herald-<service>` entry point: JSON logs, then the service until SIGTERM."""
    configure_logging(service, settings.common.log_level)

    async def main() -> None:
        runtime = await create_app(settings)
        await runtime.serve()

    asyncio.run(main())
