"""Backpressure: how much work is waiting, and the gate every submission passes.

Waiting work is counted in the database (jobs not yet split + chunks not yet indexed), not from the
broker's queue depths: the database count is the same on both brokers and includes work a worker
has taken but not finished, while the broker shows only ready messages (RabbitMQ's message_count
leaves out unacked ones; the filesystem broker deletes a message's file as a worker takes it, and
loses it for good if that worker's main process dies), and a job's split is one message that later
becomes one per chunk. One indexed query on Job, whatever the backlog.
"""

from __future__ import annotations

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


def check() -> None:
    """The gate at every submission edge (form, API, AMQP consumer): raise Overloaded past the limit."""
    waiting, limit = waiting_work().total, settings.QUERN_MAX_WAITING
    if waiting >= limit:
        raise Overloaded(waiting, limit)
