"""Search's live statistics: a version's words and totals counted as it goes live, uncounted as
it is retired — in finalize's transaction, so BM25 and the vocabulary see what search sees."""

from __future__ import annotations

from collections import Counter

from indexing.models import Chunk, Job
from indexing.search import get_backend


def swap(job: Job, previous_id: int | None) -> None:
    """`job` (locked) has just gone live in place of `previous_id`: move the counts with it."""
    if previous_id is not None:
        previous = Job.objects.select_for_update(no_key=True).filter(pk=previous_id).first()
        if previous is not None and previous.terms_counted:
            _count(previous, sign=-1)
    if not job.terms_counted:
        _count(job, sign=1)


def retire(job_id: int | None) -> None:
    """A live version is going away without a successor (its document is deleted)."""
    if job_id is None:
        return
    job = Job.objects.select_for_update(no_key=True).filter(pk=job_id).first()
    if job is not None and job.terms_counted:
        _count(job, sign=-1)


def _count(job: Job, *, sign: int) -> None:
    terms: Counter[str] = Counter()
    length = 0
    for chunk_terms, chunk_length in Chunk.objects.filter(job_id=job.pk).values_list("terms", "length"):
        terms.update(chunk_terms)
        length += chunk_length
    get_backend().count_terms(dict(terms), records=job.records_indexed, length=length, sign=sign)
    job.terms_counted = sign > 0
    Job.objects.filter(pk=job.pk).update(terms_counted=job.terms_counted)
