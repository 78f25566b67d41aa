"""Split: find a job's chunk boundaries, store them, and send one index_chunk per chunk."""

from __future__ import annotations

from typing import IO

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from indexing.formats import ParseError, SplitResult, split_document
from indexing.models import Chunk, Job, Status
from indexing.pipeline import jobs, storage
from indexing.pipeline.dispatch import send_after_commit
from indexing.pipeline.finish import fail


def no_records_error(job: Job) -> dict[str, str]:
    return {"code": "no_records", "message": f"{job.document.name} holds no {job.format} records to index."}


def split_input(stream: IO[bytes], job: Job, *, read_records: bool = False) -> SplitResult:
    """The job's UTF-8 input cut into chunks, within the chunk and document limits of the settings
    (with `read_records`, a one-chunk document's records too, where the format reads them in the
    same pass: formats.split_document)."""
    return split_document(
        stream,
        job.format,
        job.chunk_size,
        settings.QUERN_MAX_CHUNK_BYTES,
        max_units=settings.QUERN_MAX_RECORDS_PER_DOCUMENT,
        max_fields=settings.QUERN_MAX_FIELDS_PER_RECORD,
        read_records=read_records,
    )


def split(job_id: int) -> list[int]:
    """Find the job's chunk boundaries, store them, and send one index_chunk per chunk.

    A document of one chunk sends nothing: the chunk number is returned for the caller to index
    at once, in the same worker (a hop through the broker is most of a small document's time).
    """
    with jobs.locked(job_id) as job:
        if job is not None and job.status == Status.INDEXING and job.chunks_total == 1:
            return [0]  # a redelivered split of a one-chunk job: its chunk may not be done yet
        # SPLITTING too: a split whose worker died is redelivered and runs again from the start.
        if job is None or not jobs.can_move(job, Status.SPLITTING):
            return []
        jobs.move(job, Status.SPLITTING)
    try:
        utf8_path = storage.utf8_copy(job)
        with default_storage.open(utf8_path or job.file.name, "rb") as stream:
            result = split_input(stream, job)
    except ParseError as error:
        fail(job_id, error.as_dict())
        return []
    if result.units == 0:
        fail(job_id, no_records_error(job))
        return []
    with jobs.locked(job_id) as job:
        # Cancelled meanwhile, or another run of this split finished first.
        if job is None or job.status != Status.SPLITTING:
            if utf8_path:
                transaction.on_commit(lambda: storage.delete(utf8_path))
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
        jobs.move(job, Status.INDEXING, also=("utf8_path", "split_info", "records_total", "chunks_total"))
        if len(result.chunks) == 1:
            return [0]
        send_after_commit([("quern.index_chunk", [job.pk, c.number]) for c in result.chunks])
        return []
