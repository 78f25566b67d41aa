"""The open queue's edge: a submit message validated, handed to the pipeline, answered.

As the API does for a POST: `take` validates the body through the schema layer, calls
`pipeline.submit`, and shapes the accepted reply; the broker's SubmitConsumer
(indexing/broker/consumer.py) owns delivery, acks, replies and dead letters.
"""

from __future__ import annotations

import io

from django.conf import settings
from kombu import Connection

from indexing import pipeline, schemas
from indexing.broker.consumer import SubmitConsumer, Taken
from indexing.errors import QuernError
from indexing.models import FINISHED_STATUSES, Source
from indexing.pipeline import backpressure
from indexing.pipeline.straight_through import settle_when_quiet
from indexing.schemas import parse_submit_message


def accepting_submissions() -> bool:
    """The backpressure hook: may the consumer take another submit message now?

    While this says False, messages stay on quern.submit untouched (not rejected, not
    dead-lettered) and are taken once it says True again: past QUERN_MAX_WAITING, as the API's 503.
    """
    return not backpressure.over_limit()


def take_submissions(messages: list[tuple[bytes, str, str]]) -> list[Taken | QuernError]:
    """Submit messages (body, reply_to, correlation_id) validated and written together; for
    each, in order, its job and accepted reply, or the QuernError that refuses it alone."""
    parsed: list[schemas.SubmitMessage | QuernError] = []
    for body, _, _ in messages:
        try:
            parsed.append(parse_submit_message(body, max_bytes=settings.QUERN_MAX_MESSAGE_BYTES))
        except QuernError as error:
            parsed.append(error)
    valid = [(m, args) for m, args in zip(parsed, messages, strict=True) if not isinstance(m, QuernError)]
    jobs = iter(
        pipeline.submit_many(
            (
                pipeline.Incoming(
                    io.BytesIO(m.raw), m.name, m, reply_to=reply_to, correlation_id=correlation_id
                )
                for m, (_, reply_to, correlation_id) in valid
            ),
            source=Source.AMQP,
            # Small documents indexed by the consumer in its transaction: the queued path's three
            # writes of each job, its read back and its trigger were most of a message's cost.
            straight_through=True,  # search's pending entries merge when the queue goes quiet (below)
        )
    )
    results: list[Taken | QuernError] = []
    for m in parsed:
        result = m if isinstance(m, QuernError) else next(jobs)
        if isinstance(result, QuernError):
            results.append(result)
        elif result.status in FINISHED_STATUSES and result.events_pending and not m.idempotency_key:
            # Indexed as it was taken (a key's message takes the queued path, and only a key
            # returns an older job): its end reply, owed with its event, is its one reply.
            results.append(Taken(result.pk, None))
        else:
            results.append(Taken(result.pk, schemas.Job.of(result).model_dump(mode="json")))
    return results


def submit_consumer(connection: Connection) -> SubmitConsumer:
    """The consumer `manage.py consume` runs, wired to this edge."""
    # Looked up on each call, so a test can close the gate (monkeypatch accepting_submissions).
    return SubmitConsumer(
        connection,
        take=take_submissions,
        accepting=lambda: accepting_submissions(),
        quiet=settle_when_quiet,
    )
