"""Job events out: `job.<status>` on the topic exchange quern.events, and the submitter's end reply.

Published after the job's end is committed, with publisher confirms, at least once: the job's
`events_pending` flag (set in the transaction that ended it) is cleared only after the broker
confirmed; reconcile publishes again whatever is still flagged. Every copy of one event carries
the same `event_id`, so consumers drop duplicates by it. Schema: indexing/schemas/event.json.
"""
from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from django.conf import settings
from kombu import Connection, Exchange, Producer

logger = logging.getLogger(__name__)

EVENTS_EXCHANGE = Exchange("quern.events", type="topic", durable=True)
# Fixed namespace: an event's id is derived from the job, so a re-sent copy has the same id.
EVENT_NAMESPACE = uuid.UUID("6f1f6d0e-4f7e-4b59-9a55-1b8f4b4a0c6e")
CONFIRM_TIMEOUT = 10  # seconds to wait for the broker's confirm before calling the publish failed

_connection: Connection | None = None
_connection_pid: int | None = None


def enabled() -> bool:
    """Events and replies need RabbitMQ: the filesystem broker has no exchange another program reads."""
    return settings.CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://"))


def event_id(job: Any) -> str:
    """The same for every copy of one job's end event, distinct across jobs and installations' runs."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{job.pk}:{job.created_at.isoformat()}:{job.status}"))


def _broker() -> Connection:
    # One connection per process: Celery's prefork children must not share their parent's socket.
    global _connection, _connection_pid
    if _connection is None or _connection_pid != os.getpid():
        _connection = Connection(
            settings.CELERY_BROKER_URL, transport_options={"confirm_publish": True}, connect_timeout=5
        )
        _connection_pid = os.getpid()
    return _connection


def _drop_connection() -> None:
    global _connection
    if _connection is not None:
        try:
            _connection.release()
        except Exception:  # closing a broken socket may raise anything; it is being thrown away
            logger.debug("Error while closing the events connection", exc_info=True)
    _connection = None


def publish(messages: list[tuple[Exchange | str, str, dict[str, Any], dict[str, Any]]]) -> None:
    """Publish JSON messages persistently and wait for the broker to confirm each one."""
    connection = _broker()
    try:
        connection.ensure_connection(max_retries=1)
        producer = Producer(connection.default_channel)
        for exchange, routing_key, body, properties in messages:
            producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                serializer="json",
                delivery_mode=2,
                declare=[exchange] if isinstance(exchange, Exchange) else [],
                timeout=CONFIRM_TIMEOUT,
                # A connection the broker dropped since the last event (a restart) is re-opened
                # once; a broker still down fails fast and reconcile publishes later.
                retry=True,
                retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 1},
                **properties,
            )
    except Exception:
        _drop_connection()
        raise


def publish_job_end(job_id: int) -> bool:
    """Publish a finished job's event (and its end reply); True once the broker confirmed them."""
    from indexing.api import job_json  # api imports services, which imports this module
    from indexing.models import Job

    job = Job.objects.select_related("document").filter(pk=job_id, events_pending=True).first()
    if job is None:  # published already (by the commit hook or another reconcile run)
        return False
    body = job_json(job)
    key = f"job.{job.status}"
    messages: list[tuple[Exchange | str, str, dict[str, Any], dict[str, Any]]] = [
        (EVENTS_EXCHANGE, key, {**body, "event": key, "event_id": event_id(job)}, {"message_id": event_id(job)})
    ]
    if job.reply_to:
        messages.append(("", job.reply_to, body, {"correlation_id": job.correlation_id or None}))
    try:
        publish(messages)
    except Exception:
        # Any failure (broker down, no confirm, a nack) leaves the flag set: the job's end is
        # committed and stays; reconcile publishes the event again later.
        logger.exception("Could not publish the end of job %s; reconcile will publish it again", job_id)
        return False
    Job.objects.filter(pk=job_id).update(events_pending=False)
    return True
