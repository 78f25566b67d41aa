"""How a job ends — succeeded (its version goes live), failed or cancelled — and its rows purged.

Every end is a move of the job's locked row (pipeline.jobs) from a status that allows it, so a
second delivery changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from indexing.errors import QuernError
from indexing.models import ACTIVE_STATUSES, FINISHED_STATUSES, Document, Job, Status
from indexing.pipeline import jobs, statistics, storage
from indexing.pipeline.dispatch import send_after_commit
from indexing.search import get_backend

# A version this big merges GIN's pending list as it goes live (search.postgres explains why);
# smaller ones leave it to the next big one and to autovacuum.
SETTLE_AFTER = 1000


def finalize(job_id: int) -> None:
    """Make the job's records live and retire the document's previous version, atomically."""
    with jobs.locked(job_id, with_document=True) as job:
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
        if previous is not None and previous > job.pk:
            # A newer version went live first (two jobs for one document): it stays live.
            jobs.move(job, Status.SUCCEEDED)
            send_after_commit([("quern.purge_job", [job.pk])])
            return
        go_live(document, job)
        document.save()
        statistics.swap([job], [previous] if previous is not None else [])
        if previous is not None:
            send_after_commit([("quern.purge_job", [previous])])
        # Moved (and its finished_at stamped) last: the job ends when its version and statistics
        # are written, not before (a million records' words: about 2.8 s after the last chunk).
        jobs.move(job, Status.SUCCEEDED)
        if job.records_indexed >= SETTLE_AFTER:  # after the end's event, which goes out first
            transaction.on_commit(get_backend().settle, robust=True)


def go_live(document: Document, job: Job) -> None:
    """Point the (locked) document at the job's version: search joins on live_job (unsaved)."""
    document.live_job = job
    document.format, document.encoding = job.format, job.encoding
    document.size, document.sha256, document.file = job.size, job.sha256, job.file.name
    document.title = (job.split_info.get("title") or "")[:500]
    document.updated_at = timezone.now()


def cancel(job_id: int) -> Job:
    """Stop an unfinished job: its undone chunks are skipped, a running one is rolled back at its
    commit (index_chunk re-checks the status under the job's lock), its rows are purged, and the
    document's live version stays. Cancelling a cancelled job changes nothing."""
    with jobs.locked(job_id) as job:
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
        jobs.move(job, Status.CANCELLED)
    return job


def fail(job_id: int, error: dict[str, Any]) -> None:
    """End an unfinished job as failed with an error a person can read; its rows are removed."""
    with jobs.locked(job_id) as job:
        if job is None or job.status in FINISHED_STATUSES:
            return
        _mark_failed(job, error)


def _mark_failed(job: Job, error: dict[str, Any]) -> None:
    job.errors = job.errors + [error]
    job.error_count += 1
    jobs.move(job, Status.FAILED, also=("errors", "error_count"))


def delete_document(document_id: int) -> None:
    """Delete a document, its jobs and records; its live version leaves search's statistics.

    Its unfinished jobs are cancelled in the same locked transaction, so none goes live (and is
    counted) between this and the delete."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            return
        for job_id in Job.objects.filter(document_id=document_id, status__in=ACTIVE_STATUSES).values_list(
            "pk", flat=True
        ):
            with jobs.locked(job_id) as job:
                if job is not None and job.status in ACTIVE_STATUSES:
                    jobs.move(job, Status.CANCELLED)
        statistics.retire(document.live_job_id)
        Document.objects.filter(pk=document_id).update(live_job=None)
    backend = get_backend()
    for job_id in Job.objects.filter(document_id=document_id).values_list("pk", flat=True):
        backend.remove_job(job_id)
    Document.objects.filter(pk=document_id).delete()


def purge_job(job_id: int) -> int:
    """Remove the records of a job that is not live (superseded, failed, cancelled)."""
    job = Job.objects.filter(pk=job_id).select_related("document").first()
    if job is None or job.status in ACTIVE_STATUSES or job.document.live_job_id == job.pk:
        return 0
    removed = get_backend().remove_job(job_id)
    storage.delete(job.utf8_path)
    return removed
