"""How a job ends — succeeded (its version goes live), failed or cancelled — and its rows purged.

Every end is a locked state change guarded by the status it expects, so a second delivery
changes nothing, and every end calls `on_job_finished` inside its transaction.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from indexing.errors import QuernError
from indexing.models import ACTIVE_STATUSES, FINISHED_STATUSES, Document, Job, Status
from indexing.pipeline import notify, storage
from indexing.pipeline.dispatch import send_after_commit
from indexing.search import get_backend


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
                    "message": f"None of the {job.records_total:,} records could be indexed; "
                    "the errors above say why.",
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
                "not_cancellable",
                f"Job {job_id} already {job.status}; only an unfinished job can be cancelled.",
                status=409,
            )
        job.status = Status.CANCELLED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at", "updated_at"])
        send_after_commit([("quern.purge_job", [job.pk])])
        on_job_finished(job)
    return job


def fail(job_id: int, error: dict[str, Any]) -> None:
    """End an unfinished job as failed with an error a person can read; its rows are removed."""
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.status in FINISHED_STATUSES:
            return
        _mark_failed(job, error)


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

    Called inside the transaction that ends the job, from every place that ends one. It marks
    the job's event as owed (the outbox flag `events_pending`, committed with the end), and after
    the commit publishes `job.<status>` on quern.events and the end reply to the submitter's
    reply_to; if that publish fails, reconcile publishes it again.
    """
    if not notify.enabled():
        return
    job.events_pending = True  # also on the instance: a later job.save() by the caller keeps it
    Job.objects.filter(pk=job.pk).update(events_pending=True)
    job_id = job.pk
    transaction.on_commit(lambda: notify.publish_job_end(job_id))


def purge_job(job_id: int) -> int:
    """Remove the records of a job that is not live (superseded, failed, cancelled)."""
    job = Job.objects.filter(pk=job_id).select_related("document").first()
    if job is None or job.status in ACTIVE_STATUSES or job.document.live_job_id == job.pk:
        return 0
    removed = get_backend().remove_job(job_id)
    storage.delete(job.utf8_path)
    return removed
