"""The open queue's queues, declared durable and without arguments the same way everywhere.

A client may declare them too: RabbitMQ refuses a redeclaration with other arguments
(PRECONDITION_FAILED, PITFALLS.md), so limits and dead-lettering are never queue arguments.
"""

from __future__ import annotations

from kombu import Queue

SUBMIT_QUEUE = Queue("quern.submit", durable=True)
REJECTED_QUEUE = Queue("quern.submit.rejected", durable=True)
