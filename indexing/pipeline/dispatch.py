"""Sending task messages: after the commit, routed by who asked (interactive work or a backfill)."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from indexing.models import Job, Source

logger = logging.getLogger(__name__)

Message = tuple[str, list[Any]]  # (task name, arguments): ids and chunk numbers, never payloads

# Steps of a job: their first argument is the job id, and a backfill's go to the backfill queue.
JOB_TASKS = {"quern.split", "quern.index_chunk", "quern.finalize", "quern.purge_job"}


def split_queue() -> str:
    return settings.CELERY_TASK_ROUTES["quern.split"]["queue"]


def index_queue() -> str:
    return settings.CELERY_TASK_ROUTES["quern.index_chunk"]["queue"]


def job_queues() -> set[str]:
    """The queues a job's steps may wait on."""
    return {split_queue(), index_queue(), settings.QUERN_BACKFILL_QUEUE}


def _backfill_jobs(messages: list[Message]) -> set[int]:
    ids = {args[0] for name, args in messages if name in JOB_TASKS and args}
    if not ids:
        return set()
    return set(Job.objects.filter(pk__in=ids, source=Source.BACKFILL).values_list("pk", flat=True))


def send_now(messages: list[Message], countdown: float | None = None) -> None:
    """Publish task messages at once (to be run `countdown` seconds later, if given); a broker
    that refuses them is logged, not raised."""
    if not messages:
        return
    try:
        backfill = _backfill_jobs(messages)
        with current_app.producer_or_acquire() as producer:
            for task_name, args in messages:
                # Interactive work and backfills never share one FIFO (README, "Priorities").
                is_backfill = task_name in JOB_TASKS and args and args[0] in backfill
                options: dict[str, Any] = {"queue": settings.QUERN_BACKFILL_QUEUE} if is_backfill else {}
                if countdown:
                    options["countdown"] = countdown
                current_app.send_task(task_name, args=args, producer=producer, **options)
    except SoftTimeLimitExceeded:
        raise  # the task's own time is up (a long unpack's hand-off): it must stop, not go on
    except Exception:
        # The broker is down at commit, refused the publish (MessageNacked: a queue full under the
        # max-length policy), or refused the connection itself (a vhost or a password it does not
        # know: amqp's own errors, which kombu does not wrap). The rows are committed and say what
        # is left to do; reconcile re-sends it later (PITFALLS.md, "Enqueue on commit"). Raised,
        # it would answer a submission that was stored with a 500.
        logger.exception("Could not publish %d message(s); reconcile will re-send them", len(messages))


def send_after_commit(messages: list[Message], countdown: float | None = None) -> None:
    """Publish task messages once the current transaction commits (at once outside one)."""
    if messages:
        # Looked up at commit time, so tests can keep messages off the broker (conftest).
        transaction.on_commit(lambda: send_now(messages, countdown=countdown))
