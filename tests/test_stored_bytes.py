"""Small documents' bytes kept in the database (indexing.blobs): stored, read, dated and removed
through the storage by name, as a file is; bigger ones stay files."""

from __future__ import annotations

import hashlib
import io
import uuid

import pytest
from django.core.files.storage import default_storage
from django.db import transaction

from indexing import blobs, pipeline
from indexing.errors import QuernError
from indexing.models import Job, StoredBytes
from indexing.pipeline import storage

pytestmark = pytest.mark.django_db(transaction=True)


def _csv(size: int) -> bytes:
    head = f"id,text\n1,a plover {uuid.uuid4().hex}".encode()
    return head + b"x" * (size - len(head) - 1) + b"\n"


def test_a_small_document_is_a_row_and_reads_back_through_the_storage_as_a_file_does(settings):
    data = _csv(settings.QUERN_INLINE_MAX_BYTES)
    stored = storage.store_stream(io.BytesIO(data))
    sha256 = hashlib.sha256(data).hexdigest()
    assert stored.name == blobs.inline_name(sha256)
    assert not (settings.MEDIA_ROOT / "documents" / sha256[:2] / sha256).exists()  # no file of its own
    assert StoredBytes.objects.filter(name=stored.name).count() == 1
    with default_storage.open(stored.name, "rb") as file:
        assert file.read() == data
    assert default_storage.exists(stored.name) and default_storage.size(stored.name) == len(data)
    first = default_storage.get_modified_time(stored.name)
    assert storage.store_stream(io.BytesIO(data)) == stored  # the same bytes again: one row, touched
    assert StoredBytes.objects.filter(name=stored.name).count() == 1
    assert default_storage.get_modified_time(stored.name) >= first
    storage.delete(stored.name)
    assert not default_storage.exists(stored.name)
    with pytest.raises(FileNotFoundError):
        default_storage.open(stored.name, "rb")


def test_a_document_one_byte_over_the_limit_is_a_file(settings):
    data = _csv(settings.QUERN_INLINE_MAX_BYTES + 1)
    stored = storage.store_stream(io.BytesIO(data))
    assert stored.name.startswith("documents/") and not StoredBytes.objects.filter(name=stored.name).exists()
    with default_storage.open(stored.name, "rb") as file:
        assert file.read() == data


def test_a_submission_rolled_back_leaves_no_stored_bytes(captured_messages):
    data = _csv(200)

    def submit_then_fail() -> Job:
        with transaction.atomic():
            submitted.append(pipeline.submit(io.BytesIO(data), name="plovers.csv"))
            raise RuntimeError("the request failed after storing")

    submitted: list[Job] = []
    with pytest.raises(RuntimeError):
        submit_then_fail()
    [job] = submitted
    assert not Job.objects.filter(pk=job.pk).exists()
    assert not StoredBytes.objects.filter(name=job.file.name).exists()


def test_a_submission_refused_after_its_bytes_were_read_stores_none_of_them(captured_messages):
    # A new version of a document that is not there: refused inside the job's transaction, which
    # held the bytes' row too (before, the row was written, and committed, ahead of it).
    data = _csv(200)
    with pytest.raises(QuernError) as refused:
        pipeline.submit(io.BytesIO(data), name="plovers.csv", replace=987654)
    assert refused.value.code == "no_such_document"
    assert not StoredBytes.objects.filter(name=blobs.inline_name(hashlib.sha256(data).hexdigest())).exists()


def test_small_documents_kept_as_rows_are_indexed_by_a_real_worker(worker, clean_index):
    from tests.conftest import wait_for_job

    jobs = [pipeline.submit(io.BytesIO(_csv(300)), name=f"plover-{n}.csv") for n in range(5)]
    assert all(blobs.is_inline(job.file.name) for job in jobs)
    ended = [wait_for_job(job.pk) for job in jobs]
    assert [job.status for job in ended] == ["succeeded"] * 5
    assert [job.records_indexed for job in ended] == [1] * 5


def test_a_bulk_submission_writes_its_small_documents_bytes_once_each_even_twice_in_one_batch(
    captured_messages,
):
    same, other = _csv(120), _csv(130)
    jobs = pipeline.submit_many(
        [pipeline.Incoming(io.BytesIO(data), f"dunlin-{n}.csv") for n, data in enumerate([same, other, same])]
    )
    assert [job.file.name for job in jobs] == [
        blobs.inline_name(hashlib.sha256(d).hexdigest()) for d in (same, other, same)
    ]
    assert StoredBytes.objects.filter(name__in=[job.file.name for job in jobs]).count() == 2
    with default_storage.open(jobs[2].file.name, "rb") as file:
        assert file.read() == same


def test_a_row_stored_again_while_reconcile_removes_it_is_kept(captured_messages, monkeypatch):
    """Reconcile read the row's old date; a submission of the same bytes touched it since (and may
    not have committed yet): the removal checks the date again, and keeps the bytes."""
    from datetime import timedelta

    from django.utils import timezone

    from indexing.pipeline import finish, recovery

    data = _csv(150)
    failed = pipeline.submit(io.BytesIO(data), name="knot.csv")
    finish.fail(failed.pk, {"code": "bad", "message": "it was bad"})
    then = timezone.now() - timedelta(days=2)
    Job.objects.filter(pk=failed.pk).update(finished_at=then)
    StoredBytes.objects.filter(name=failed.file.name).update(stored_at=then)
    monkeypatch.setattr(recovery, "_touched_since", lambda name, moment: False)  # read before the touch
    storage.store_stream(io.BytesIO(data))  # the same bytes again, after that read
    assert recovery.reconcile()["inputs_removed"] == 1  # the failed job lets go of them…
    assert Job.objects.get(pk=failed.pk).file.name == ""
    assert StoredBytes.objects.filter(name=failed.file.name).exists()  # …but the bytes stay
