#!/usr/bin/env python3
"""Hand a document to Quern over AMQP and wait for its job to end: plain pika, no Quern import.

    pip install pika
    AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2F python submit.py products.csv [--format csv]
        [--idempotency-key KEY] [--timeout 300]

Prints every reply as one JSON line (the accepted job and then the finished one, or only the
finished job when it ended as it was taken, or an error) and
exits 0 if the job succeeded, 1 if it failed or was cancelled, 2 if Quern refused the message,
3 if no reply came in time.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pathlib
import sys
import uuid

import pika

FINISHED = {"succeeded", "failed", "cancelled"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=pathlib.Path)
    parser.add_argument("--format", help="csv, jsonl, json, html, markdown or text (default: from the name)")
    parser.add_argument("--idempotency-key", help="the same key again gives the same job")
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for each reply")
    args = parser.parse_args()

    message = {
        "name": args.path.name,
        "content_base64": base64.b64encode(args.path.read_bytes()).decode("ascii"),
    }
    if args.format:
        message["format"] = args.format
    if args.idempotency_key:
        message["idempotency_key"] = args.idempotency_key

    connection = pika.BlockingConnection(
        pika.URLParameters(os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    )
    channel = connection.channel()
    channel.confirm_delivery()  # basic_publish raises if the broker did not take the message
    # A private queue for the replies; the broker deletes it when we disconnect.
    reply_queue = channel.queue_declare(queue="", exclusive=True).method.queue
    channel.queue_declare(queue="quern.submit", durable=True)  # as Quern declares it: durable, no arguments
    correlation_id = str(uuid.uuid4())
    channel.basic_publish(
        exchange="",
        routing_key="quern.submit",
        body=json.dumps(message),
        properties=pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            reply_to=reply_queue,
            correlation_id=correlation_id,
        ),
        mandatory=True,
    )
    try:
        for method, properties, body in channel.consume(
            reply_queue, auto_ack=True, inactivity_timeout=args.timeout
        ):
            if method is None:
                print(f"no reply from Quern within {args.timeout} s", file=sys.stderr)
                return 3
            if properties.correlation_id != correlation_id:
                continue
            reply = json.loads(body)
            print(json.dumps(reply), flush=True)
            if "error" in reply:
                return 2
            if reply["status"] in FINISHED:
                return 0 if reply["status"] == "succeeded" else 1
    finally:
        connection.close()
    return 3


if __name__ == "__main__":
    sys.exit(main())
