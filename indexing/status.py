"""What the pipeline is doing now: queue depths from the broker, workers from Celery, jobs from the database."""
from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import current_app
from django.conf import settings
from django.db.models import Count, Min, Sum
from django.db.models.functions import TruncMinute
from django.utils import timezone

from indexing.models import ACTIVE_STATUSES, Chunk, Job, Status

logger = logging.getLogger(__name__)

INSPECT_TIMEOUT = 0.5  # seconds: a worker that cannot answer this fast shows as offline


def queue_names() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


def queue_depths(names: list[str] | None = None) -> dict[str, dict[str, int | None]]:
    """Messages ready and consumers per queue, as the broker reports them.

    A passive queue_declare answers both on RabbitMQ (no management plugin needed) and counts the
    message files on the filesystem broker (which knows no consumers: None). A queue that does not
    exist yet holds nothing.
    """
    names = names or queue_names()
    depths: dict[str, dict[str, int | None]] = {}
    filesystem = settings.CELERY_BROKER_URL.startswith("filesystem://")
    try:
        with current_app.connection_for_read() as connection:
            for name in names:
                channel = connection.channel()
                try:
                    ok = channel.queue_declare(queue=name, passive=True)
                    depths[name] = {"ready": ok.message_count, "consumers": None if filesystem else ok.consumer_count}
                except connection.channel_errors:  # NOT_FOUND: never declared, so empty
                    depths[name] = {"ready": 0, "consumers": None if filesystem else 0}
                finally:
                    try:
                        channel.close()
                    except connection.connection_errors + connection.channel_errors:
                        pass
    except Exception:  # the broker is down or unreachable: the page says so instead of failing
        logger.warning("Could not read queue depths from the broker", exc_info=True)
        return {name: {"ready": None, "consumers": None} for name in names}
    return depths


def queue_depth(name: str) -> int | None:
    """Messages ready in one queue, or None when the broker cannot say."""
    return queue_depths([name])[name]["ready"]
