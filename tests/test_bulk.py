"""Many documents in one submission: JSON Lines bodies, archives (and their bombs), gzip files."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import override_settings

from indexing import pipeline
from indexing.models import Document, Job
from indexing.pipeline import batching
from indexing.schemas import SubmitOptions

pytestmark = pytest.mark.django_db(transaction=True)


def zip_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return out.getvalue()


def tar_gz_of(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return out.getvalue()


def upload(client, name: str, data: bytes):
    return client.post("/api/documents", {"file": SimpleUploadedFile(name, data)})


FILES = {
    "notes/a.csv": b"id,text\n1,alpha\n",
    "notes/b.md": b"# Beta\n\nbeta text\n",
    "c.txt": b"gamma\n",
    "empty.txt": b"",
}


@pytest.mark.parametrize(("name", "pack"), [("notes.zip", zip_of), ("notes.tar.gz", tar_gz_of)])
def test_each_file_of_an_archive_becomes_a_document_named_by_its_path(
    client, captured_messages, monkeypatch, name, pack
):
    monkeypatch.setattr(batching, "TRIGGER_RESEND", 3600)  # one trigger however slow the machine
    response = upload(client, name, pack(FILES))
    assert response.status_code == 202, response.content
    jobs = response.json()
    assert sorted(j["document"]["name"] for j in jobs) == ["c.txt", "notes/a.csv", "notes/b.md"]
    assert sorted(j["document"]["format"] for j in jobs) == ["csv", "markdown", "text"]
    assert len(captured_messages) == 1  # small files: one trigger, after the one commit, for one batch


def test_a_zip_bomb_is_refused_with_its_limit_and_nothing_is_stored(client, captured_messages):
    bomb = zip_of({"zeros.txt": b"0" * 5_000_000, "readme.txt": b"hello"})
    response = upload(client, "bomb.zip", bomb)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "archive_too_large"
    assert "QUERN_ARCHIVE_MAX_RATIO" in response.json()["error"]["message"]
    assert (Document.objects.count(), Job.objects.count(), captured_messages) == (0, 0, [])


@override_settings(QUERN_ARCHIVE_MAX_MEMBERS=2)
def test_an_archive_of_too_many_files_is_refused_whole(client, captured_messages):
    response = upload(client, "many.tar.gz", tar_gz_of(FILES))
    assert response.json()["error"]["code"] == "archive_too_many_members"
    assert Document.objects.count() == 0


def test_a_damaged_archive_gets_a_clear_error(client, captured_messages):
    response = upload(client, "broken.zip", b"PK\x03\x04 not really a zip")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_archive"


def test_a_gzip_file_is_stored_and_read_as_its_content(client, captured_messages):
    data = gzip.compress(b"id,text\n1,delta\n2,epsilon\n")
    response = upload(client, "data.csv.gz", data)
    assert response.status_code == 202, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.format, job.size) == ("csv", len(b"id,text\n1,delta\n2,epsilon\n"))


def test_a_damaged_gzip_file_is_refused_with_where_it_broke(client, captured_messages):
    whole = gzip.compress(b"id,text\n" + b"1,zeta\n" * 10_000)
    data = whole[: len(whole) // 2]  # cut in the middle, as an interrupted upload
    response = upload(client, "data.csv.gz", data)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_gzip"
    assert Document.objects.count() == 0


def test_a_json_lines_body_submits_each_line_as_a_document(client, captured_messages):
    body = "\n".join(
        json.dumps({"name": f"n{n}.csv", "content": f"id,text\n{n},eta\n", "metadata": {"n": n}})
        for n in range(3)
    )
    response = client.post("/api/documents", body, content_type="application/x-ndjson")
    assert response.status_code == 202, response.content
    jobs = response.json()
    assert [j["document"]["name"] for j in jobs] == ["n0.csv", "n1.csv", "n2.csv"]
    assert sorted(Job.objects.values_list("metadata", flat=True), key=str) == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_bad_line_of_a_json_lines_body_refuses_all_and_names_the_line(client, captured_messages):
    body = json.dumps({"name": "ok.txt", "content": "fine"}) + "\n" + json.dumps({"name": "no-content.txt"})
    response = client.post("/api/documents", body, content_type="application/x-ndjson")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["line"] == 2 and error["message"].startswith("Line 2:")
    assert Document.objects.count() == 0


def test_the_ingest_command_takes_an_archive(tmp_path, captured_messages, capsys):
    path = tmp_path / "notes.zip"
    path.write_bytes(zip_of(FILES))
    call_command("ingest", str(path))
    assert sorted(Document.objects.values_list("name", flat=True)) == ["c.txt", "notes/a.csv", "notes/b.md"]


def test_pipeline_submit_upload_passes_a_plain_document_through(captured_messages):
    [job] = pipeline.submit_upload(
        io.BytesIO(b"plain text"), name="x.txt", size=10, options=SubmitOptions(), source="api"
    )
    assert job.document.name == "x.txt"


def test_an_archive_through_the_upload_form_lands_on_the_job_list(client, captured_messages):
    response = client.post("/", {"file": SimpleUploadedFile("notes.zip", zip_of(FILES))})
    assert response.status_code == 303 and response["Location"] == "/jobs/"
    assert Document.objects.count() == 3
