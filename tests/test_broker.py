"""The embedded default's broker: a consumer never sees a message file half-written."""

from __future__ import annotations

import json
import multiprocessing
import os

from kombu import Connection, Queue

from indexing.broker.transport import Transport


def _watch(folder, stop, partial_reads):
    """What the consuming side does: list the queue folder and read the files it finds."""
    while not stop.is_set():
        for name in os.listdir(folder):
            try:
                data = (folder / name).read_bytes()
            except FileNotFoundError:
                continue
            try:
                json.loads(data)
            except ValueError:
                with partial_reads.get_lock():
                    partial_reads.value += 1


def test_published_message_files_appear_whole_while_a_consumer_polls(tmp_path):
    folders = {name: tmp_path / name for name in ("queue", "processed", "staging")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "store_processed": False,
        "staging_folder": str(folders["staging"]),
    }
    partial_reads = multiprocessing.Value("i", 0)
    stop = multiprocessing.Event()
    # Another process, as the worker is: within one process the GIL hides the race.
    watcher = multiprocessing.get_context("fork").Process(
        target=_watch, args=(folders["queue"], stop, partial_reads)
    )
    watcher.start()
    body = "x" * 200_000  # a large message takes long enough to write for a poll to land mid-write
    with Connection(transport=Transport, transport_options=options) as conn:
        queue = Queue("work", durable=True)
        with conn.Producer() as producer:
            for n in range(200):
                producer.publish(
                    {"n": n, "body": body}, routing_key="work", declare=[queue], serializer="json"
                )
        stop.set()
        watcher.join()
        assert partial_reads.value == 0
        received = []
        with conn.SimpleQueue(queue) as simple:
            for _ in range(200):
                message = simple.get(timeout=5)
                received.append(message.payload["n"])
                message.ack()
    assert sorted(received) == list(range(200))
    assert os.listdir(folders["staging"]) == []
