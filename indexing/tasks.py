"""Celery tasks: short shells around the pipeline; messages carry ids and chunk numbers only."""

from __future__ import annotations

import logging

from celery import Task, shared_task, states
from django.db import InterfaceError, OperationalError

from indexing import pipeline
from indexing.pipeline import backfills

logger = logging.getLogger(__name__)


INFRASTRUCTURE = (OperationalError, InterfaceError)


class JobTask(Task):
    """A pipeline step of one job: retried while the database is away, else fails its job.

    A database error that passes (a locked SQLite file, a restarted or unreachable PostgreSQL,
    a deadlock) is the infrastructure's, not the document's: the step is retried, 1 s, 2 s, …
    then every 30 s, about 13 minutes in all, and if the database is still away after that the
    job is left as it is for `reconcile` to send the step again once it is back. It never fails
    the job (a restart of 3 s used to use up 4 quick retries and purge the indexed records).
    """

    autoretry_for = INFRASTRUCTURE
    max_retries = 30
    retry_backoff = 1
    retry_backoff_max = 30
    retry_jitter = False  # the schedule above, as written (jitter would only shorten it)

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        job_id = args[0] if args else kwargs.get("job_id")
        if job_id is None:
            return
        if isinstance(exc, INFRASTRUCTURE):
            logger.error(
                "Task %s for job %s gave up while the database was away; reconcile sends it again",
                self.name,
                job_id,
                exc_info=exc,
            )
            return
        step = self.name.removeprefix("quern.").replace("_", " ")
        where = f" (chunk {args[1]})" if len(args) > 1 else ""
        logger.error("Task %s for job %s failed", self.name, job_id, exc_info=exc)
        pipeline.fail(
            job_id,
            {
                "code": "internal_error",
                "message": f"Quern failed while running {step}{where}: {type(exc).__name__}: {exc}. "
                "Nothing else was changed; retry the job, and report it if it fails again.",
            },
        )


@shared_task(name="quern.split", base=JobTask)
def split(job_id: int) -> None:
    batch = pipeline.take_batch(job_id)  # a small document: taken with the others waiting
    if batch is None:
        pipeline.split_alone(job_id)  # a one-chunk document is indexed here too, at once
    elif batch:
        pipeline.run_batch(batch[0], batch)  # its leader first: this job, or the one it passed to


# Its success is stored in the chunk's own transaction, not by Celery after the task returns: on
# SQLite every write waits for the one writer, and that one, after each chunk, waited for the
# other worker's whole chunk (README, "Many small documents, and big files"). A failure is
# stored by Celery as before (store_errors_even_if_ignored).
@shared_task(
    name="quern.index_chunk", base=JobTask, bind=True, ignore_result=True, store_errors_even_if_ignored=True
)
def index_chunk(self: Task, job_id: int, chunk: int) -> None:
    stored = []

    def store_success() -> None:
        self.backend.store_result(self.request.id, None, states.SUCCESS, request=self.request)
        stored.append(True)

    last = pipeline.index_chunk(job_id, chunk, with_done=store_success)
    if not stored:  # it wrote nothing (a done chunk sent again, a stopped job): stored on its own
        store_success()
    if last:  # the last chunk: finish here, no hop through the broker
        pipeline.finalize(job_id)


@shared_task(name="quern.finalize", base=JobTask)
def finalize(job_id: int) -> None:
    pipeline.finalize(job_id)


@shared_task(name="quern.purge_job")
def purge_job(job_id: int) -> int:
    return pipeline.purge_job(job_id)


@shared_task(name="quern.reconcile")
def reconcile() -> dict[str, int]:
    return pipeline.reconcile()


@shared_task(name="quern.feed_backfills")
def feed_backfills() -> int:
    return backfills.feed()
