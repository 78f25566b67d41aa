"""A job's status: every change happens here, on the job's locked row, from a status that allows it.

    queued -> splitting -> indexing -> succeeded
    (any of the first three) -> failed | cancelled

Delivery is at least once, so each step takes the job's row lock (`locked`) and checks the status
it expects before it moves the job on (`move`); a second delivery finds the job moved and does
nothing. A job's end (succeeded, failed, cancelled) is recorded with what follows it: the event
owed on quern.events, and the purge of a failed or cancelled job's rows after the commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import transaction
from django.utils import timezone

from indexing.models import FINISHED_STATUSES, Job, Status
from indexing.pipeline import notify
from indexing.pipeline.dispatch import send_after_commit

NEXT: dict[str, frozenset[str]] = {
    # SPLITTING -> SPLITTING: a split whose worker died is delivered again and starts over.
    Status.QUEUED: frozenset({Status.SPLITTING, Status.FAILED, Status.CANCELLED}),
    Status.SPLITTING: frozenset({Status.SPLITTING, Status.INDEXING, Status.FAILED, Status.CANCELLED}),
    Status.INDEXING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED}),
}
# The moment each status is reached is kept in its own field.
_STAMPS = {Status.SPLITTING: "split_started_at", Status.INDEXING: "split_finished_at"}


class IllegalMove(Exception):
    """A step tried to move a job from a status that does not lead there: a bug, not bad input."""


@contextmanager
def locked(job_id: int, *, with_document: bool = False) -> Iterator[Job | None]:
    """The job's row, locked until the block's transaction commits; None when there is no such job."""
    with transaction.atomic():
        jobs = Job.objects.select_for_update()
        if with_document:
            jobs = jobs.select_related("document")
        yield jobs.filter(pk=job_id).first()


def can_move(job: Job, status: str) -> bool:
    return status in NEXT.get(job.status, frozenset())


def move(job: Job, status: str, *, also: tuple[str, ...] = ()) -> None:
    """Move a locked job to `status`, stamping the moment and saving `also`'s fields with it."""
    if not can_move(job, status):
        raise IllegalMove(f"job {job.pk} cannot go from {job.status} to {status}")
    job.status = status
    stamp = _STAMPS.get(status, "finished_at")
    setattr(job, stamp, timezone.now())
    job.save(update_fields=["status", stamp, "updated_at", *also])
    if status in FINISHED_STATUSES:
        if status != Status.SUCCEEDED:
            send_after_commit([("quern.purge_job", [job.pk])])
        _owe_event(job)


def owe_events(ended: list[Job]) -> None:
    """The events of jobs a batch ended, owed as `_owe_event` says: the flag set on each instance,
    for the caller's save of their rows in this transaction (not a second UPDATE of each row),
    and the instances published once it commits (not read again)."""
    if not notify.enabled() or not ended:
        return
    for job in ended:
        job.events_pending = True
    # robust: the ends are committed whatever happens here; a hook that raised would stop the
    # commit's later hooks (task sends) and reach the committer, whose batch is not to be redone.
    transaction.on_commit(lambda: notify.publish_ended(ended), robust=True)


def _owe_event(job: Job) -> None:
    """Mark the end's event as owed, and publish it once the end is committed.

    The outbox flag `events_pending` commits with the end; after the commit `job.<status>` goes
    on quern.events and the end reply to the submitter's reply_to. If that publish fails,
    reconcile publishes it again (RabbitMQ only: no other program reads the filesystem broker).
    """
    if not notify.enabled():
        return
    job.events_pending = True  # also on the instance: a later job.save() by the caller keeps it
    Job.objects.filter(pk=job.pk).update(events_pending=True)
    job_id = job.pk
    transaction.on_commit(lambda: notify.publish_job_end(job_id), robust=True)  # as in owe_events
