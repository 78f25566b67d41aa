"""Unpack an archive job: each file of the stored archive becomes a document with its own job.

The web only stores the archive (its POST answers at once, however many files it holds); a
worker reads it twice, streaming, so no process holds more than one file and one batch:

1. every file is counted and read through against the limits (member count, unpacked bytes,
   ratio to the archive's size), storing nothing: a bomb or a damaged archive fails the archive's
   job with the limit's message, and no document of it exists;
2. the files are stored and their documents and jobs written BULK_WRITE at a time, each batch in
   a transaction that also moves the archive job's count of stored files (records_indexed) on.

A redelivered unpack (its worker died) resumes after the files already stored: none is stored
twice. The archive job succeeds once every file has its job; the files' jobs go on their own.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Iterator

from django.conf import settings
from django.core.files.storage import default_storage

from indexing.errors import QuernError, StorageFull
from indexing.formats import ParseError
from indexing.formats.archives import ARCHIVE_FORMAT, Limits
from indexing.formats.archives import members as archive_members
from indexing.models import Job, Status
from indexing.pipeline import jobs
from indexing.pipeline.batching import split_alone as split_document_alone
from indexing.pipeline.dispatch import send_after_commit
from indexing.pipeline.finish import fail
from indexing.pipeline.indexer import MAX_STORED_ERRORS
from indexing.pipeline.intake import BULK_WRITE, Incoming, submit_many
from indexing.schemas import SubmitOptions

logger = logging.getLogger(__name__)

READ_BLOCK = 1 << 20
# Seconds one run stores files before it hands the rest to the next run, well inside the task's
# time limit (settings.CELERY_TASK_TIME_LIMIT): a million files take longer than one task may.
RUN_FOR = max(30, settings.CELERY_TASK_SOFT_TIME_LIMIT // 3)


def split_alone(job_id: int) -> None:
    """A job of its own: an archive is unpacked, a document split (and indexed) as usual."""
    fmt = Job.objects.filter(pk=job_id).values_list("format", flat=True).first()
    if fmt == ARCHIVE_FORMAT:
        unpack(job_id)
    else:
        split_document_alone(job_id)


def _limits() -> Limits:
    return Limits(
        members=settings.QUERN_ARCHIVE_MAX_MEMBERS,
        total_bytes=settings.QUERN_ARCHIVE_MAX_BYTES,
        ratio=settings.QUERN_ARCHIVE_MAX_RATIO,
    )


def _members(job: Job) -> Iterator[tuple[str, object]]:
    with default_storage.open(job.file.name, "rb") as stream:
        yield from archive_members(stream, job.document.name, job.size, _limits())


def unpack(job_id: int) -> None:
    started = time.monotonic()  # RUN_FOR counts from the task's start, the count pass included
    with jobs.locked(job_id, with_document=True) as job:
        if job is None or not jobs.can_move(job, Status.SPLITTING):
            return
        resuming = job.status == Status.SPLITTING
        jobs.move(job, Status.SPLITTING)
    if not resuming or not job.records_total:
        try:
            count = _count_through(job)
        except ParseError as error:
            fail(job_id, error.as_dict())
            return
        if count == 0:
            fail(
                job_id, {"code": "empty_archive", "message": f"{job.document.name} holds no files to index."}
            )
            return
        Job.objects.filter(pk=job_id).update(records_total=count)
        if _hand_off(job_id, started):  # a long count: the next run stores, counting no more
            return
    _store_members(job_id, started)


def _hand_off(job_id: int, started: float) -> bool:
    """Past RUN_FOR since the task started: the next run goes on from here, within the task's
    time limit (a huge archive takes many runs)."""
    if time.monotonic() - started <= RUN_FOR:
        return False
    send_after_commit([("quern.split", [job_id])])
    return True


def _count_through(job: Job) -> int:
    """Every file read to its end against the limits; how many there are. Nothing is stored."""
    count = 0
    for _, member in _members(job):
        while member.read(READ_BLOCK):
            pass
        count += 1
    return count


def _store_members(job_id: int, started: float) -> None:
    job = Job.objects.select_related("document").get(pk=job_id)
    options = SubmitOptions.model_validate(job.split_info.get("options") or {})
    # Resume after the files a previous run committed; they are read past, not stored again.
    position = job.records_indexed
    members = itertools.islice(_members(job), position, None)
    names: list[str] = []

    def incoming() -> Iterator[Incoming]:
        for path, member in members:
            names.append(path)
            yield Incoming(member, path, options)

    files = incoming()
    while True:
        names.clear()
        with jobs.locked(job_id) as locked:
            if locked is None or locked.status != Status.SPLITTING:
                return  # cancelled (or failed) meanwhile: the files stored so far keep their jobs
            if locked.records_indexed != position:
                # Another run of this unpack (a redelivery beside its hand-off) stored files since
                # this one read its position: that run goes on, this one stops before storing any.
                return
            try:
                results = submit_many(
                    itertools.islice(files, BULK_WRITE), source=locked.source, gunzip=False, archive_id=job_id
                )
            except StorageFull:
                # The server's room, not the archive: it stays unpacking, and reconcile sends it
                # again later; it resumes after the files stored so far.
                logger.warning("Storage full while unpacking archive job %s; it resumes later", job_id)
                return
            if not results:
                _succeed(locked)
                return
            _count_stored(locked, results, names)
            position = locked.records_indexed
        if _hand_off(job_id, started):
            return


def _count_stored(job: Job, results: list[Job | QuernError], names: list[str]) -> None:
    refused = [(name, r) for name, r in zip(names, results, strict=True) if isinstance(r, QuernError)]
    job.records_indexed += len(results)
    also = ["records_indexed"]
    if refused:
        room = max(MAX_STORED_ERRORS - len(job.errors), 0)
        job.errors = job.errors + [
            {**error.as_dict(), "message": f"{name}: {error.message}"} for name, error in refused[:room]
        ]
        job.error_count += len(refused)
        also += ["errors", "error_count"]
    job.save(update_fields=[*also, "updated_at"])


def _succeed(job: Job) -> None:
    """Every file has its job (or was refused, and says why on the archive's job)."""
    jobs.move(job, Status.INDEXING)  # the status machine's one way to an end that succeeded
    jobs.move(job, Status.SUCCEEDED)
