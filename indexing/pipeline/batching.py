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
import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta

import orjson
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import DatabaseError, OperationalError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from indexing import blobs
from indexing.formats import Chunk as SplitChunk
from indexing.formats import ParseError, SplitResult, parse_chunk, sniff_encoding, within_fields
from indexing.formats.archives import ARCHIVE_FORMAT
from indexing.formats.records import ParsedRecord, RecordError
from indexing.models import BatchTrigger, Chunk, Document, Job, Source, Status
from indexing.pipeline import jobs, statistics
from indexing.pipeline.dispatch import send_after_commit
from indexing.pipeline.finish import SETTLE_AFTER, fail, finalize, go_live
from indexing.pipeline.indexer import MAX_STORED_ERRORS, index_chunk
from indexing.pipeline.splitting import no_records_error, split, split_input
from indexing.search import get_backend
from indexing.text import document_frequencies

logger = logging.getLogger(__name__)

LANE_INTERACTIVE, LANE_BACKFILL = "interactive", "backfill"
# Seconds after which the next small submission sends its lane's trigger again, in case the one on
# its way was lost (a broker outage). Not less: a trigger waits its turn behind a backlog, and at
# 1 s every batch of a big archive's files re-sent one (about 1,400 for 785 batches, measured).
TRIGGER_RESEND = 10.0
# PostgreSQL advisory lock keys of the lanes' triggers: (LANE_LOCK, the lane's key).
LANE_LOCK = 0x51524E  # "QRN"
LANE_KEYS = {LANE_INTERACTIVE: 1, LANE_BACKFILL: 2}


@dataclass
class Prepared:
    """A small job's records, parsed outside any transaction."""

    job: Job
    result: SplitResult
    chunk: SplitChunk
    records: list[ParsedRecord]
    errors: list[RecordError]
    terms: dict[str, int]


class Unindexable(Exception):
    """A small document that fails as it is prepared, with no ParseError of its own (no records)."""

    def __init__(self, error: dict[str, str]) -> None:
        super().__init__(error["message"])
        self.error = error

    def as_dict(self) -> dict[str, str]:
        return self.error


def lane(job: Job) -> str:
    """Backfills batch among themselves, on their own queue; everything else together."""
    return LANE_BACKFILL if job.source == Source.BACKFILL else LANE_INTERACTIVE


def _lane_filter(name: str) -> Q:
    backfill = Q(source=Source.BACKFILL)
    return backfill if name == LANE_BACKFILL else ~backfill


def is_small(job: Job) -> bool:
    return job.size <= settings.QUERN_BATCH_MAX_BYTES and job.format != ARCHIVE_FORMAT


def small_jobs() -> Q:
    """is_small, as a query: an archive, however small, is unpacked on its own."""
    return Q(size__lte=settings.QUERN_BATCH_MAX_BYTES) & ~Q(format=ARCHIVE_FORMAT)


def send_split(job: Job) -> None:
    """A job was just created (in the open transaction): send its split message if it owes one.

    A big job, always. A small one only when no batch trigger of its lane is on its way: the
    first small submission after a batch's claim sends its split, which will claim every small
    job queued by then; the ones after it send nothing. A batch's claim resets the
    lane's row under the lane's lock (lane_trigger), so a submission either is seen by the claim
    or sees the reset and sends a new trigger. A trigger not claimed within TRIGGER_RESEND
    seconds (lost with a broker outage, or slow behind a backlog) is sent again by the next
    submission, so a lost one costs seconds, not a reconcile interval.
    """
    if not is_small(job):
        send_after_commit([("quern.split", [job.pk])])
    elif (delay := lane_trigger(lane(job), 1)) is not None:
        send_after_commit([("quern.split", [job.pk])], countdown=delay)


def lane_trigger(name: str, count: int) -> float | None:
    """`count` small jobs of lane `name` were just created: does one of them send the trigger,
    and how many seconds later is it to run? None: a trigger is on its way already.

    The delay lets a crowd gather: a trigger runs QUERN_BATCH_LINGER_MS after the lane's last
    claim of more than one job, at once when that was longer ago or took a lone document (a lone
    document never waits for company).

    On PostgreSQL a submission first takes its lane's lock shared, and a trigger already on its
    way is only read: submissions at once neither write the lane's row nor hold its row lock to
    their commits, one behind the other. A claim takes the lock alone (`_lock_lane`): it waits
    for the submissions under way, and sees what they committed. SQLite runs one write
    transaction at a time anyway.
    """
    now_ns = time.time_ns()
    stale_ns = now_ns - int(TRIGGER_RESEND * 1e9)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", [LANE_LOCK, LANE_KEYS[name]])
            cursor.execute("SELECT pending, sent_ns FROM indexing_batchtrigger WHERE lane = %s", [name])
            row = cursor.fetchone()
            if row is not None and row[0] > 0 and row[1] >= stale_ns:
                return None  # on its way, and its claim waits for this submission's commit
        cursor.execute(
            "INSERT INTO indexing_batchtrigger (lane, pending, sent_ns, claimed_ns) VALUES (%s, %s, %s, 0)"
            " ON CONFLICT (lane) DO UPDATE SET pending = indexing_batchtrigger.pending + excluded.pending,"
            " sent_ns = CASE WHEN indexing_batchtrigger.pending = 0 OR indexing_batchtrigger.sent_ns < %s"
            " THEN excluded.sent_ns ELSE indexing_batchtrigger.sent_ns END"
            " RETURNING sent_ns, claimed_ns",
            [name, count, now_ns, stale_ns],
        )
        sent_ns, claimed_ns = cursor.fetchone()
    if sent_ns != now_ns:
        return None  # another submission's stamp: it sends the trigger
    linger = settings.QUERN_BATCH_LINGER_MS / 1000
    since_claim = (now_ns - claimed_ns) / 1e9  # clocks of two hosts: never more than the linger
    return min(linger, max(0.0, linger - since_claim))


def _lock_lane(name: str) -> None:
    """A claim's exclusive hold on its lane (PostgreSQL), to its commit: see lane_trigger."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LANE_LOCK, LANE_KEYS[name]])


def waiting_triggers(now) -> list[int]:
    """For each lane whose small jobs have waited past twice TRIGGER_RESEND: its oldest one."""
    before = now - timedelta(seconds=2 * TRIGGER_RESEND)
    oldest = []
    for name in (LANE_INTERACTIVE, LANE_BACKFILL):
        job_id = (
            Job.objects.filter(
                _lane_filter(name),
                small_jobs(),
                status=Status.QUEUED,
                created_at__lt=before,
            )
            .order_by("pk")
            .values_list("pk", flat=True)
            .first()
        )
        if job_id is not None:
            oldest.append(job_id)
    return oldest


def take(job_id: int) -> list[int] | None:
    """Claim a batch of small queued jobs of `job_id`'s lane, itself among them when it is still to
    do; the leader comes first.

    None: the job is not one for a batch (too big, or indexing on its own): the caller goes on
    alone. []: nothing to take (another live batch holds the job, and no other waits).
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None:
            return []
        if not is_small(job) or job.status == Status.INDEXING:
            return None
        name = lane(job)
        _lock_lane(name)  # first: the submissions under way commit before the claim looks
        # Staleness by claimed_at, which only a claim writes (reconcile touches updated_at).
        held_elsewhere = job.claimed_by not in (None, job.pk) and (job.claimed_at or now) >= stale
        # Its own batch, delivered again; or a batch whose leader died long ago: take it over.
        resuming = job.status == Status.SPLITTING and not held_elsewhere
        own = [job.pk] if job.status == Status.QUEUED or resuming else []
        leader = job.pk if own else None
        members = Q(status=Status.QUEUED) | Q(
            status=Status.SPLITTING, claimed_by__isnull=False, claimed_at__lt=stale
        )
        # What its own batch left claimed, even once the job itself is done (a worker lost
        # between the batch's commit and its lone members' steps).
        members |= Q(status=Status.SPLITTING, claimed_by=job.pk)
        candidates = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(members, _lane_filter(name), small_jobs())
            .exclude(pk=job.pk)
            .order_by("pk")
            .values_list("pk", "size")[: settings.QUERN_BATCH_SIZE - len(own)]
        )
        others, full = _within_bytes(list(candidates), job.size if own else 0)
        ids = own + others
        # Under the lane's lock: what is submitted from here on sends its own trigger, which
        # lingers after a crowd's batch (more than one job), never after a lone document's.
        crowd_ns = time.time_ns() if len(ids) > 1 else 0
        BatchTrigger.objects.filter(lane=name).update(pending=0, claimed_ns=crowd_ns)
        if not ids:
            return []
        leader = leader or ids[0]  # the job is done or held: the trigger's duty passes on
        Job.objects.filter(pk__in=ids).update(
            status=Status.SPLITTING, claimed_by=leader, claimed_at=now, split_started_at=now, updated_at=now
        )
        if full or len(ids) >= settings.QUERN_BATCH_SIZE:
            _trigger_next(name)  # more may wait behind a full batch: the next one starts beside it
    return ids


def _within_bytes(candidates: list[tuple[int, int]], taken: int) -> tuple[list[int], bool]:
    """The candidates (pk, size) a batch takes within QUERN_BATCH_BYTES, `taken` bytes already
    in it (at least one job, whatever its size), and whether the bytes cut it short.

    Bytes, not only a count: 500 web pages are 20 MB and ten seconds of parsing for one worker
    while the other waits; batches of a megabyte keep both busy, and the next starts sooner."""
    ids = []
    for pk, size in candidates:
        if (taken or ids) and taken + size > settings.QUERN_BATCH_BYTES:
            return ids, True
        ids.append(pk)
        taken += size
    return ids, False


def run(leader: int, ids: list[int]) -> None:
    """Split, index and finish a claimed batch; what cannot go together goes alone."""
    claimed = list(Job.objects.select_related("document").filter(pk__in=ids).order_by("pk"))
    inline = blobs.read_inline([job.file.name for job in claimed])  # the small ones' bytes at once
    ready: list[Prepared] = []
    alone: list[int] = []
    held = written = 0  # records prepared and not yet committed; records the groups wrote
    for job in claimed:
        try:
            prepared = prepare(job, inline.get(job.file.name))
        except (ParseError, Unindexable) as error:
            fail(job.pk, error.as_dict())
            continue
        except OperationalError:
            raise  # the database, passing: the task retries, and its claim is resumed
        except Exception:  # one document's unexpected error fails that document, not its batch
            logger.exception("Job %s failed while its batch was being prepared", job.pk)
            fail(job.pk, internal_error())
            continue
        if prepared is None:
            alone.append(job.pk)
        else:
            ready.append(prepared)
            held += len(prepared.records)
            if held >= settings.QUERN_BATCH_RECORDS:
                written += _commit_or_part(leader, ready, alone)  # bounds the records held in memory
                ready, held = [], 0
    written += _commit_or_part(leader, ready, alone)
    if written:
        settle_when_due(lane(claimed[0]), written)
    for job_id in alone:
        try:
            split_alone(job_id)
        except OperationalError:
            raise
        except Exception:  # as above: this document fails, the others of the batch go on
            logger.exception("Job %s failed on its own steps after leaving its batch", job_id)
            fail(job_id, internal_error())


def _commit_or_part(leader: int, ready: list[Prepared], alone: list[int]) -> int:
    """Commit these prepared documents together: the records written. Those that must go alone
    instead are added to `alone`."""
    try:
        return _commit(leader, ready)
    except OperationalError:
        raise  # a lock timeout, a restart: the task retries the batch (its claim is resumed)
    except DatabaseError:
        # One document's rows refused by the database must not sink the others: each goes alone,
        # and fails alone if it is the one.
        logger.exception("Batch %s could not be written together; its %s jobs go alone", leader, len(ready))
        alone += [p.job.pk for p in ready]
        return 0


def settle_when_due(name: str, records: int, *, count_only: bool = False) -> None:
    """After a batch's last commit: merge search's pending entries once the lane's batches wrote
    SETTLE_AFTER records since its last merge, as a big version does in finalize, and no small
    document waits in the lane.

    In a crowd, one merge per batch cost more than the rest of the batch (the corpus archive's
    16 MiB batches: about 1.4 s each after a 1.2 s batch, its worker unable to take the next),
    so a crowd merges once, at its end, whatever the size of its last batch. The lane's count
    (`BatchTrigger.unsettled`) is only a schedule, outside the batch's transactions: a count lost
    to a crash delays a merge, and meanwhile the database bounds the pending list by itself
    (gin_pending_list_limit) and search reads it whole, slower but complete. `count_only`: the
    caller merges later (the open queue's consumer, when its queue goes quiet).
    """
    with connection.cursor() as cursor:
        # The lane's row may not exist yet: the open queue's straight-through batches send no trigger.
        cursor.execute(
            "INSERT INTO indexing_batchtrigger (lane, pending, sent_ns, claimed_ns, unsettled)"
            " VALUES (%s, 0, 0, 0, %s) ON CONFLICT (lane) DO UPDATE"
            " SET unsettled = indexing_batchtrigger.unsettled + excluded.unsettled RETURNING unsettled",
            [name, records],
        )
        row = cursor.fetchone()
    if row[0] < SETTLE_AFTER or count_only:
        return  # most batches of a crowd, and every lone document: no more to ask
    if Job.objects.filter(_lane_filter(name), small_jobs(), status=Status.QUEUED).exists():
        return  # the crowd goes on: its last batch merges for all
    # One statement claims the merge: of two workers at once, only one finds the count due.
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE indexing_batchtrigger SET unsettled = 0 WHERE lane = %s AND unsettled >= %s RETURNING 1",
            [name, SETTLE_AFTER],
        )
        due = cursor.fetchone() is not None
    if due:
        get_backend().settle()


def internal_error() -> dict[str, str]:
    return {
        "code": "internal_error",
        "message": "Quern hit an unexpected error with this document; it has been logged. Nothing "
        "else was changed; retry the job, and report it if it fails again.",
    }


def _trigger_next(name: str) -> None:
    """Send the trigger of the lane's oldest small job still queued, if any, once the claim commits.

    Under the claim's lock the lane is marked as triggered, as a submission's trigger marks it:
    the submissions that follow send nothing. Left at zero, the next one would send
    a second trigger beside this one, and every full batch two (a million-file archive: 956
    split tasks run and 451 waiting for 785 batches, its own hand-off queued behind them).
    """
    waiting = (
        Job.objects.filter(_lane_filter(name), small_jobs(), status=Status.QUEUED)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    if waiting is not None:
        BatchTrigger.objects.filter(lane=name).update(pending=1, sent_ns=time.time_ns())
        send_after_commit([("quern.split", [waiting])])


def split_alone(job_id: int) -> None:
    """The per-job steps, as the split task runs them for a document of its own."""
    for chunk in split(job_id):
        if index_chunk(job_id, chunk):
            finalize(job_id)


def prepare(job: Job, data: bytes | None = None) -> Prepared | None:
    """Split and parse a small job (its bytes read from storage unless given); None if it must go
    alone. ParseError or Unindexable: it fails, and why."""
    if data is None:
        with default_storage.open(job.file.name, "rb") as stream:
            data = stream.read()
    if sniff_encoding(data[:4096], job.encoding or None) not in ("utf-8", "utf-8-sig"):
        return None  # transcoding keeps its copy in storage: the per-job path does that
    result = split_input(io.BytesIO(data), job, read_records=True)
    if result.units == 0:
        raise Unindexable(no_records_error(job))
    if len(result.chunks) != 1:
        return None
    chunk = result.chunks[0]
    if result.records is not None:  # read in the split's own pass
        records, errors = within_fields(result.records, [], settings.QUERN_MAX_FIELDS_PER_RECORD)
    else:
        records, errors = parse_chunk(
            data[chunk.start : chunk.end],
            job.format,
            first_ordinal=chunk.first_ordinal,
            first_line=chunk.first_line,
            header=result.header,
            dialect=result.dialect,
            max_fields=settings.QUERN_MAX_FIELDS_PER_RECORD,
        )
    terms = document_frequencies(f"{r.title} {r.body}" for r in records)
    return Prepared(job, result, chunk, records, errors, terms)


def _commit(leader: int, ready: list[Prepared]) -> int:
    """One transaction: every job's records, chunk, end and version swap, and the statistics.
    Returns the records written."""
    if not ready:
        return 0
    backend = get_backend()
    rows = backend.rows([(p.job.pk, p.job.document_id, p.records) for p in ready if p.records])
    with transaction.atomic():
        ours = set(
            Job.objects.select_for_update()
            .filter(pk__in=[p.job.pk for p in ready], status=Status.SPLITTING, claimed_by=leader)
            .values_list("pk", flat=True)
        )
        batch = [p for p in ready if p.job.pk in ours]  # a cancel meanwhile took the others
        if not batch:
            return 0
        documents = {
            d.pk: d
            for d in Document.objects.select_for_update().filter(pk__in=[p.job.document_id for p in batch])
        }
        chunks, ended, live, retired, purged = [], [], [], [], []
        # Two versions of one document in one batch: the newer goes live, the older is superseded.
        newest: dict[int, int] = {}
        for p in batch:
            if p.records:
                newest[p.job.document_id] = max(newest.get(p.job.document_id, 0), p.job.pk)
        lengths = backend.index_many(rows if len(batch) == len(ready) else rows.only(ours))
        # The jobs' end once their records are written, the most of the commit's time (a 16 MiB
        # batch: about a second); the chunk rows, word counts and commit still follow it.
        now = timezone.now()
        for p in batch:
            job = p.job
            chunks.append(ended_in_one_chunk(p, lengths.get(job.pk, 0), now))
            if not p.records:
                purged.append(job.pk)
            else:
                document = documents[job.document_id]
                previous = document.live_job_id
                if newest[job.document_id] != job.pk or (previous is not None and previous > job.pk):
                    purged.append(job.pk)  # a newer version went live first: it stays live
                else:
                    go_live(document, job)
                    live.append(job)
                    if previous is not None:
                        retired.append(previous)
            ended.append(job)
        Chunk.objects.filter(job_id__in=[j.pk for j in ended]).delete()
        create_rows(chunks)
        jobs.owe_events(ended)  # sets their flags, saved with the rest of their rows just below
        save_rows(
            ended,
            [
                "status",
                "events_pending",
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
        save_rows(
            [documents[j.document_id] for j in live],
            ["live_job", "format", "encoding", "size", "sha256", "file", "title", "updated_at"],
        )
        statistics.swap(live, retired)
        send_after_commit([("quern.purge_job", [job_id]) for job_id in purged + retired])
    return sum(len(p.records) for p in batch)


def ended_in_one_chunk(p: Prepared, length: int, now) -> Chunk:
    """Set the fields of a one-chunk job that ends here (succeeded, or failed when none of its
    records could be indexed), unsaved; its chunk row, done, unsaved too."""
    job, c = p.job, p.chunk
    job.split_info = {"header": p.result.header, "dialect": p.result.dialect, "title": p.result.title}
    job.records_total, job.records_indexed = p.result.units, len(p.records)
    job.chunks_total = job.chunks_done = 1
    job.errors = [e.as_dict() for e in p.errors[:MAX_STORED_ERRORS]]
    job.error_count = len(p.errors)
    job.split_finished_at = job.finished_at = job.updated_at = now
    job.status = Status.SUCCEEDED if p.records else Status.FAILED
    if not p.records:
        job.errors.append(
            {
                "code": "no_valid_records",
                "message": f"None of the {job.records_total:,} records could be indexed; "
                "the errors above say why.",
            }
        )
        job.error_count += 1
    return Chunk(
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


def save_rows(rows: list, fields: list[str]) -> None:
    """Save these fields of many model instances in one statement.

    Django's bulk_update writes one CASE per field over all rows: 2.4 of a 500-document batch's
    2.7 s went to compiling it (profiled). PostgreSQL takes the rows as one array per column
    (UPDATE … FROM unnest): 85 µs a job row, where one UPDATE per row, even pipelined, took 140
    (measured on 500 jobs). SQLite runs one UPDATE per row, as one executemany. Values are
    prepared by the fields themselves, so JSON and dates reach each database as its own.
    """
    if not rows:
        return
    meta = rows[0]._meta
    columns = [meta.get_field(name) for name in fields]
    table = connection.ops.quote_name(meta.db_table)
    if connection.vendor == "postgresql":
        _save_rows_unnest(table, columns, rows)
        return
    assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in columns)
    params = [
        [f.get_db_prep_save(getattr(row, f.attname), connection) for f in columns] + [row.pk] for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(f"UPDATE {table} SET {assignments} WHERE id = %s", params)


def create_rows(rows: list, *, with_ids: bool = False) -> None:
    """Insert new model instances (their ids are not read back) in one statement or stream.
    No field's pre_save runs (no auto_now): for rows like Chunk's, built with every value.
    `with_ids`: their ids were given (taken from the tables' sequences), and are written too.

    PostgreSQL gets them by COPY: Django 5.2's bulk_create sends each column as one array
    literal, and quoting JSON inside it (psycopg's client-side array dumper, a regex call for
    every '"') took 0.26 s of a 500-document batch's chunk rows (1.3 MB of word counts); COPY
    sends the same rows as they are. SQLite takes bulk_create.
    """
    if not rows:
        return
    if connection.vendor != "postgresql":
        type(rows[0]).objects.bulk_create(rows)
        return
    meta = rows[0]._meta
    fields = [f for f in meta.concrete_fields if with_ids or not f.primary_key]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in fields)
    connection.ensure_connection()
    copy_in = f"COPY {quote(meta.db_table)} ({columns}) FROM STDIN"
    with (
        connection.wrap_database_errors,
        connection.connection.cursor() as cursor,
        cursor.copy(copy_in) as copy,
    ):
        converters = [(f.attname, _column_converter(f)) for f in fields]
        for row in rows:
            values = row.__dict__  # not through the fields' descriptors: a FileField's builds a FieldFile
            copy.write_row([convert(values.get(name)) for name, convert in converters])


# Fields whose values psycopg takes as they are. Going through each field's get_db_prep_save was
# 60% of the open queue consumer's writes of its documents and jobs (py-spy).
_AS_THEY_ARE = {
    "AutoField",
    "BigAutoField",
    "BigIntegerField",
    "BooleanField",
    "CharField",
    "DateTimeField",
    "ForeignKey",
    "IntegerField",
    "OneToOneField",
    "PositiveBigIntegerField",
    "PositiveIntegerField",
    "TextField",
}


def _column_converter(field):
    """A field's stored value (None: NULL) as COPY takes it; the field's own conversion unless it
    is one psycopg takes as it is."""
    kind = field.get_internal_type()
    if kind in _AS_THEY_ARE:
        return _as_it_is
    if kind == "FileField":
        return _file_name
    return lambda value: _column_value(field, value)


def _as_it_is(value):
    return value


def _file_name(value):
    return None if value is None else str(value)  # a FieldFile or its name; "" for none


def _column_value(field, value):
    """A field's value as PostgreSQL takes it in a COPY row or an array: JSON as its text."""
    if value is None:
        return None  # SQL NULL, as Django stores a JSONField's None
    if field.get_internal_type() == "JSONField":
        try:  # orjson: a batch's chunk rows carry every page's word counts (3% of an archive's worker)
            return orjson.dumps(value).decode()
        except TypeError:  # an integer past 64 bits in a submitter's metadata: the standard library's
            return json.dumps(value, cls=field.encoder)
    return field.get_db_prep_save(value, connection)


def _save_rows_unnest(table: str, columns: list, rows: list) -> None:
    """save_rows on PostgreSQL: each column's values as one array, JSON as text cast back."""
    quote = connection.ops.quote_name
    selects, arrays = ["unnest(%s::bigint[]) AS id"], [[row.pk for row in rows]]
    for field in columns:
        if field.get_internal_type() == "JSONField":
            selects.append(f"unnest(%s::text[])::jsonb AS {quote(field.column)}")
        else:
            selects.append(f"unnest(%s::{field.db_type(connection)}[]) AS {quote(field.column)}")
        arrays.append([_column_value(field, getattr(row, field.attname)) for row in rows])
    assignments = ", ".join(f"{quote(f.column)} = v.{quote(f.column)}" for f in columns)
    source = f"(SELECT {', '.join(selects)}) AS v"
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {assignments} FROM {source} WHERE {table}.id = v.id", arrays)
