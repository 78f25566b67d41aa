"""A job's end, told: `job.<status>` on quern.events and the end reply to the submitter's reply_to.

Published after the job's end is committed, with publisher confirms, at least once: the job's
`events_pending` flag (set in the transaction that ended it) is cleared only after the broker
confirmed; reconcile publishes again whatever is still flagged. Every copy of one event carries
the same `event_id`, so consumers drop duplicates by it. The body is `schemas.Event`.
"""

from __future__ import annotations

import logging
import uuid

from django.db import DatabaseError, connection

from indexing import broker, schemas
from indexing.broker import events
from indexing.models import Job

logger = logging.getLogger(__name__)

# Fixed namespace: an event's id is derived from the job, so a re-sent copy has the same id.
EVENT_NAMESPACE = uuid.UUID("6f1f6d0e-4f7e-4b59-9a55-1b8f4b4a0c6e")


def enabled() -> bool:
    """Events and replies need RabbitMQ: the filesystem broker has no exchange another program reads."""
    return broker.is_rabbitmq()


def event_id(job: Job) -> str:
    """The same for every copy of one job's end event, distinct across jobs and installations' runs."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{job.pk}:{job.created_at.isoformat()}:{job.status}"))


def publish_job_end(job_id: int) -> bool:
    """Publish a finished job's event (and its end reply); True once the broker took them."""
    return publish_job_ends([job_id]) == 1


def publish_job_ends(job_ids: list[int]) -> int:
    """Publish the events (and end replies) of these finished jobs still owed, read in one query;
    how many were published (0 if the broker did not take them)."""
    owed = list(Job.objects.select_related("document").filter(pk__in=job_ids, events_pending=True))
    if not owed:  # published already (by the commit hook or another reconcile run)
        return 0
    return publish_ended(owed)


def publish_ended(owed: list[Job]) -> int:
    """Publish the events (and end replies) of these finished jobs, as committed (their documents
    selected), and clear their flags in one UPDATE once the broker confirmed them all; how many
    were published (0 if the broker did not take them: the flags stay, reconcile publishes)."""
    messages: list[events.Outgoing] = []
    for job in owed:
        body = schemas.Job.of(job)
        key = f"job.{job.status}"
        the_id = event_id(job)
        event = schemas.Event.model_construct(**dict(body), event=key, event_id=the_id)
        messages.append((events.EVENTS_EXCHANGE, key, event.model_dump(mode="json"), {"message_id": the_id}))
        if job.reply_to:
            reply = body.model_dump(mode="json")
            messages.append(("", job.reply_to, reply, {"correlation_id": job.correlation_id or None}))
    try:
        events.publish(messages)
    except Exception:
        # Any failure (broker down, no confirm, a nack) leaves the flags set: the jobs' ends are
        # committed and stay; reconcile publishes the events again later.
        logger.exception(
            "Could not publish the end of %s job(s) from %s; reconcile will publish them again",
            len(owed),
            owed[0].pk,
        )
        return 0
    try:
        _clear_flags([job.pk for job in owed])
    except DatabaseError:
        # Published, but the flags stay: reconcile publishes again, with the same event ids.
        logger.exception("Published the end of %s job(s) but could not clear their flags", len(owed))
    return len(owed)


def _clear_flags(job_ids: list[int]) -> None:
    """events_pending cleared on these jobs. PostgreSQL takes the ids as one array: an IN list
    of a thousand placeholders cost the open queue's consumer more than the UPDATE itself."""
    if connection.vendor != "postgresql":
        Job.objects.filter(pk__in=job_ids).update(events_pending=False)
        return
    with connection.cursor() as cursor:
        cursor.execute("UPDATE indexing_job SET events_pending = false WHERE id = ANY(%s)", [job_ids])
