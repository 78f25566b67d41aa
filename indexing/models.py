"""Quern's tables: documents, jobs and their chunks, records (the index's content)."""

from __future__ import annotations

import functools

import orjson
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models.expressions import RawSQL
from django.urls import get_script_prefix, reverse


def json_text(value: dict[str, int]) -> RawSQL:
    """A JSONField's new value serialized now, by orjson, for an `update()` run later: a chunk's
    word counts (about 100 KB) took json.dumps 3 ms inside the transaction, which on SQLite holds
    every writer back."""
    return RawSQL("%s", [orjson.dumps(value).decode()], output_field=models.JSONField())


class Source(models.TextChoices):
    WEB = "web", "web form"
    API = "api", "JSON API"
    CLI = "cli", "command line"
    AMQP = "amqp", "AMQP message"
    ADMIN = "admin", "admin"
    BACKFILL = "backfill", "backfill"


class Status(models.TextChoices):
    QUEUED = "queued"
    SPLITTING = "splitting"
    INDEXING = "indexing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (Status.QUEUED, Status.SPLITTING, Status.INDEXING)
FINISHED_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)


class Document(models.Model):
    """A named document and the stored bytes of its current version."""

    name = models.CharField(max_length=255, db_index=True)
    format = models.CharField(max_length=16)
    encoding = models.CharField(
        max_length=32, blank=True, help_text="Declared by the submitter; empty = UTF-8/UTF-16 by BOM."
    )
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)  # indexed in Meta: no LIKE index beside it
    file = models.FileField(
        upload_to="documents/", max_length=255
    )  # named by sha256 in pipeline.storage.store_stream
    title = models.CharField(max_length=500, blank=True, help_text="The HTML <title>, when there is one.")
    # The job whose records search shows. Swapped by finalize in the transaction that makes
    # a new version live: search joins on it, so a version is live all at once or not at all.
    live_job = models.OneToOneField("Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["sha256"], name="document_sha256")]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk})"


class Job(models.Model):
    """One run of the pipeline over one version of a document."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="jobs")
    # Indexed by (status, updated_at) alone. Every index of this table is written again by each
    # update that changes the status (PostgreSQL's HOT cannot skip them): a lone status index and
    # its LIKE twin were a sixth of a batch's row writes for lookups the pair already serves.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.API)
    # The input this job reads (a replace brings new bytes; a re-index reuses the document's).
    format = models.CharField(max_length=16)
    encoding = models.CharField(max_length=32, blank=True)
    size = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    file = models.FileField(
        upload_to="documents/", max_length=255
    )  # named by sha256 in pipeline.storage.store_stream
    chunk_size = models.PositiveIntegerField()
    # What split found, for index_chunk: the UTF-8 copy to read (when transcoded), CSV header.
    utf8_path = models.CharField(max_length=255, blank=True)
    split_info = models.JSONField(default=dict, blank=True)
    records_total = models.PositiveBigIntegerField(default=0)
    records_indexed = models.PositiveBigIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    error_count = models.PositiveIntegerField(default=0)
    # The backfill that started this job (its messages go to the backfill queue), and the
    # failed or cancelled job this one retries.
    backfill = models.ForeignKey(
        "Backfill", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    retry_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retries"
    )
    # The archive job that unpacked this job's document from its archive (.zip, .tar, .tar.gz).
    archive = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    split_started_at = models.DateTimeField(null=True, blank=True)
    split_finished_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The open queue (indexing/consumers.py): a key makes a second submission return this job;
    # reply_to/correlation_id say where the job's end is answered; metadata is the submitter's own.
    # NULL, not "": the jobs without a key must not collide under its unique constraint (Meta).
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    reply_to = models.CharField(max_length=255, blank=True)
    correlation_id = models.CharField(max_length=255, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Outbox: set in the transaction that ends the job, cleared once its event (and end reply) is
    # confirmed by the broker; reconcile re-publishes what stays set (at-least-once events).
    events_pending = models.BooleanField(default=False)  # indexed where set: Meta
    # Whether this job's chunks are counted in Term and SearchStats (set as it goes live, cleared
    # as it is retired), so a second delivery of either never counts twice.
    terms_counted = models.BooleanField(default=False)
    # The job whose batch took this one (pipeline.batching): its own split message then does nothing.
    claimed_by = models.BigIntegerField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)  # written by a claim only: staleness

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "updated_at"]),
            # Only the few jobs whose events are owed (reconcile's lookup): a job ended and
            # published is written to no entry of it.
            models.Index(
                fields=["events_pending"], condition=models.Q(events_pending=True), name="job_events_owed"
            ),
        ]
        constraints = [
            # A constraint, not unique=True, which adds a LIKE index nobody queries on PostgreSQL.
            models.UniqueConstraint(fields=["idempotency_key"], name="job_idempotency_key_unique"),
        ]

    def __str__(self) -> str:
        return f"Job #{self.pk} ({self.status})"

    def get_absolute_url(self) -> str:
        return _job_url(get_script_prefix()) % self.pk

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES

    @property
    def progress_percent(self) -> int:
        if self.status == Status.SUCCEEDED:
            return 100
        if not self.chunks_total:
            return 0
        return int(100 * self.chunks_done / self.chunks_total)


class Chunk(models.Model):
    """A slice of a job's input; `done_at` set in the transaction that wrote its records."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="chunks")
    number = models.PositiveIntegerField()
    start = models.BigIntegerField()
    end = models.BigIntegerField()
    first_ordinal = models.PositiveBigIntegerField()
    first_line = models.PositiveBigIntegerField()
    units = models.PositiveIntegerField()
    records = models.PositiveIntegerField(default=0)
    done_at = models.DateTimeField(null=True, blank=True)
    # When its index_chunk message was last published: reconcile re-sends only a real stall,
    # not a chunk that is merely waiting its turn in a backlog.
    sent_at = models.DateTimeField(null=True, blank=True)
    # Runs started and never ended (a worker killed mid-chunk): past the limit the job fails
    # instead of the chunk being redelivered for ever.
    attempts = models.PositiveIntegerField(default=0)
    # What the chunk adds to search's statistics when its job goes live (and takes away when the
    # version is retired): vocabulary word -> records holding it, and the index length of its
    # records (PostgreSQL's BM25; 0 where the database keeps its own statistics).
    terms = models.JSONField(default=dict, blank=True)
    length = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["job", "number"]
        constraints = [models.UniqueConstraint(fields=["job", "number"], name="unique_chunk_per_job")]
        indexes = [models.Index(fields=["done_at"])]  # records per minute on the status page

    def __str__(self) -> str:
        return f"chunk {self.number} of job #{self.job_id}"


class Record(models.Model):
    """One searchable record, written by the job that parsed it; immutable once written."""

    # No index of its own: the unique (job, ordinal) constraint's index serves every job_id
    # lookup, and one index fewer per inserted record is measurable on a million-row CSV.
    # No foreign-key constraints either: checking two deferred constraints per row at commit
    # was an eighth of a 5,000-record chunk's time on PostgreSQL. Records are written only by
    # their job's pipeline, whose transaction commits only after it finds the job, under the
    # job's row lock, still running (a cancelled or deleted job's chunk rolls back); they go
    # with their job, deleted by job_id (the unique index); a document's records are its jobs'.
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="records", db_index=False, db_constraint=False
    )
    document = models.ForeignKey(
        Document, on_delete=models.DO_NOTHING, related_name="records", db_index=False, db_constraint=False
    )
    ordinal = models.PositiveBigIntegerField()
    key = models.TextField()  # a record's own id, as long as its source makes it
    title = models.TextField(blank=True)
    body = models.TextField(blank=True)
    fields = models.JSONField(default=dict, blank=True)
    # PostgreSQL only (title weight A, body B, config english; GIN index by migration).
    # On SQLite the column stays empty and an FTS5 table holds the index.
    search = SearchVectorField(null=True, editable=False)

    class Meta:
        ordering = ["job", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["job", "ordinal"], name="unique_record_per_job")]

    def __str__(self) -> str:
        return f"{self.key}: {self.title[:60]}" if self.title else f"record {self.key}"


class Term(models.Model):
    """A word of the live vocabulary and in how many live records it appears.

    Typo corrections and completions come from here; on PostgreSQL, BM25's document frequencies
    too, summed by `lexeme` (the word's `english` stem). Kept by finalize: a version's words are
    added as it goes live and taken away as it is retired. A word at 0 stays, unused.
    """

    word = models.CharField(max_length=64, unique=True)
    df = models.BigIntegerField(default=0)
    lexeme = models.CharField(max_length=128, blank=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.word} ({self.df})"


class BatchTrigger(models.Model):
    """Whether a batch trigger is on its way, per lane (pipeline.batching): only the first small
    submission after a claim sends a split message, the rest wait in the queue for its batch.
    `pending` is non-zero while one is on its way (a full batch's claim sets it for the trigger
    it sends; on PostgreSQL a submission that finds one on its way only reads)."""

    lane = models.CharField(max_length=16, unique=True)
    pending = models.PositiveIntegerField(default=0)
    # When the last trigger was sent (epoch ns): also whose, since two submissions never share it.
    sent_ns = models.BigIntegerField(default=0)
    # When the lane's last batch of a crowd (more than one job) was claimed, epoch ns, or 0: the
    # next trigger runs QUERN_BATCH_LINGER_MS after it.
    claimed_ns = models.BigIntegerField(default=0)
    # Records the lane's batches wrote since search's pending entries were last merged for them
    # (pipeline.batching.settle_when_due).
    unsettled = models.BigIntegerField(default=0, db_default=0)

    def __str__(self) -> str:
        return f"{self.lane}: {'a trigger on its way' if self.pending else 'no trigger on its way'}"


class SearchStats(models.Model):
    """Live records and their total index length (one row): BM25's N and average length."""

    records = models.BigIntegerField(default=0)
    length = models.BigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "search stats"

    def __str__(self) -> str:
        return f"{self.records:,} live records"


class BackfillStatus(models.TextChoices):
    RUNNING = "running"  # still feeding documents in
    FED = "fed"  # every matching document has its job; waiting for the last ones to end
    DONE = "done"
    CANCELLED = "cancelled"


class Backfill(models.Model):
    """A re-index of many stored documents, fed in as capacity frees; resumable from `cursor`."""

    filters = models.JSONField(default=dict, help_text="Which documents: all, ids, since, format, failed.")
    status = models.CharField(
        max_length=16, choices=BackfillStatus.choices, default=BackfillStatus.RUNNING, db_index=True
    )
    chunk_size = models.PositiveIntegerField(null=True, blank=True)
    # Documents are taken in id order; `cursor` is the last id given a job, so a restart resumes after it.
    cursor = models.BigIntegerField(default=0)
    total = models.PositiveIntegerField(default=0, help_text="Matching documents when the backfill started.")
    submitted = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "backfills"

    def __str__(self) -> str:
        return f"Backfill #{self.pk} ({self.status}, {self.submitted}/{self.total})"


class Scope(models.TextChoices):
    """What an API key may do; `admin` may do everything."""

    SEARCH = "search", "search: /api/search, /api/suggest"
    SUBMIT = "submit", "submit: POST /api/documents, and read jobs and documents"
    MANAGE = "manage", "manage: cancel, retry, re-index, backfills, and read jobs and documents"
    ADMIN = "admin", "admin: everything, /api/status too"


class ApiKey(models.Model):
    """A key for the API, stored as the SHA-256 of its secret (shown once, when it is made)."""

    name = models.CharField(max_length=100, help_text="Who or what uses it, e.g. 'nightly importer'.")
    prefix = models.CharField(max_length=16, unique=True, editable=False, help_text="Shown; names the key.")
    digest = models.CharField(max_length=64, editable=False)
    scopes = models.JSONField(default=list)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: never expires.")
    revoked = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


_PK = 918273645  # stands for a job's id in the reversed URL, then replaced by a placeholder


@functools.cache
def _job_url(script_prefix: str) -> str:
    """The job page's URL with %d for its id: reverse() costs ~50 µs, and every reply and event
    of a 500-job batch carries one (profiled). Keyed by the script prefix, which reverse() reads."""
    return reverse("job-detail", args=[_PK]).replace("%", "%%").replace(str(_PK), "%d")


class StoredBytes(models.Model):
    """A small document's bytes, kept in the database instead of a file of their own.

    Named as a stored file is (`db/<sha256[:2]>/<sha256>`), so jobs and documents refer to it by
    their `file` as to any other; indexing.blobs' storage reads, sizes and removes it. A file of
    its own cost the open queue's consumer half of its time per one-record message (py-spy).
    """

    name = models.CharField(max_length=255, primary_key=True)
    data = models.BinaryField()
    stored_at = models.DateTimeField()  # written again when the same bytes are stored again

    def __str__(self) -> str:
        return self.name
