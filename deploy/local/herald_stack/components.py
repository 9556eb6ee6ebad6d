"""The five real parts of the local stack, each installable, startable, checkable and stoppable.

Every `start()` is idempotent (an already healthy part is left alone) and waits for health;
processes run detached with a pid file and a log under the state dir, so `make up` in one
shell and `make test` in another share them.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

import httpx

from herald_stack.config import REPO_ROOT, StackConfig


class StackError(RuntimeError):
    pass


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait(check: object, what: str, timeout: float, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.3)
    tail = ""
    if log and log.exists():
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
    raise StackError(f"{what} did not become healthy within {timeout:.0f}s\n{tail}")


def _run(cmd: list[str], **kwargs: object) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise StackError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


_apt_lock = threading.Lock()
_apt_lists_fresh = False


def _apt_install(*packages: str) -> None:
    """Install Debian packages. The parts install side by side and apt holds one lock, so they take turns;
    the package lists are refreshed once per run, by whichever part needs apt first."""
    global _apt_lists_fresh
    with _apt_lock:
        if not _apt_lists_fresh:
            _run(["apt-get", "update", "-q"])
            _apt_lists_fresh = True
        _run(["apt-get", "install", "-y", "-q", *packages], env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


class Process:
    """A detached child process with a pid file and a log file."""

    def __init__(self, name: str, state_dir: Path) -> None:
        self.name = name
        self.pid_file = state_dir / "run" / f"{name}.pid"
        self.log = state_dir / "logs" / f"{name}.log"

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text())
            os.kill(pid, 0)
            return pid
        except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
            return None

    def spawn(self, cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(env or {})},
                cwd=cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(str(proc.pid))

    def terminate(self, timeout: float = 20.0) -> None:
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.2)
        if self.pid() is not None:
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)


class Kafka:
    """Apache Kafka, one node in KRaft mode (broker + controller), jars from Maven Central."""

    name = "kafka"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.state_dir / "kafka"
        self.proc = Process("kafka", cfg.state_dir)

    def install(self) -> None:
        if self.cfg.kafka_libs.is_dir() and any(self.cfg.kafka_libs.glob("kafka_2.13-*.jar")):
            return
        tmp = Path(tempfile.mkdtemp(prefix="kafka-libs-", dir=self.cfg.cache_dir))
        _run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(REPO_ROOT / "deploy/local/kafka/pom.xml"),
                "dependency:copy-dependencies",
                f"-Dkafka.version={self.cfg.kafka_version}",
                f"-DoutputDirectory={tmp}",
                "-DincludeScope=runtime",
            ]
        )
        self.cfg.kafka_libs.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(self.cfg.kafka_libs)

    def healthy(self) -> bool:
        if not _port_open(self.cfg.kafka_port):
            return False
        from aiokafka.admin import AIOKafkaAdminClient

        async def probe() -> bool:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.cfg.kafka_bootstrap, request_timeout_ms=3000)
            try:
                await admin.start()
                await admin.list_topics()
                return True
            except Exception:
                return False
            finally:
                await admin.close()

        return asyncio.run(probe())

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            f"-Xmx{self.cfg.kafka_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={REPO_ROOT / 'deploy/local/kafka/log4j2.properties'}",
            "-cp",
            f"{self.cfg.kafka_libs}/*",
        ]

    def start(self) -> None:
        if self.healthy():
            return
        self.install()
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = self.dir / "server.properties"
        template = (REPO_ROOT / "deploy/local/kafka/server.properties").read_text()
        props.write_text(
            template.replace("@PORT@", str(self.cfg.kafka_port))
            .replace("@CONTROLLER_PORT@", str(self.cfg.kafka_controller_port))
            .replace("@DATA_DIR@", str(data))
        )
        if not (data / "meta.properties").exists():
            _run([*self._java(), "kafka.tools.StorageTool", "format", "-t", uuid.uuid4().hex[:22], "-c", str(props)])
        self.proc.spawn([*self._java(), "kafka.Kafka", str(props)])
        _wait(self.healthy, "Kafka", 90, self.proc.log)

    def stop(self) -> None:
        self.proc.terminate(timeout=30)


class Postgres:
    """PostgreSQL from Debian's packages, in its own data dir on its own loopback port."""

    name = "postgres"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.data = cfg.state_dir / "postgres" / "data"
        self.sock = cfg.state_dir / "postgres" / "sock"
        self.log = cfg.state_dir / "logs" / "postgres.log"

    def _as_owner(self, cmd: list[str]) -> list[str]:
        # PostgreSQL refuses to run as root; use the postgres account the Debian package made
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd

    def install(self) -> None:
        if (self.cfg.pg_bin_dir / "postgres").exists():
            return
        if os.geteuid() != 0:
            raise StackError(f"PostgreSQL not found in {self.cfg.pg_bin_dir}; install postgresql-15")
        _apt_install("postgresql-15")

    def healthy(self) -> bool:
        if not _port_open(self.cfg.pg_port):
            return False
        result = subprocess.run(
            [str(self.cfg.pg_bin_dir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.cfg.pg_port)],
            capture_output=True,
        )
        return result.returncode == 0

    def start(self) -> None:
        if self.healthy():
            return
        self.install()
        for path in (self.data.parent, self.sock):
            path.mkdir(parents=True, exist_ok=True)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        if os.geteuid() == 0:
            shutil.chown(self.data.parent, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
            shutil.chown(self.log, "postgres", "postgres")
        if not (self.data / "PG_VERSION").exists():
            _run(
                self._as_owner(
                    [
                        str(self.cfg.pg_bin_dir / "initdb"),
                        "-D",
                        str(self.data),
                        "-U",
                        self.cfg.pg_user,
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--locale=C.UTF-8",
                    ]
                )
            )
        options = (
            f"-p {self.cfg.pg_port} -c listen_addresses=127.0.0.1 -k {self.sock} -c max_connections=400 "
            "-c shared_buffers=256MB -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            self._as_owner(
                [
                    str(self.cfg.pg_bin_dir / "pg_ctl"),
                    "start",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    "60",
                ]
            )
        )
        _wait(self.healthy, "PostgreSQL", 60, self.log)
        exists = self._psql("-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{self.cfg.pg_database}'")
        if exists.stdout.strip() != "1":
            created = self._psql("-c", f'CREATE DATABASE "{self.cfg.pg_database}"')
            if created.returncode != 0:
                raise StackError(f"could not create database {self.cfg.pg_database}: {created.stderr}")

    def _psql(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["psql", "-h", "127.0.0.1", "-p", str(self.cfg.pg_port), "-U", self.cfg.pg_user, "-d", "postgres", *args],
            capture_output=True,
            text=True,
        )

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                self._as_owner([str(self.cfg.pg_bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"]),
                capture_output=True,
            )


class Weaviate:
    """The Weaviate server, built by `go install` of its Go module at a pinned release."""

    name = "weaviate"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.data = cfg.state_dir / "weaviate"
        self.proc = Process("weaviate", cfg.state_dir)

    def install(self) -> None:
        if self.cfg.weaviate_binary.exists():
            return
        gobin = Path(tempfile.mkdtemp(prefix="weaviate-bin-", dir=self.cfg.cache_dir))
        _run(
            ["go", "install", f"github.com/weaviate/weaviate/cmd/weaviate-server@{self.cfg.weaviate_version}"],
            env={**os.environ, "GOBIN": str(gobin), "CGO_ENABLED": "0", "GOFLAGS": "-trimpath"},
        )
        self.cfg.weaviate_binary.parent.mkdir(parents=True, exist_ok=True)
        (gobin / "weaviate-server").rename(self.cfg.weaviate_binary)
        shutil.rmtree(gobin, ignore_errors=True)

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.cfg.weaviate_http_port}/v1/.well-known/ready"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def start(self) -> None:
        if self.healthy():
            return
        self.install()
        self.data.mkdir(parents=True, exist_ok=True)
        c = self.cfg
        env = {
            "PERSISTENCE_DATA_PATH": str(self.data),
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "true",
            "DEFAULT_VECTORIZER_MODULE": "none",
            "ENABLE_MODULES": "",
            "CLUSTER_HOSTNAME": "herald-node1",
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_GOSSIP_BIND_PORT": str(c.weaviate_gossip_port),
            "CLUSTER_DATA_BIND_PORT": str(c.weaviate_gossip_port + 1),
            "RAFT_PORT": str(c.weaviate_raft_port),
            "RAFT_INTERNAL_RPC_PORT": str(c.weaviate_raft_port + 1),
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "GRPC_PORT": str(c.weaviate_grpc_port),
            "GO_PROFILING_PORT": str(c.weaviate_http_port + 100),
            "DISABLE_TELEMETRY": "true",
            "LOG_FORMAT": "json",
            "LIMIT_RESOURCES": "true",
            "GOMAXPROCS": "2",
        }
        self.proc.spawn(
            [str(c.weaviate_binary), "--host", "127.0.0.1", "--port", str(c.weaviate_http_port), "--scheme", "http"],
            env=env,
        )
        _wait(self.healthy, "Weaviate", 90, self.proc.log)

    def stop(self) -> None:
        self.proc.terminate()


class Smtp:
    """The loopback SMTP server that delivers into the stack's Maildir."""

    name = "smtp"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.proc = Process("smtp", cfg.state_dir)

    def install(self) -> None:
        return

    def healthy(self) -> bool:
        if not _port_open(self.cfg.smtp_port):
            return False
        with socket.create_connection(("127.0.0.1", self.cfg.smtp_port), timeout=2) as sock:
            return sock.recv(256).startswith(b"220")

    def start(self) -> None:
        if self.healthy():
            return
        self.proc.spawn(
            [
                sys.executable,
                "-m",
                "herald_stack.smtp_server",
                "--port",
                str(self.cfg.smtp_port),
                "--maildir",
                str(self.cfg.maildir),
            ]
        )
        _wait(self.healthy, "SMTP server", 30, self.proc.log)

    def stop(self) -> None:
        self.proc.terminate()


class Caldav:
    """Radicale, the CalDAV server the `schedule_meeting` tool writes to, from the uv workspace (nothing to fetch).

    It listens on loopback only and asks for HTTP Basic auth against a plain-text htpasswd file holding one
    user (`caldav_user`/`caldav_password`): the executor authenticates as a real client would, and Radicale's
    default `owner_only` rights keep that user's calendars under `/<user>/`. Calendars live in
    `<state dir>/caldav/collections`.
    """

    name = "caldav"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg
        self.dir = cfg.state_dir / "caldav"
        self.proc = Process("caldav", cfg.state_dir)

    def install(self) -> None:
        return  # Radicale is a dependency of this package

    def healthy(self) -> bool:
        # an authenticated PROPFIND of the user's home: proves it is our Radicale and that the login works
        try:
            response = httpx.request(
                "PROPFIND",
                f"{self.cfg.caldav_url}{self.cfg.caldav_user}/",
                auth=(self.cfg.caldav_user, self.cfg.caldav_password),
                headers={"Depth": "0"},
                timeout=2,
            )
        except httpx.HTTPError:
            return False
        return response.status_code == 207

    def start(self) -> None:
        if self.healthy():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        users = self.dir / "users"
        users.write_text(f"{self.cfg.caldav_user}:{self.cfg.caldav_password}\n")
        config = self.dir / "radicale.conf"
        config.write_text(
            "[server]\n"
            f"hosts = 127.0.0.1:{self.cfg.caldav_port}\n"
            "[auth]\n"
            "type = htpasswd\n"
            f"htpasswd_filename = {users}\n"
            "htpasswd_encryption = plain\n"
            "[rights]\n"
            "type = owner_only\n"
            "[storage]\n"
            f"filesystem_folder = {self.dir / 'collections'}\n"
            "[web]\n"
            "type = none\n"
            "[logging]\n"
            "level = warning\n"
        )
        self.proc.spawn([sys.executable, "-m", "radicale", "--config", str(config)])
        _wait(self.healthy, "Radicale (CalDAV)", 30, self.proc.log)

    def stop(self) -> None:
        self.proc.terminate()


class Chromium:
    """Debian's Chromium, the browser the reviewers' web UI is tested in (Playwright drives it through
    `executable_path`). Installed, never started: each browser test launches its own. Playwright's own browser
    builds come from outside any package registry, so `playwright install` is never used."""

    name = "chromium"

    def __init__(self, cfg: StackConfig) -> None:
        self.cfg = cfg

    def install(self) -> None:
        if self.cfg.chromium_binary.exists():
            return
        if os.geteuid() != 0:
            raise StackError(f"Chromium not found at {self.cfg.chromium_binary}; install chromium")
        _apt_install("chromium")


def components(cfg: StackConfig) -> list[Kafka | Postgres | Weaviate | Smtp | Caldav]:
    return [Postgres(cfg), Kafka(cfg), Weaviate(cfg), Smtp(cfg), Caldav(cfg)]


def tools(cfg: StackConfig) -> list[Chromium]:
    """What the tests need installed beside the running parts."""
    return [Chromium(cfg)]
