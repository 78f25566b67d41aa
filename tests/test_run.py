"""`make run` as a new user meets it: the web app and a worker index a document, a worker (or
beat) that dies is started again while the web goes on, and SIGTERM to its process group stops
everything within seconds, leaving no process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, wait_for


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _alive(pids: set[int]) -> set[int]:
    alive = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.add(pid)
    return alive


def _descendants(root: int) -> set[int]:
    """Every process below `root` (the supervisor starts each of its processes in a session of its own)."""
    children: dict[int, list[int]] = {}
    listing = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    for line in listing.splitlines():
        pid, ppid = (int(n) for n in line.split())
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _process_with(root: int, word: str) -> int:
    """The topmost process below `root` whose command line has `word` (the supervised one)."""
    for pid in sorted(_descendants(root)):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError):
            continue
        if word.encode() in cmdline and parent == root:
            return pid
    raise AssertionError(f"no {word} process below {root}")


def _submit(base: str, name: str, content: str) -> int:
    """POST a document as JSON; its job's id."""
    request = urllib.request.Request(
        f"{base}/api/documents",
        data=json.dumps({"name": name, "content": content}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["id"]


def _status(base: str, job_id: int) -> str | None:
    return json.loads(_get(f"{base}/api/jobs/{job_id}")[1] or b"{}").get("status")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except OSError:
        return 0, b""


@pytest.mark.timeout(240)
def test_make_run_indexes_restarts_a_dead_worker_or_beat_and_sigterm_stops_every_process(tmp_path):
    # The embedded default, whatever this test run uses: a broker and database of its own, so its
    # worker never takes the test suite's messages.
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "QUERN_TEST_DB")
    }
    port = _free_port()
    env.update(QUERN_DATA_DIR=str(tmp_path / "var"), QUERN_PORT=str(port), QUERN_WORKER_CONCURRENCY="1")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True)
    log_path = tmp_path / "run.log"
    with open(log_path, "wb") as log:
        run = subprocess.Popen(
            ["bash", "scripts/run.sh"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _get(f"{base}/")[0] == 200, timeout=60, message="the web app to answer")
        wait_for(lambda: b" ready." in log_path.read_bytes(), timeout=60, message="the worker to start")
        job = _submit(base, "hello.txt", "a quiet heron\n")
        wait_for(lambda: _status(base, job) == "succeeded", timeout=60, message="the job to succeed")
        assert json.loads(_get(f"{base}/api/search?q=heron")[1])["total"] == 1
        # The production server serves the pages' static files itself (no runserver, no DEBUG needed).
        status, css = _get(f"{base}/static/quern.css")
        assert status == 200 and css
        assert b"Open mode: no API key or login is asked" in log_path.read_bytes()
        assert b"No hostname was supplied" not in log_path.read_bytes()  # no warning a user must read past

        # The worker's main process killed: the supervisor starts it again, the web goes on, and
        # a document submitted meanwhile is indexed by the new worker.
        worker_main = _process_with(run.pid, "project worker")
        os.kill(worker_main, signal.SIGKILL)
        wait_for(lambda: b"ended with code -9" in log_path.read_bytes(), timeout=10, message="the death seen")
        assert _get(f"{base}/")[0] == 200
        again = _submit(base, "again.txt", "a second egret\n")
        wait_for(lambda: log_path.read_bytes().count(b" ready.") >= 2, timeout=60, message="the new worker")
        wait_for(
            lambda: _status(base, again) == "succeeded",
            timeout=90,
            message="the job submitted while the worker was down to succeed",
        )
        assert b"Open queue off" in log_path.read_bytes()

        # Beat is a process of its own, not a child of the worker's pool: killed, it is started
        # again (reconcile and backfill feeding go on).
        os.kill(_process_with(run.pid, "project beat"), signal.SIGKILL)
        wait_for(
            lambda: log_path.read_bytes().count(b"beat: Starting...") >= 2, timeout=30, message="a new beat"
        )
        # Working, not only started: it opened its schedule and sends what is due (every 5 s).
        restarted_at = log_path.read_bytes().rindex(b"beat: Starting...")
        wait_for(
            lambda: b"Sending due task" in log_path.read_bytes()[restarted_at:],
            timeout=30,
            message="the new beat to send a due task",
        )
    finally:
        started = {run.pid} | _descendants(run.pid)
        os.killpg(run.pid, signal.SIGTERM)
        try:
            run.wait(timeout=40)  # the supervisor's own limit is 20 s
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    # the supervisor, the web server, the worker and its pool process, beat
    assert len(started) >= 5, log_path.read_text()
    wait_for(lambda: not _alive(started), timeout=10, message="every process to be gone")
    assert _get(f"{base}/")[0] == 0
    # A clean stop: each process was asked to stop, not its children behind its back (SIGTERM to
    # every pool process made the worker log each one as "exited with signal 15"), and each one
    # stopped by itself, none killed (the worker's warm stop hands back the messages it fetched).
    log = log_path.read_text()
    stopped = log[log.index("stopping") :]
    assert "signal 15" not in stopped and "exited with" not in stopped, stopped
    assert "killed" not in stopped, stopped
    for name in ("web", "worker", "beat"):
        assert re.search(rf"{name} +\| stopped \(code 0\)", stopped), stopped
