"""Backfills: re-index stored documents in windows, resumable, with search answering throughout."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from indexing import pipeline
from indexing.models import Backfill, BackfillStatus, Document, Job, Record, Source, Status
from indexing.pipeline import backfills, backpressure, dispatch
from indexing.schemas import SubmitOptions
from indexing.search import search
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _indexed_document(name: str, text: str, *, fmt: str | None = None) -> Document:
    """A document indexed in-process (split, chunk, finalize) without the broker."""
    job = pipeline.submit(io.BytesIO(text.encode()), name=name, options=SubmitOptions(format=fmt))
    pipeline.split(job.pk)
    pipeline.index_chunk(job.pk, 0)
    pipeline.finalize(job.pk)
    pipeline.take_batch(job.pk)  # its split message, as the worker takes it: the lane's count resets
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.errors
    return job.document


def _documents(count: int, monkeypatch) -> list[Document]:
    monkeypatch.setattr(dispatch, "send_now", lambda messages, **options: None)  # no broker while setting up
    documents = [_indexed_document(f"d{n}.txt", f"a grey heron number {n}\n") for n in range(count)]
    monkeypatch.undo()
    return documents


def _total(q: str) -> int:
    return search(q, limit=1).page.total


def test_reindex_all_replaces_every_version_within_the_window_and_search_never_misses(
    pipeline, monkeypatch, settings
):
    # The 10,000 documents scaled to 120 (CI time), fed in windows of 15: same shape.
    _documents(120, monkeypatch)
    before = {d.pk: d.live_job_id for d in Document.objects.all()}
    settings.QUERN_BACKFILL_WINDOW = 15
    run = backfills.start({"all": True})
    assert run.total == 120 and run.submitted == 15
    polls, most_waiting = 0, 0

    def step():
        nonlocal polls, most_waiting
        backfills.feed()
        most_waiting = max(most_waiting, backpressure.waiting_work().total)
        assert _total("heron") == 120  # every document answers throughout, exactly once
        polls += 1
        run.refresh_from_db()
        return run.status == BackfillStatus.DONE

    wait_for(step, timeout=240, interval=0.02, message="the backfill to finish")
    assert polls > 5
    assert most_waiting <= 15
    assert backfills.progress(run) | {"created_at": None, "finished_at": None} == {
        "id": run.pk,
        "status": "done",
        "filters": {"all": True},
        "total": 120,
        "submitted": 120,
        "succeeded": 120,
        "failed": 0,
        "cancelled": 0,
        "active": 0,
        "percent": 100,
        "created_at": None,
        "finished_at": None,
    }
    for document in Document.objects.all():
        assert document.live_job_id != before[document.pk]
        assert document.live_job.source == Source.BACKFILL and document.live_job.backfill_id == run.pk
    assert Job.objects.filter(backfill=run).count() == 120  # one job per document, none twice
    # The retired versions' purges run after their swaps: let the worker finish them, so the
    # test's teardown (TRUNCATE) does not meet a purge mid-way (PostgreSQL calls that a deadlock).
    wait_for(lambda: Record.objects.count() == 120, timeout=60, message="the retired versions' purges")


def test_reindex_command_follows_a_backfill_to_the_end(pipeline, monkeypatch, capsys):
    documents = _documents(3, monkeypatch)
    call_command(
        "reindex",
        "--document",
        str(documents[0].pk),
        str(documents[2].pk),
        "--timeout",
        "90",
        "--interval",
        "0.1",
    )
    out = capsys.readouterr().out
    assert "2 document(s) to re-index" in out
    assert "done: 2/2 started, 2 succeeded, 0 failed" in out


def test_a_backfill_resumes_after_a_restart_from_its_cursor(captured_messages, clean_index, settings):
    documents = [_indexed_document(f"d{n}.txt", f"an egret {n}\n") for n in range(12)]
    settings.QUERN_BACKFILL_WINDOW = 5
    run = backfills.start({"all": True})
    assert backfills.feed() == 0  # the window is full: nothing more until work drains
    run = Backfill.objects.get(pk=run.pk)  # "restart": only the database remembers
    assert (run.submitted, run.cursor) == (5, documents[4].pk)
    while run.status != BackfillStatus.DONE:
        for job in Job.objects.filter(backfill=run, status=Status.QUEUED):
            pipeline.split(job.pk)
            pipeline.index_chunk(job.pk, 0)
            pipeline.finalize(job.pk)
        backfills.feed()
        run.refresh_from_db()
    assert sorted(Job.objects.filter(backfill=run).values_list("document_id", flat=True)) == [
        d.pk for d in documents
    ]
    assert _total("egret") == 12


def test_backfill_filters_choose_documents_by_id_date_format_and_failure(captured_messages, clean_index):
    text = _indexed_document("a.txt", "one kestrel\n")
    markdown = _indexed_document("b.md", "# Kestrel\n\nhovering\n")
    broken = pipeline.submit(
        io.BytesIO(b"\x00\x01\x02binary"), name="c.txt", options=SubmitOptions(format="text")
    )
    pipeline.split(broken.pk)
    assert Job.objects.get(pk=broken.pk).status == Status.FAILED

    def ids(**filters):
        return list(backfills.matching_documents(filters).values_list("pk", flat=True))

    assert ids(all=True) == [text.pk, markdown.pk, broken.document_id]
    assert ids(ids=[markdown.pk]) == [markdown.pk]
    assert ids(format="markdown") == [markdown.pk]
    assert ids(failed=True) == [broken.document_id]
    assert ids(since="2999-01-01") == []
    assert len(ids(since=text.created_at.date().isoformat())) == 3
    from indexing.errors import QuernError

    with pytest.raises(QuernError):
        backfills.start({})
    with pytest.raises(QuernError):
        backfills.start({"since": "last tuesday"})


def test_a_new_document_is_searchable_within_seconds_while_a_backfill_runs(
    client, pipeline, monkeypatch, settings
):
    # The sentences.csv-sized backfill scaled to 20 documents x 4,000 records in chunks of
    # 200 (400 chunk messages queued at once); 20 one-record documents must each be searchable
    # in under 5 s (p95), long before the backfill is done: it has a queue of its own.
    import statistics
    import time

    monkeypatch.setattr(dispatch, "send_now", lambda messages, **options: None)
    rows = "".join(f"{n},stored sentence {n} about a bittern\n" for n in range(4000))
    for n in range(20):
        _indexed_document(f"big{n}.csv", "id,text\n" + rows, fmt="csv")
    monkeypatch.undo()
    settings.QUERN_BACKFILL_WINDOW = 10_000
    run = backfills.start({"all": True}, chunk_size=200)
    assert run.submitted == 20

    latencies = []
    for n in range(20):
        started = time.monotonic()
        response = client.post(
            "/api/documents",
            data={"name": f"new{n}.txt", "content": f"fresh word quillwort{n}\n"},
            content_type="application/json",
        )
        assert response.status_code == 202
        wait_for(
            lambda n=n: _total(f"quillwort{n}") == 1,
            timeout=30,
            interval=0.02,
            message=f"new document {n} searchable",
        )
        latencies.append(time.monotonic() - started)
    p95 = statistics.quantiles(latencies, n=20)[-1]
    progress = backfills.progress(Backfill.objects.get(pk=run.pk))
    print(
        f"\none-record documents during a backfill: p50 {statistics.median(latencies):.2f} s, "
        f"p95 {p95:.2f} s, max {max(latencies):.2f} s; backfill then {progress['succeeded']}/20 jobs done"
    )
    assert p95 < 5
    assert progress["succeeded"] < 20  # they did not wait for the backfill
    wait_for(
        lambda: backfills.feed() >= 0 and Backfill.objects.get(pk=run.pk).status == BackfillStatus.DONE,
        timeout=240,
        interval=0.2,
        message="the backfill to finish",
    )
    assert _total("bittern") == 20 * 4000


def test_admin_shows_backfill_progress_and_its_actions_start_and_cancel(
    admin_client, captured_messages, clean_index
):
    documents = [_indexed_document(f"d{n}.txt", f"a bittern {n}\n") for n in range(3)]
    response = admin_client.post(
        "/admin/indexing/document/",
        {"action": "backfill", "_selected_action": [d.pk for d in documents]},
        follow=True,
    )
    assert response.status_code == 200 and b"Started" in response.content
    run = Backfill.objects.get()
    assert run.total == 3 and Job.objects.filter(backfill=run, status=Status.QUEUED).count() == 3
    listing = admin_client.get("/admin/indexing/backfill/")
    assert listing.status_code == 200 and b"<progress" in listing.content
    assert admin_client.get(f"/admin/indexing/backfill/{run.pk}/change/").status_code == 200

    job = Job.objects.filter(backfill=run).first()
    admin_client.post("/admin/indexing/job/", {"action": "cancel", "_selected_action": [job.pk]}, follow=True)
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    admin_client.post("/admin/indexing/job/", {"action": "retry", "_selected_action": [job.pk]}, follow=True)
    assert Job.objects.filter(retry_of=job).count() == 1
    admin_client.post(
        "/admin/indexing/backfill/", {"action": "cancel", "_selected_action": [run.pk]}, follow=True
    )
    run.refresh_from_db()
    assert run.status == BackfillStatus.CANCELLED
    assert not Job.objects.filter(
        backfill=run, status__in=(Status.QUEUED, Status.SPLITTING, Status.INDEXING)
    ).exists()
