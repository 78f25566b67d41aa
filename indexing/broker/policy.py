"""RabbitMQ's safety net: the policy that caps Quern's queues (x-max-length, overflow reject-publish)."""

from __future__ import annotations

import json
import re

from django.conf import settings
from kombu import Connection

POLICY_NAME = "quern-safety-net"


def broker_vhost() -> str:
    """The virtual host of CELERY_BROKER_URL ("/" for amqp://host//)."""
    return Connection(settings.CELERY_BROKER_URL).virtual_host or "/"


def policy_command(
    *, queues: list[str] | None = None, max_length: int | None = None, name: str = POLICY_NAME
) -> list[str]:
    """The rabbitmqctl command that caps Quern's queues: x-max-length with overflow reject-publish.

    A policy, not queue arguments: it applies to queues that already exist (declared without
    arguments) where redeclaring them with x-max-length would fail with PRECONDITION_FAILED.
    With publisher confirms on (settings), a publish past the cap raises instead of vanishing.
    """
    queues = queues or [queue.name for queue in settings.CELERY_TASK_QUEUES]
    pattern = "^(" + "|".join(re.escape(q) for q in queues) + ")$"
    definition = {"max-length": max_length or settings.QUERN_BROKER_MAX_LENGTH, "overflow": "reject-publish"}
    return [
        "rabbitmqctl",
        "set_policy",
        "-p",
        broker_vhost(),
        "--apply-to",
        "queues",
        name,
        pattern,
        json.dumps(definition),
    ]
