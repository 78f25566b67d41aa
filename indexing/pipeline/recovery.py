"""Reconcile: re-send what lost messages left undone; the database, not the broker, is the record."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from indexing import blobs
from indexing.broker.monitor import queue_depth
from indexing.models import FINISHED_STATUSES, Chunk, Document, Job, Record, Source, Status
from indexing.pipeline import attempts, batching, dispatch, notify, storage

logger = logging.getLogger(__name__)

ENDED_BADLY = (Status.FAILED, Status.CANCELLED)
STALE_INPUTS_PER_RUN = 500  # files removed per reconcile run: bounds its time after a flood of failures
STALLED_PER_RUN = 10_000  # jobs re-sent per run, oldest first: bounds its memory and its messages


def _queue_is_empty(name: str) -> bool:
    """True when the queue holds no ready message (or its depth cannot be read: then assume lost)."""
    depth = queue_depth(name)
    return depth is None or depth == 0


def _queue_filter(idle_queues: set[str], queue: str, source: str = "source") -> Q:
    """Rows whose messages go to one of `idle_queues`: a job's (or, with source="job__source",
    a chunk's job's) interactive steps to `queue`, a backfill's to the backfill queue."""
    interactive = queue in idle_queues
    backfill = settings.QUERN_BACKFILL_QUEUE in idle_queues
    if interactive and backfill:
        return Q()
    if interactive:
        return ~Q(**{source: Source.BACKFILL})
    if backfill:
        return Q(**{source: Source.BACKFILL})
    return Q(pk__in=[])


def reconcile(now: datetime | None = None) -> dict[str, int]:
    """Re-send what lost messages left undone; the database, not the broker, is the record."""
    now = now or timezone.now()
    idle = now - timedelta(seconds=settings.QUERN_RECONCILE_AFTER)
    # A split may legitimately run up to the task time limit before it looks lost.
    split_idle = idle - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    # A message sent long ago may only be waiting its turn behind a backlog: re-send only when the
    # queue it went to has nothing ready (so it was taken and lost), never into a backlog. Asked
    # first, so the cap below counts only what may be re-sent.
    idle_queues = {name for name in dispatch.job_queues() if _queue_is_empty(name)}
    # A small queued job waits for its lane's batch trigger (re-sent below, one per lane), not a
    # message of its own: a million files of an archive waiting their turn are not a million
    # lost messages (listing them took one reconcile 15 s and 250 MB).
    stalled_splits = list(
        Job.objects.filter(
            Q(status=Status.QUEUED, updated_at__lt=idle) & ~batching.small_jobs()
            | Q(status=Status.SPLITTING, updated_at__lt=split_idle)
        )
        .filter(_queue_filter(idle_queues, dispatch.split_queue()))
        .order_by("pk")
        .values_list("pk", flat=True)[:STALLED_PER_RUN]
    )
    stalled_indexing = set(
        Job.objects.filter(status=Status.INDEXING, updated_at__lt=idle).values_list("pk", flat=True)
    )
    # One query for the stalled chunks of all jobs, not one per job.
    stalled_chunks = Chunk.objects.filter(job__status=Status.INDEXING, done_at=None).filter(
        Q(sent_at__lt=idle) | Q(sent_at=None, job__updated_at__lt=idle)
    )
    stalled_chunks = stalled_chunks.filter(_queue_filter(idle_queues, dispatch.index_queue(), "job__source"))
    undone_rows = list(stalled_chunks.order_by("job_id", "number").values_list("pk", "job_id", "number"))
    undone = [(job_id, number) for _, job_id, number in undone_rows]
    waiting = set(
        Chunk.objects.filter(job_id__in=stalled_indexing, done_at=None).values_list("job_id", flat=True)
    )
    unfinalized = stalled_indexing - waiting
    # A small job waits for its lane's batch trigger; a trigger lost with its message is sent
    # again here, for the oldest waiting job of each lane, well before the job looks stalled.
    stalled_splits += [job_id for job_id in batching.waiting_triggers(now) if job_id not in stalled_splits]
    messages: list[dispatch.Message] = [("quern.split", [job_id]) for job_id in stalled_splits]
    messages += [("quern.index_chunk", [job_id, number]) for job_id, number in undone]
    messages += [("quern.finalize", [job_id]) for job_id in sorted(unfinalized)]
    counts = {
        "split": len(stalled_splits),
        "index_chunk": len(undone),
        "finalize": len(unfinalized),
        "purge_job": 0,
    }
    touched = [*stalled_splits, *stalled_indexing]
    Chunk.objects.filter(pk__in=[pk for pk, _, _ in undone_rows]).update(sent_at=now)
    leftovers = (
        Job.objects.filter(status__in=FINISHED_STATUSES, finished_at__lt=idle)
        .exclude(document__live_job=F("pk"))
        .filter(Exists(Record.objects.filter(job_id=OuterRef("pk"))))
        .values_list("pk", flat=True)
    )
    for job_id in leftovers:
        messages.append(("quern.purge_job", [job_id]))
        counts["purge_job"] += 1
    # Touch what was re-sent, so the next run waits another interval before re-sending it.
    Job.objects.filter(pk__in=touched).update(updated_at=now)
    dispatch.send_now(messages)
    # Events whose publish failed at the job's end (broker down, no confirm): publish them again.
    unpublished = list(
        Job.objects.filter(events_pending=True, finished_at__lt=idle)
        .order_by("pk")
        .values_list("pk", flat=True)[:1000]
    )
    counts["events"] = notify.publish_job_ends(unpublished) if unpublished else 0
    counts["inputs_removed"] = remove_stale_inputs(now)
    counts["attempt_counts_removed"] = attempts.sweep(now.timestamp())
    if any(counts.values()):
        logger.warning("reconcile re-sent %s", counts)
    return counts


def remove_stale_inputs(now: datetime) -> int:
    """Stored inputs that only failed or cancelled jobs read, ended QUERN_KEEP_FAILED_INPUT ago:
    removed, and their jobs (and a document that never went live) say so, so a retry answers
    410 input_removed. An input a live version, an unfinished or a newer job reads is kept."""
    before = now - timedelta(seconds=settings.QUERN_KEEP_FAILED_INPUT)
    stale_jobs = Job.objects.filter(status__in=ENDED_BADLY, finished_at__lt=before)
    reading_jobs, live_documents = _readers(before)
    # Only names nothing else reads: one a live version keeps must not fill every run's page.
    names = set(
        stale_jobs.exclude(file="")
        .exclude(Exists(reading_jobs.filter(file=OuterRef("file"))))
        .exclude(Exists(live_documents.filter(file=OuterRef("file"))))
        .values_list("file", flat=True)
        .distinct()[:STALE_INPUTS_PER_RUN]
    )
    # A file stored again lately (store_stream touches one it reuses) may be read by a job whose
    # transaction has not committed yet: it waits a keep period more.
    gone = sorted(name for name in names if not _touched_since(name, before))
    if not gone:
        return 0
    with transaction.atomic():
        stale_jobs.filter(file__in=gone).update(file="")
        # Only a document with nothing but stale jobs: one just made for the same bytes keeps its file.
        Document.objects.filter(file__in=gone, live_job__isnull=True).exclude(
            Exists(Job.objects.filter(document=OuterRef("pk")).exclude(pk__in=stale_jobs.values("pk")))
        ).update(file="")
    # A submission of the same bytes committed since the read above keeps its file.
    needed = {*reading_jobs.filter(file__in=gone).values_list("file", flat=True)}
    needed |= {*live_documents.filter(file__in=gone).values_list("file", flat=True)}
    gone = [name for name in gone if name not in needed]
    for name in gone:
        if blobs.is_inline(name):
            blobs.delete_unless_stored_since(name, before)
        else:
            storage.delete(name)
    return len(gone)


def _readers(before: datetime) -> tuple[QuerySet[Job], QuerySet[Document]]:
    """What keeps a stored input: any job but a failed or cancelled one ended before `before`,
    and a live document (for re-indexing)."""
    return (
        Job.objects.exclude(status__in=ENDED_BADLY, finished_at__lt=before),
        Document.objects.filter(live_job__isnull=False),
    )


def _touched_since(name: str, moment: datetime) -> bool:
    try:
        return default_storage.get_modified_time(name) > moment
    except (FileNotFoundError, NotImplementedError):
        return False
