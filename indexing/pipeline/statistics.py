"""Search's live statistics: a version's words and totals counted as it goes live, uncounted as
it is retired — in finalize's transaction, so BM25 and the vocabulary see what search sees."""

from __future__ import annotations

from indexing.models import Job
from indexing.search import get_backend


def swap(live: list[Job], retired_ids: list[int]) -> None:
    """Versions (locked) that just went live, and the ones they replaced: one signed change.

    One change, not one per version: each takes the word rows in word order and the totals row
    last, so two finalizes at once never wait on each other in a cycle (two changes in one
    transaction would take the totals row before the second one's words). The words are summed
    from the versions' chunk rows by the database (`count_terms`).
    """
    retired = list(Job.objects.select_for_update(no_key=True).filter(pk__in=retired_ids, terms_counted=True))
    added = [job for job in live if not job.terms_counted]
    if not added and not retired:
        return
    records = sum(job.records_indexed for job in added) - sum(job.records_indexed for job in retired)
    get_backend().count_terms([job.pk for job in added], [job.pk for job in retired], records=records)
    for versions, counted in ((added, True), (retired, False)):
        for job in versions:
            job.terms_counted = counted
        Job.objects.filter(pk__in=[job.pk for job in versions]).update(terms_counted=counted)


def count_new(live: list[Job]) -> None:
    """Versions written live as they were created, their rows flagged terms_counted and their
    chunk rows written in this transaction: counted as swap counts a version going live. New
    documents only: no version of theirs is retired."""
    if live:
        get_backend().count_terms([job.pk for job in live], [], records=sum(j.records_indexed for j in live))


def retire(job_id: int | None) -> None:
    """A live version is going away without a successor (its document is deleted)."""
    if job_id is not None:
        swap([], [job_id])
