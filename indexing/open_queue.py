"""The open queue: any AMQP client submits documents on `quern.submit` and hears back on reply_to.

`manage.py consume` runs `SubmitConsumer`: one message at a time, it validates the body (the pure
`indexing/messages.py`), calls `services.submit` (document + job in one transaction, split sent on
commit), answers reply_to, and only then acks. A message Quern will not take is copied to
`quern.submit.rejected` with the reason in its headers, answered with an error, and acked: it is
neither lost nor retried forever. A worker killed before the ack leaves the message on the
broker, which delivers it again.
"""
from __future__ import annotations

import io
import logging
import time
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from kombu import Connection, Queue
from kombu.mixins import ConsumerProducerMixin

from indexing import services
from indexing.errors import QuernError
from indexing.messages import MessageError, parse_submit_message
from indexing.models import Job, Source

logger = logging.getLogger(__name__)

# Declared durable and without arguments, the same way everywhere (a client may declare them too:
# RabbitMQ refuses a redeclaration with other arguments, PITFALLS.md).
SUBMIT_QUEUE = Queue("quern.submit", durable=True)
REJECTED_QUEUE = Queue("quern.submit.rejected", durable=True)
TRANSIENT_RETRY_DELAY = 1.0  # seconds before a message that met a passing database error goes back


def accepting_submissions() -> bool:
    """The backpressure hook: may the consumer take another submit message now?

    The consumer asks before each message and about once a second while paused. While this says
    False, messages stay on quern.submit untouched (not rejected, not dead-lettered) and are taken
    once it says True again: past QUERN_MAX_WAITING (indexing/backpressure.py), as the API's 503.
    """
    from indexing import backpressure

    return not backpressure.over_limit()


def take_submission(body: bytes, *, reply_to: str = "", correlation_id: str = "") -> Job:
    """Validate a submit message's body and store its document and job (one transaction)."""
    message = parse_submit_message(body, max_bytes=settings.QUERN_MAX_MESSAGE_BYTES)
    return services.submit(
        io.BytesIO(message.content),
        name=message.name,
        source=Source.AMQP,
        format=message.format,
        encoding=message.encoding,
        chunk_size=message.chunk_size,
        idempotency_key=message.idempotency_key,
        reply_to=reply_to,
        correlation_id=correlation_id,
        metadata=message.metadata,
    )


def broker_connection() -> Connection:
    """A connection to Quern's broker whose publishes wait for the broker's confirm."""
    return Connection(settings.CELERY_BROKER_URL, transport_options={"confirm_publish": True}, heartbeat=30)


class SubmitConsumer(ConsumerProducerMixin):
    """Consumes quern.submit with prefetch 1; publishes rejects and replies on its own connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.consumers: list[Any] = []
        self.paused = False

    def get_consumers(self, Consumer, channel) -> list[Any]:
        REJECTED_QUEUE.bind(channel).declare()
        return [Consumer(queues=[SUBMIT_QUEUE], on_message=self.on_message, prefetch_count=1)]

    def on_consume_ready(self, connection, channel, consumers, **kwargs) -> None:
        self.consumers = consumers
        if self.paused:  # a reconnect while paused starts consuming again: stop until the gate opens
            self._set_paused(True, force=True)
        logger.info("Consuming quern.submit on %s", connection.as_uri())

    def on_iteration(self) -> None:
        # Runs at least once a second (drain_events times out after 1 s): re-checks the gate, and
        # keeps the publishing connection's heartbeats going (kombu only checks the consuming one).
        self._set_paused(not accepting_submissions())
        if self._producer_connection is not None:
            self._producer_connection.heartbeat_check()

    def _set_paused(self, paused: bool, *, force: bool = False) -> None:
        if paused == self.paused and not force:
            return
        self.paused = paused
        for consumer in self.consumers:
            if paused:
                consumer.cancel()  # basic.cancel: the broker keeps the messages
            else:
                consumer.consume()
        logger.info("Submissions %s", "paused by the backpressure hook" if paused else "resumed")

    def on_message(self, message) -> None:
        if not accepting_submissions():
            self._set_paused(True)  # cancel first, so the broker does not hand it straight back
            message.requeue()  # back on quern.submit as it was; taken again when the gate opens
            return
        properties = message.properties
        reply_to = properties.get("reply_to") or ""
        correlation_id = properties.get("correlation_id") or ""
        close_old_connections()  # a long-lived process: drop database connections past their age
        taken: list[Job] = []
        try:
            with transaction.atomic():
                # Registered before submit registers the split: the accepted reply leaves before
                # the job can start, so it always comes before the end reply. robust: a reply
                # that cannot be sent is logged, and the message is still acked (no second job).
                transaction.on_commit(lambda: self._reply_accepted(reply_to, correlation_id, taken[0]), robust=True)
                taken.append(take_submission(message.body, reply_to=reply_to, correlation_id=correlation_id))
        except (MessageError, QuernError) as error:
            self._reject(message, error.code, error.message)
            return
        except (OperationalError, InterfaceError):
            # Passing (a locked SQLite file, a restarted PostgreSQL): the message is not at fault.
            logger.exception("Database error while taking a submit message; it goes back on the queue")
            close_old_connections()
            time.sleep(TRANSIENT_RETRY_DELAY)
            message.requeue()
            return
        except Exception:  # a message that trips a bug must not come back forever: dead-letter it
            logger.exception("Unexpected error while taking a submit message; it is dead-lettered")
            self._reject(message, "internal_error", "Quern hit an unexpected error with this message; it has been logged.")
            return
        message.ack()  # only now: the job is committed, answered and its split sent
        logger.info("Took a submit message for %s as job %s", taken[0].document.name, taken[0].pk)

    def _reply_accepted(self, reply_to: str, correlation_id: str, job: Job) -> None:
        from indexing.api import job_json  # api imports services, as this module does

        self._reply(reply_to, correlation_id, job_json(job))

    def _reply(self, reply_to: str, correlation_id: str, body: dict[str, Any]) -> None:
        if reply_to:
            self.producer.publish(
                body, exchange="", routing_key=reply_to, serializer="json", correlation_id=correlation_id or None,
                retry=True, retry_policy={"max_retries": 3},
            )

    def _reject(self, message, code: str, text: str) -> None:
        """Copy the message to quern.submit.rejected with the reason, answer reply_to, then ack."""
        properties = message.properties
        headers = {**(message.headers or {}), "x-quern-error": f"{code}: {text}", "x-quern-error-code": code}
        self.producer.publish(
            message.body,
            exchange="",
            routing_key=REJECTED_QUEUE.name,
            declare=[REJECTED_QUEUE],
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            headers=headers,
            delivery_mode=2,
            reply_to=properties.get("reply_to"),
            correlation_id=properties.get("correlation_id"),
            retry=True,
            retry_policy={"max_retries": 3},
        )
        self._reply(properties.get("reply_to") or "", properties.get("correlation_id") or "", {"error": {"code": code, "message": text}})
        message.ack()
        logger.warning("Rejected a submit message to %s: %s: %s", REJECTED_QUEUE.name, code, text)
