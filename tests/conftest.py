"""Shared fixtures: a real `celery worker` process on the test database, and waiting helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# A name per test session: sessions elsewhere on this machine may share a broker, and two
# workers of one name collide on RabbitMQ (RESOURCE_LOCKED on its pidbox queue). On the
# filesystem broker the bindings of earlier names are cleared at start (purge_queues), or every
# broadcast would leave a message file for each (PITFALLS.md).
WORKER_NAME = f"test-{os.getpid()}@localhost"


def wait_for(
    condition: Callable[[], object],
    *,
    timeout: float = 60,
    interval: float = 0.05,
    message: str = "condition",
):
    """Poll until `condition()` is truthy; fail the test at the deadline (never a fixed sleep)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {message}")
        time.sleep(interval)


def wait_for_job(job_id: int, *, timeout: float = 90):
    from indexing.models import Job

    return wait_for(
        lambda: (job := Job.objects.select_related("document").get(pk=job_id)).is_finished and job,
        timeout=timeout,
        message=f"job {job_id} to finish",
    )


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM the process's group (its pool children too); SIGKILL if it is not gone in 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _database_url(db: dict) -> str:
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def purge_queues() -> None:
    """Drop messages a previous run left on the broker (they name rows that no longer exist)."""
    from indexing import broker
    from project.celery import app

    if broker.configured() == "filesystem":
        # Broadcast bindings of workers from earlier runs (names once made per run) would each
        # get a message file on every inspect; no worker of this data folder is running yet.
        (settings.BROKER_DIR / "control" / "celery.pidbox.exchange").unlink(missing_ok=True)
        for stale in (settings.BROKER_DIR / "queue").glob("*.pidbox.msg"):
            stale.unlink(missing_ok=True)
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in settings.CELERY_TASK_QUEUES:
            bound = queue.bind(channel)
            bound.declare()
            bound.purge()


@pytest.fixture(scope="session")
def worker(django_db_setup, django_db_blocker):
    """A real `celery -A project worker` process (2 pool processes) on the test database."""
    from django.db import connection

    with django_db_blocker.unblock():
        db = connection.settings_dict
        purge_queues()
    # Under the data folder, not pytest's shared temp root: other pytest sessions on this machine
    # rotate /tmp/pytest-of-<user> and may delete the log of a worker still running.
    log_path = settings.QUERN_DATA_DIR / "worker.log"
    env = {**os.environ, "DATABASE_URL": _database_url(db), "QUERN_DATA_DIR": str(settings.QUERN_DATA_DIR)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "project",
                "worker",
                "-Q",
                "ingest,index,backfill",
                "-c",
                "2",
                "-n",
                WORKER_NAME,
                "-l",
                "info",
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: b" ready." in log_path.read_bytes() or process.poll() is not None,
            timeout=60,
            message="worker to start",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the worker exited at start:\n{log_path.read_text()}")
        yield process
    finally:
        stop_process_group(process)
        if os.environ.get("QUERN_SHOW_WORKER_LOG"):
            sys.stderr.write(log_path.read_text())


@pytest.fixture
def clean_index(transactional_db):
    """Flushing tables between transactional tests does not reach the FTS5 table: clear it."""
    from indexing.search import get_backend

    get_backend().clear()
    yield
    get_backend().clear()


@pytest.fixture
def pipeline(worker, clean_index):
    """A transactional test with the real worker running against its database."""
    return worker


@pytest.fixture
def captured_messages(monkeypatch):
    """Keep task messages off the broker: services run in-process, step by step."""
    from indexing.pipeline import dispatch

    sent = Captured()

    def capture(messages, countdown=None):
        sent.extend(messages)
        sent.countdowns.extend([countdown or 0.0] * len(messages))

    monkeypatch.setattr(dispatch, "send_now", capture)
    return sent


class Captured(list):
    """Task messages kept off the broker, in order; `countdowns`: each one's delay (0: at once)."""

    def __init__(self) -> None:
        super().__init__()
        self.countdowns: list[float] = []
