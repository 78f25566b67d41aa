"""Autobatching: small documents waiting to be split are taken together — one claim, one write,
one transaction to go live — and each keeps its own job, status, errors, event and reply.

The split message of a small job makes its worker the leader of a batch: in one transaction it
claims its own job and the oldest other small queued jobs (FOR UPDATE SKIP LOCKED on PostgreSQL;
SQLite's IMMEDIATE transactions serialize the claim), marks them `claimed_by` it, and then does
their work in one go. Nobody waits for company: a batch is whoever is queued at that moment, one
job when the service is quiet, QUERN_BATCH_SIZE in a crowd. The claimed jobs' own split messages
find them claimed and do nothing. A document that turns out to need more than one chunk, and
every document of a batch whose shared write failed, goes its own way (the per-job steps), so a
bad document fails alone. A claim left by a worker that died is taken over once it is older than
the task time limit (reconcile sends the messages again by then); the leader's own message,
redelivered, resumes its batch.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone

from indexing.formats import Chunk as SplitChunk
from indexing.formats import ParseError, SplitResult, parse_chunk, sniff_encoding, split_document
from indexing.formats.records import ParsedRecord, RecordError
from indexing.models import Chunk, Document, Job, Status
from indexing.pipeline import jobs, statistics
from indexing.pipeline.dispatch import send_after_commit
from indexing.pipeline.finish import fail, finalize, go_live
from indexing.pipeline.indexer import MAX_STORED_ERRORS, index_chunk
from indexing.pipeline.splitting import no_records_error, split
from indexing.search import get_backend
from indexing.text import document_frequencies

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A small job's records, parsed outside any transaction."""

    job: Job
    result: SplitResult
    chunk: SplitChunk
    records: list[ParsedRecord]
    errors: list[RecordError]
    terms: dict[str, int]


def take(job_id: int) -> list[int] | None:
    """Claim `job_id` and other small queued jobs as one batch it leads.

    None: the job is not one for a batch (too big, or past splitting): the caller splits it alone.
    []: another live batch holds it, or it is gone: nothing to do.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return []
        held_elsewhere = job.claimed_by not in (None, job.pk) and job.updated_at >= stale
        if job.status == Status.SPLITTING and held_elsewhere:
            return []
        # Its own batch, delivered again; or a batch whose leader died long ago: take it over.
        resuming = job.status == Status.SPLITTING and job.claimed_by is not None
        if job.size > settings.QUERN_BATCH_MAX_BYTES or (job.status != Status.QUEUED and not resuming):
            return None
        members = Q(status=Status.QUEUED) | Q(status=Status.SPLITTING, claimed_by=job.pk)
        members |= Q(status=Status.SPLITTING, claimed_by__isnull=False, updated_at__lt=stale)
        others = list(
            Job.objects.select_for_update(skip_locked=True)
            .filter(members, size__lte=settings.QUERN_BATCH_MAX_BYTES)
            .exclude(pk=job.pk)
            .order_by("pk")
            .values_list("pk", flat=True)[: settings.QUERN_BATCH_SIZE - 1]
        )
        ids = [job.pk, *others]
        Job.objects.filter(pk__in=ids).update(
            status=Status.SPLITTING, claimed_by=job.pk, split_started_at=now, updated_at=now
        )
    return ids


def run(leader: int, ids: list[int]) -> None:
    """Split, index and finish a claimed batch; what cannot go together goes alone."""
    claimed = Job.objects.select_related("document").filter(pk__in=ids).order_by("pk")
    ready: list[Prepared] = []
    alone: list[int] = []
    for job in claimed:
        try:
            prepared = _prepare(job)
        except ParseError as error:
            fail(job.pk, error.as_dict())
            continue
        if prepared is None:
            alone.append(job.pk)
        elif isinstance(prepared, Prepared):
            ready.append(prepared)
    try:
        _commit(leader, ready)
    except DatabaseError:
        # One document's rows refused by the database must not sink the others: each goes alone,
        # and fails alone if it is the one.
        logger.exception("Batch %s could not be written together; its %s jobs go alone", leader, len(ready))
        alone += [p.job.pk for p in ready]
    for job_id in alone:
        split_alone(job_id)


def split_alone(job_id: int) -> None:
    """The per-job steps, as the split task runs them for a document of its own."""
    for chunk in split(job_id):
        if index_chunk(job_id, chunk):
            finalize(job_id)


def _prepare(job: Job) -> Prepared | bool | None:
    """Read, split and parse a small job; None if it must go alone, False if it failed here."""
    with default_storage.open(job.file.name, "rb") as stream:
        data = stream.read()
    if sniff_encoding(data[:4096], job.encoding or None) not in ("utf-8", "utf-8-sig"):
        return None  # transcoding keeps its copy in storage: the per-job path does that
    result = split_document(io.BytesIO(data), job.format, job.chunk_size, settings.QUERN_MAX_CHUNK_BYTES)
    if result.units == 0:
        fail(job.pk, no_records_error(job))
        return False
    if len(result.chunks) != 1:
        return None
    chunk = result.chunks[0]
    records, errors = parse_chunk(
        data[chunk.start : chunk.end],
        job.format,
        first_ordinal=chunk.first_ordinal,
        first_line=chunk.first_line,
        header=result.header,
        dialect=result.dialect,
    )
    terms = document_frequencies(f"{r.title} {r.body}" for r in records)
    return Prepared(job, result, chunk, records, errors, terms)


def _commit(leader: int, ready: list[Prepared]) -> None:
    """One transaction: every job's records, chunk, end and version swap, and the statistics."""
    if not ready:
        return
    backend = get_backend()
    with transaction.atomic():
        ours = set(
            Job.objects.select_for_update()
            .filter(pk__in=[p.job.pk for p in ready], status=Status.SPLITTING, claimed_by=leader)
            .values_list("pk", flat=True)
        )
        batch = [p for p in ready if p.job.pk in ours]  # a cancel meanwhile took the others
        if not batch:
            return
        now = timezone.now()
        documents = {
            d.pk: d
            for d in Document.objects.select_for_update().filter(pk__in=[p.job.document_id for p in batch])
        }
        chunks, ended, live, retired, purged = [], [], [], [], []
        for p in batch:
            job = p.job
            length = 0
            if p.records:
                length = backend.index_records(job_id=job.pk, document_id=job.document_id, records=p.records)
            c = p.chunk
            chunks.append(
                Chunk(
                    job=job,
                    number=0,
                    start=c.start,
                    end=c.end,
                    first_ordinal=c.first_ordinal,
                    first_line=c.first_line,
                    units=c.units,
                    records=len(p.records),
                    terms=p.terms,
                    length=length,
                    done_at=now,
                    sent_at=now,
                )
            )
            job.split_info = {"header": p.result.header, "dialect": p.result.dialect, "title": p.result.title}
            job.records_total, job.records_indexed = p.result.units, len(p.records)
            job.chunks_total = job.chunks_done = 1
            job.errors = [e.as_dict() for e in p.errors[:MAX_STORED_ERRORS]]
            job.error_count = len(p.errors)
            job.split_finished_at = job.finished_at = job.updated_at = now
            if not p.records:
                job.status = Status.FAILED
                job.errors.append(
                    {
                        "code": "no_valid_records",
                        "message": f"None of the {job.records_total:,} records could be indexed; "
                        "the errors above say why.",
                    }
                )
                job.error_count += 1
                purged.append(job.pk)
            else:
                job.status = Status.SUCCEEDED
                document = documents[job.document_id]
                previous = document.live_job_id
                if previous is not None and previous > job.pk:
                    purged.append(job.pk)  # a newer version went live first: it stays live
                else:
                    go_live(document, job)
                    live.append(job)
                    if previous is not None:
                        retired.append(previous)
            ended.append(job)
        Chunk.objects.filter(job_id__in=[j.pk for j in ended]).delete()
        Chunk.objects.bulk_create(chunks)
        Job.objects.bulk_update(
            ended,
            [
                "status",
                "split_info",
                "records_total",
                "records_indexed",
                "chunks_total",
                "chunks_done",
                "errors",
                "error_count",
                "split_finished_at",
                "finished_at",
                "updated_at",
            ],
        )
        Document.objects.bulk_update(
            [documents[j.document_id] for j in live],
            ["live_job", "format", "encoding", "size", "sha256", "file", "title", "updated_at"],
        )
        statistics.swap(live, retired)
        jobs.owe_events(ended)
        transaction.on_commit(backend.settle, robust=True)  # once per batch: see finish.SETTLE_AFTER
        send_after_commit([("quern.purge_job", [job_id]) for job_id in purged + retired])
