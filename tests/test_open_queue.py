"""The open queue: submit over AMQP, replies, dead-letters, idempotency keys, job events.

Tests marked by the `rabbitmq` fixture talk to the real RabbitMQ named by CELERY_BROKER_URL (the
open queue needs it) with a real `manage.py consume` process and the real worker; in the embedded
pass (filesystem broker) they skip, and with QUERN_REQUIRE_SERVICES set they fail instead.
"""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from indexing import broker as quern_broker
from indexing import consumers as open_queue
from indexing import pipeline
from indexing.broker import consumer as broker_consumer
from indexing.broker import events
from indexing.broker.consumer import broker_connection
from indexing.broker.queues import REJECTED_QUEUE, SUBMIT_QUEUE
from indexing.formats import FORMATS
from indexing.models import Document, Job, SearchStats, Status
from indexing.pipeline import notify
from indexing.schemas import Format
from tests.conftest import ROOT, _database_url, stop_process_group, wait_for, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)

CONSUMER_MAX_MESSAGE_BYTES = 64 * 1024  # the consumer under test; keeps "just over" messages small
EXAMPLES = ROOT / "examples"


# --- fixtures and helpers -----------------------------------------------------------------


@pytest.fixture
def rabbitmq():
    """The RabbitMQ of CELERY_BROKER_URL, its open-queue queues emptied; skips on the filesystem broker."""
    if not quern_broker.is_rabbitmq():
        if os.environ.get("QUERN_REQUIRE_SERVICES"):
            pytest.fail(
                "QUERN_REQUIRE_SERVICES is set but CELERY_BROKER_URL is not amqp://: "
                "the open queue is untested"
            )
        pytest.skip(
            "the open queue needs RabbitMQ: run with CELERY_BROKER_URL=amqp://… "
            "(the filesystem broker cannot take messages from other programs nor redeliver after a crash)"
        )
    with broker_connection() as conn:
        channel = conn.channel()
        for queue in (SUBMIT_QUEUE, REJECTED_QUEUE):
            bound = queue.bind(channel)
            bound.declare()
            bound.purge()
        channel.close()
    return _standard_amqp_uri(settings.CELERY_BROKER_URL)


def _standard_amqp_uri(url: str) -> str:
    """kombu reads amqp://…// as the vhost "/"; pika and amqplib follow the AMQP URI spec (%2F)."""
    from urllib.parse import quote

    from kombu import Connection

    c = Connection(url)
    return (
        f"amqp://{quote(c.userid, safe='')}:{quote(c.password, safe='')}"
        f"@{c.hostname}:{c.port or 5672}/{quote(c.virtual_host, safe='')}"
    )


def _start_consumer(log_path: Path, **extra_env: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(connection.settings_dict),
        "QUERN_DATA_DIR": str(settings.QUERN_DATA_DIR),
        "QUERN_MAX_MESSAGE_BYTES": str(CONSUMER_MAX_MESSAGE_BYTES),
        **extra_env,
    }
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "manage.py", "consume"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    wait_for(
        lambda: b"Consuming quern.submit" in log_path.read_bytes() or process.poll() is not None,
        timeout=60,
        message="the consumer to start",
    )
    assert process.poll() is None, log_path.read_text()
    return process


_stop = stop_process_group


@pytest.fixture
def consumer(rabbitmq, pipeline, tmp_path):
    """A real `manage.py consume` process on the test database, beside the real worker."""
    log_path = tmp_path / "consume.log"
    process = _start_consumer(log_path)
    yield process
    _stop(process)
    if os.environ.get("QUERN_SHOW_WORKER_LOG"):
        sys.stderr.write(log_path.read_text())


class Broker:
    """A plain AMQP client for the tests: publish raw submit messages, read queues."""

    def __init__(self) -> None:
        self.connection = broker_connection()
        self.channel = self.connection.channel()

    def close(self) -> None:
        self.connection.release()

    def private_queue(self, *, bind_events: str | None = None):
        from kombu import Queue

        queue = Queue(f"test-{uuid.uuid4().hex}", exclusive=True, auto_delete=True).bind(self.channel)
        queue.declare()
        if bind_events:
            events.EVENTS_EXCHANGE.bind(self.channel).declare()
            self.channel.queue_bind(queue.name, "quern.events", bind_events)
        return queue

    def submit(self, body: bytes | dict, **properties) -> None:
        from kombu import Producer

        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        Producer(self.channel).publish(
            raw,
            exchange="",
            routing_key="quern.submit",
            content_type="application/json",
            content_encoding="binary",
            delivery_mode=2,
            **properties,
        )

    def count(self, name: str) -> int:
        return self.channel.queue_declare(queue=name, passive=True).message_count

    def take(self, queue, n: int, *, timeout: float = 60) -> list:
        taken: list = []

        def more() -> bool:
            while (message := queue.get(no_ack=True)) is not None:
                taken.append(message)
            return len(taken) >= n

        wait_for(more, timeout=timeout, message=f"{n} message(s) on {queue.name}")
        return taken


@pytest.fixture
def broker(rabbitmq):
    client = Broker()
    yield client
    client.close()


def _csv(marker: str, rows: int = 30) -> bytes:
    return (
        "id,name,text\n" + "".join(f"{n},item {n},row {n} of {marker}\n" for n in range(1, rows + 1))
    ).encode()


def _search(client, q: str) -> dict:
    response = client.get("/api/search", {"q": q})
    assert response.status_code == 200
    return response.json()


# --- in-process: no broker needed ---------------------------------------------------------


def test_the_same_idempotency_key_three_times_over_the_api_gives_one_job(
    client, captured_messages, clean_index
):
    bodies = [
        client.post(
            "/api/documents",
            data={"name": "k.txt", "content": "kea parrots\n"},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="order-17",
        )
        for _ in range(2)
    ]
    upload = io.BytesIO(b"other bytes, same key\n")
    upload.name = "k2.txt"
    bodies.append(client.post("/api/documents", {"file": upload}, HTTP_IDEMPOTENCY_KEY="order-17"))
    assert [b.status_code for b in bodies] == [202, 202, 202]
    assert {b.json()["id"] for b in bodies} == {Job.objects.get().pk}
    assert Document.objects.count() == 1
    assert captured_messages == [("quern.split", [Job.objects.get().pk])]


def test_an_idempotency_key_stands_for_one_document_of_1_to_255_characters(client, captured_messages):
    first, second = io.BytesIO(b"a\n"), io.BytesIO(b"b\n")
    first.name, second.name = "a.txt", "b.txt"
    several = client.post("/api/documents", {"file": [first, second]}, HTTP_IDEMPOTENCY_KEY="k")
    too_long = client.post(
        "/api/documents",
        data={"name": "a.txt", "content": "a"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="k" * 256,
    )
    assert (several.status_code, several.json()["error"]["code"]) == (400, "bad_parameter")
    assert (too_long.status_code, too_long.json()["error"]["code"]) == (400, "bad_idempotency_key")
    assert Job.objects.count() == 0 and captured_messages == []


def test_a_submit_message_taken_in_process_stores_its_job_with_reply_address_and_metadata(
    captured_messages, clean_index, monkeypatch
):
    monkeypatch.setattr(notify, "enabled", lambda: False)  # no events, as on the filesystem broker
    body = json.dumps({"name": "m.md", "content": "# Moa\n\nExtinct.\n", "metadata": {"ticket": 9}}).encode()
    [taken] = open_queue.take_submissions([(body, "amq.gen-1", "c-1")])
    job = Job.objects.get(pk=taken.job_id)
    assert (job.source, job.format, job.reply_to, job.correlation_id, job.metadata) == (
        "amqp",
        "markdown",
        "amq.gen-1",
        "c-1",
        {"ticket": 9},
    )
    # Small: indexed as it was taken, with no task message; live. With no events, no end reply
    # is owed: the accepted reply carries the end.
    assert (job.status, job.records_indexed, job.document.live_job_id) == ("succeeded", 1, job.pk)
    assert taken.reply["status"] == "succeeded"
    assert captured_messages == []


def test_an_open_queue_batch_indexes_its_small_documents_as_it_takes_them_and_queues_the_rest(
    captured_messages, clean_index, client, monkeypatch
):
    published: list = []
    monkeypatch.setattr(notify, "enabled", lambda: True)  # events owed, as on RabbitMQ
    monkeypatch.setattr(events, "publish", published.extend)
    bodies = {
        "notes-1.txt": {"content": "a kokako sang at dawn\n"},
        "notes-2.md": {"content": "# Kokako\n\nThe blue-wattled crow of the forest.\n"},
        "photo.csv": {"content": "\x00\x01binary\x02" * 10},  # fails alone, with why
        "many.csv": {"content": "id,text\n1,kokako one\n2,kokako two\n3,kokako three\n", "chunk_size": 1},
        "latin.txt": {
            "content_base64": base64.b64encode("caf\xe9 kokako\n".encode("cp1252")).decode(),
            "encoding": "cp1252",
        },
    }
    messages = [(json.dumps({"name": name, **body}).encode(), "", "") for name, body in bodies.items()]
    taken = open_queue.take_submissions(messages)
    jobs = {job.document.name: job for job in Job.objects.select_related("document")}
    assert [t.job_id for t in taken] == [jobs[name].pk for name in bodies]
    # Indexed in the consumer's transaction: ended, live, one reply (the end's).
    for name in ("notes-1.txt", "notes-2.md"):
        job = jobs[name]
        assert (job.status, job.records_indexed, job.document.live_job_id) == ("succeeded", 1, job.pk)
        assert job.chunks_done == 1 and job.terms_counted
    failed = jobs["photo.csv"]
    assert (failed.status, failed.errors[0]["code"]) == ("failed", "binary_content")
    assert failed.document.live_job_id is None
    # One event each, published after the commit, and the flags cleared once it was confirmed.
    assert sorted((key, body["id"]) for _, key, body, _ in published) == sorted(
        [
            ("job.succeeded", jobs["notes-1.txt"].pk),
            ("job.succeeded", jobs["notes-2.md"].pk),
            ("job.failed", failed.pk),
        ]
    )
    assert not Job.objects.filter(events_pending=True).exists()
    assert [t.reply for t in taken[:3]] == [None, None, None]
    # More than one chunk, or another encoding: a queued job for the workers, answered as accepted.
    for name in ("many.csv", "latin.txt"):
        assert jobs[name].status == "queued"
    assert {t.reply["status"] for t in taken[3:]} == {"queued"}
    # Both small: one trigger for their lane, whose batch claims them both (pipeline.batching).
    [(task, [trigger])] = captured_messages
    assert task == "quern.split" and trigger in (jobs["many.csv"].pk, jobs["latin.txt"].pk)
    # Searchable at once, with search's statistics counted.
    assert {hit["document"]["name"] for hit in _search(client, "kokako")["hits"]} == {
        "notes-1.txt",
        "notes-2.md",
    }
    assert SearchStats.objects.get().records == 2


def test_every_way_a_job_ends_owes_one_event_and_reconcile_publishes_it_when_the_first_try_failed(
    captured_messages, clean_index, monkeypatch
):
    published: list[list] = []
    broker_up = False

    def fake_publish(messages):
        if not broker_up:
            raise ConnectionRefusedError("broker down")
        published.append(messages)

    monkeypatch.setattr(notify, "enabled", lambda: True)
    monkeypatch.setattr(events, "publish", fake_publish)
    good = pipeline.submit(
        io.BytesIO(b"id,text\n1,tui\n"), name="g.csv", reply_to="replies", correlation_id="c9"
    )
    bad = pipeline.submit(io.BytesIO(b"\x89PNG\r\n\x1a\n" + bytes(range(256))), name="b.csv")
    for job in (good, bad):
        pipeline.split(job.pk)
    pipeline.index_chunk(good.pk, 0)
    pipeline.finalize(good.pk)
    assert dict(Job.objects.values_list("status", "events_pending")) == {"succeeded": True, "failed": True}

    broker_up = True
    assert pipeline.reconcile()["events"] == 0  # not yet: a job just ended may still be publishing
    later = timezone.now() + timedelta(seconds=settings.QUERN_RECONCILE_AFTER + 1)
    assert pipeline.reconcile(now=later)["events"] == 2
    assert pipeline.reconcile(now=later)["events"] == 0
    assert not Job.objects.filter(events_pending=True).exists()

    sent = {
        routing_key: (exchange, body, props)
        for batch in published
        for exchange, routing_key, body, props in batch
    }
    assert set(sent) == {"job.succeeded", "job.failed", "replies"}
    assert sent["job.succeeded"][1]["id"] == good.pk and sent["job.failed"][1]["id"] == bad.pk
    assert sent["job.succeeded"][1]["event_id"] == notify.event_id(Job.objects.get(pk=good.pk))
    assert sent["replies"][1]["status"] == "succeeded" and sent["replies"][2] == {"correlation_id": "c9"}


def test_message_schemas_are_served_and_events_match_their_schema(client):
    import jsonschema

    names = {name: client.get(f"/api/schema/messages/{name}") for name in ("submit", "event", "reply")}
    assert {name: r.status_code for name, r in names.items()} == {"submit": 200, "event": 200, "reply": 200}
    assert client.get("/api/schema/messages/nope").json()["error"]["code"] == "not_found"
    event_schema = names["event"].json()
    jsonschema.Draft202012Validator.check_schema(event_schema)
    job = {
        "id": 1,
        "status": "succeeded",
        "document": {"id": 1, "name": "a.csv", "format": "csv", "size": 3, "sha256": "0"},
        "progress": {"records_total": 1, "records_indexed": 1, "chunks_total": 1, "chunks_done": 1},
        "errors": [],
        "created_at": "2026-01-01T00:00:00+00:00",
        "started_at": None,
        "finished_at": None,
        "metadata": {},
        "source": "amqp",
        "chunk_size": 5000,
        "error_count": 0,
        "split_finished_at": None,
        "url": "/jobs/1/",
    }
    jsonschema.validate({**job, "event": "job.succeeded", "event_id": str(uuid.uuid4())}, event_schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(job, event_schema)  # an event without its event_id
    jsonschema.validate({"error": {"code": "missing_name", "message": "…"}}, names["reply"].json())
    assert [f for f in names["submit"].json()["$defs"]["Format"]["enum"]] == list(FORMATS) == list(Format)


def test_consume_refuses_the_filesystem_broker_plainly(settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    with pytest.raises(CommandError, match="needs RabbitMQ"):
        call_command("consume")


# --- real RabbitMQ, real consumer, real worker --------------------------------------------


def _run_example(command: list[str], rabbitmq: str, path: Path, *extra: str) -> list[dict]:
    env = {**os.environ, "AMQP_URL": rabbitmq, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    result = subprocess.run(
        [*command, str(path), "--timeout", "90", *extra],
        env=env,
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_node_example_submits_a_csv_hears_accepted_then_succeeded_and_the_records_are_searchable(
    consumer, rabbitmq, client, tmp_path
):
    assert shutil.which("node"), "node is needed for the Node.js example (make install-test installs it)"
    assert (EXAMPLES / "node_modules" / "amqplib").is_dir(), (
        "run `npm ci` in examples/ (make install-test does)"
    )
    path = tmp_path / "birds.csv"
    path.write_bytes(_csv("kakapo"))
    # An idempotency key takes the queued path (a worker indexes it): accepted, then its end.
    key = f"birds-{uuid.uuid4().hex}"
    replies = _run_example(["node", "submit.js"], rabbitmq, path, "--idempotency-key", key)
    assert [r["status"] for r in replies] == ["queued", "succeeded"]
    assert replies[0]["id"] == replies[1]["id"] and replies[1]["progress"]["records_indexed"] == 30
    assert Job.objects.get(pk=replies[0]["id"]).source == "amqp"
    assert _search(client, "kakapo")["total"] == 30


def test_python_pika_example_submits_and_a_failed_job_exits_1(consumer, rabbitmq, client, tmp_path):
    good, bad = tmp_path / "fish.csv", tmp_path / "photo.csv"
    good.write_bytes(_csv("hoki", rows=5))
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    replies = _run_example([sys.executable, "submit.py"], rabbitmq, good, "--format", "csv")
    # A small document is indexed as the consumer takes it: its one reply is its end.
    assert [r["status"] for r in replies] == ["succeeded"]
    assert _search(client, "hoki")["total"] == 5
    env = {**os.environ, "AMQP_URL": rabbitmq}
    failed = subprocess.run(
        [sys.executable, "submit.py", str(bad), "--timeout", "90"],
        env=env,
        cwd=EXAMPLES,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert json.loads(failed.stdout.splitlines()[-1])["status"] == "failed"


def test_invalid_messages_are_dead_lettered_with_their_reason_and_answered_and_nothing_else_changes(
    consumer, broker, client
):
    replies = broker.private_queue()
    over = b'{"name": "big.txt", "content": "' + b"x" * CONSUMER_MAX_MESSAGE_BYTES + b'"}'
    cases = {
        "not-json": (b"this is not json", "invalid_json"),
        "no-name": (json.dumps({"content": "x"}).encode(), "missing_name"),
        "both": (
            json.dumps({"name": "a.txt", "content": "x", "content_base64": "eA=="}).encode(),
            "bad_content",
        ),
        "too-big": (over, "too_large"),
        "format": (json.dumps({"name": "a.txt", "content": "x", "format": "pdf"}).encode(), "unknown_format"),
    }
    for correlation_id, (body, _) in cases.items():
        broker.submit(body, reply_to=replies.name, correlation_id=correlation_id, headers={"x-mine": "kept"})

    answers = {m.properties["correlation_id"]: json.loads(m.body) for m in broker.take(replies, len(cases))}
    assert {cid: a["error"]["code"] for cid, a in answers.items()} == {
        cid: code for cid, (_, code) in cases.items()
    }
    rejected = broker.take(REJECTED_QUEUE.bind(broker.channel), len(cases))
    by_id = {m.properties["correlation_id"]: m for m in rejected}
    for correlation_id, (body, code) in cases.items():
        message = by_id[correlation_id]
        assert message.body == body  # the very message, not lost
        assert message.headers["x-quern-error-code"] == code
        assert (
            message.headers["x-quern-error"].startswith(f"{code}: ")
            and len(message.headers["x-quern-error"]) > len(code) + 10
        )
        assert message.headers["x-mine"] == "kept"
    assert broker.count("quern.submit") == 0  # acked, not retried
    assert (Job.objects.count(), Document.objects.count()) == (0, 0)
    assert client.get("/api/jobs").json()["total"] == 0


def test_the_same_idempotency_key_three_times_over_amqp_and_the_api_gives_one_job(consumer, broker, client):
    replies = broker.private_queue()
    message = {"name": "once.txt", "content": "a single tuatara\n", "idempotency_key": "import-2026-11-23"}
    broker.submit(message, reply_to=replies.name, correlation_id="first")
    first = wait_for(lambda: Job.objects.first(), timeout=30, message="the first message's job")
    api = client.post(
        "/api/documents",
        data={"name": "once.txt", "content": "a single tuatara\n"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="import-2026-11-23",
    )
    broker.submit(message, reply_to=replies.name, correlation_id="third")
    # Accepted for the first and the third, and the job's end (to the first's reply_to), in any order.
    answers = [(m.properties["correlation_id"], json.loads(m.body)) for m in broker.take(replies, 3)]
    assert api.status_code == 202 and api.json()["id"] == first.pk
    assert sorted((cid, a["id"]) for cid, a in answers) == [
        ("first", first.pk),
        ("first", first.pk),
        ("third", first.pk),
    ]
    assert Job.objects.count() == 1
    assert wait_for_job(first.pk).status == Status.SUCCEEDED
    assert _search(client, "tuatara")["total"] == 1


def test_an_events_consumer_sees_exactly_one_event_per_finished_job_in_a_run_of_100(consumer, broker):
    listener = broker.private_queue(bind_events="job.*")
    for n in range(100):
        content = f"id,text\n{n},event run weka {n}\n" if n % 10 else "\x00\x01binary\x02" * 10
        broker.submit({"name": f"e{n}.csv", "content": content})
    wait_for(
        lambda: Job.objects.filter(status__in=("succeeded", "failed")).count() == 100,
        timeout=180,
        message="100 jobs to finish",
    )
    jobs = dict(Job.objects.values_list("pk", "status"))
    received = broker.take(listener, 100, timeout=60)
    while (late := listener.get(no_ack=True)) is not None:  # any duplicate already queued
        received.append(late)
    ids_per_job: dict[int, set[str]] = {}
    for message in received:
        body = json.loads(message.body)
        if body["id"] not in jobs:  # a late event of an earlier test's job
            continue
        assert message.delivery_info["routing_key"] == body["event"] == f"job.{body['status']}"
        ids_per_job.setdefault(body["id"], set()).add(body["event_id"])
    assert set(ids_per_job) == set(jobs)
    assert all(len(ids) == 1 for ids in ids_per_job.values())
    assert len({next(iter(ids)) for ids in ids_per_job.values()}) == 100
    assert sorted(jobs.values()).count("failed") == 10
    # The outbox flag is cleared once the broker has confirmed the publish: just after it arrives.
    wait_for(
        lambda: not Job.objects.filter(events_pending=True).exists(), timeout=30, message="events cleared"
    )


def test_a_consumer_killed_before_its_commit_loses_nothing_and_makes_exactly_one_job(
    rabbitmq, pipeline, broker, tmp_path
):
    if connection.vendor != "postgresql":
        pytest.skip("holds the consumer's tables with PostgreSQL's LOCK TABLE")
    log_path = tmp_path / "consume.log"
    first = _start_consumer(log_path)
    content = f"id,text\n1,the only takahe {uuid.uuid4().hex}\n".encode()
    replacement = None
    try:
        # Hold the tables the consumer's transaction writes (its document's bytes are a row of
        # indexing_storedbytes), so it cannot commit; its wait for the lock tells us it has taken
        # the message.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE indexing_storedbytes, indexing_document IN SHARE ROW EXCLUSIVE MODE")
            broker.submit({"name": "takahe.csv", "content_base64": base64.b64encode(content).decode()})

            def consumer_waits_for_the_lock() -> bool:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                return cursor.fetchone()[0] > 0

            wait_for(consumer_waits_for_the_lock, timeout=30, message="the consumer to take the message")
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        assert Job.objects.count() == 0
        replacement = _start_consumer(log_path)
        job = wait_for(lambda: Job.objects.first(), timeout=60, message="the redelivered message's job")
        assert wait_for_job(job.pk).status == Status.SUCCEEDED
        assert Job.objects.count() == 1 and broker.count("quern.submit") == 0
    finally:
        _stop(first)
        if replacement is not None:
            _stop(replacement)


def _run_until_quiet(consumer: broker_consumer.SubmitConsumer, seconds: float = 1.0) -> None:
    """Drive a consumer in this process (and this test's database) until no message came for `seconds`."""
    try:
        for _ in consumer.consume(timeout=seconds, safety_interval=0.2):
            pass
    except TimeoutError:
        pass


@pytest.fixture
def in_process_consumer(broker, captured_messages, clean_index):
    consumer = open_queue.submit_consumer(broker_connection())
    yield consumer
    consumer.connection.release()


def _counts(broker: Broker) -> tuple[int, int, int]:
    return broker.count("quern.submit"), broker.count("quern.submit.rejected"), Job.objects.count()


def test_while_the_backpressure_hook_says_no_messages_stay_on_the_queue_untouched(
    broker, in_process_consumer, monkeypatch
):
    gate = {"open": False}
    monkeypatch.setattr(open_queue, "accepting_submissions", lambda: gate["open"])
    broker.submit({"name": "wait.txt", "content": "patience\n"})
    _run_until_quiet(in_process_consumer)
    assert _counts(broker) == (1, 0, 0)
    gate["open"] = True
    _run_until_quiet(in_process_consumer)
    assert _counts(broker) == (0, 0, 1)


def test_while_the_database_cannot_answer_the_gate_the_consumer_waits_and_then_takes_them(
    broker, in_process_consumer, monkeypatch
):
    from django.db import OperationalError

    database = {"up": False}

    def gate() -> bool:
        if not database["up"]:
            raise OperationalError("the database system is starting up")
        return True

    monkeypatch.setattr(open_queue, "accepting_submissions", gate)
    broker.submit({"name": "restart.txt", "content": "still here\n"})
    _run_until_quiet(in_process_consumer)  # does not die
    assert _counts(broker) == (1, 0, 0)
    database["up"] = True
    _run_until_quiet(in_process_consumer)
    assert _counts(broker) == (0, 0, 1)


def test_a_passing_database_error_puts_the_message_back_and_it_is_taken_later(
    broker, in_process_consumer, monkeypatch
):
    from django.db import OperationalError

    real_submit, failures = pipeline.submit_many, []

    def flaky_submit(*args, **kwargs):
        if not failures:
            failures.append(1)
            raise OperationalError("database is locked")
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(broker_consumer, "TRANSIENT_RETRY_DELAY", 0)
    monkeypatch.setattr(pipeline, "submit_many", flaky_submit)
    broker.submit({"name": "retry.txt", "content": "again\n"})
    _run_until_quiet(in_process_consumer)
    assert failures == [1] and _counts(broker) == (0, 0, 1)


def test_a_full_document_storage_leaves_the_messages_queued_not_refused_until_there_is_room(
    broker, in_process_consumer, monkeypatch
):
    from indexing.errors import StorageFull

    real_submit, room = pipeline.submit_many, {"left": False}

    def full_then_room(incoming, **kwargs):
        if not room["left"]:
            raise StorageFull()
        return real_submit(incoming, **kwargs)

    monkeypatch.setattr(broker_consumer, "TRANSIENT_RETRY_DELAY", 0)
    monkeypatch.setattr(pipeline, "submit_many", full_then_room)
    broker.submit({"name": "full-1.txt", "content": "one\n"})
    broker.submit({"name": "full-2.txt", "content": "two\n"})
    consumer = in_process_consumer
    # The messages go back each time they meet the full storage: none is dead-lettered.
    for _ in consumer.consume(limit=4, timeout=10, safety_interval=0.2):
        pass
    assert broker.count("quern.submit.rejected") == 0 and Job.objects.count() == 0
    room["left"] = True
    _run_until_quiet(consumer)
    assert _counts(broker) == (0, 0, 2)


def test_a_message_that_trips_a_bug_is_dead_lettered_alone_and_its_batch_is_taken(
    broker, in_process_consumer, monkeypatch
):
    real_submit = pipeline.submit_many

    def broken_on_bug(incoming, **kwargs):
        incoming = list(incoming)
        if any(item.name == "bug.txt" for item in incoming):
            raise RuntimeError("a bug")
        return real_submit(incoming, **kwargs)

    monkeypatch.setattr(pipeline, "submit_many", broken_on_bug)
    broker.submit({"name": "fine-1.txt", "content": "one\n"})
    broker.submit({"name": "bug.txt", "content": "boom\n"})
    broker.submit({"name": "fine-2.txt", "content": "two\n"})
    _run_until_quiet(in_process_consumer)
    assert _counts(broker) == (0, 1, 2)
    rejected = REJECTED_QUEUE.bind(broker.channel).get(no_ack=True)
    assert rejected.headers["x-quern-error-code"] == "internal_error"
    assert json.loads(rejected.body)["name"] == "bug.txt"
    assert sorted(Document.objects.values_list("name", flat=True)) == ["fine-1.txt", "fine-2.txt"]


def test_the_readme_shows_the_very_example_files_the_tests_run():
    readme = (ROOT / "README.md").read_text()
    for name in ("submit.py", "submit.js"):
        assert (EXAMPLES / name).read_text() in readme, f"README.md must show examples/{name} as it is"


def test_the_consumer_stops_taking_submissions_past_the_backpressure_limit(
    captured_messages, clean_index, settings
):
    settings.QUERN_MAX_WAITING = 2
    assert open_queue.accepting_submissions()
    pipeline.submit(io.BytesIO(b"id,text\n1,a\n"), name="one.csv")
    assert open_queue.accepting_submissions()  # 1 job waiting, limit 2
    pipeline.submit(io.BytesIO(b"id,text\n1,b\n"), name="two.csv")
    assert not open_queue.accepting_submissions()  # messages stay on quern.submit, as the API answers 503


def test_a_batch_of_messages_is_taken_in_one_go_and_a_bad_one_is_refused_alone(broker, in_process_consumer):
    replies = broker.private_queue()
    for n in range(5):
        broker.submit({"name": f"batch-{n}.txt", "content": f"kea number {n}\n"}, reply_to=replies.name)
    broker.submit({"content": "no name"}, reply_to=replies.name)  # refused: a document needs a name
    _run_until_quiet(in_process_consumer)
    assert _counts(broker) == (0, 1, 5)  # nothing left unacked on quern.submit, one dead-lettered
    answers = [json.loads(m.body) for m in broker.take(replies, 6)]
    assert sorted(a["document"]["name"] for a in answers if "document" in a) == [
        f"batch-{n}.txt" for n in range(5)
    ]
    assert [a["error"]["code"] for a in answers if "error" in a] == ["missing_name"]


def test_an_event_body_with_an_integer_past_64_bits_is_still_json():
    """A submitter's metadata may hold any JSON integer; orjson refuses those past 64 bits."""
    body = {"id": 7, "metadata": {"ticket": 2**70}}
    assert json.loads(events._json(body)) == body


def test_a_fault_after_the_commit_acks_the_stored_messages_rather_than_taking_them_twice(
    broker, in_process_consumer, monkeypatch
):
    from indexing.pipeline import dispatch

    def database_gone(messages, countdown=None):  # a commit hook meeting a dropped connection
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(dispatch, "send_now", database_gone)
    latin = base64.b64encode("caf\xe9 au kea\n".encode("cp1252")).decode()
    # Another encoding: a queued job, whose trigger is sent by a commit hook.
    broker.submit({"name": "latin.txt", "content_base64": latin, "encoding": "cp1252"})
    _run_until_quiet(in_process_consumer)
    assert _counts(broker) == (0, 0, 1)  # acked once stored: not put back for a second job
