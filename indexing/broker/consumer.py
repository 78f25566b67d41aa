"""The open queue's consumer: takes submit messages from `quern.submit`, one at a time.

The broker's side of an edge, as Zulip's queue workers are: this class owns delivery — prefetch
1, pausing while the backpressure hook says no, ack only after the commit, a passing database
error put back, anything else dead-lettered — and the edge it is given (indexing/consumers.py)
owns what a message means: `take(body, reply_to, correlation_id)` validates it, stores its
document and job in the open transaction, and returns the accepted reply. A message Quern will
not take is copied to `quern.submit.rejected` with the reason in its headers, answered with an
error, and acked: it is neither lost nor retried forever. A consumer killed before the ack
leaves the message on the broker, which delivers it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from kombu import Connection
from kombu.mixins import ConsumerProducerMixin

from indexing import schemas
from indexing.broker.queues import REJECTED_QUEUE, SUBMIT_QUEUE
from indexing.errors import QuernError

logger = logging.getLogger(__name__)

TRANSIENT_RETRY_DELAY = 1.0  # seconds before a message that met a passing database error goes back

Take = Callable[[bytes, str, str], dict[str, Any]]  # (body, reply_to, correlation_id) -> accepted reply


def broker_connection() -> Connection:
    """A connection to Quern's broker whose publishes wait for the broker's confirm."""
    return Connection(settings.CELERY_BROKER_URL, transport_options={"confirm_publish": True}, heartbeat=30)


class SubmitConsumer(ConsumerProducerMixin):
    """Consumes quern.submit with prefetch 1; publishes rejects and replies on its own connection."""

    def __init__(self, connection: Connection, *, take: Take, accepting: Callable[[], bool]) -> None:
        self.connection = connection
        self.take = take
        self.accepting = accepting  # the backpressure hook, asked before each message and each second
        self.consumers: list[Any] = []
        self.paused = False

    def get_consumers(self, Consumer, channel) -> list[Any]:  # noqa: N803 (kombu's signature)
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
        self._set_paused(not self.accepting())
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
        if not self.accepting():
            self._set_paused(True)  # cancel first, so the broker does not hand it straight back
            message.requeue()  # back on quern.submit as it was; taken again when the gate opens
            return
        properties = message.properties
        reply_to = properties.get("reply_to") or ""
        correlation_id = properties.get("correlation_id") or ""
        close_old_connections()  # a long-lived process: drop database connections past their age
        taken: list[dict[str, Any]] = []
        try:
            with transaction.atomic():
                # Registered before submit registers the split: the accepted reply leaves before
                # the job can start, so it always comes before the end reply. robust: a reply
                # that cannot be sent is logged, and the message is still acked (no second job).
                transaction.on_commit(lambda: self._reply(reply_to, correlation_id, taken[0]), robust=True)
                taken.append(self.take(message.body, reply_to, correlation_id))
        except QuernError as error:
            self._reject(message, error)
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
            bug = QuernError(
                "internal_error", "Quern hit an unexpected error with this message; it has been logged."
            )
            self._reject(message, bug)
            return
        message.ack()  # only now: the job is committed, answered and its split sent
        logger.info("Took a submit message for %s as job %s", taken[0]["document"]["name"], taken[0]["id"])

    def _reply(self, reply_to: str, correlation_id: str, body: dict[str, Any]) -> None:
        if reply_to:
            self.producer.publish(
                body,
                exchange="",
                routing_key=reply_to,
                serializer="json",
                correlation_id=correlation_id or None,
                retry=True,
                retry_policy={"max_retries": 3},
            )

    def _reject(self, message, error: QuernError) -> None:
        """Copy the message to quern.submit.rejected with the reason, answer reply_to, then ack."""
        properties = message.properties
        headers = {
            **(message.headers or {}),
            "x-quern-error": f"{error.code}: {error.message}",
            "x-quern-error-code": error.code,
        }
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
        reply_to, correlation_id = properties.get("reply_to") or "", properties.get("correlation_id") or ""
        self._reply(reply_to, correlation_id, schemas.Error.of(error).model_dump(mode="json"))
        message.ack()
        logger.warning(
            "Rejected a submit message to %s: %s: %s", REJECTED_QUEUE.name, error.code, error.message
        )
