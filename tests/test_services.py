"""The services step by step, in-process: each runs twice and leaves the state of one run."""
from __future__ import annotations

import io
import os

import pytest
from django.conf import settings
from django.db import connection

from indexing import services
from indexing.models import Chunk, Job, Record, Status
from indexing.query import parse_query
from indexing.search import get_backend

pytestmark = pytest.mark.django_db(transaction=True)


def _csv(rows: int) -> io.BytesIO:
    data = "id,text\n" + "".join(f"{n},gannet number {n}\n" for n in range(rows))
    return io.BytesIO(data.encode())


def _search_total(q: str) -> int:
    return get_backend().search(parse_query(q), limit=10, offset=0).total


def _fts_rows(job: Job) -> int:
    if connection.vendor != "sqlite":
        return Record.objects.filter(job=job, search__isnull=False).count()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM indexing_record_fts WHERE rowid IN (SELECT id FROM indexing_record WHERE job_id = %s)",
            [job.pk],
        )
        return cursor.fetchone()[0]


def _run_one_chunk(job: Job) -> Job:
    """split, index_chunk 0 and finalize in-process, as the worker would run them."""
    services.split(job.pk)
    services.index_chunk(job.pk, 0)
    services.finalize(job.pk)
    job.refresh_from_db()
    return job


def test_index_chunk_twice_leaves_one_copy_and_search_waits_for_finalize(captured_messages, clean_index):
    job = services.submit(_csv(25), name="birds.csv", chunk_size=10)
    services.split(job.pk)
    services.split(job.pk)  # a redelivered split changes nothing once chunks exist
    assert Chunk.objects.filter(job=job).count() == 3

    # index_chunk says when the job is complete (the task then finalizes in the same worker);
    # a redelivery of a done chunk says so again, so a finalize lost to a crash still runs.
    complete = [services.index_chunk(job.pk, number) for number in (0, 0, 1, 2, 1)]
    assert complete == [False, False, False, True, True]
    job.refresh_from_db()
    assert (job.records_indexed, job.chunks_done, job.status) == (25, 3, Status.INDEXING)
    assert Record.objects.filter(job=job).count() == 25
    assert _fts_rows(job) == 25
    assert _search_total("gannet") == 0  # indexing: none of its records are searchable yet
    assert not [m for m in captured_messages if m[0] == "quern.finalize"]  # no hop through the broker

    services.finalize(job.pk)
    services.finalize(job.pk)
    assert services.index_chunk(job.pk, 2) is False  # after the job finished
    job.refresh_from_db()
    assert (job.status, job.records_indexed, job.chunks_done) == (Status.SUCCEEDED, 25, 3)
    assert Record.objects.filter(job=job).count() == 25
    assert _fts_rows(job) == 25
    assert _search_total("gannet") == 25


def test_a_one_chunk_document_is_indexed_by_the_split_task_without_a_broker_hop(captured_messages, clean_index):
    job = services.submit(_csv(5), name="birds.csv", chunk_size=10)
    assert services.split(job.pk) == [0]
    assert captured_messages == [("quern.split", [job.pk])]  # no index_chunk: the split task indexes it
    assert services.split(job.pk) == [0]  # a redelivered split still hands the chunk back
    assert services.index_chunk(job.pk, 0) is True
    services.finalize(job.pk)
    assert services.split(job.pk) == []
    assert _search_total("gannet") == 5


def test_a_chunk_interrupted_before_commit_is_rewritten_cleanly(captured_messages, clean_index, monkeypatch):
    job = services.submit(_csv(10), name="birds.csv", chunk_size=10)
    services.split(job.pk)
    backend = get_backend()
    real_index = type(backend).index_records

    def crash_after_writing(self, **kwargs):
        real_index(self, **kwargs)
        raise RuntimeError("worker died mid-chunk")

    monkeypatch.setattr(type(backend), "index_records", crash_after_writing)
    with pytest.raises(RuntimeError):
        services.index_chunk(job.pk, 0)
    monkeypatch.setattr(type(backend), "index_records", real_index)
    assert Record.objects.filter(job=job).count() == 0  # rolled back with its transaction
    services.index_chunk(job.pk, 0)
    services.finalize(job.pk)
    assert Record.objects.filter(job=job).count() == 10
    assert _search_total("gannet") == 10


def test_a_failed_job_keeps_the_previous_version_live(captured_messages, clean_index):
    first = services.submit(io.BytesIO(b"penguins waddle\n"), name="notes.txt")
    services.split(first.pk)
    services.index_chunk(first.pk, 0)
    services.finalize(first.pk)
    second = services.submit(io.BytesIO(b"\x00\x01binary\x00"), name="notes.txt", format="text", replace=first.document_id)
    services.split(second.pk)
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
    assert settings.CELERY_BROKER_URL.startswith("amqp://")


def test_nul_characters_and_very_long_keys_are_indexed_on_every_database(captured_messages, clean_index):
    line = '{"id": "' + "k" * 400 + '", "text": "puffin\\u0000 colony", "meta": {"note": "a\\u0000b"}}\n'
    job = _run_one_chunk(services.submit(io.BytesIO(line.encode()), name="odd.jsonl"))
    assert job.status == Status.SUCCEEDED, job.errors
    assert Record.objects.get(job=job).key == "k" * 400
    assert _search_total("puffin") == 1


def test_a_declared_cp1252_csv_is_transcoded_and_found(captured_messages, clean_index):
    data = "id,text\n1,caf\u00e9 cr\u00e8me on the terrace\n".encode("cp1252")
    job = services.submit(io.BytesIO(data), name="menu.csv", encoding="cp1252")
    services.split(job.pk)  # a second delivery of the split leaves the first run's copy alone
    job = _run_one_chunk(job)
    assert job.status == Status.SUCCEEDED, job.errors
    assert Record.objects.get(job=job).body.startswith("caf\u00e9 cr\u00e8me")
    assert _search_total("terrace") == 1


def test_reconcile_resends_undone_chunks_then_the_missing_finalize(captured_messages, clean_index):
    from datetime import timedelta

    from django.utils import timezone

    job = services.submit(_csv(20), name="birds.csv", chunk_size=10)
    services.split(job.pk)
    services.index_chunk(job.pk, 0)
    captured_messages.clear()
    later = timezone.now() + timedelta(hours=1)
    assert services.reconcile(now=later)["index_chunk"] == 1
    assert captured_messages == [("quern.index_chunk", [job.pk, 1])]

    services.index_chunk(job.pk, 1)  # the worker dies before it can run finalize
    captured_messages.clear()
    assert services.reconcile(now=later + timedelta(hours=1))["finalize"] == 1
    assert captured_messages == [("quern.finalize", [job.pk])]
