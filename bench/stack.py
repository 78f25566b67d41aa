"""The stack a benchmark runs on: a fresh database, a real worker, a real web server, a client.

Two modes, the two Quern ships: `sqlite` (SQLite + filesystem broker, the embedded default) and
`pg` (PostgreSQL + RabbitMQ). Everything runs as separate processes, as in production: the
benchmark process only submits over HTTP, polls, and reads the database for verification.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("QUERN_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/quern_bench")
# Its own vhost: the benchmark purges its queues and must not meet a test run's worker.
AMQP_URL = os.environ.get("QUERN_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/quern-bench")
WORKER_CONCURRENCY = int(os.environ.get("QUERN_BENCH_WORKERS", "2"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mode_env(mode: str, data_dir: Path) -> dict[str, str]:
    """The environment every process of a mode shares (the benchmark process included)."""
    env = {
        "QUERN_DATA_DIR": str(data_dir),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        # DEBUG as make run has it (on) unless the environment says otherwise: its figure counts.
        # sentences.csv on SQLite: 36.43 s with it on, 35.63 s off (2026-12-02).
        "DJANGO_DEBUG": os.environ.get("DJANGO_DEBUG", "1"),
        "DJANGO_SECRET_KEY": "quern-benchmark-" + "x" * 50,
        # As make run's first try: plain HTTP on loopback, no keys, no rate limits (measured apart).
        "DJANGO_HTTPS": "0",
        "QUERN_REQUIRE_KEYS": "0",
    }
    if mode == "pg":
        env |= {"DATABASE_URL": PG_URL, "CELERY_BROKER_URL": AMQP_URL}
    elif mode == "sqlite":
        env |= {
            "DATABASE_URL": f"sqlite:///{data_dir / 'quern.sqlite3'}",
            "CELERY_BROKER_URL": "filesystem://",
        }
    else:
        raise ValueError(f"unknown mode {mode!r}: sqlite or pg")
    return env


def ensure_vhost(url: str) -> None:
    """Create the broker's vhost when this machine's RabbitMQ lacks it (rabbitmqctl, as root)."""
    from kombu import Connection

    vhost = Connection(url).virtual_host
    if vhost in ("/", "") or not shutil.which("rabbitmqctl"):
        return
    listed = subprocess.run(["rabbitmqctl", "-q", "list_vhosts"], capture_output=True, text=True)
    if vhost not in listed.stdout.split():
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
        subprocess.run(
            ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
        )


def purge_queues(names: tuple[str, ...] = ("ingest", "index", "backfill", "naive")) -> None:
    """Messages a stopped run left behind name rows of a dropped database: drop them."""
    from kombu import Connection, Queue

    with Connection(AMQP_URL) as conn:
        channel = conn.default_channel
        for name in names:
            queue = Queue(name, durable=True).bind(channel)
            queue.declare()
            queue.purge()


def recreate_database(mode: str, data_dir: Path) -> None:
    """Start from nothing: a new SQLite file / PostgreSQL database and an empty broker."""
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)
    if mode == "pg":
        ensure_vhost(AMQP_URL)
        purge_queues()
        import psycopg

        parts = urllib.parse.urlparse(PG_URL)
        name = parts.path.lstrip("/")
        admin_url = parts._replace(path="/postgres").geturl()
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def pids(self) -> list[int]:
        """The process and its children (pool processes, web workers)."""
        pids = [self.popen.pid]
        out = subprocess.run(
            ["ps", "-o", "pid=", "--ppid", str(self.popen.pid)], capture_output=True, text=True
        )
        pids += [int(p) for p in out.stdout.split()]
        return pids

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0.0


@dataclass
class Stack:
    mode: str
    data_dir: Path
    processes: dict[str, Process] = field(default_factory=dict)
    port: int = 0

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **mode_env(self.mode, self.data_dir),
            "QUERN_PORT": str(self.port),
            "QUERN_WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        }

    def _spawn(
        self, name: str, argv: list[str], ready: bytes | None = None, env: dict | None = None
    ) -> Process:
        log = self.data_dir / f"{name}.log"
        with open(log, "wb") as out:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env or self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes[name] = process
        deadline = time.monotonic() + 90
        while ready is not None and ready not in log.read_bytes():
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        return process

    def migrate(self) -> None:
        subprocess.run(
            [str(BIN / "python"), "manage.py", "migrate", "-v0"], cwd=ROOT, env=self.env, check=True
        )

    def start_procfile(self, name: str, ready: bytes) -> Process:
        """One of `make run`'s processes, started from its Procfile line as honcho starts it: the
        figures are the ones a user gets with `make run`."""
        line = next(
            line.split(":", 1)[1].strip()
            for line in (ROOT / "Procfile").read_text().splitlines()
            if line.startswith(f"{name}:")
        )
        return self._spawn(name, ["bash", "-c", f"exec {line}"], ready=ready)

    def start_worker(self) -> Process:
        """make run's worker: `-c 2` pool processes."""
        return self.start_procfile("worker", b" ready.")

    def start_beat(self) -> Process:
        """make run's celery beat (reconcile, backfills), a process of its own as in the Procfile."""
        return self.start_procfile("beat", b"beat: Starting...")

    def start_web(self) -> Process:
        """make run's web server (gunicorn, 2 processes x 4 threads), on a free port."""
        self.port = free_port()
        return self.start_procfile("web", b"Booting worker")

    def start_consumer(self) -> Process:
        """make run's open-queue consumer (RabbitMQ only)."""
        return self.start_procfile("consumer", b"Consuming quern.submit")

    def start_naive_worker(self) -> Process:
        """The naive way's own worker (bench.naive), the same pool size as Quern's."""
        return self._spawn(
            "naive",
            [
                str(BIN / "celery"),
                "-A",
                "bench.naive",
                "worker",
                "-Q",
                "naive",
                "-c",
                str(WORKER_CONCURRENCY),
                "-n",
                "bench-naive@localhost",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
            ],
            ready=b" ready.",
        )

    def stop(self) -> None:
        for process in reversed(list(self.processes.values())):
            process.stop()
        self.processes.clear()

    def client(self) -> Client:
        return Client(self.port)


class Overloaded(Exception):
    """Quern's backpressure answered 503: too much work is waiting; nothing was stored."""


class Client:
    """A keep-alive HTTP client for the API (one per thread)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)

    def request(
        self, method: str, path: str, body: Any = None, headers: dict | None = None
    ) -> tuple[int, Any]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                if attempt == 2:
                    raise
        return response.status, (json.loads(data) if data else None)

    def get(self, path: str) -> Any:
        status, body = self.request("GET", path)
        if status != 200:
            raise RuntimeError(f"GET {path}: {status} {body}")
        return body

    def post_json(self, path: str, payload: dict) -> Any:
        status, body = self.request("POST", path, json.dumps(payload), {"Content-Type": "application/json"})
        if status != 202:
            raise RuntimeError(f"POST {path}: {status} {body}")
        return body

    def post_files(self, paths: list[Path], fields: dict[str, str] | None = None) -> list[dict]:
        """multipart/form-data, streamed from disk (a 1 GB file is never in this process's memory)."""
        boundary = uuid.uuid4().hex
        parts: list[bytes | Path] = []
        for name, value in (fields or {}).items():
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
            )
        for path in paths:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
                f"Content-Type: application/octet-stream\r\n\r\n".encode()
            )
            parts.append(path)
            parts.append(b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in parts)

        def body() -> Iterator[bytes]:
            for part in parts:
                if isinstance(part, Path):
                    with open(part, "rb") as f:
                        while block := f.read(1 << 20):
                            yield block
                else:
                    yield part

        status, data = self.request(
            "POST",
            "/api/documents",
            body(),
            {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(length)},
        )
        if status == 503:
            raise Overloaded(data)
        if status != 202:
            raise RuntimeError(f"POST /api/documents: {status} {data}")
        return data if isinstance(data, list) else [data]

    def wait_jobs(self, job_ids: list[int], timeout: float = 3600, interval: float = 0.05) -> list[dict]:
        """Poll until every job has finished; return their JSON."""
        pending, done = list(job_ids), {}
        deadline = time.monotonic() + timeout
        while pending:
            job = self.get(f"/api/jobs/{pending[0]}")
            if job["status"] in ("succeeded", "failed", "cancelled"):
                done[pending.pop(0)] = job
                continue
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {pending[0]} still {job['status']} after {timeout} s")
            time.sleep(interval)
        return [done[j] for j in job_ids]
