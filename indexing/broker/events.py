"""Events out: publish JSON messages on RabbitMQ with publisher confirms.

`job.<status>` goes on the topic exchange quern.events, the submitter's end reply to its
reply_to queue. What to publish, and when, is the pipeline's (indexing/pipeline/notify.py);
this module owns the connection: one per process, re-opened once when the broker dropped it.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any

import amqp
import orjson
from django.conf import settings
from kombu import Connection, Exchange

logger = logging.getLogger(__name__)

EVENTS_EXCHANGE = Exchange("quern.events", type="topic", durable=True)
CONFIRM_TIMEOUT = 10  # seconds to wait for the broker's confirms before calling the publish failed

Outgoing = tuple[Exchange | str, str, dict[str, Any], dict[str, Any]]  # exchange, key, body, properties


class NotConfirmed(Exception):
    """The broker refused a publish (basic.nack), or did not confirm it in time."""


class _ConfirmChannel:
    """A channel in confirm mode, and the highest delivery tag the broker has acked on it."""

    def __init__(self, connection: Connection) -> None:
        connection.ensure_connection(max_retries=1)
        self.connection = connection.connection  # py-amqp's own: publish all, then collect
        self.channel = self.connection.channel()
        self.channel.confirm_select()
        self.channel.exchange_declare(
            EVENTS_EXCHANGE.name, EVENTS_EXCHANGE.type, durable=True, auto_delete=False
        )
        self.published = 0
        self.acked = 0
        self.nacked = 0
        self.channel.events["basic_ack"].add(self._on_ack)
        self.channel.events["basic_nack"].add(self._on_nack)

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self.acked = max(self.acked, delivery_tag)  # tags grow: a multiple ack covers all before it

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.nacked += 1
        self.acked = max(self.acked, delivery_tag)

    def publish_all(self, messages: list[Outgoing]) -> None:
        nacked = self.nacked
        bodies = [_json(body) for _, _, body, _ in messages]  # all or none: a bad body sends nothing
        for (exchange, routing_key, _, properties), encoded in zip(messages, bodies, strict=True):
            message = amqp.Message(
                encoded,
                content_type="application/json",
                content_encoding="utf-8",
                delivery_mode=2,
                **{key: value for key, value in properties.items() if value is not None},
            )
            name = exchange.name if isinstance(exchange, Exchange) else exchange
            self.channel.basic_publish(message, exchange=name, routing_key=routing_key)
            self.published += 1
        deadline = time.monotonic() + CONFIRM_TIMEOUT
        while self.acked < self.published:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotConfirmed(
                    f"The broker did not confirm {self.published - self.acked} publishes in time"
                )
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                continue  # the deadline decides
        if self.nacked > nacked:
            raise NotConfirmed(f"The broker refused {self.nacked - nacked} publishes (basic.nack)")


def _json(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body)
    except TypeError:  # an integer past 64 bits in a submitter's metadata: the standard library's
        return json.dumps(body).encode()


_connection: Connection | None = None
_channel: _ConfirmChannel | None = None
_connection_pid: int | None = None
# One channel per process, and a web process publishes from its threads (a cancel): one at a time.
_lock = threading.Lock()


def _confirm_channel() -> _ConfirmChannel:
    # One connection per process: Celery's prefork children must not share their parent's socket.
    global _connection, _channel, _connection_pid
    if _channel is None or _connection_pid != os.getpid():
        # A write timeout: a broker that stops reading (a memory or disk alarm blocks publishers)
        # fails the publish, and its caller publishes later, rather than holding it for good.
        _connection = Connection(
            settings.CELERY_BROKER_URL,
            connect_timeout=5,
            heartbeat=0,
            transport_options={"write_timeout": CONFIRM_TIMEOUT},
        )
        _connection_pid = os.getpid()
        _channel = _ConfirmChannel(_connection)
    return _channel


def _drop_connection() -> None:
    global _connection, _channel
    if _connection is not None and _connection_pid == os.getpid():
        try:
            _connection.collect()  # the socket dropped, not closed politely: a broker may not answer
        except Exception:  # closing a broken socket may raise anything; it is being thrown away
            logger.debug("Error while closing the events connection", exc_info=True)
    _connection = _channel = None


def publish(messages: list[Outgoing]) -> None:
    """Publish JSON messages persistently; return once the broker has confirmed every one.

    All are sent, then the confirms collected (RabbitMQ acks many at once): one round trip for
    the lot, where kombu's confirm_publish waits for one per message (a 500-job batch's events
    held its worker about 0.2 s, measured). A connection the broker dropped since the last
    publish (a restart) is re-opened once and the lot sent again: copies carry the same ids,
    and consumers drop duplicates (at least once). A broker still down fails fast, and the
    caller publishes later.
    """
    if not messages:
        return
    with _lock:
        for attempt in (1, 2):
            try:
                _confirm_channel().publish_all(messages)
                return
            except (OSError, *amqp.Connection.recoverable_connection_errors):
                _drop_connection()
                if attempt == 2:
                    raise
                logger.info("The events connection was lost; publishing again on a new one", exc_info=True)
            except Exception:  # not confirmed, or refused: the caller publishes again later
                _drop_connection()
                raise
