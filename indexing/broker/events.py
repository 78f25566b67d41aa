"""Events out: publish JSON messages on RabbitMQ, many in one broker transaction.

`job.<status>` goes on the topic exchange quern.events, the submitter's end reply to its
reply_to queue. What to publish, and when, is the pipeline's (indexing/pipeline/notify.py);
this module owns the connection: one per process, re-opened once when the broker dropped it.

A transaction (`tx.select`, publishes, `tx.commit`), not publisher confirms: py-amqp waits for
each confirm in turn, a round trip per message (a 500-document batch spent 0.35 ms × 1,000 on
them), while one `tx.commit-ok` says the broker took every message of the batch — or none.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings
from kombu import Connection, Exchange, Producer

logger = logging.getLogger(__name__)

EVENTS_EXCHANGE = Exchange("quern.events", type="topic", durable=True)
COMMIT_TIMEOUT = 10  # seconds to wait for the broker's commit before calling the publish failed

Outgoing = tuple[Exchange | str, str, dict[str, Any], dict[str, Any]]  # exchange, key, body, properties

_connection: Connection | None = None
_connection_pid: int | None = None
_channel: Any = None  # the connection's channel, in transaction mode


def _broker() -> Connection:
    # One connection per process: Celery's prefork children must not share their parent's socket.
    global _connection, _connection_pid
    if _connection is None or _connection_pid != os.getpid():
        _connection = Connection(settings.CELERY_BROKER_URL, connect_timeout=5)
        _connection_pid = os.getpid()
    return _connection


def _tx_channel() -> Any:
    """The connection's transactional channel, opened (and the broker reached) when needed."""
    global _channel
    connection = _broker()
    if _channel is None:
        # A connection the broker dropped since the last event (a restart) is re-opened once; a
        # broker still down fails fast and reconcile publishes later.
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=1)
        _channel = connection.channel()
        _channel.tx_select()
        EVENTS_EXCHANGE(_channel).declare()
    return _channel


def _drop_connection() -> None:
    global _connection, _channel
    _channel = None
    if _connection is not None:
        try:
            _connection.release()
        except Exception:  # closing a broken socket may raise anything; it is being thrown away
            logger.debug("Error while closing the events connection", exc_info=True)
    _connection = None


def publish(messages: list[Outgoing]) -> None:
    """Publish JSON messages persistently, all in one transaction; return once the broker took
    them all. Raises if it did not (nothing of the transaction is delivered then)."""
    for attempt in (1, 2):
        try:
            channel = _tx_channel()
            producer = Producer(channel)
            for exchange, routing_key, body, properties in messages:
                producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    serializer="json",
                    delivery_mode=2,
                    **properties,
                )
            channel.tx_commit()
            return
        except Exception:
            _drop_connection()
            if attempt == 2:
                raise
            # once more on a fresh connection: the broker dropped the old one (a restart)
