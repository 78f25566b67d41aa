"""A failed or cancelled job's stored input is kept for a retry, then removed by reconcile; one
that anything else still reads is kept."""

from __future__ import annotations

import io
import os
import uuid
from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from indexing import blobs, pipeline
from indexing.models import Document, Job, Status, StoredBytes
from indexing.pipeline import finish, recovery

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True, params=["row", "file"])
def kept_as(request, settings):
    """Each test twice: the small input kept as a database row (indexing.blobs), and as a file."""
    if request.param == "file":
        settings.QUERN_INLINE_MAX_BYTES = 0
    return request.param


def _stored_at(name: str, then) -> None:
    """The input was (last) stored at `then`."""
    if blobs.is_inline(name):
        StoredBytes.objects.filter(name=name).update(stored_at=then)
    else:
        os.utime(default_storage.path(name), (then.timestamp(), then.timestamp()))


def _bytes() -> bytes:
    return f"id,text\n1,a godwit {uuid.uuid4().hex}\n".encode()


def _failed(data: bytes, name: str = "godwits.csv", *, ended_ago: timedelta = timedelta(days=2)) -> Job:
    job = pipeline.submit(io.BytesIO(data), name=name)
    finish.fail(job.pk, {"code": "bad", "message": "it was bad"})
    then = timezone.now() - ended_ago
    Job.objects.filter(pk=job.pk).update(finished_at=then)
    _stored_at(job.file.name, then)
    return Job.objects.get(pk=job.pk)


def test_a_failed_jobs_input_is_removed_after_the_keep_time_and_a_retry_then_says_so(
    client, captured_messages
):
    job = _failed(_bytes())
    name = job.file.name
    assert default_storage.exists(name)
    assert recovery.reconcile()["inputs_removed"] == 1
    assert not default_storage.exists(name)
    assert (
        Job.objects.get(pk=job.pk).file.name == ""
        and Document.objects.get(pk=job.document_id).file.name == ""
    )
    response = client.post(f"/api/jobs/{job.pk}/retry")
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "input_removed" and "Submit the document again" in error["message"]
    assert client.post(f"/api/documents/{job.document_id}/reindex").status_code == 410
    assert Job.objects.count() == 1  # nothing was queued


def test_an_input_failed_only_recently_is_kept_for_a_retry(client, captured_messages):
    job = _failed(_bytes(), ended_ago=timedelta(hours=1))
    assert recovery.reconcile()["inputs_removed"] == 0
    assert default_storage.exists(job.file.name)
    assert client.post(f"/api/jobs/{job.pk}/retry").status_code == 202


def test_an_input_that_another_job_still_reads_is_kept(captured_messages):
    data = _bytes()
    failed = _failed(data)
    waiting = pipeline.submit(io.BytesIO(data), name="again.csv")  # the same bytes, queued
    assert waiting.file.name == failed.file.name
    assert recovery.reconcile()["inputs_removed"] == 0
    assert default_storage.exists(failed.file.name)
    assert Job.objects.get(pk=waiting.pk).file.name == failed.file.name


def test_an_input_a_live_version_keeps_for_reindexing_is_kept(captured_messages):
    data = _bytes()
    failed = _failed(data)
    other = pipeline.submit(io.BytesIO(data), name="live.csv")
    Job.objects.filter(pk=other.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    Document.objects.filter(pk=other.document_id).update(live_job=other.pk)
    assert recovery.reconcile()["inputs_removed"] == 0
    assert default_storage.exists(failed.file.name)


def test_an_input_stored_again_lately_is_kept_for_the_job_that_may_read_it(captured_messages):
    from indexing.pipeline import storage

    data = _bytes()
    failed = _failed(data)
    storage.store_stream(io.BytesIO(data))  # the same bytes again: a job for them may not be committed yet
    assert recovery.reconcile()["inputs_removed"] == 0
    assert default_storage.exists(failed.file.name)


def test_inputs_still_needed_do_not_crowd_out_the_stale_ones(captured_messages, monkeypatch):
    monkeypatch.setattr(recovery, "STALE_INPUTS_PER_RUN", 1)
    kept = _bytes()
    _failed(kept)  # its bytes are also a live version's: kept, run after run
    other = pipeline.submit(io.BytesIO(kept), name="live.csv")
    Job.objects.filter(pk=other.pk).update(status=Status.SUCCEEDED, finished_at=timezone.now())
    Document.objects.filter(pk=other.document_id).update(live_job=other.pk)
    stale = _failed(_bytes(), name="later.csv")
    assert recovery.reconcile()["inputs_removed"] == 1
    assert not default_storage.exists(stale.file.name) and default_storage.exists(other.file.name)
