"""Running Herald's six services as local processes against the stack (demo, tests, bench).

Each service is the same `herald-<name>` entry point a container would run, configured only by
environment variables; `ServiceSet` starts them, waits for `/readyz`, and can stop, kill (SIGKILL)
and restart one — the chaos tests use that.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from herald_stack.config import StackConfig

SERVICES = ("retrieval", "ingest", "planner", "guard", "review", "executor")


@dataclass
class Replica:
    service: str
    instance: str
    ops_port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return f"{self.service}-{self.instance}"


@dataclass
class ServiceSet:
    config: StackConfig
    topic_prefix: str
    pg_dsn: str
    tenants_dir: Path
    log_dir: Path
    base_port: int = 8100
    extra_env: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, Replica] = field(default_factory=dict)

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port + 1}"

    @property
    def review_url(self) -> str:
        return f"http://127.0.0.1:{self.base_port + 5}"

    @property
    def executor_url(self) -> str:
        """The first executor's HTTP API (read-only tools, health, metrics)."""
        return f"http://127.0.0.1:{self.base_port + 10 + SERVICES.index('executor') * 10}"

    @property
    def planner_url(self) -> str:
        """The first planner's HTTP API (campaign tasks, health, metrics)."""
        return f"http://127.0.0.1:{self.base_port + 10 + SERVICES.index('planner') * 10}"

    @property
    def retrieval_target(self) -> str:
        return f"127.0.0.1:{self.base_port + 52}"

    def common_env(self) -> dict[str, str]:
        """The stack's addresses, with this set's topic prefix, database, tenants and ports on top."""
        return {
            **self.config.env(),
            "HERALD_TOPIC_PREFIX": self.topic_prefix,
            "HERALD_PG_DSN": self.pg_dsn,
            "HERALD_TENANTS_DIR": str(self.tenants_dir),
            "HERALD_INGEST_HTTP_PORT": str(self.base_port + 1),
            "HERALD_REVIEW_HTTP_PORT": str(self.base_port + 5),
            "HERALD_RETRIEVAL_GRPC_PORT": str(self.base_port + 52),
            "HERALD_PLANNER_RETRIEVAL_TARGET": self.retrieval_target,
            "HERALD_GUARD_RETRIEVAL_TARGET": self.retrieval_target,
            "HERALD_PLANNER_EXECUTOR_URL": self.executor_url,
            "HERALD_PLANNER_INGEST_URL": self.ingest_url,
            "HERALD_PLANNER_URL": self.planner_url,
            "HERALD_REVIEW_URL": self.review_url,
            "HERALD_EXECUTOR_ASSETS_DIR": str(self.config.state_dir / "assets"),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def add(self, service: str, instance: str = "0") -> Replica:
        index = SERVICES.index(service)
        # ingest and review serve their API, health and metrics on one port
        api_ports = {"ingest": self.base_port + 1, "review": self.base_port + 5}
        ops_port = api_ports.get(service, self.base_port + 10 + index * 10 + int(instance))
        prefix = f"HERALD_{service.upper()}_"
        env = {**self.common_env(), "HERALD_INSTANCE_ID": instance, f"{prefix}OPS_PORT": str(ops_port)}
        replica = Replica(service, instance, ops_port, env, self.log_dir / f"{service}-{instance}.log")
        self.replicas[replica.name] = replica
        return replica

    def start(self, name: str, wait: bool = True) -> None:
        replica = self.replicas[name]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        binary = Path(sys.executable).with_name(f"herald-{replica.service}")
        with replica.log.open("ab") as log:
            replica.process = subprocess.Popen(
                [str(binary)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **replica.env},
            )
        if wait:
            self.wait_ready(name)

    def wait_ready(self, name: str, timeout: float = 90.0) -> None:
        replica = self.replicas[name]
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{replica.ops_port}/readyz"
        while time.monotonic() < deadline:
            if replica.process is not None and replica.process.poll() is not None:
                raise RuntimeError(f"{name} exited with {replica.process.returncode}:\n{self._tail(replica)}")
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{name} not ready within {timeout}s:\n{self._tail(replica)}")

    def start_all(self, guards: int = 1, services: tuple[str, ...] = SERVICES) -> None:
        for service in services:
            for instance in range(guards if service == "guard" else 1):
                self.add(service, str(instance))
        for name in self.replicas:
            self.start(name, wait=False)
        for name in self.replicas:
            self.wait_ready(name)

    def kill(self, name: str) -> None:
        replica = self.replicas[name]
        if replica.process and replica.process.poll() is None:
            replica.process.send_signal(signal.SIGKILL)
            replica.process.wait()

    def stop(self, name: str, timeout: float = 20.0) -> None:
        replica = self.replicas[name]
        if replica.process and replica.process.poll() is None:
            replica.process.terminate()
            try:
                replica.process.wait(timeout)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.replicas)):
            self.stop(name)

    @staticmethod
    def _tail(replica: Replica, lines: int = 40) -> str:
        if not replica.log.exists():
            return ""
        return "\n".join(replica.log.read_text(errors="replace").splitlines()[-lines:])
