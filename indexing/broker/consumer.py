"""The open queue's consumer: takes submit messages from `quern.submit` in batches.

The broker's side of an edge, as Zulip's queue workers are: this class owns delivery — a
prefetch window of QUERN_CONSUMER_BATCH messages taken in one transaction (again one by one,
each in a savepoint of its own, if that fails on something unexpected, so a bad one is refused
alone), acked after the commit (`multiple` when all were taken), pausing while the backpressure
hook says no, a passing database error before the commit putting the batch back (after it, the
batch is stored: acked), anything else dead-lettered — and the edge it is given
(indexing/consumers.py) owns what a message means: `take` validates a batch's messages, writes
them in the open transaction (a small document indexed there and then), and returns for each its
job and accepted reply (`Taken`). A message Quern will
not take is copied to `quern.submit.rejected` with the reason in its headers, answered with an
error, and acked: it is neither lost nor retried forever. A consumer killed before the ack
leaves the message on the broker, which delivers it again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from kombu import Connection
from kombu.mixins import ConsumerProducerMixin

from indexing import schemas
from indexing.broker import events
from indexing.broker.queues import REJECTED_QUEUE, SUBMIT_QUEUE
from indexing.errors import QuernError, StorageFull

logger = logging.getLogger(__name__)

TRANSIENT_RETRY_DELAY = 1.0  # seconds before a message that met a passing fault goes back
# Faults of the server that pass, not of the messages: a locked SQLite file, a restarted
# PostgreSQL, a full document storage. Their batch goes back to the queue as it was.
PASSING = (OperationalError, InterfaceError, StorageFull)
# A batch is taken once the window is full or no message came for this long: a lone message waits
# at most about this (the consume loop wakes this often), never for company.
QUIET = 0.01
GATE_EVERY = 1.0  # seconds between checks of the backpressure hook while messages flow


@dataclass(frozen=True)
class Taken:
    """A message taken: its job, and its accepted reply; None for a job that ended as it was
    taken, whose one reply is its end's (owed with its event, published until confirmed)."""

    job_id: int
    reply: dict[str, Any] | None


# [(body, reply_to, correlation_id), …] -> for each, in order, what was taken or why it was refused
Take = Callable[[list[tuple[bytes, str, str]]], list[Taken | QuernError]]


def broker_connection() -> Connection:
    """A connection to Quern's broker whose publishes wait for the broker's confirm."""
    return Connection(settings.CELERY_BROKER_URL, transport_options={"confirm_publish": True}, heartbeat=30)


class SubmitConsumer(ConsumerProducerMixin):
    """Consumes quern.submit in batches; publishes rejects and replies on its own connection."""

    def __init__(
        self,
        connection: Connection,
        *,
        take: Take,
        accepting: Callable[[], bool],
        quiet: Callable[[], None] = lambda: None,
    ) -> None:
        self.connection = connection
        self.take = take
        self.accepting = accepting  # the backpressure hook, asked before each batch and each second
        self.quiet = quiet  # called once the messages stop, after the batches taken since it last ran
        self.taken_since_quiet = False
        self.consumers: list[Any] = []
        self.paused = False
        self.window = settings.QUERN_CONSUMER_BATCH
        self.pending: list[Any] = []
        self.last_message = 0.0
        self.gate_checked = 0.0

    def run(self, _tokens: int = 1, **kwargs: Any) -> None:
        # Wake every QUIET seconds, so a lone message is taken at once rather than after a second.
        kwargs.setdefault("safety_interval", QUIET)
        super().run(_tokens, **kwargs)

    def get_consumers(self, Consumer, channel) -> list[Any]:  # noqa: N803 (kombu's signature)
        REJECTED_QUEUE.bind(channel).declare()
        return [Consumer(queues=[SUBMIT_QUEUE], on_message=self.on_message, prefetch_count=self.window)]

    def on_consume_ready(self, connection, channel, consumers, **kwargs) -> None:
        self.consumers = consumers
        self.pending = []  # a reconnect: unacked messages of the old channel are the broker's again
        if self.paused:  # a reconnect while paused starts consuming again: stop until the gate opens
            self._set_paused(True, force=True)
        logger.info("Consuming quern.submit on %s", connection.as_uri())

    def on_iteration(self) -> None:
        now = time.monotonic()
        if self.pending and (len(self.pending) >= self.window or now - self.last_message >= QUIET):
            self._take_batch()
        elif self.taken_since_quiet and not self.pending and now - self.last_message >= QUIET:
            self.taken_since_quiet = False
            try:
                self.quiet()
            except PASSING:  # only a schedule: the next quiet moment, or the database, does it
                logger.warning("The quiet hook met a passing fault", exc_info=True)
                close_old_connections()
        if now - self.gate_checked >= GATE_EVERY:
            # At least once a second: re-checks the gate, and keeps the publishing connection's
            # heartbeats going (kombu only checks the consuming one).
            self.gate_checked = now
            self._set_paused(not self._gate_open())
            if self._producer_connection is not None:
                self._producer_connection.heartbeat_check()

    def _gate_open(self) -> bool:
        """The backpressure hook; closed while the database cannot answer it (a restart), so the
        consumer waits with the messages on the queue instead of dying."""
        try:
            return self.accepting()
        except (OperationalError, InterfaceError):
            logger.warning("The database is not answering; submissions wait on the queue", exc_info=True)
            close_old_connections()
            return False

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
        self.pending.append(message)
        self.last_message = time.monotonic()
        if len(self.pending) >= self.window:
            self._take_batch()

    def _take_batch(self) -> None:
        batch, self.pending = self.pending, []
        if not self._gate_open():
            self._set_paused(True)  # cancel first, so the broker does not hand them straight back
            for message in batch:
                message.requeue()  # back on quern.submit as they were; taken when the gate opens
            return
        close_old_connections()  # a long-lived process: drop database connections past their age
        taken: list[tuple[Any, Taken]] = []
        refused: list[tuple[Any, QuernError]] = []
        committed: list[bool] = []
        try:
            with transaction.atomic():
                # First of the commit's hooks: past this the batch is stored, and a fault that
                # follows (in a later hook) must not put its messages back for second jobs.
                transaction.on_commit(lambda: committed.append(True))
                # Registered before the messages register their splits' sends: the accepted replies
                # leave before a job can start, so each comes before its end reply (it reads
                # `taken` at the commit). robust: a reply that cannot be sent is logged, and the
                # messages are still acked (no second job).
                transaction.on_commit(lambda: self._reply_taken(taken), robust=True)
                self._take_all(batch, taken, refused)
        except PASSING:
            if committed:
                logger.exception("A fault after %s submit messages were stored; they are acked", len(batch))
                self._ack_taken(taken, refused)
                return
            logger.exception("A passing fault while taking %s submit messages; they go back", len(batch))
            close_old_connections()
            time.sleep(TRANSIENT_RETRY_DELAY)
            for message in batch:
                message.requeue()
            return
        self._ack_taken(taken, refused)
        self.taken_since_quiet = True
        if taken:  # one line a batch: one a message cost the consumer a tenth of its time in a crowd
            job_ids = [result.job_id for _, result in taken]
            logger.info("Took %s submit message(s) as jobs %s to %s", len(taken), min(job_ids), max(job_ids))

    def _ack_taken(self, taken: list, refused: list) -> None:
        # The taken first (only now: their jobs are committed, answered, splits sent), so a reject
        # whose publish fails cannot bring a committed message back for a second job.
        if taken and not refused:
            taken[-1][0].ack(multiple=True)
        else:
            for message, _ in taken:
                message.ack()
        for message, error in refused:
            self._reject(message, error)

    def _take_all(self, batch: list, taken: list, refused: list) -> None:
        """The batch's documents written together (in a savepoint); if that trips on something
        unexpected, each message again in a savepoint of its own, so only the culprit is refused."""
        try:
            with transaction.atomic():
                results = self.take([self._arguments(message) for message in batch])
        except PASSING:
            raise  # the server, not the messages: the whole batch goes back
        except Exception:
            logger.exception("Taking %s submit messages together failed; taking them one by one", len(batch))
            for message in batch:
                self._take_one(message, taken, refused)
            return
        for message, result in zip(batch, results, strict=True):
            (refused if isinstance(result, QuernError) else taken).append((message, result))

    @staticmethod
    def _arguments(message) -> tuple[bytes, str, str]:
        properties = message.properties
        return message.body, properties.get("reply_to") or "", properties.get("correlation_id") or ""

    def _take_one(self, message, taken: list, refused: list) -> None:
        """One message in a savepoint of its own: refused alone, the batch goes on."""
        try:
            with transaction.atomic():
                [result] = self.take([self._arguments(message)])
        except PASSING:
            raise  # the server, not the message: the whole batch goes back
        except Exception:  # a message that trips a bug must not come back forever: dead-letter it
            logger.exception("Unexpected error while taking a submit message; it is dead-lettered")
            result = QuernError(
                "internal_error", "Quern hit an unexpected error with this message; it has been logged."
            )
        (refused if isinstance(result, QuernError) else taken).append((message, result))

    @staticmethod
    def _reply_taken(taken: list[tuple[Any, Taken]]) -> None:
        """The accepted replies of a batch, published together and confirmed in one round trip."""
        replies = []
        for message, result in taken:
            properties = message.properties
            if result.reply is not None and (reply_to := properties.get("reply_to")):
                replies.append(
                    ("", reply_to, result.reply, {"correlation_id": properties.get("correlation_id")})
                )
        events.publish(replies)

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
