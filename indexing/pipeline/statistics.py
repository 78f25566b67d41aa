"""Search's live statistics: a version's words and totals counted as it goes live, uncounted as
it is retired — in finalize's transaction, so BM25 and the vocabulary see what search sees."""

from __future__ import annotations

from collections import Counter

from indexing.models import Chunk, Job
from indexing.search import get_backend


def swap(job: Job, previous_id: int | None) -> None:
    """`job` (locked) has just gone live in place of `previous_id`: move the counts with it."""
    swap_many([job], [previous_id] if previous_id is not None else [])


def swap_many(live: list[Job], retired_ids: list[int]) -> None:
    """Versions that just went live, and the ones they replaced: one count each way."""
    retired = list(Job.objects.select_for_update(no_key=True).filter(pk__in=retired_ids, terms_counted=True))
    _count(retired, sign=-1)
    _count([j for j in live if not j.terms_counted], sign=1)


def retire(job_id: int | None) -> None:
    """A live version is going away without a successor (its document is deleted)."""
    if job_id is None:
        return
    _count(list(Job.objects.select_for_update(no_key=True).filter(pk=job_id, terms_counted=True)), sign=-1)


def _count(versions: list[Job], *, sign: int) -> None:
    if not versions:
        return
    terms: Counter[str] = Counter()
    length = 0
    rows = Chunk.objects.filter(job__in=versions).values_list("terms", "length")
    for chunk_terms, chunk_length in rows:
        terms.update(chunk_terms)
        length += chunk_length
    records = sum(j.records_indexed for j in versions)
    get_backend().count_terms(dict(terms), records=records, length=length, sign=sign)
    for job in versions:
        job.terms_counted = sign > 0
    Job.objects.filter(pk__in=[j.pk for j in versions]).update(terms_counted=sign > 0)
