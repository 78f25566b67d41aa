"""The broker: which one is configured, the embedded transport, events out, the open queue's
consumer, queue depths and RabbitMQ's policy.

`kind(url)` is the one place that tells a RabbitMQ URL from the embedded filesystem broker;
settings, the pipeline, the pages and the commands all ask it.
"""

from __future__ import annotations

from typing import Literal

# Only the lazy settings object: settings.py itself imports this module to read a URL's kind.
from django.conf import settings

AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")

BrokerKind = Literal["rabbitmq", "filesystem", "other"]


def kind(url: str) -> BrokerKind:
    """Which broker a CELERY_BROKER_URL names."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in AMQP_SCHEMES:
        return "rabbitmq"
    if scheme == "filesystem":
        return "filesystem"
    return "other"


def configured() -> BrokerKind:
    """The kind of the broker this process is configured with."""
    return kind(settings.CELERY_BROKER_URL)


def is_rabbitmq() -> bool:
    """Events, replies and the open queue need RabbitMQ: no other program reads the filesystem broker."""
    return configured() == "rabbitmq"
