"""The pipeline's steps, in-process: each runs twice and leaves the state of one run."""

from __future__ import annotations

import io
import os
import sqlite3
import threading
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import OperationalError, connection, connections
from django.utils import timezone

from indexing import broker, pipeline
from indexing.models import Chunk, Job, Record, Status
from indexing.pipeline import attempts, indexer, jobs, recovery
from indexing.schemas import SubmitOptions
from indexing.search import get_backend, search
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _csv(rows: int) -> io.BytesIO:
    data = "id,text\n" + "".join(f"{n},gannet number {n}\n" for n in range(rows))
    return io.BytesIO(data.encode())


def _search_total(q: str) -> int:
    return search(q, limit=10).page.total


def _fts_rows(job: Job) -> int:
    if connection.vendor != "sqlite":
        return Record.objects.filter(job=job, search__isnull=False).count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM indexing_record_fts"
            " WHERE rowid IN (SELECT id FROM indexing_record WHERE job_id = %s)",
            [job.pk],
        )
        return cursor.fetchone()[0]


def _run_one_chunk(job: Job) -> Job:
    """split, index_chunk 0 and finalize in-process, as the worker would run them."""
    pipeline.split(job.pk)
    pipeline.index_chunk(job.pk, 0)
    pipeline.finalize(job.pk)
    job.refresh_from_db()
    return job


def test_index_chunk_twice_leaves_one_copy_and_search_waits_for_finalize(captured_messages, clean_index):
    job = pipeline.submit(_csv(25), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    pipeline.split(job.pk)  # a redelivered split changes nothing once chunks exist
    assert Chunk.objects.filter(job=job).count() == 3

    # index_chunk says when the job is complete (the task then finalizes in the same worker);
    # a redelivery of a done chunk says so again, so a finalize lost to a crash still runs.
    complete = [pipeline.index_chunk(job.pk, number) for number in (0, 0, 1, 2, 1)]
    assert complete == [False, False, False, True, True]
    job.refresh_from_db()
    assert (job.records_indexed, job.chunks_done, job.status) == (25, 3, Status.INDEXING)
    assert Record.objects.filter(job=job).count() == 25
    assert _fts_rows(job) == 25
    assert _search_total("gannet") == 0  # indexing: none of its records are searchable yet
    assert not [m for m in captured_messages if m[0] == "quern.finalize"]  # no hop through the broker

    pipeline.finalize(job.pk)
    pipeline.finalize(job.pk)
    assert pipeline.index_chunk(job.pk, 2) is False  # after the job finished
    job.refresh_from_db()
    assert (job.status, job.records_indexed, job.chunks_done) == (Status.SUCCEEDED, 25, 3)
    assert Record.objects.filter(job=job).count() == 25
    assert _fts_rows(job) == 25
    assert _search_total("gannet") == 25


def test_a_one_chunk_document_is_indexed_by_the_split_task_without_a_broker_hop(
    captured_messages, clean_index
):
    job = pipeline.submit(_csv(5), name="birds.csv", options=SubmitOptions(chunk_size=10))
    assert pipeline.split(job.pk) == [0]
    assert captured_messages == [("quern.split", [job.pk])]  # no index_chunk: the split task indexes it
    assert pipeline.split(job.pk) == [0]  # a redelivered split still hands the chunk back
    assert pipeline.index_chunk(job.pk, 0) is True
    pipeline.finalize(job.pk)
    assert pipeline.split(job.pk) == []
    assert _search_total("gannet") == 5


def test_a_chunk_interrupted_before_commit_is_rewritten_cleanly(captured_messages, clean_index, monkeypatch):
    job = pipeline.submit(_csv(10), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    backend = get_backend()
    real_index = type(backend).index_many

    def crash_after_writing(self, rows):
        real_index(self, rows)
        raise RuntimeError("worker died mid-chunk")

    monkeypatch.setattr(type(backend), "index_many", crash_after_writing)
    with pytest.raises(RuntimeError):
        pipeline.index_chunk(job.pk, 0)
    monkeypatch.setattr(type(backend), "index_many", real_index)
    assert Record.objects.filter(job=job).count() == 0  # rolled back with its transaction
    pipeline.index_chunk(job.pk, 0)
    pipeline.finalize(job.pk)
    assert Record.objects.filter(job=job).count() == 10
    assert _search_total("gannet") == 10


def test_a_failed_job_keeps_the_previous_version_live(captured_messages, clean_index):
    first = pipeline.submit(io.BytesIO(b"penguins waddle\n"), name="notes.txt")
    pipeline.split(first.pk)
    pipeline.index_chunk(first.pk, 0)
    pipeline.finalize(first.pk)
    second = pipeline.submit(
        io.BytesIO(b"\x00\x01binary\x00"),
        name="notes.txt",
        replace=first.document_id,
        options=SubmitOptions(format="text"),
    )
    pipeline.split(second.pk)
    second.refresh_from_db()
    assert second.status == Status.FAILED
    assert second.errors[-1]["code"] == "binary_content"
    assert _search_total("penguins") == 1
    assert second.document.live_job_id == first.pk


def test_ci_runs_against_the_services_it_was_asked_for():
    """In CI's second pass the suite must really be on PostgreSQL and RabbitMQ, never a fallback."""
    if not os.environ.get("QUERN_REQUIRE_SERVICES"):
        pytest.skip("only asserted when QUERN_REQUIRE_SERVICES is set (CI's services pass)")
    assert connection.vendor == "postgresql"
    assert broker.is_rabbitmq()


def test_nul_characters_and_very_long_keys_are_indexed_on_every_database(captured_messages, clean_index):
    line = '{"id": "' + "k" * 400 + '", "text": "puffin\\u0000 colony", "meta": {"note": "a\\u0000b"}}\n'
    job = _run_one_chunk(pipeline.submit(io.BytesIO(line.encode()), name="odd.jsonl"))
    assert job.status == Status.SUCCEEDED, job.errors
    assert Record.objects.get(job=job).key == "k" * 400
    assert _search_total("puffin") == 1


def test_a_declared_cp1252_csv_is_transcoded_and_found(captured_messages, clean_index):
    data = "id,text\n1,caf\u00e9 cr\u00e8me on the terrace\n".encode("cp1252")
    job = pipeline.submit(io.BytesIO(data), name="menu.csv", options=SubmitOptions(encoding="cp1252"))
    pipeline.split(job.pk)  # a second delivery of the split leaves the first run's copy alone
    job = _run_one_chunk(job)
    assert job.status == Status.SUCCEEDED, job.errors
    assert Record.objects.get(job=job).body.startswith("caf\u00e9 cr\u00e8me")
    assert _search_total("terrace") == 1


@pytest.fixture
def empty_queues(monkeypatch):
    """The broker's queues hold nothing ready (as after a lost message), whatever other tests left there."""
    monkeypatch.setattr(recovery, "_queue_is_empty", lambda name: True)


def test_reconcile_resends_undone_chunks_then_the_missing_finalize(
    captured_messages, clean_index, empty_queues
):
    from datetime import timedelta

    from django.utils import timezone

    job = pipeline.submit(_csv(20), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    pipeline.index_chunk(job.pk, 0)
    captured_messages.clear()
    later = timezone.now() + timedelta(hours=1)
    assert pipeline.reconcile(now=later)["index_chunk"] == 1
    assert captured_messages == [("quern.index_chunk", [job.pk, 1])]

    pipeline.index_chunk(job.pk, 1)  # the worker dies before it can run finalize
    captured_messages.clear()
    assert pipeline.reconcile(now=later + timedelta(hours=1))["finalize"] == 1
    assert captured_messages == [("quern.finalize", [job.pk])]


def test_reconcile_leaves_chunks_waiting_in_a_backlog_and_resends_them_once_it_drains(
    captured_messages, clean_index, monkeypatch
):
    from datetime import timedelta

    from django.utils import timezone

    job = pipeline.submit(_csv(20), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    assert all(c.sent_at is not None for c in Chunk.objects.filter(job=job))
    captured_messages.clear()
    later = timezone.now() + timedelta(hours=1)
    monkeypatch.setattr(recovery, "_queue_is_empty", lambda name: False)  # a long backlog ahead of them
    assert pipeline.reconcile(now=later)["index_chunk"] == 0
    assert captured_messages == []
    monkeypatch.setattr(recovery, "_queue_is_empty", lambda name: True)  # drained, still not done: lost
    assert pipeline.reconcile(now=later)["index_chunk"] == 2
    # Re-sent now: the next run waits another interval before sending them again.
    assert pipeline.reconcile(now=later + timedelta(seconds=1))["index_chunk"] == 0
    assert Chunk.objects.filter(job=job, sent_at=later).count() == 2


def test_a_chunk_that_keeps_killing_its_worker_fails_the_job_after_the_attempt_limit(
    captured_messages, clean_index, monkeypatch
):
    job = pipeline.submit(_csv(20), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    pipeline.index_chunk(job.pk, 0)

    def killed(*args, **kwargs):
        raise RuntimeError("stands in for SIGKILL: the run never returns")

    # A killed worker never reaches the code that uncounts its attempt.
    monkeypatch.setattr(attempts, "uncount", lambda chunk: None)
    monkeypatch.setattr(indexer, "parse_chunk", killed)
    for _ in range(settings.QUERN_MAX_CHUNK_ATTEMPTS):
        with pytest.raises(RuntimeError):
            pipeline.index_chunk(job.pk, 1)
    pipeline.index_chunk(job.pk, 1)  # the redelivery past the limit
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.errors[-1]["code"] == "chunk_crashed"
    assert job.errors[-1]["line"] == 12
    # The row keeps the count that stopped it (on SQLite, from the file beside the database).
    assert Chunk.objects.get(job=job, number=1).attempts == settings.QUERN_MAX_CHUNK_ATTEMPTS + 1


def _hold_a_chunk_transaction(chunk: Chunk):
    """Another connection in the middle of a chunk's write: the job's row and another chunk's
    row written, not committed (on SQLite: the database's one writer held)."""
    other = connections.create_connection("default")
    other.ensure_connection()
    raw = other.connection
    if other.vendor == "sqlite":
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE indexing_job SET updated_at = updated_at WHERE id = ?", [chunk.job_id])
        raw.execute("UPDATE indexing_chunk SET records = records WHERE id = ?", [chunk.pk])
    else:
        raw.execute("BEGIN")
        raw.execute("UPDATE indexing_job SET updated_at = updated_at WHERE id = %s", [chunk.job_id])
        raw.execute("UPDATE indexing_chunk SET records = records WHERE id = %s", [chunk.pk])
    return other


def test_counting_a_chunks_run_does_not_wait_for_another_chunks_open_transaction(
    captured_messages, clean_index
):
    job = pipeline.submit(_csv(20), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    first, second = Chunk.objects.select_related("job").filter(job=job).order_by("number")
    other = _hold_a_chunk_transaction(first)
    counted = []

    def count_in_a_worker() -> None:
        try:
            counted.append(attempts.count(second))
        finally:
            connections.close_all()

    try:
        thread = threading.Thread(target=count_in_a_worker)
        thread.start()
        # Counted at once, while the other transaction is open: before, on SQLite, the count
        # waited for the database's one writer (the other worker's whole chunk).
        thread.join(timeout=10)
        assert not thread.is_alive() and counted == [1]
    finally:
        other.connection.rollback() if other.vendor != "sqlite" else other.connection.execute("ROLLBACK")
        other.close()
        thread.join()


def test_a_done_chunk_keeps_the_count_of_its_runs_in_its_row(captured_messages, clean_index):
    job = pipeline.submit(_csv(10), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    chunk = Chunk.objects.select_related("job").get(job=job, number=0)
    attempts.count(chunk)  # a run that killed its worker before this one
    assert pipeline.index_chunk(job.pk, 0)
    assert Chunk.objects.get(pk=chunk.pk).attempts == 2
    # Beside SQLite's database the count is gone once the row holds it; PostgreSQL's is the row's.
    assert attempts.count(chunk) == (1 if connection.vendor == "sqlite" else 3)


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3",
    reason="PostgreSQL counts in the chunk's row",
)
def test_a_failing_count_beside_the_database_is_retried_not_a_failed_job(
    captured_messages, clean_index, monkeypatch
):
    job = pipeline.submit(_csv(10), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)

    def full(path):
        raise sqlite3.OperationalError("database or disk is full")

    attempts._drop()  # the next count opens the file again, and finds the disk full
    monkeypatch.setattr(attempts, "_open", full)
    # Django's OperationalError, as the main database's would be: the task retries it.
    with pytest.raises(OperationalError, match="disk is full"):
        pipeline.index_chunk(job.pk, 0)
    assert Job.objects.get(pk=job.pk).status == Status.INDEXING
    monkeypatch.undo()
    assert pipeline.index_chunk(job.pk, 0)


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3",
    reason="PostgreSQL counts in the chunk's row, which goes with its job",
)
def test_reconcile_removes_run_counts_nobody_touched_for_a_day(captured_messages, clean_index):
    job = pipeline.submit(_csv(10), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    chunk = Chunk.objects.select_related("job").get(job=job, number=0)
    assert [attempts.count(chunk), attempts.count(chunk)] == [1, 2]
    recovery.reconcile()
    assert attempts.count(chunk) == 3  # touched within the day: kept
    later = timezone.now() + timedelta(seconds=attempts.FORGET_AFTER + 60)
    assert recovery.reconcile(now=later)["attempt_counts_removed"] >= 1  # other tests' may go too
    assert attempts.count(chunk) == 1


@pytest.mark.skipif(
    settings.DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3", reason="SQLite's WAL only"
)
def test_sqlite_copies_its_wal_back_every_20000_pages_not_every_1000():
    # SQLite's default made the chunk whose commit crossed each 4 MB mark copy the WAL back
    # inside the one writer's turn (make bench: sentences.csv 17.44 s -> 15.01 s).
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        assert cursor.fetchone()[0] == 20_000


def test_a_run_that_ends_with_an_exception_does_not_count_as_a_crash(
    captured_messages, clean_index, monkeypatch
):
    job = pipeline.submit(_csv(10), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    real_parse = indexer.parse_chunk
    monkeypatch.setattr(
        indexer, "parse_chunk", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("database blip"))
    )
    for _ in range(settings.QUERN_MAX_CHUNK_ATTEMPTS + 2):
        with pytest.raises(RuntimeError):
            pipeline.index_chunk(job.pk, 0)
    monkeypatch.setattr(indexer, "parse_chunk", real_parse)
    pipeline.index_chunk(job.pk, 0)
    assert Chunk.objects.get(job=job, number=0).done_at is not None


def test_cancel_skips_undone_chunks_purges_the_done_ones_and_keeps_the_previous_version(
    captured_messages, clean_index
):
    first = _run_one_chunk(pipeline.submit(io.BytesIO(b"id,text\n1,old gannet\n"), name="birds.csv"))
    second = pipeline.submit(
        _csv(30), name="birds.csv", replace=first.document_id, options=SubmitOptions(chunk_size=10)
    )
    pipeline.split(second.pk)
    pipeline.index_chunk(second.pk, 0)
    captured_messages.clear()

    cancelled = pipeline.cancel(second.pk)
    assert cancelled.status == Status.CANCELLED and cancelled.finished_at is not None
    assert captured_messages == [("quern.purge_job", [second.pk])]
    pipeline.index_chunk(second.pk, 1)  # a message still queued: skipped
    assert Chunk.objects.get(job=second, number=1).done_at is None
    pipeline.purge_job(second.pk)
    assert Record.objects.filter(job=second).count() == 0
    assert _search_total("gannet") == 1  # the previous version, still live
    second.document.refresh_from_db()
    assert second.document.live_job_id == first.pk
    assert pipeline.cancel(second.pk).status == Status.CANCELLED  # twice: the same state


def test_what_a_chunk_writes_with_its_done_mark_commits_with_it_or_not_at_all(captured_messages, clean_index):
    job = pipeline.submit(_csv(20), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)

    def fails_at_the_end():
        Record.objects.filter(job=job).update(title="changed in the same transaction")
        raise RuntimeError("the task result could not be written")

    with pytest.raises(RuntimeError):
        pipeline.index_chunk(job.pk, 0, with_done=fails_at_the_end)
    assert Record.objects.filter(job=job).count() == 0
    assert Chunk.objects.get(job=job, number=0).done_at is None
    written = []
    assert pipeline.index_chunk(job.pk, 0, with_done=lambda: written.append(True)) is False
    assert written == [True]
    assert Chunk.objects.get(job=job, number=0).done_at is not None


def test_a_chunk_running_when_its_job_is_cancelled_writes_nothing(
    captured_messages, clean_index, monkeypatch
):
    job = pipeline.submit(_csv(20), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(job.pk)
    backend = get_backend()
    real_index = type(backend).index_many

    def cancelled_meanwhile(self, rows):
        lengths = real_index(self, rows)
        # The cancel commits between this chunk's writes and its check of the job's status.
        Job.objects.filter(pk=job.pk).update(status=Status.CANCELLED)
        return lengths

    monkeypatch.setattr(type(backend), "index_many", cancelled_meanwhile)
    pipeline.index_chunk(job.pk, 0)
    assert Record.objects.filter(job=job).count() == 0
    assert Chunk.objects.get(job=job, number=0).done_at is None


def test_cancel_refuses_a_finished_job_and_retry_refuses_an_unfinished_one(captured_messages, clean_index):
    from indexing.errors import QuernError

    done = _run_one_chunk(pipeline.submit(io.BytesIO(b"a gannet\n"), name="a.txt"))
    with pytest.raises(QuernError) as error:
        pipeline.cancel(done.pk)
    assert (error.value.code, error.value.status) == ("not_cancellable", 409)
    with pytest.raises(QuernError) as error:
        pipeline.retry(done.pk)
    assert (error.value.code, error.value.status) == ("not_retryable", 409)


def test_retry_of_a_cancelled_job_is_a_new_job_over_the_same_input(captured_messages, clean_index):
    job = pipeline.submit(_csv(20), name="birds.csv", options=SubmitOptions(chunk_size=10))
    pipeline.cancel(job.pk)
    captured_messages.clear()
    again = pipeline.retry(job.pk)
    assert (again.document_id, again.sha256, again.chunk_size, again.retry_of_id) == (
        job.document_id,
        job.sha256,
        10,
        job.pk,
    )
    # Small, the retry waits for its lane's batch trigger: the cancelled job's split message, still
    # on its way (a big retry sends its own). Delivered, that message takes the retry.
    assert captured_messages == []
    assert pipeline.take_batch(job.pk) == [again.pk]
    pipeline.split(again.pk)
    for number in range(2):
        pipeline.index_chunk(again.pk, number)
    pipeline.finalize(again.pk)
    again.refresh_from_db()
    assert again.status == Status.SUCCEEDED
    assert _search_total("gannet") == 20


def test_waiting_work_counts_unsplit_jobs_and_undone_chunks(captured_messages, clean_index):
    from indexing.pipeline import backpressure

    queued = pipeline.submit(_csv(5), name="a.csv")
    indexing_job = pipeline.submit(_csv(30), name="b.csv", options=SubmitOptions(chunk_size=10))
    pipeline.split(indexing_job.pk)
    pipeline.index_chunk(indexing_job.pk, 0)
    assert backpressure.waiting_work() == backpressure.Waiting(jobs=1, chunks=2)
    assert backpressure.over_limit(3) and not backpressure.over_limit(4)
    pipeline.cancel(queued.pk)
    assert backpressure.waiting_work().total == 2


def test_a_full_rabbitmq_queue_refuses_publishes_under_the_policy_and_confirms_report_it():
    """The broker's safety net, on RabbitMQ only: a policy on an existing argument-less queue."""
    import shutil
    import subprocess

    from amqp.exceptions import MessageNacked
    from kombu import Connection, Exchange, Producer, Queue

    from indexing.broker.policy import broker_vhost, policy_command

    if not broker.is_rabbitmq() or not shutil.which("rabbitmqctl"):
        pytest.skip("RabbitMQ (with rabbitmqctl on this host) only")
    name = "quern-test-safety-net"
    command = policy_command(queues=[name], max_length=3, name=name)
    assert command[3] == broker_vhost() and command[-1] == '{"max-length": 3, "overflow": "reject-publish"}'
    with Connection(settings.CELERY_BROKER_URL, transport_options={"confirm_publish": True}) as connection:
        queue = Queue(name, Exchange(name, type="direct"), routing_key=name, durable=False, auto_delete=False)
        queue(connection.default_channel).declare()  # no arguments, like ingest and index
        queue(connection.default_channel).purge()
        subprocess.run(command, check=True, capture_output=True, timeout=60)
        listing = ["rabbitmqctl", "list_queues", "-q", "-p", broker_vhost(), "name", "policy"]
        wait_for(
            lambda: (
                f"{name}\t{name}"
                in subprocess.run(listing, capture_output=True, text=True, timeout=60).stdout
            ),
            timeout=20,
            interval=0.2,
            message="the policy to apply",
        )
        try:
            producer = Producer(connection.default_channel, exchange=queue.exchange, routing_key=name)
            for n in range(3):
                producer.publish({"n": n}, retry=False)
            with pytest.raises(MessageNacked):
                producer.publish({"n": 3}, retry=False)
        finally:
            subprocess.run(
                ["rabbitmqctl", "clear_policy", "-p", broker_vhost(), name], capture_output=True, timeout=60
            )
            queue(connection.channel()).delete()


def test_a_job_moves_only_along_its_state_machine(captured_messages, clean_index):
    job = pipeline.submit(io.BytesIO(b"a grey heron\n"), name="heron.txt")
    with pytest.raises(jobs.IllegalMove), jobs.locked(job.pk) as queued:
        jobs.move(queued, Status.SUCCEEDED)  # nothing succeeds without being split and indexed
    pipeline.cancel(job.pk)
    with pytest.raises(jobs.IllegalMove), jobs.locked(job.pk) as cancelled:
        jobs.move(cancelled, Status.SPLITTING)  # an ended job stays ended
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.finished_at is not None
    assert captured_messages == [("quern.split", [job.pk]), ("quern.purge_job", [job.pk])]
