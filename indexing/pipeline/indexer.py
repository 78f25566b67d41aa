"""Index a chunk: parse its records and, in one transaction, replace them and mark it done."""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from indexing.formats import parse_chunk
from indexing.models import Chunk, Job, Status, json_text
from indexing.pipeline import attempts, storage
from indexing.pipeline.finish import fail
from indexing.search import get_backend
from indexing.text import document_frequencies

logger = logging.getLogger(__name__)

MAX_STORED_ERRORS = 1000  # per job; error_count keeps the full number


class _Abandon(Exception):
    """Roll back a chunk's writes: its job stopped (cancelled, failed) while it ran."""


def index_chunk(job_id: int, number: int, *, with_done: Callable[[], object] | None = None) -> bool:
    """Parse one chunk and, in one transaction, replace its records and mark it done.

    `with_done` runs inside that transaction, after the mark, so what it writes (the task's
    result) commits with the chunk or not at all.

    Returns whether every chunk of the job is now done (the caller then runs `finalize`, in the
    same worker: no hop through the broker). A redelivery of a done chunk says so too, so a
    finalize lost to a crash after the last chunk's commit runs on the redelivery.

    Each run is counted before it starts and uncounted when it ends with an exception, so
    `attempts` counts the runs that killed their worker; past the limit the job fails
    (pipeline.attempts: on SQLite, in a file of its own, so the count does not wait for the
    database's one writer). Counted beside the parse instead, a run killed before its count
    committed went uncounted, and a chunk that always kills early could be redelivered for ever.
    """
    chunk = Chunk.objects.select_related("job").filter(job_id=job_id, number=number).first()
    if chunk is None or chunk.job.status != Status.INDEXING:
        return False
    if chunk.done_at is not None:
        return chunk.job.chunks_done == chunk.job.chunks_total
    runs = attempts.count(chunk)
    if runs > settings.QUERN_MAX_CHUNK_ATTEMPTS:
        fail(
            job_id,
            {
                "code": "chunk_crashed",
                "message": f"Chunk {number} (from line {chunk.first_line}) stopped its worker "
                f"{runs - 1} times (out of memory, or killed); the job was stopped so it is not "
                "redelivered for ever. Try a smaller chunk_size, and report it if it fails again.",
                "line": chunk.first_line,
            },
        )
        Chunk.objects.filter(pk=chunk.pk).update(attempts=attempts.in_row(runs))
        attempts.forget(chunk)  # its row holds the count now
        return False
    try:
        last = _index_chunk(chunk, runs, with_done)
    except BaseException:
        _uncount(chunk)
        raise
    attempts.forget(chunk)
    return last


def _uncount(chunk: Chunk) -> None:
    try:
        attempts.uncount(chunk)
    except Exception:  # the database itself may be what failed; the attempt then stays counted
        logger.exception("Could not uncount an attempt of chunk %s", chunk.pk)


def _index_chunk(chunk: Chunk, runs: int, with_done: Callable[[], object] | None) -> bool:
    job, job_id = chunk.job, chunk.job_id
    records, errors = parse_chunk(
        storage.read_range(job, chunk.start, chunk.end),
        job.format,
        first_ordinal=chunk.first_ordinal,
        first_line=chunk.first_line,
        header=job.split_info.get("header"),
        dialect=job.split_info.get("dialect"),
        max_fields=settings.QUERN_MAX_FIELDS_PER_RECORD,
    )
    # Outside the transaction: counting words, and making the rows and the counts' JSON, are the
    # chunk's own work, not the lock's (on SQLite the lock is the whole database's).
    terms = document_frequencies(f"{r.title} {r.body}" for r in records)
    backend = get_backend()
    rows = backend.rows([(job_id, job.document_id, records)])
    terms_json = json_text(terms)
    try:
        with transaction.atomic():
            # The chunk's lock serializes two deliveries of the same chunk; the second sees done.
            # order_by(): Chunk's default ordering joins the job, and FOR UPDATE then locked the
            # job row too, for the whole transaction: a job's chunks ran one at a time (measured).
            undone = Chunk.objects.select_for_update(no_key=True).filter(pk=chunk.pk, done_at=None).order_by()
            if not undone.values_list("pk", flat=True):
                return False
            backend.remove_range(
                job_id=job_id,
                first_ordinal=chunk.first_ordinal,
                last_ordinal=chunk.first_ordinal + chunk.units - 1,
            )
            length = backend.index_many(rows).get(job_id, 0)
            # The job's lock, taken last and held briefly, makes "was this the last chunk?" exact
            # even when two chunks commit at the same moment. NO KEY UPDATE, not UPDATE: a row
            # written with a foreign key to the job takes KEY SHARE on it, and while records had
            # one, a plain FOR UPDATE waited for every other chunk's whole transaction (measured).
            job = Job.objects.select_for_update(no_key=True).get(pk=job_id)
            if job.status != Status.INDEXING:
                raise _Abandon
            Chunk.objects.filter(pk=chunk.pk).update(
                done_at=timezone.now(),
                records=len(records),
                terms=terms_json,
                length=length,
                attempts=attempts.in_row(runs),
            )
            job.records_indexed += len(records)
            job.chunks_done += 1
            if errors:
                room = MAX_STORED_ERRORS - len(job.errors)
                job.errors = job.errors + [e.as_dict() for e in errors[: max(room, 0)]]
                job.error_count += len(errors)
            job.save(update_fields=["records_indexed", "chunks_done", "errors", "error_count", "updated_at"])
            if with_done is not None:
                with_done()
            return job.chunks_done == job.chunks_total
    except _Abandon:
        return False
