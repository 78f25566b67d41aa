"""Backfills: re-index many stored documents, fed in as capacity frees, resumable after a restart.

A Backfill row holds which documents (filters), a cursor (the last document id given a job) and
counts. `feed` gives jobs to the next documents in id order only while waiting work is below
QUERN_BACKFILL_WINDOW, so a backfill of 100,000 documents never puts 100,000 workflows on the
broker at once, and interactive submissions keep room under QUERN_MAX_WAITING. Its jobs are
`source=backfill`: their messages go to the backfill queue, never ahead of interactive work.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from indexing.errors import QuernError
from indexing.formats.archives import ARCHIVE_FORMAT
from indexing.models import ACTIVE_STATUSES, Backfill, BackfillStatus, Document, Job, Source, Status
from indexing.pipeline.backpressure import waiting_work
from indexing.pipeline.finish import cancel as cancel_job
from indexing.pipeline.intake import reindex

FILTER_NAMES = ("all", "ids", "since", "format", "failed")


def _since(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise QuernError(
                "bad_parameter", f"since must be a date (2026-01-31) or a date and time; got {value!r}."
            )
        moment = datetime(day.year, day.month, day.day)
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def matching_documents(filters: dict[str, Any]) -> QuerySet[Document]:
    """The documents a backfill covers, in id order (the cursor's order). Not an archive: its
    files are documents of their own, and unpacking it again would store them all again."""
    documents = Document.objects.exclude(format=ARCHIVE_FORMAT)
    if filters.get("ids"):
        documents = documents.filter(pk__in=filters["ids"])
    if filters.get("since"):
        documents = documents.filter(created_at__gte=_since(filters["since"]))
    if filters.get("format"):
        documents = documents.filter(format=filters["format"])
    if filters.get("failed"):
        latest = Job.objects.filter(document=OuterRef("pk")).order_by("-pk").values("status")[:1]
        documents = documents.annotate(latest_status=Subquery(latest)).filter(latest_status=Status.FAILED)
    return documents.order_by("pk")


def start(filters: dict[str, Any], *, chunk_size: int | None = None) -> Backfill:
    """Record a backfill and feed its first window of jobs (the rest follow as capacity frees)."""
    filters = {
        name: value
        for name, value in filters.items()
        if name in FILTER_NAMES and value not in (None, False, [], "")
    }
    if not filters:
        raise QuernError("bad_parameter", "Say which documents: all, ids, since, format or failed.")
    if filters.get("since"):
        _since(filters["since"])
    total = matching_documents(filters).count()
    backfill = Backfill.objects.create(filters=filters, chunk_size=chunk_size, total=total)
    feed(backfill.pk)
    backfill.refresh_from_db()
    return backfill


def feed(backfill_id: int | None = None) -> int:
    """Give jobs to the next documents of running backfills while there is room; returns how many."""
    started = 0
    ids = (
        [backfill_id]
        if backfill_id
        else list(
            Backfill.objects.filter(status__in=(BackfillStatus.RUNNING, BackfillStatus.FED))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
    )
    for pk in ids:
        started += _feed_one(pk)
    return started


def _feed_one(backfill_id: int) -> int:
    with transaction.atomic():
        # The row lock serializes feeders (beat, the reindex command, an admin action).
        backfill = Backfill.objects.select_for_update().filter(pk=backfill_id).first()
        if backfill is None or backfill.status in (BackfillStatus.DONE, BackfillStatus.CANCELLED):
            return 0
        if backfill.status == BackfillStatus.FED:
            if not backfill.jobs.filter(status__in=ACTIVE_STATUSES).exists():
                backfill.status, backfill.finished_at = BackfillStatus.DONE, timezone.now()
                backfill.save(update_fields=["status", "finished_at", "updated_at"])
            return 0
        room = settings.QUERN_BACKFILL_WINDOW - waiting_work().total
        if room <= 0:
            return 0
        documents = list(
            matching_documents(backfill.filters)
            .filter(pk__gt=backfill.cursor)
            .values_list("pk", flat=True)[:room]
        )
        for document_id in documents:
            reindex(
                document_id, source=Source.BACKFILL, chunk_size=backfill.chunk_size, backfill_id=backfill.pk
            )
        if documents:
            backfill.cursor = documents[-1]
            backfill.submitted += len(documents)
        if len(documents) < room:
            backfill.status = BackfillStatus.FED
        backfill.save(update_fields=["cursor", "submitted", "status", "updated_at"])
        return len(documents)


def cancel(backfill_id: int) -> Backfill:
    """Stop feeding and cancel the backfill's unfinished jobs (live versions stay)."""
    with transaction.atomic():
        backfill = Backfill.objects.select_for_update().get(pk=backfill_id)
        if backfill.status in (BackfillStatus.DONE, BackfillStatus.CANCELLED):
            return backfill
        backfill.status, backfill.finished_at = BackfillStatus.CANCELLED, timezone.now()
        backfill.save(update_fields=["status", "finished_at", "updated_at"])
        for job_id in backfill.jobs.filter(status__in=ACTIVE_STATUSES).values_list("pk", flat=True):
            cancel_job(job_id)
    return backfill


def progress(backfill: Backfill) -> dict[str, Any]:
    """Counts for the admin, the status page and the command."""
    counts = backfill.jobs.aggregate(
        succeeded=Count("pk", filter=Q(status=Status.SUCCEEDED)),
        failed=Count("pk", filter=Q(status=Status.FAILED)),
        cancelled=Count("pk", filter=Q(status=Status.CANCELLED)),
        active=Count("pk", filter=Q(status__in=ACTIVE_STATUSES)),
    )
    finished = counts["succeeded"] + counts["failed"] + counts["cancelled"]
    return {
        "id": backfill.pk,
        "status": backfill.status,
        "filters": backfill.filters,
        "total": backfill.total,
        "submitted": backfill.submitted,
        **counts,
        "percent": int(100 * finished / backfill.total) if backfill.total else 100,
        "created_at": backfill.created_at.isoformat(),
        "finished_at": backfill.finished_at.isoformat() if backfill.finished_at else None,
    }
