"""Events out: publish JSON messages on RabbitMQ with publisher confirms.

`job.<status>` goes on the topic exchange quern.events, the submitter's end reply to its
reply_to queue. What to publish, and when, is the pipeline's (indexing/pipeline/notify.py);
this module owns the connection: one per process, re-opened once when the broker dropped it.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from django.conf import settings
from kombu import Connection, Exchange, Producer

logger = logging.getLogger(__name__)

EVENTS_EXCHANGE = Exchange("quern.events", type="topic", durable=True)
CONFIRM_TIMEOUT = 10  # seconds to wait for the broker's confirm before calling the publish failed

Outgoing = tuple[Exchange | str, str, dict[str, Any], dict[str, Any]]  # exchange, key, body, properties

_connection: Connection | None = None
_connection_pid: int | None = None


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


def publish(messages: list[Outgoing]) -> None:
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
