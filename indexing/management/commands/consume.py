"""manage.py consume — take documents submitted over AMQP on quern.submit (RabbitMQ only)."""

from __future__ import annotations

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from indexing import broker
from indexing.broker.consumer import broker_connection
from indexing.consumers import submit_consumer


class Command(BaseCommand):
    help = (
        "Consume quern.submit: store each submitted document and its job, answer reply_to, "
        "dead-letter bad messages."
    )

    def handle(self, *args, **options) -> None:
        if not broker.is_rabbitmq():
            raise CommandError(
                f"The open queue needs RabbitMQ: CELERY_BROKER_URL is {settings.CELERY_BROKER_URL!r}. "
                "Other programs cannot reach the filesystem broker, it cannot redeliver a message whose "
                "consumer died, and it has no exchanges to publish events on. Use an amqp:// URL."
            )
        # As a worker (project/celery.py): DEBUG's log of every SQL statement is not for a
        # long-running process that writes in bulk.
        settings.DEBUG = False
        with broker_connection() as connection:
            consumer = submit_consumer(connection)

            def stop(signum, frame) -> None:  # finish the message in hand, then leave
                consumer.should_stop = True

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            consumer.run()
