"""New jobs: a submitted document (or a new version of one), a re-index, a retry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO, Any

from django.conf import settings
from django.db import IntegrityError, transaction

from indexing import blobs
from indexing.errors import QuernError, StorageFull
from indexing.formats import detect_format, sniff_encoding
from indexing.formats.archives import ARCHIVE_FORMAT, is_archive
from indexing.formats.compressed import uncompressed
from indexing.models import Document, Job, Source, Status
from indexing.pipeline.batching import is_small, lane, lane_trigger, send_split
from indexing.pipeline.dispatch import send_after_commit
from indexing.pipeline.storage import StoredFile, store_stream
from indexing.pipeline.straight_through import Arrived, index_arrived
from indexing.schemas import SubmitOptions

DEFAULT_OPTIONS = SubmitOptions()
# Documents and jobs written per bulk INSERT: bounds what a big archive or message batch holds
# unsaved, and a statement's parameters (SQLite allows 32,766; a job has 25 fields).
BULK_WRITE = 500


def submit(
    stream: IO[bytes],
    *,
    name: str,
    options: SubmitOptions = DEFAULT_OPTIONS,
    source: str = Source.API,
    replace: int | None = None,
    reply_to: str = "",
    correlation_id: str = "",
    gunzip: bool = True,
) -> Job:
    """Store a document (or a new version of `replace`) and its job; split after commit.

    `options` were validated at the edge (indexing.schemas). With an idempotency key already
    used, nothing is stored and that key's job is returned.
    """
    key = options.idempotency_key
    if key and (existing := _job_for_key(key)):
        return existing
    inline_rows: list[tuple[str, bytes]] = []  # a small document's bytes: in its job's transaction
    stored, name, fields = _stored(
        Incoming(stream, name, options, reply_to, correlation_id),
        source=source,
        gunzip=gunzip,
        inline_rows=inline_rows,
    )
    try:
        return _create_job(stored, name=name, replace=replace, inline_rows=inline_rows, **fields)
    except IntegrityError:
        # Two submissions with one key at once: the other committed first (the unique key says so).
        if key and (existing := _job_for_key(key)):
            return existing
        raise


@dataclass(frozen=True)
class Incoming:
    """One document of a bulk submission: its bytes, name and options, and where to reply."""

    stream: IO[bytes]
    name: str
    options: SubmitOptions = DEFAULT_OPTIONS
    reply_to: str = ""
    correlation_id: str = ""


def submit_many(
    incoming: Iterable[Incoming],
    *,
    source: str = Source.API,
    gunzip: bool = True,
    archive_id: int | None = None,
    straight_through: bool = False,
) -> list[Job | QuernError]:
    """Many new documents at once: each stored as it comes (a stream is read before the next),
    their documents and jobs written BULK_WRITE at a time, one batch trigger per lane.

    In order, each one's job, or the QuernError that refused it alone (the caller decides whether
    one refusal sinks the rest: roll its transaction back). A document with an idempotency key
    takes the one-at-a-time path, which returns that key's job if it was used.

    `straight_through` (the open queue's batches): the small documents are indexed here, in the
    caller's transaction, and their jobs come back ended (pipeline.straight_through).
    """
    results: list[Job | QuernError] = []
    unsaved: list[tuple[Document, Job]] = []
    arrived: list[Arrived] = []
    inline_rows: list[tuple[str, bytes]] = []  # small documents' bytes, written with their rows
    for item in incoming:
        try:
            if item.options.idempotency_key:
                with transaction.atomic():
                    results.append(
                        submit(
                            item.stream,
                            name=item.name,
                            options=item.options,
                            source=source,
                            reply_to=item.reply_to,
                            correlation_id=item.correlation_id,
                            gunzip=gunzip,
                        )
                    )
                continue
            stored, name, fields = _stored(item, source=source, gunzip=gunzip, inline_rows=inline_rows)
        except StorageFull:
            raise  # the server's fault, not this document's: the whole submission waits or is refused
        except QuernError as error:
            results.append(error)
            continue
        document = _new_document(stored, name, fields)
        job = Job(size=stored.size, sha256=stored.sha256, file=stored.name, archive_id=archive_id, **fields)
        results.append(job)
        if straight_through and is_small(job) and inline_rows and inline_rows[-1][0] == stored.name:
            arrived.append(Arrived(document, job, inline_rows[-1][1]))
        else:
            unsaved.append((document, job))
        if len(unsaved) >= BULK_WRITE:
            # The arrived wait for the end (the caller's window bounds them): their statistics are
            # counted once a transaction, as two counts in one could wait on a finalize in a cycle.
            _create_many(unsaved, inline_rows)
            unsaved, inline_rows = [], []
    _create_many(unsaved, inline_rows, arrived)
    return results


def _stored(
    item: Incoming, *, source: str, gunzip: bool, inline_rows: list[tuple[str, bytes]] | None = None
) -> tuple[StoredFile, str, dict[str, Any]]:
    """A document's bytes in storage (a small one's row in `inline_rows`, if given, for the caller
    to write), its name, and its job's fields; QuernError if refused."""
    name = (item.name or "").strip()[:255]
    if not name:
        raise QuernError("missing_name", "A document needs a name (a file name, or the name field).")
    content = uncompressed(item.stream) if gunzip else item.stream  # a .gz is stored as its content
    stored = store_stream(content, inline_rows=inline_rows)
    if stored.size == 0:
        raise QuernError("empty_document", f"{name} is empty: there is nothing to index.")
    options = item.options
    # A declared format was checked at the edge; an unknown encoding raises its ParseError now
    # (a QuernError, 400), and a known one is stored by its canonical name.
    fmt = detect_format(options.format, name, stored.head)
    encoding = sniff_encoding(b"", options.encoding) if options.encoding else ""
    fields = {
        "source": source,
        "format": fmt,
        "encoding": encoding,
        "chunk_size": options.chunk_size or settings.QUERN_CHUNK_SIZE,
        "idempotency_key": options.idempotency_key or None,
        "reply_to": item.reply_to[:255],
        "correlation_id": item.correlation_id[:255],
        "metadata": options.metadata or {},
    }
    return stored, name, fields


def _new_document(stored: StoredFile, name: str, fields: dict[str, Any]) -> Document:
    """A new document (unsaved) over stored bytes, as its first job's fields describe them."""
    return Document(
        name=name,
        format=fields["format"],
        encoding=fields["encoding"],
        size=stored.size,
        sha256=stored.sha256,
        file=stored.name,
    )


def _create_many(
    unsaved: list[tuple[Document, Job]],
    inline_rows: list[tuple[str, bytes]],
    arrived: list[Arrived] | None = None,
) -> None:
    """The small documents' bytes; the arrived ones indexed straight through; then two bulk
    INSERTs of the rest, then the split messages: each big job's own, one trigger per lane."""
    if not unsaved and not inline_rows and not arrived:
        return
    with transaction.atomic():
        blobs.store_inline_many(inline_rows)
        if arrived:
            queued = index_arrived(arrived)
            unsaved = unsaved + [(item.document, item.job) for item in queued]
        if not unsaved:
            return
        documents = Document.objects.bulk_create([document for document, _ in unsaved])
        for document, (_, job) in zip(documents, unsaved, strict=True):
            job.document = document
        jobs = Job.objects.bulk_create([job for _, job in unsaved])
        first_small: dict[str, list[Job]] = {}
        messages = []
        for job in jobs:
            if is_small(job):
                first_small.setdefault(lane(job), []).append(job)
            else:
                messages.append(("quern.split", [job.pk]))
        send_after_commit(messages)
        for name, small in first_small.items():
            if (delay := lane_trigger(name, len(small))) is not None:
                send_after_commit([("quern.split", [small[0].pk])], countdown=delay)


def submit_upload(
    stream: IO[bytes],
    *,
    name: str,
    size: int,
    options: SubmitOptions = DEFAULT_OPTIONS,
    source: str = Source.API,
    replace: int | None = None,
) -> list[Job]:
    """A document's job; for an archive (.zip, .tar, .tar.gz), the archive's own job: stored as it
    came, and unpacked by a worker (pipeline.unpacking), each file a document named by its path."""
    if not is_archive(name) or replace is not None:
        return [submit(stream, name=name, options=options, source=source, replace=replace)]
    if options.idempotency_key:
        raise QuernError(
            "bad_parameter", "An idempotency key stands for one document, not an archive of many."
        )
    # Stored as sent (a .tar.gz stays compressed: tarfile reads it); the files' options with it.
    inline_rows: list[tuple[str, bytes]] = []
    stored, name, fields = _stored(
        Incoming(stream, name, options), source=source, gunzip=False, inline_rows=inline_rows
    )
    fields["format"] = ARCHIVE_FORMAT
    fields["split_info"] = {"options": options.model_dump(mode="json", exclude_none=True)}
    return [_create_job(stored, name=name, replace=None, inline_rows=inline_rows, **fields)]


def _job_for_key(key: str) -> Job | None:
    return Job.objects.select_related("document").filter(idempotency_key=key).first()


def _create_job(
    stored: StoredFile,
    *,
    name: str,
    replace: int | None,
    inline_rows: list[tuple[str, bytes]],
    **fields: Any,
) -> Job:
    """The document (or the version of `replace`) and its job, with a small document's bytes
    (`inline_rows`) in the same transaction: one commit per submission, where the bytes' own was
    a second."""
    with transaction.atomic():
        key = fields["idempotency_key"]
        if key and (existing := _job_for_key(key)):
            return existing
        if replace is not None:
            document = Document.objects.filter(pk=replace).first()
            if document is None:
                raise QuernError(
                    "no_such_document", f"There is no document {replace} to replace.", status=404
                )
        # Written once the submission is known to need them: a key's job found above stores
        # nothing, and the row is locked (identical bytes wait on it) only for the two inserts.
        blobs.store_inline_many(inline_rows)
        if replace is None:
            document = _new_document(stored, name, fields)
            document.save()
        job = Job.objects.create(
            document=document, size=stored.size, sha256=stored.sha256, file=stored.name, **fields
        )
        send_split(job)  # a small one may wait for the batch already triggered
    return job


def _job_over(stored: Document | Job, *, document: Document, **fields: Any) -> Job:
    """A queued job over the stored input of a document or an earlier job; split after commit."""
    what = f"Job {stored.pk}" if isinstance(stored, Job) else f"Document {stored.pk}"
    if stored.format == ARCHIVE_FORMAT and (not isinstance(stored, Job) or stored.records_indexed):
        # Its files are documents of their own (re-index those); unpacked again, every file would
        # be stored again as a new document. An archive that stored none may be retried.
        raise QuernError(
            "archive_unpacked",
            f"{what} is an archive whose files are documents of their own: re-index or retry those "
            "(GET /api/jobs?archive=<the archive's job>), or submit the archive again.",
            status=409,
        )
    if not stored.file.name:
        raise QuernError(
            "input_removed",
            f"{what} has no stored input any more: the input of a failed or cancelled job is removed "
            f"{settings.QUERN_KEEP_FAILED_INPUT // 3600:g} hours after it ended (QUERN_KEEP_FAILED_INPUT). "
            "Submit the document again.",
            status=410,
        )
    if stored.format == ARCHIVE_FORMAT:  # a retry of an archive that stored none: its files' options
        fields.setdefault("split_info", {"options": stored.split_info.get("options", {})})
    job = Job.objects.create(
        document=document,
        format=stored.format,
        encoding=stored.encoding,
        size=stored.size,
        sha256=stored.sha256,
        file=stored.file.name,
        **fields,
    )
    send_split(job)
    return job


def reindex(
    document_id: int,
    *,
    source: str = Source.ADMIN,
    chunk_size: int | None = None,
    backfill_id: int | None = None,
) -> Job:
    """A new job over the document's stored bytes; the live version stays until it succeeds."""
    with transaction.atomic():
        document = Document.objects.filter(pk=document_id).first()
        if document is None:
            raise QuernError("not_found", f"There is no document {document_id}.", status=404)
        return _job_over(
            document,
            document=document,
            source=source,
            chunk_size=chunk_size or settings.QUERN_CHUNK_SIZE,
            backfill_id=backfill_id,
        )


def retry(job_id: int, *, source: str = Source.API) -> Job:
    """A new job over the same input as a failed or cancelled job (same bytes, format, chunk size)."""
    with transaction.atomic():
        old = Job.objects.select_related("document").filter(pk=job_id).first()
        if old is None:
            raise QuernError("not_found", f"There is no job {job_id}.", status=404)
        if old.status not in (Status.FAILED, Status.CANCELLED):
            raise QuernError(
                "not_retryable",
                f"Job {job_id} is {old.status}; only a failed or cancelled job can be retried.",
                status=409,
            )
        return _job_over(old, document=old.document, source=source, chunk_size=old.chunk_size, retry_of=old)
