"""A chunk's runs, counted before its parse: past QUERN_MAX_CHUNK_ATTEMPTS its job fails.

A run that kills its worker (out of memory, a crash in a parser) never reaches the code that
uncounts it, so the count must be durable before the run starts. On PostgreSQL it is one UPDATE
of the chunk's row: a row lock, which no other chunk waits for.

On SQLite the same UPDATE waited for the database's one writer, most often the other worker's
whole chunk transaction, before this chunk's parse could start: sentences.csv took 19.86 s
against 17.02 s with no count at all (`make bench`, medians of 3). There the count lives in a
small database file of its own beside the main one (`<name>.attempts`, WAL), whose writer is held
for one statement. SQLite is single-host by nature (WAL's shared memory), so every worker sees
that file. A commit there is in the operating system's hands as soon as it returns, which is
what a killed worker needs; an operating system crash may lose a count, and costs one more run.

Each count is keyed by the chunk, its job and the job's creation time, so a database recreated
under the same name (the test suite's) never inherits another's counts. The chunk's own
`attempts` column gets the count when the chunk is done; `sweep` (reconcile) removes counts
nobody touched for a day.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from django.db import OperationalError, connection
from django.db.models import F, Value
from django.db.models.functions import Greatest

from indexing.models import Chunk

logger = logging.getLogger(__name__)

FORGET_AFTER = 24 * 3600  # seconds: a count untouched this long belongs to a job long ended
_local = threading.local()
_inherited: list[sqlite3.Connection] = []  # connections opened before a fork: kept, never closed


def count(chunk: Chunk) -> int:
    """Count one more run of `chunk` (durably) and return how many have started."""
    path = _side_path()
    if path is None:
        with connection.cursor() as cursor:  # one statement and one commit: the hot path
            cursor.execute(
                "UPDATE indexing_chunk SET attempts = attempts + 1 WHERE id = %s RETURNING attempts",
                [chunk.pk],
            )
            return cursor.fetchone()[0]
    with _side_write(path) as side:
        row = side.execute(
            "INSERT INTO attempts (key, runs, touched) VALUES (?, 1, ?) ON CONFLICT (key)"
            " DO UPDATE SET runs = runs + 1, touched = excluded.touched RETURNING runs",
            [_key(chunk), time.time()],
        ).fetchall()  # stepped to its end, so the commit finds no statement under way
    return row[0][0]


def uncount(chunk: Chunk) -> None:
    """The run ended with an exception (its worker lives): it does not count as a crash."""
    path = _side_path()
    if path is None:
        Chunk.objects.filter(pk=chunk.pk, attempts__gt=0).update(attempts=F("attempts") - 1)
        return
    with _side_write(path) as side:
        side.execute("UPDATE attempts SET runs = runs - 1 WHERE key = ? AND runs > 0", [_key(chunk)])


def in_row(runs: int) -> Greatest:
    """The chunk row's `attempts` once its run ends (done, or past the limit): the runs counted
    (beside SQLite's database, or in the row itself), never less than a concurrent run's."""
    return Greatest("attempts", Value(runs))


def forget(chunk: Chunk) -> None:
    """The chunk is done, or its job ended, and its row holds its count: the count beside the
    database is no longer needed. One that cannot be removed now is left to `sweep`."""
    path = _side_path()
    if path is None:
        return
    try:
        with _side_write(path) as side:
            side.execute("DELETE FROM attempts WHERE key = ?", [_key(chunk)])
    except OperationalError:
        logger.warning("Could not remove chunk %s's count of runs; reconcile will", chunk.pk, exc_info=True)


def sweep(now: float | None = None) -> int:
    """Remove the counts nobody touched for FORGET_AFTER seconds (chunks of jobs that ended
    while running, or whose done chunk's count could not be removed); how many."""
    path = _side_path()
    if path is None:
        return 0
    try:
        with _side_write(path) as side:
            return side.execute(
                "DELETE FROM attempts WHERE touched < ?", [(now or time.time()) - FORGET_AFTER]
            ).rowcount
    except OperationalError:  # reconcile's other work is done, and the next run sweeps
        logger.warning("Could not sweep the counts of chunks' runs", exc_info=True)
        return 0


def _key(chunk: Chunk) -> str:
    return f"{chunk.pk}:{chunk.job_id}:{chunk.job.created_at.timestamp():.6f}"


def _side_path() -> str | None:
    """The counts' file beside the SQLite database; None on a database that counts in the
    chunk's row (PostgreSQL, or SQLite in memory)."""
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return f"{name}.attempts"


@contextmanager
def _side_write(path: str) -> Iterator[sqlite3.Connection]:
    """One transaction on this process's connection to the counts' file, committed on leaving.

    A failure there (a full disk, a lock held past the timeout, the file removed under a running
    worker) is Django's OperationalError, as the same failure of the main database is: the task
    retries, and the job is not failed for it. The connection is opened again on the next call.
    """
    try:
        if getattr(_local, "opened", None) != (os.getpid(), path):
            _drop()
            _local.connection = _open(path)
            _local.opened = (os.getpid(), path)
        with _local.connection as side:
            yield side
    except (sqlite3.Error, OSError) as error:
        _drop()  # a broken connection is not kept
        raise OperationalError(f"The count of chunks' runs beside the database failed: {error}") from error


def _drop() -> None:
    side, opened = getattr(_local, "connection", None), getattr(_local, "opened", None)
    _local.connection = _local.opened = None
    if side is None:
        return
    if opened is not None and opened[0] != os.getpid():
        # Opened before a fork: never closed in the child (SQLite's locks are the parent's),
        # only left behind; the child opens its own.
        _inherited.append(side)
        return
    with suppress(sqlite3.Error):
        side.close()


def _open(path: str) -> sqlite3.Connection:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # Each write begins IMMEDIATE (takes the writer at once, as the main database's do).
    side = sqlite3.connect(path, timeout=20, isolation_level="IMMEDIATE")
    side.execute("PRAGMA journal_mode=WAL")
    side.execute("PRAGMA synchronous=NORMAL")
    side.execute(
        "CREATE TABLE IF NOT EXISTS attempts"
        " (key TEXT PRIMARY KEY, runs INTEGER NOT NULL, touched REAL NOT NULL) WITHOUT ROWID"
    )
    return side
