"""Backpressure: how much work is waiting, and the gate every submission passes.

Waiting work is counted in the database (jobs not yet split + chunks not yet indexed), not from the
broker's queue depths: the database count is the same on both brokers and includes work a worker
has taken but not finished, while the broker shows only ready messages (RabbitMQ's message_count
leaves out unacked ones; the filesystem broker deletes a message's file as a worker takes it, and
loses it for good if that worker's main process dies), and a job's split is one message that later
becomes one per chunk. One indexed query on Job, whatever the backlog.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, F, Q, Sum

from indexing.errors import QuernError
from indexing.models import ACTIVE_STATUSES, Job, Status


@dataclass(frozen=True)
class Waiting:
    jobs: int  # queued or splitting
    chunks: int  # of indexing jobs, not yet done

    @property
    def total(self) -> int:
        return self.jobs + self.chunks


def waiting_work() -> Waiting:
    """Jobs not yet split plus chunks not yet indexed, in one query on the job table."""
    counts = Job.objects.filter(status__in=ACTIVE_STATUSES).aggregate(
        jobs=Count("pk", filter=~Q(status=Status.INDEXING)),
        chunks=Sum(F("chunks_total") - F("chunks_done"), filter=Q(status=Status.INDEXING)),
    )
    return Waiting(jobs=counts["jobs"] or 0, chunks=counts["chunks"] or 0)


def over_limit(limit: int | None = None) -> bool:
    """True when waiting work has reached the limit (QUERN_MAX_WAITING by default)."""
    return waiting_work().total >= (settings.QUERN_MAX_WAITING if limit is None else limit)


class Overloaded(QuernError):
    """Too much work is waiting: come back after `retry_after` seconds. Nothing was stored."""

    status = 503

    def __init__(self, waiting: int, limit: int) -> None:
        self.retry_after = settings.QUERN_RETRY_AFTER
        super().__init__(
            "overloaded",
            f"Quern is busy: {waiting:,} pieces of work are waiting (the limit is {limit:,}). Nothing was "
            f"stored; please submit again in {self.retry_after} seconds.",
        )


# The count costs a query over every active job (~1.5 ms with 2,000 waiting: a third of a small
# submission's time, measured). Far from the limit it is reused for GATE_REUSE seconds, counting
# this process's own submissions on top; within GATE_MARGIN of the limit it is asked every time.
GATE_REUSE = 0.25
GATE_MARGIN = 0.8
_gate = {"at": -1e9, "waiting": 0, "since": 0}
_gate_lock = threading.Lock()


def check() -> None:
    """The gate at every submission edge (form, API): raise Overloaded past the limit."""
    limit = settings.QUERN_MAX_WAITING
    now = time.monotonic()
    with _gate_lock:
        fresh = now - _gate["at"] < GATE_REUSE
        if fresh and _gate["waiting"] + _gate["since"] < GATE_MARGIN * limit:
            _gate["since"] += 1
            return
    waiting = waiting_work().total
    with _gate_lock:
        _gate.update(at=now, waiting=waiting, since=1)
    if waiting >= limit:
        raise Overloaded(waiting, limit)
