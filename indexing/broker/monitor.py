"""What the broker and the workers say now: queue depths and consumers, workers and their tasks."""

from __future__ import annotations

import logging
from typing import Any

from celery import current_app
from django.conf import settings

from indexing import broker
from indexing.broker.queues import SUBMIT_QUEUE

logger = logging.getLogger(__name__)

INSPECT_TIMEOUT = 0.5  # seconds: a worker that cannot answer this fast shows as offline


def queue_names() -> list[str]:
    """The workers' queues, and quern.submit where the open queue runs (RabbitMQ only)."""
    names = [queue.name for queue in settings.CELERY_TASK_QUEUES]
    return names + [SUBMIT_QUEUE.name] if broker.is_rabbitmq() else names


def queue_depths(names: list[str] | None = None) -> dict[str, dict[str, int | None]]:
    """Messages ready and consumers per queue, as the broker reports them.

    A passive queue_declare answers both on RabbitMQ (no management plugin needed) and counts the
    message files on the filesystem broker (which knows no consumers: None). A queue that does not
    exist yet holds nothing.
    """
    names = names or queue_names()
    depths: dict[str, dict[str, int | None]] = {}
    filesystem = broker.configured() == "filesystem"
    try:
        with current_app.connection_for_read() as connection:
            for name in names:
                channel = connection.channel()
                try:
                    ok = channel.queue_declare(queue=name, passive=True)
                    consumers = None if filesystem else ok.consumer_count
                    depths[name] = {"ready": ok.message_count, "consumers": consumers}
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


def workers() -> dict[str, dict[str, Any]]:
    """Workers online and what each runs now, by Celery's inspect broadcast (short timeout).

    Each answers with its active tasks, its reserved (prefetched, unacked) ones and the queues it
    consumes. Workers need fixed -n names: each broadcast on the filesystem broker leaves a file
    per worker name ever seen (PITFALLS.md).
    """
    try:
        inspect = current_app.control.inspect(timeout=INSPECT_TIMEOUT)
        active = inspect.active() or {}
        reserved = inspect.reserved() or {}
        queues = inspect.active_queues() or {}
    except Exception:  # the broker is down: no worker can answer
        logger.warning("Could not inspect the workers", exc_info=True)
        return {}
    online: dict[str, dict[str, Any]] = {}
    for name in sorted(set(active) | set(reserved) | set(queues)):
        online[name] = {
            "active": [_task(t) for t in active.get(name, [])],
            "reserved": [_task(t) for t in reserved.get(name, [])],
            "queues": sorted(q["name"] for q in queues.get(name, [])),
        }
    return online


def _task(task: dict[str, Any]) -> dict[str, Any]:
    delivery = task.get("delivery_info") or {}
    return {
        "id": task.get("id"),
        "name": task.get("name") or task.get("type"),
        "args": task.get("args"),
        "queue": delivery.get("routing_key"),
        "started": task.get("time_start"),
    }


def queues(online: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Per queue: ready (the broker), unacked (tasks workers hold: active + reserved), consumers."""
    rows = []
    for name, depth in queue_depths().items():
        held = sum(1 for w in online.values() for t in w["active"] + w["reserved"] if t["queue"] == name)
        consumers = depth["consumers"]
        if consumers is None:  # the filesystem broker knows no consumers: count the workers taking from it
            consumers = sum(1 for w in online.values() if name in w["queues"])
        rows.append({"name": name, "ready": depth["ready"], "unacked": held, "consumers": consumers})
    return rows
