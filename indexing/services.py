"""The only code that writes: submit, split, index a chunk, finalize, fail, cancel, retry, purge, reconcile.

Every function here may run twice for the same job (at-least-once delivery); each guards its
state change with a row lock and the status it expects, so a second run changes nothing.
"""
from __future__ import annotations

import hashlib
import logging
import tempfile
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import IO, Any

from amqp.exceptions import MessageNacked
from celery import current_app
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from kombu.exceptions import KombuError

from indexing import events
from indexing.errors import QuernError
from indexing.formats import detect_format, parse_chunk, split_document
from indexing.formats.encoding import sniff_encoding, transcode_to_utf8
from indexing.formats.records import ParseError
from indexing.models import ACTIVE_STATUSES, FINISHED_STATUSES, Chunk, Document, Job, Record, Source, Status
from indexing.search import get_backend

logger = logging.getLogger(__name__)

HEAD_BYTES = 64 * 1024
MAX_STORED_ERRORS = 1000  # per job; error_count keeps the full number
COPY_BLOCK = 1 << 20


# --- sending tasks ------------------------------------------------------------------------


# Steps of a job: their first argument is the job id, and a backfill's go to the backfill queue.
JOB_TASKS = {"quern.split", "quern.index_chunk", "quern.finalize", "quern.purge_job"}


def _backfill_jobs(messages: list[tuple[str, list[Any]]]) -> set[int]:
    ids = {args[0] for name, args in messages if name in JOB_TASKS and args}
    if not ids:
        return set()
    return set(Job.objects.filter(pk__in=ids, source=Source.BACKFILL).values_list("pk", flat=True))


def _send_now(messages: list[tuple[str, list[Any]]]) -> None:
    try:
        backfill = _backfill_jobs(messages)
        with current_app.producer_or_acquire() as producer:
            for task_name, args in messages:
                # Interactive work and backfills never share one FIFO (README, "Priorities").
                options = {"queue": settings.QUERN_BACKFILL_QUEUE} if task_name in JOB_TASKS and args and args[0] in backfill else {}
                current_app.send_task(task_name, args=args, producer=producer, **options)
    except (KombuError, OSError, MessageNacked):
        # The broker is down at commit, or refused the publish (MessageNacked: a queue full under
        # the max-length policy): the rows are committed and say what is left to do; reconcile
        # re-sends it later (PITFALLS.md, "Enqueue on commit").
        logger.exception("Could not publish %d message(s); reconcile will re-send them", len(messages))


def send_after_commit(messages: list[tuple[str, list[Any]]]) -> None:
    """Publish task messages once the current transaction commits (at once outside one)."""
    if messages:
        transaction.on_commit(lambda: _send_now(messages))


# --- submit -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredFile:
    name: str  # storage name, content-addressed
    size: int
    sha256: str
    head: bytes


def store_stream(stream: IO[bytes]) -> StoredFile:
    """Stream an upload into storage under its sha256, never holding it whole in memory."""
    digest = hashlib.sha256()
    size = 0
    head = b""
    limit = settings.QUERN_MAX_UPLOAD_BYTES
    with tempfile.TemporaryFile() as spool:
        while block := stream.read(COPY_BLOCK):
            if len(head) < HEAD_BYTES:
                head += block[: HEAD_BYTES - len(head)]
            size += len(block)
            if size > limit:
                raise QuernError(
                    "too_large",
                    f"The document is larger than the limit of {limit:,} bytes (QUERN_MAX_UPLOAD_BYTES).",
                    status=413,
                )
            digest.update(block)
            spool.write(block)
        sha256 = digest.hexdigest()
        name = f"documents/{sha256[:2]}/{sha256}"
        if not default_storage.exists(name):
            spool.seek(0)
            name = default_storage.save(name, File(spool))
    return StoredFile(name=name, size=size, sha256=sha256, head=head)


def _checked_chunk_size(chunk_size: int | None) -> int:
    if chunk_size is None:
        return settings.QUERN_CHUNK_SIZE
    if not 1 <= chunk_size <= settings.QUERN_MAX_CHUNK_SIZE:
        raise QuernError("bad_chunk_size", f"chunk_size must be between 1 and {settings.QUERN_MAX_CHUNK_SIZE:,}; got {chunk_size}.")
    return chunk_size


def submit(
    stream: IO[bytes],
    *,
    name: str,
    source: str = Source.API,
    format: str | None = None,
    encoding: str | None = None,
    chunk_size: int | None = None,
    replace: int | None = None,
    idempotency_key: str | None = None,
    reply_to: str = "",
    correlation_id: str = "",
    metadata: dict[str, Any] | None = None,
) -> Job:
    """Store a document (or a new version of `replace`) and its job; split after commit.

    With an `idempotency_key` already used, nothing is stored and that key's job is returned.
    """
    if idempotency_key and (existing := _job_for_key(idempotency_key)):
        return existing
    name = (name or "").strip()[:255]
    if not name:
        raise QuernError("missing_name", "A document needs a name (a file name, or the name field).")
    chunk_size = _checked_chunk_size(chunk_size)
    stored = store_stream(stream)
    if stored.size == 0:
        raise QuernError("empty_document", f"{name} is empty: there is nothing to index.")
    try:
        fmt = detect_format(format or None, name, stored.head)
        if encoding:  # reject an unknown encoding now, and store its canonical name
            encoding = sniff_encoding(b"", encoding)
    except ParseError as error:
        raise QuernError(error.code, error.message, status=415 if error.code == "unknown_format" else 400) from error
    try:
        return _create_job(
            stored, name=name, source=source, fmt=fmt, encoding=encoding, chunk_size=chunk_size, replace=replace,
            idempotency_key=idempotency_key, reply_to=reply_to[:255], correlation_id=correlation_id[:255],
            metadata=metadata or {},
        )
    except IntegrityError:
        # Two submissions with one key at once: the other committed first (the unique key says so).
        if idempotency_key and (existing := _job_for_key(idempotency_key)):
            return existing
        raise


def _job_for_key(key: str) -> Job | None:
    return Job.objects.select_related("document").filter(idempotency_key=key).first()


def _create_job(
    stored: StoredFile, *, name: str, source: str, fmt: str, encoding: str | None, chunk_size: int,
    replace: int | None, idempotency_key: str | None, reply_to: str, correlation_id: str, metadata: dict[str, Any],
) -> Job:
    with transaction.atomic():
        if idempotency_key and (existing := _job_for_key(idempotency_key)):
            return existing
        if replace is not None:
            document = Document.objects.filter(pk=replace).first()
            if document is None:
                raise QuernError("no_such_document", f"There is no document {replace} to replace.", status=404)
        else:
            document = Document.objects.create(
                name=name, format=fmt, encoding=encoding or "", size=stored.size, sha256=stored.sha256, file=stored.name
            )
        job = Job.objects.create(
            document=document,
            source=source,
            format=fmt,
            encoding=encoding or "",
            size=stored.size,
            sha256=stored.sha256,
            file=stored.name,
            chunk_size=chunk_size,
            idempotency_key=idempotency_key or None,
            reply_to=reply_to,
            correlation_id=correlation_id,
            metadata=metadata,
        )
        send_after_commit([("quern.split", [job.pk])])
    return job


def _job_over(stored: Document | Job, *, document: Document, **fields: Any) -> Job:
    """A queued job over the stored input of a document or an earlier job; split after commit."""
    job = Job.objects.create(
        document=document,
        format=stored.format,
        encoding=stored.encoding,
        size=stored.size,
        sha256=stored.sha256,
        file=stored.file.name,
        **fields,
    )
    send_after_commit([("quern.split", [job.pk])])
    return job


def reindex(document_id: int, *, source: str = Source.ADMIN, chunk_size: int | None = None, backfill_id: int | None = None) -> Job:
    """A new job over the document's stored bytes; the live version stays until it succeeds."""
    with transaction.atomic():
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            raise QuernError("not_found", f"There is no document {document_id}.", status=404)
        return _job_over(document, document=document, source=source, chunk_size=_checked_chunk_size(chunk_size), backfill_id=backfill_id)


def retry(job_id: int, *, source: str = Source.API) -> Job:
    """A new job over the same input as a failed or cancelled job (same bytes, format, chunk size)."""
    with transaction.atomic():
        old = Job.objects.select_related("document").filter(pk=job_id).first()
        if old is None:
            raise QuernError("not_found", f"There is no job {job_id}.", status=404)
        if old.status not in (Status.FAILED, Status.CANCELLED):
            raise QuernError(
                "not_retryable", f"Job {job_id} is {old.status}; only a failed or cancelled job can be retried.", status=409
            )
        return _job_over(old, document=old.document, source=source, chunk_size=old.chunk_size, retry_of=old)


# --- split --------------------------------------------------------------------------------


def _utf8_copy(job: Job) -> str:
    """The job's input as a UTF-8 file in storage (only for inputs in another encoding)."""
    # A name of its own per run: a split delivered twice at once must not delete the other's copy.
    name = f"utf8/job-{job.pk}-{uuid.uuid4().hex}.txt"
    with default_storage.open(job.file.name, "rb") as head_file:
        codec = sniff_encoding(head_file.read(HEAD_BYTES), job.encoding or None)
    if codec in ("utf-8", "utf-8-sig"):
        return ""
    with default_storage.open(job.file.name, "rb") as source, tempfile.TemporaryFile() as target:
        transcode_to_utf8(source, target, codec)
        target.seek(0)
        return default_storage.save(name, File(target))


def split(job_id: int) -> list[int]:
    """Find the job's chunk boundaries, store them, and send one index_chunk per chunk.

    A document of one chunk sends nothing: the chunk number is returned for the caller to index
    at once, in the same worker (a hop through the broker is most of a small document's time).
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is not None and job.status == Status.INDEXING and job.chunks_total == 1:
            return [0]  # a redelivered split of a one-chunk job: its chunk may not be done yet
        # SPLITTING too: a split whose worker died is redelivered and runs again from the start.
        if job is None or job.status not in (Status.QUEUED, Status.SPLITTING):
            return []
        job.status = Status.SPLITTING
        job.split_started_at = timezone.now()
        job.save(update_fields=["status", "split_started_at", "updated_at"])
    try:
        utf8_path = _utf8_copy(job)
        with default_storage.open(utf8_path or job.file.name, "rb") as stream:
            result = split_document(stream, job.format, job.chunk_size, settings.QUERN_MAX_CHUNK_BYTES)
    except ParseError as error:
        fail(job_id, error.as_dict())
        return []
    if result.units == 0:
        fail(job_id, {"code": "no_records", "message": f"{job.document.name} holds no {job.format} records to index."})
        return []
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != Status.SPLITTING:  # cancelled meanwhile, or another run finished first
            if utf8_path:
                transaction.on_commit(lambda: default_storage.delete(utf8_path))
            return []
        Chunk.objects.filter(job=job).delete()
        sent_at = timezone.now()
        Chunk.objects.bulk_create(
            Chunk(
                job=job,
                number=c.number,
                start=c.start,
                end=c.end,
                first_ordinal=c.first_ordinal,
                first_line=c.first_line,
                units=c.units,
                sent_at=sent_at,
            )
            for c in result.chunks
        )
        job.utf8_path = utf8_path
        job.split_info = {"header": result.header, "dialect": result.dialect, "title": result.title}
        job.records_total = result.units
        job.chunks_total = len(result.chunks)
        job.status = Status.INDEXING
        job.split_finished_at = timezone.now()
        job.save()
        if len(result.chunks) == 1:
            return [0]
        send_after_commit([("quern.index_chunk", [job.pk, c.number]) for c in result.chunks])
        return []


# --- index a chunk ------------------------------------------------------------------------


class _Abandon(Exception):
    """Roll back a chunk's writes: its job stopped (cancelled, failed) while it ran."""


def _read_range(job: Job, start: int, end: int) -> bytes:
    with default_storage.open(job.utf8_path or job.file.name, "rb") as stream:
        stream.seek(start)
        return stream.read(end - start)


def index_chunk(job_id: int, number: int) -> bool:
    """Parse one chunk and, in one transaction, replace its records and mark it done.

    Returns whether every chunk of the job is now done (the caller then runs `finalize`, in the
    same worker: no hop through the broker). A redelivery of a done chunk says so too, so a
    finalize lost to a crash after the last chunk's commit runs on the redelivery.

    Each run is counted before it starts and uncounted when it ends with an exception, so
    `attempts` counts the runs that killed their worker; past the limit the job fails.
    """
    chunk = Chunk.objects.select_related("job").filter(job_id=job_id, number=number).first()
    if chunk is None or chunk.job.status != Status.INDEXING:
        return False
    if chunk.done_at is not None:
        return chunk.job.chunks_done == chunk.job.chunks_total
    attempts = _count_attempt(chunk.pk)
    if attempts > settings.QUERN_MAX_CHUNK_ATTEMPTS:
        fail(
            job_id,
            {
                "code": "chunk_crashed",
                "message": f"Chunk {number} (from line {chunk.first_line}) stopped its worker {attempts - 1} times "
                "(out of memory, or killed); the job was stopped so it is not redelivered for ever. "
                "Try a smaller chunk_size, and report it if it fails again.",
                "line": chunk.first_line,
            },
        )
        return False
    try:
        return _index_chunk(chunk)
    except BaseException:
        _uncount_attempt(chunk.pk)
        raise


def _count_attempt(chunk_pk: int) -> int:
    # One statement (and one commit) per chunk run: it is on the hot path of every chunk.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE indexing_chunk SET attempts = attempts + 1 WHERE id = %s RETURNING attempts", [chunk_pk])
        return cursor.fetchone()[0]


def _uncount_attempt(chunk_pk: int) -> None:
    try:
        Chunk.objects.filter(pk=chunk_pk, attempts__gt=0).update(attempts=F("attempts") - 1)
    except Exception:  # the database itself may be what failed; the attempt then stays counted
        logger.exception("Could not uncount an attempt of chunk %s", chunk_pk)


def _index_chunk(chunk: Chunk) -> bool:
    job, job_id = chunk.job, chunk.job_id
    records, errors = parse_chunk(
        _read_range(job, chunk.start, chunk.end),
        job.format,
        first_ordinal=chunk.first_ordinal,
        first_line=chunk.first_line,
        header=job.split_info.get("header"),
        dialect=job.split_info.get("dialect"),
    )
    backend = get_backend()
    try:
        with transaction.atomic():
            # The chunk's lock serializes two deliveries of the same chunk; the second sees done.
            # order_by(): Chunk's default ordering joins the job, and FOR UPDATE then locked the
            # job row too, for the whole transaction: a job's chunks ran one at a time (measured).
            undone = Chunk.objects.select_for_update(no_key=True).filter(pk=chunk.pk, done_at=None).order_by()
            if not undone.values_list("pk", flat=True):
                return False
            backend.remove_range(
                job_id=job_id, first_ordinal=chunk.first_ordinal, last_ordinal=chunk.first_ordinal + chunk.units - 1
            )
            backend.index_records(job_id=job_id, document_id=job.document_id, records=records)
            # The job's lock, taken last and held briefly, makes "was this the last chunk?" exact
            # even when two chunks commit at the same moment. NO KEY UPDATE, not UPDATE: the
            # records just inserted hold KEY SHARE on the job row (their foreign key), and a
            # plain FOR UPDATE waited for every other chunk's whole transaction (measured).
            job = Job.objects.select_for_update(no_key=True).get(pk=job_id)
            if job.status != Status.INDEXING:
                raise _Abandon
            Chunk.objects.filter(pk=chunk.pk).update(done_at=timezone.now(), records=len(records))
            job.records_indexed += len(records)
            job.chunks_done += 1
            if errors:
                room = MAX_STORED_ERRORS - len(job.errors)
                job.errors = job.errors + [e.as_dict() for e in errors[: max(room, 0)]]
                job.error_count += len(errors)
            job.save(update_fields=["records_indexed", "chunks_done", "errors", "error_count", "updated_at"])
            return job.chunks_done == job.chunks_total
    except _Abandon:
        return False


# --- finish -------------------------------------------------------------------------------


def finalize(job_id: int) -> None:
    """Make the job's records live and retire the document's previous version, atomically."""
    with transaction.atomic():
        job = Job.objects.select_for_update().select_related("document").filter(pk=job_id).first()
        if job is None or job.status != Status.INDEXING or job.chunks_done < job.chunks_total:
            return
        if job.records_indexed == 0:
            _mark_failed(
                job,
                {
                    "code": "no_valid_records",
                    "message": f"None of the {job.records_total:,} records could be indexed; the errors above say why.",
                },
            )
            return
        document = Document.objects.select_for_update().get(pk=job.document_id)
        previous = document.live_job_id
        job.status = Status.SUCCEEDED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at", "updated_at"])
        on_job_finished(job)
        if previous is not None and previous > job.pk:
            # A newer version went live first (two jobs for one document): it stays live.
            send_after_commit([("quern.purge_job", [job.pk])])
            return
        document.live_job = job
        document.format, document.encoding = job.format, job.encoding
        document.size, document.sha256, document.file = job.size, job.sha256, job.file.name
        document.title = (job.split_info.get("title") or "")[:500]
        document.save()
        if previous is not None:
            send_after_commit([("quern.purge_job", [previous])])


def cancel(job_id: int) -> Job:
    """Stop an unfinished job: its undone chunks are skipped, a running one is rolled back at its
    commit (index_chunk re-checks the status under the job's lock), its rows are purged, and the
    document's live version stays. Cancelling a cancelled job changes nothing."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            raise QuernError("not_found", f"There is no job {job_id}.", status=404)
        if job.status == Status.CANCELLED:
            return job
        if job.status in FINISHED_STATUSES:
            raise QuernError(
                "not_cancellable", f"Job {job_id} already {job.status}; only an unfinished job can be cancelled.", status=409
            )
        job.status = Status.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at", "updated_at"])
        send_after_commit([("quern.purge_job", [job.pk])])
        on_job_finished(job)
    return job


def _mark_failed(job: Job, error: dict[str, Any]) -> None:
    job.status = Status.FAILED
    job.finished_at = timezone.now()
    job.errors = job.errors + [error]
    job.error_count += 1
    job.save(update_fields=["status", "finished_at", "errors", "error_count", "updated_at"])
    send_after_commit([("quern.purge_job", [job.pk])])
    on_job_finished(job)


def on_job_finished(job: Job) -> None:
    """What follows a job's end (succeeded, failed, cancelled), sent once that end is committed.

    Call it inside the transaction that ends the job, from every place that ends one. It marks
    the job's event as owed (the outbox flag `events_pending`, committed with the end), and after
    the commit publishes `job.<status>` on quern.events and the end reply to the submitter's
    reply_to; if that publish fails, reconcile publishes it again.
    """
    if not events.enabled():
        return
    job.events_pending = True  # also on the instance: a later job.save() by the caller keeps it
    Job.objects.filter(pk=job.pk).update(events_pending=True)
    job_id = job.pk
    transaction.on_commit(lambda: events.publish_job_end(job_id))


def fail(job_id: int, error: dict[str, Any]) -> None:
    """End an unfinished job as failed with an error a person can read; its rows are removed."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in FINISHED_STATUSES:
            return
        _mark_failed(job, error)


def purge_job(job_id: int) -> int:
    """Remove the records of a job that is not live (superseded, failed, cancelled)."""
    job = Job.objects.filter(pk=job_id).select_related("document").first()
    if job is None or job.status in ACTIVE_STATUSES or job.document.live_job_id == job.pk:
        return 0
    removed = get_backend().remove_job(job_id)
    if job.utf8_path and default_storage.exists(job.utf8_path):
        default_storage.delete(job.utf8_path)
    return removed


# --- reconcile ----------------------------------------------------------------------------


def _job_queues() -> set[str]:
    return {settings.CELERY_TASK_ROUTES["quern.split"]["queue"], settings.CELERY_TASK_ROUTES["quern.index_chunk"]["queue"],
            settings.QUERN_BACKFILL_QUEUE}


def _queue_is_empty(name: str) -> bool:
    """True when the queue holds no ready message (or its depth cannot be read: then assume lost)."""
    from indexing.status import queue_depth  # the broker side of the status page

    depth = queue_depth(name)
    return depth is None or depth == 0


def _queue_filter(idle_queues: set[str]) -> Q:
    """Chunks whose index_chunk messages go to one of `idle_queues`."""
    interactive = settings.CELERY_TASK_ROUTES["quern.index_chunk"]["queue"] in idle_queues
    backfill = settings.QUERN_BACKFILL_QUEUE in idle_queues
    if interactive and backfill:
        return Q()
    if interactive:
        return ~Q(job__source=Source.BACKFILL)
    if backfill:
        return Q(job__source=Source.BACKFILL)
    return Q(pk__in=[])


def _jobs_in_queue(job_ids: list[int], idle_queues: set[str]) -> set[int]:
    """Those of `job_ids` whose split messages go to one of `idle_queues`."""
    backfill = set(Job.objects.filter(pk__in=job_ids, source=Source.BACKFILL).values_list("pk", flat=True))
    split_queue = settings.CELERY_TASK_ROUTES["quern.split"]["queue"]
    return {pk for pk in job_ids if (settings.QUERN_BACKFILL_QUEUE if pk in backfill else split_queue) in idle_queues}


def reconcile(now=None) -> dict[str, int]:
    """Re-send what lost messages left undone; the database, not the broker, is the record."""
    now = now or timezone.now()
    idle = now - timedelta(seconds=settings.QUERN_RECONCILE_AFTER)
    # A split may legitimately run up to the task time limit before it looks lost.
    split_idle = idle - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    stalled_splits = list(
        Job.objects.filter(
            Q(status=Status.QUEUED, updated_at__lt=idle) | Q(status=Status.SPLITTING, updated_at__lt=split_idle)
        ).values_list("pk", flat=True)
    )
    stalled_indexing = set(Job.objects.filter(status=Status.INDEXING, updated_at__lt=idle).values_list("pk", flat=True))
    # A message sent long ago may only be waiting its turn behind a backlog: re-send only when the
    # queue it went to has nothing ready (so it was taken and lost), never into a backlog.
    idle_queues = {name for name in _job_queues() if _queue_is_empty(name)}
    in_idle_queues = _jobs_in_queue(stalled_splits, idle_queues)
    stalled_splits = [pk for pk in stalled_splits if pk in in_idle_queues]
    # One query for the stalled chunks of all jobs, not one per job.
    stalled_chunks = Chunk.objects.filter(job__status=Status.INDEXING, done_at=None).filter(
        Q(sent_at__lt=idle) | Q(sent_at=None, job__updated_at__lt=idle)
    )
    stalled_chunks = stalled_chunks.filter(_queue_filter(idle_queues))
    undone_rows = list(stalled_chunks.order_by("job_id", "number").values_list("pk", "job_id", "number"))
    undone = [(job_id, number) for _, job_id, number in undone_rows]
    waiting = set(Chunk.objects.filter(job_id__in=stalled_indexing, done_at=None).values_list("job_id", flat=True))
    unfinalized = stalled_indexing - waiting
    messages: list[tuple[str, list[Any]]] = [("quern.split", [job_id]) for job_id in stalled_splits]
    messages += [("quern.index_chunk", [job_id, number]) for job_id, number in undone]
    messages += [("quern.finalize", [job_id]) for job_id in sorted(unfinalized)]
    counts = {"split": len(stalled_splits), "index_chunk": len(undone), "finalize": len(unfinalized), "purge_job": 0}
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
    _send_now(messages)
    # Events whose publish failed at the job's end (broker down, no confirm): publish them again.
    unpublished = list(
        Job.objects.filter(events_pending=True, finished_at__lt=idle).order_by("pk").values_list("pk", flat=True)[:1000]
    )
    counts["events"] = 0
    for job_id in unpublished:
        if not events.publish_job_end(job_id):
            break  # the broker is not taking them: stop here rather than time out once per job
        counts["events"] += 1
    if any(counts.values()):
        logger.warning("reconcile re-sent %s", counts)
    return counts

