"""A full document storage during an upload: a clear 507, nothing half stored, and the same
upload goes through once there is room (the worker indexes it whole)."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import uuid
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.core.files.uploadedfile import SimpleUploadedFile

from indexing.models import Document, Job, Record
from indexing.pipeline import storage
from tests.conftest import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def documents_as_files(settings):
    """These are about the disk: every document here is a file of its own, however small (a small
    one is otherwise a database row: tests/test_stored_bytes.py)."""
    settings.QUERN_INLINE_MAX_BYTES = 0


def herons_csv() -> bytes:
    """200 records, unlike any file an earlier test left in the shared media folder."""
    marker = uuid.uuid4().hex.encode()
    return b"id,text\n" + b"".join(b"%d,a heron %s stood in the reeds\n" % (n, marker) for n in range(1, 201))


def content_name(data: bytes) -> str:
    sha256 = hashlib.sha256(data).hexdigest()
    return f"documents/{sha256[:2]}/{sha256}"


@pytest.fixture
def full_storage(monkeypatch):
    """The media disk fills up mid-write, as a real one does: part of the file is written, then
    ENOSPC. `room["left"] = True` frees space again."""
    room = {"left": False}
    real_save = FileSystemStorage._save

    def save(self, name, content):
        if room["left"]:
            return real_save(self, name, content)
        half = content.read()[: content.size // 2]
        real_save(self, name, ContentFile(half))
        raise OSError(errno.ENOSPC, "No space left on device")

    def write_part(path, data):  # a document read whole in one block is written by storage itself
        if room["left"]:
            return real_write_part(path, data)
        real_write_part(path, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    real_write_part = storage._write_part
    monkeypatch.setattr(FileSystemStorage, "_save", save)
    monkeypatch.setattr(storage, "_write_part", write_part)
    return room


def _upload(client, data: bytes, name: str = "herons.csv"):
    return client.post("/api/documents", {"file": SimpleUploadedFile(name, data)})


def _nothing_stored(data: bytes) -> bool:
    from django.conf import settings

    parts = [p for p in Path(settings.MEDIA_ROOT).rglob("*.part-*")]
    return (
        not parts
        and not Document.objects.exists()
        and not Job.objects.exists()
        and not default_storage.exists(content_name(data))
    )


def test_an_upload_into_a_full_storage_is_refused_with_507_and_nothing_half_stored_then_goes_through(
    client, pipeline, full_storage
):
    csv = herons_csv()
    response = _upload(client, csv)
    assert response.status_code == 507
    error = response.json()["error"]
    assert error["code"] == "storage_full" and "storage is full" in error["message"]
    assert _nothing_stored(csv)  # neither rows nor the torn half of the file

    full_storage["left"] = True
    response = _upload(client, csv)
    assert response.status_code == 202, response.content
    job = wait_for_job(response.json()["id"])
    assert job.status == "succeeded", job.errors
    assert Record.objects.filter(document_id=job.document_id).count() == 200


def test_a_json_lines_body_into_a_full_storage_stores_none_of_its_documents(
    client, captured_messages, full_storage
):
    lines = [{"name": f"note-{n}.txt", "content": f"note {n}\n"} for n in range(3)]
    body = "\n".join(json.dumps(line) for line in lines).encode()
    response = client.post("/api/documents", body, content_type="application/x-ndjson")
    assert response.status_code == 507 and response.json()["error"]["code"] == "storage_full"
    assert not Document.objects.exists() and not Job.objects.exists()


def test_the_upload_page_says_the_storage_is_full_and_keeps_nothing(client, captured_messages, full_storage):
    csv = herons_csv()
    response = client.post("/", {"file": SimpleUploadedFile("herons.csv", csv)})
    assert response.status_code == 507
    assert "storage is full" in response.content.decode()
    assert _nothing_stored(csv)


def test_a_file_torn_by_an_earlier_crash_is_replaced_not_taken_for_the_document(client, pipeline):
    csv = herons_csv()
    default_storage.save(content_name(csv), ContentFile(csv[: len(csv) // 3]))  # a crash mid-write
    response = _upload(client, csv)
    assert response.status_code == 202, response.content
    assert default_storage.size(content_name(csv)) == len(csv)
    job = wait_for_job(response.json()["id"])
    assert job.status == "succeeded", job.errors
    assert Record.objects.filter(document_id=job.document_id).count() == 200


class _Trickle(io.BytesIO):
    """A stream that answers each read with at most 1,000 bytes, as a socket may."""

    def read(self, size=-1):
        return super().read(1000 if size is None or size < 0 else min(size, 1000))


@pytest.mark.parametrize(
    "size",
    [1, 1000, storage.COPY_BLOCK - 1, storage.COPY_BLOCK, storage.COPY_BLOCK + 1, 3 * storage.COPY_BLOCK],
)
@pytest.mark.parametrize("stream", [io.BytesIO, _Trickle])
def test_a_document_read_whole_or_spooled_is_stored_the_same_under_its_sha256(size, stream):
    data = uuid.uuid4().bytes * (size // 16 + 1)
    data = data[:size]
    stored = storage.store_stream(stream(data))
    assert stored.name == content_name(data)
    assert (stored.size, stored.sha256, stored.head) == (
        len(data),
        hashlib.sha256(data).hexdigest(),
        data[: storage.HEAD_BYTES],
    )
    with default_storage.open(stored.name, "rb") as file:
        assert file.read() == data
    assert storage.store_stream(stream(data)) == stored  # stored once: the second finds it whole


def test_a_big_upload_into_a_full_storage_leaves_no_part_and_is_refused(client, full_storage):
    from django.conf import settings

    big = herons_csv() * (2 * storage.COPY_BLOCK // len(herons_csv()) + 1)  # spooled, not read whole
    response = _upload(client, big)
    assert response.status_code == 507, response.content
    assert not list(Path(settings.MEDIA_ROOT).rglob("*.part-*"))
    assert not default_storage.exists(content_name(big))
