"""Small documents indexed as they are taken: the open queue's batch written once, already ended.

On the queued path a small document's job row is written three times (queued, claimed, ended),
its bytes read back by a worker, and a batch's trigger goes through the broker; for one-record
messages that was most of the open queue's cost (20,000 messages: 1,188 documents/s, the
consumer, the workers and PostgreSQL each about a third of the machine). Here the consumer,
which holds the documents' bytes already, parses each small one and writes it once in its own
transaction: document, job (ended: succeeded, or failed with why), chunk row, records and search
entries, word counts, and the event owed, as a worker's batch (batching) would end it.

Only what a batch would take in one piece comes this way: a new document, UTF-8, one chunk, its
bytes in the database (blobs), with no idempotency key. Anything else goes the queued way
(returned to the caller). A document that fails to parse fails alone, at once, with its error
on its job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from indexing.formats import ParseError
from indexing.models import Document, Job, Status
from indexing.pipeline import jobs, statistics
from indexing.pipeline.batching import (
    LANE_INTERACTIVE,
    Prepared,
    Unindexable,
    create_rows,
    ended_in_one_chunk,
    internal_error,
    prepare,
    save_rows,
    settle_when_due,
)
from indexing.pipeline.finish import go_live
from indexing.search import get_backend

logger = logging.getLogger(__name__)


@dataclass
class Arrived:
    """A new small document and its job (both unsaved) with its bytes, as a message brought them."""

    document: Document
    job: Job
    data: bytes


def index_arrived(arrived: list[Arrived]) -> list[Arrived]:
    """Index these documents in the open transaction, each ended on its own job; those that must
    take the queued path instead are returned, unsaved. Search's pending entries are only counted
    here: the consumer merges them when its queue goes quiet (settle_when_quiet).

    A database error sinks the whole batch (its caller's savepoint): the open queue's consumer
    then takes its messages one by one, and only the culprit is refused."""
    ready: list[Prepared] = []
    failed: list[tuple[Job, dict[str, str]]] = []
    queued: list[Arrived] = []
    for item in arrived:
        item.job.document = item.document
        try:
            prepared = prepare(item.job, item.data)
        except (ParseError, Unindexable) as error:
            failed.append((item.job, error.as_dict()))
            continue
        except Exception:  # one document's unexpected error fails that document, not its batch
            logger.exception("A document of an open queue batch failed while being prepared")
            failed.append((item.job, internal_error()))
            continue
        if prepared is None:
            queued.append(item)
        else:
            ready.append(prepared)
    if ready or failed:
        with transaction.atomic():
            written = _write(ready, failed)
        if written:
            transaction.on_commit(
                lambda: settle_when_due(LANE_INTERACTIVE, written, count_only=True), robust=True
            )
    return queued


def _write(ready: list[Prepared], failed: list[tuple[Job, dict[str, str]]]) -> int:
    """Every row of these documents, written once; the records written."""
    now = timezone.now()
    chunks = [ended_in_one_chunk(p, 0, now) for p in ready]  # lengths once the records are written
    for job, error in failed:
        job.status = Status.FAILED
        job.errors, job.error_count = [error], 1
    ended = [p.job for p in ready] + [job for job, _ in failed]
    for job in ended:
        job.created_at = job.updated_at = job.split_started_at = job.split_finished_at = job.finished_at = now
        job.document.created_at = job.document.updated_at = now
    live = [p.job for p in ready if p.records]
    for job in live:
        go_live(job.document, job)
        job.terms_counted = True  # counted below, once its chunk row is written
    jobs.owe_events(ended)  # sets their flags, written with their rows
    _insert([job.document for job in ended], ended, live)
    backend = get_backend()
    records = [(p.job.pk, p.job.document_id, p.records) for p in ready if p.records]
    lengths = backend.index_many(backend.rows(records))
    for chunk in chunks:
        chunk.job_id = chunk.job.pk  # known now
        chunk.length = lengths.get(chunk.job_id, 0)
    create_rows(chunks)
    statistics.count_new(live)
    return sum(len(p.records) for p in ready)


def _insert(documents: list[Document], ended: list[Job], live: list[Job]) -> None:
    """The documents and their jobs, each live one pointing at its job. PostgreSQL: ids taken
    from the tables' sequences first, then both by COPY (the two foreign keys between them are
    checked at the commit). SQLite: inserted in turn, their ids read back, then the pointers."""
    if connection.vendor == "postgresql":
        for model, rows in ((Document, documents), (Job, ended)):
            for row, pk in zip(rows, _allocate_ids(model, len(rows)), strict=True):
                row.pk = pk
        _point_at_documents(ended)
        for job in live:
            job.document.live_job_id = job.pk
        create_rows(documents, with_ids=True)
        create_rows(ended, with_ids=True)
        return
    live_documents = [job.document for job in live]
    for document in live_documents:
        document.live_job = None  # set once its job has an id
    Document.objects.bulk_create(documents)
    _point_at_documents(ended)
    Job.objects.bulk_create(ended)
    for job in live:
        job.document.live_job = job
    save_rows(live_documents, ["live_job"])


def _point_at_documents(ended: list[Job]) -> None:
    """Each job's document id, now that its document has one. Assigned through the relation:
    setting document_id alone would drop the cached document, and reading it again would query."""
    for job in ended:
        document = job.document
        job.document = document


def _allocate_ids(model, count: int) -> list[int]:
    if not count:
        return []
    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
        )
        return [row[0] for row in cursor.fetchall()]


def settle_when_quiet() -> None:
    """The open queue went quiet: merge search's pending entries if its batches wrote enough since
    the last merge (batching.settle_when_due), which they leave to this while a crowd goes on."""
    settle_when_due(LANE_INTERACTIVE, 0)
