"""make run's supervisor: start the Procfile's processes, restart any that ends, stop them all on
Ctrl-C or SIGTERM.

    python scripts/supervise.py web worker beat consumer

One process dying (a killed worker, a consumer that lost its database) must not stop the
others, so each is started again after a pause that grows while it keeps failing (1 s, 2 s, …
30 s; back to 1 s once it has run for a minute). Each runs in a process group of its own.
Stopping sends SIGTERM to each group's leader, waits for them all (a second Ctrl-C stops the
wait), then SIGKILLs what is left of the groups and says how each one ended. Output lines are
prefixed with the process's name, as honcho did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# An idle Celery worker on the filesystem broker takes 6-9 s to stop (measured): its loop notices
# the signal only between 2 s polls, then joins its pool's threads and its timer. Stopped before
# then, by SIGKILL, it took with it the messages it had fetched (that broker keeps them in the
# worker's memory) and their steps waited for reconcile; a warm stop hands them back.
STOP_GRACE = 20.0
STEADY = 60.0  # seconds of running after which a restart starts from the shortest pause again
PAUSES = (1, 2, 4, 8, 16, 30)


def procfile(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


class Supervised:
    def __init__(self, name: str, command: str, width: int, out_lock: threading.Lock) -> None:
        self.name, self.command, self.width, self.out_lock = name, command, width, out_lock
        self.popen: subprocess.Popen | None = None
        self.started = 0.0
        self.failures = 0

    def start(self) -> None:
        self.started = time.monotonic()
        self.popen = subprocess.Popen(
            ["bash", "-c", f"exec {self.command}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a signal to it reaches its children too
        )
        self.say(f"started with pid {self.popen.pid}")
        threading.Thread(target=self._pipe, args=(self.popen,), daemon=True).start()

    def _pipe(self, popen: subprocess.Popen) -> None:
        for raw in popen.stdout:
            self.say(raw.decode("utf-8", "replace").rstrip("\n"))

    def say(self, text: str) -> None:
        with self.out_lock:
            sys.stdout.write(f"{time.strftime('%H:%M:%S')} {self.name.ljust(self.width)} | {text}\n")
            sys.stdout.flush()

    def pause(self) -> float:
        """After it ended: how long to wait before starting it again."""
        if time.monotonic() - self.started > STEADY:
            self.failures = 0
        pause = PAUSES[min(self.failures, len(PAUSES) - 1)]
        self.failures += 1
        return pause

    def ask_to_stop(self) -> None:
        """SIGTERM to its leader alone: a Celery worker or gunicorn stops its own children, where
        SIGTERM to every pool process at once made the worker log each one, as an ERROR, as
        "exited with signal 15". A leader already gone leaves no one to ask: its group goes now."""
        if self.popen is None:
            return
        if self.popen.poll() is not None:
            self.signal(signal.SIGKILL)
            return
        try:
            os.kill(self.popen.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def running(self) -> bool:
        """Its leader or anything of its group. poll() first: a leader that exited but is not yet
        reaped still counts for killpg(…, 0), and kept every stop waiting out the grace."""
        return self.popen is not None and (self.popen.poll() is None or _group_alive(self.popen.pid))

    def finish(self) -> None:
        """After the wait: what is left of its group is killed, and how it ended is said."""
        if self.popen is None:
            return
        killed = self.running()
        self.signal(signal.SIGKILL)
        code = self.popen.wait()
        self.say("killed: it had not stopped" if killed else f"stopped (code {code})")

    def signal(self, signum: int) -> None:
        """To its whole group, even once its leader has ended: a dead worker's pool processes, a
        dead gunicorn's workers must not outlive it (nor hold its port)."""
        if self.popen is not None:
            try:
                os.killpg(self.popen.pid, signum)
            except ProcessLookupError:
                pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main(names: list[str]) -> int:
    entries = procfile(ROOT / "Procfile")
    unknown = [n for n in names if n not in entries]
    if unknown:
        print(f"Not in the Procfile: {', '.join(unknown)}", file=sys.stderr)
        return 2
    lock = threading.Lock()
    width = max(len(n) for n in names)
    processes = [Supervised(n, entries[n], width, lock) for n in names]
    stopping, hurry = threading.Event(), threading.Event()

    def stop(signum, _frame) -> None:
        if stopping.is_set():
            hurry.set()  # asked again while waiting: stop waiting
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):  # SIGHUP: the terminal closed
        signal.signal(signum, stop)
    for process in processes:
        process.start()
    restart_at: dict[str, float] = {}
    while not stopping.is_set():
        for process in processes:
            if process.name in restart_at:
                if time.monotonic() >= restart_at[process.name]:
                    del restart_at[process.name]
                    process.start()
            elif process.popen.poll() is not None:
                process.signal(signal.SIGKILL)  # what its group left behind goes with it
                pause = process.pause()
                process.say(f"ended with code {process.popen.returncode}; starting it again in {pause} s")
                restart_at[process.name] = time.monotonic() + pause
        stopping.wait(0.2)
    print(
        f"Stopping: the worker finishes its running tasks and hands back the messages it fetched "
        f"(up to {STOP_GRACE:g} s; Ctrl-C again to kill now).",
        flush=True,
    )
    for process in processes:
        process.say("stopping")
        process.ask_to_stop()
    deadline = time.monotonic() + STOP_GRACE
    while time.monotonic() < deadline and not hurry.is_set() and any(p.running() for p in processes):
        time.sleep(0.1)
    for process in processes:
        process.finish()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
