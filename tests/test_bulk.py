"""Many documents in one submission: JSON Lines bodies, archives (and their bombs), gzip files."""

from __future__ import annotations

import gzip
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import override_settings

from indexing import pipeline
from indexing.models import Document, Job
from indexing.pipeline import unpacking
from indexing.schemas import SubmitOptions
from tests.archive_files import tar_gz_of, zip_of
from tests.conftest import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def upload(client, name: str, data: bytes):
    return client.post("/api/documents", {"file": SimpleUploadedFile(name, data)})


FILES = {
    "notes/a.csv": b"id,text\n1,alpha\n",
    "notes/b.md": b"# Beta\n\nbeta text\n",
    "c.txt": b"gamma\n",
    "empty.txt": b"",
}


def archive_job(client, name: str, data: bytes) -> dict:
    response = upload(client, name, data)
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["document"]["format"] == "archive" and response["Location"] == f"/api/jobs/{job['id']}"
    return job


def files_of(archive_id: int) -> list[Job]:
    return list(Job.objects.filter(archive_id=archive_id).select_related("document").order_by("pk"))


@pytest.mark.parametrize(("name", "pack"), [("notes.zip", zip_of), ("notes.tar.gz", tar_gz_of)])
def test_each_file_of_an_archive_becomes_a_document_named_by_its_path_through_the_worker(
    client, pipeline, name, pack
):
    posted = archive_job(client, name, pack(FILES))
    archive = wait_for_job(posted["id"])
    assert archive.status == "succeeded", archive.errors
    assert (archive.records_total, archive.records_indexed) == (3, 3)  # files found, files stored
    files = files_of(archive.pk)
    assert sorted(j.document.name for j in files) == ["c.txt", "notes/a.csv", "notes/b.md"]
    assert sorted(j.format for j in files) == ["csv", "markdown", "text"]
    assert all(wait_for_job(j.pk).status == "succeeded" for j in files)
    assert client.get("/api/search", {"q": "gamma"}).json()["total"] == 1
    listed = client.get("/api/jobs", {"archive": archive.pk}).json()
    assert listed["total"] == 3 and {j["archive"] for j in listed["results"]} == {archive.pk}


def test_a_zip_bomb_fails_its_archive_job_with_the_limit_and_no_file_becomes_a_document(client, pipeline):
    bomb = zip_of({"zeros.txt": b"0" * 5_000_000, "readme.txt": b"hello"})
    archive = wait_for_job(archive_job(client, "bomb.zip", bomb)["id"])
    assert archive.status == "failed"
    assert archive.errors[-1]["code"] == "archive_too_large"
    assert "QUERN_ARCHIVE_MAX_RATIO" in archive.errors[-1]["message"]
    assert files_of(archive.pk) == [] and Document.objects.exclude(pk=archive.document_id).count() == 0


def _unpacked(client, name: str, data: bytes) -> Job:
    """An archive job run by this process's own unpack (settings overridden here reach it)."""
    job = archive_job(client, name, data)
    unpacking.split_alone(job["id"])
    return Job.objects.get(pk=job["id"])


@override_settings(QUERN_ARCHIVE_MAX_MEMBERS=2)
def test_an_archive_of_too_many_files_fails_whole(client, captured_messages):
    archive = _unpacked(client, "many.tar.gz", tar_gz_of(FILES))
    assert (archive.status, archive.errors[-1]["code"]) == ("failed", "archive_too_many_members")
    assert files_of(archive.pk) == []


def test_a_damaged_archive_fails_with_a_clear_error(client, captured_messages):
    archive = _unpacked(client, "broken.zip", b"PK\x03\x04 not really a zip")
    assert (archive.status, archive.errors[-1]["code"]) == ("failed", "bad_archive")
    assert "broken.zip" in archive.errors[-1]["message"]


def test_an_unpack_killed_midway_resumes_after_the_files_it_stored_and_stores_none_twice(
    client, captured_messages, monkeypatch
):
    monkeypatch.setattr(unpacking, "BULK_WRITE", 1)  # a transaction per file
    job = archive_job(client, "notes.zip", zip_of(FILES))
    real_submit, calls = unpacking.submit_many, []

    def dies_after_the_first_file(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise SystemExit("the worker is killed")
        return real_submit(*args, **kwargs)

    monkeypatch.setattr(unpacking, "submit_many", dies_after_the_first_file)
    with pytest.raises(SystemExit):
        unpacking.split_alone(job["id"])
    assert len(files_of(job["id"])) == 1
    monkeypatch.setattr(unpacking, "submit_many", real_submit)
    unpacking.split_alone(job["id"])  # the redelivery
    archive = Job.objects.get(pk=job["id"])
    assert archive.status == "succeeded" and archive.records_indexed == 3
    assert sorted(j.document.name for j in files_of(archive.pk)) == ["c.txt", "notes/a.csv", "notes/b.md"]


def test_of_two_runs_of_one_unpack_at_once_only_one_stores_files(client, captured_messages, monkeypatch):
    from contextlib import contextmanager

    job = archive_job(client, "notes.zip", zip_of(FILES))
    real_locked, calls = unpacking.jobs.locked, []

    @contextmanager
    def another_run_commits_first(job_id, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # this run's first batch (the first lock moved the job)
            Job.objects.filter(pk=job_id).update(records_indexed=1)  # as the other run's commit
        with real_locked(job_id, **kwargs) as locked:
            yield locked

    monkeypatch.setattr(unpacking.jobs, "locked", another_run_commits_first)
    unpacking.split_alone(job["id"])
    assert files_of(job["id"]) == []  # it stopped: the other run goes on from its own position


def test_a_long_unpack_hands_the_rest_to_its_next_run_within_the_task_time_limit(
    client, captured_messages, monkeypatch
):
    monkeypatch.setattr(unpacking, "BULK_WRITE", 1)
    monkeypatch.setattr(unpacking, "RUN_FOR", -1)  # the time is up after every batch
    job = archive_job(client, "notes.zip", zip_of(FILES))
    captured_messages.clear()
    unpacking.split_alone(job["id"])  # counts, and hands the storing on
    assert files_of(job["id"]) == [] and Job.objects.get(pk=job["id"]).records_total == 3
    assert ("quern.split", [job["id"]]) in [(m[0], m[1]) for m in captured_messages]
    unpacking.split_alone(job["id"])  # one batch at least per run, then hands on
    assert len(files_of(job["id"])) == 1
    for _ in range(3):
        unpacking.split_alone(job["id"])
    assert Job.objects.get(pk=job["id"]).status == "succeeded" and len(files_of(job["id"])) == 3


def test_the_archive_jobs_page_counts_its_files_and_links_to_their_jobs(client, captured_messages):
    archive = _unpacked(client, "notes.zip", zip_of(FILES))
    page = client.get(f"/jobs/{archive.pk}/").content.decode()
    assert '3</span> of <span id="records-total">3</span> stored as documents' in page
    assert f"/jobs/?archive={archive.pk}" in page and "3 queued" in page
    listed = client.get(f"/jobs/?archive={archive.pk}").content.decode()
    assert "notes/a.csv" in listed and "notes.zip" not in listed.split("<table")[1]


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
    [job] = Job.objects.all()
    assert job.format == "archive" and f"job {job.pk} (notes.zip, archive" in capsys.readouterr().out
    unpacking.split_alone(job.pk)
    assert sorted(j.document.name for j in files_of(job.pk)) == ["c.txt", "notes/a.csv", "notes/b.md"]


def test_pipeline_submit_upload_passes_a_plain_document_through(captured_messages):
    [job] = pipeline.submit_upload(
        io.BytesIO(b"plain text"), name="x.txt", size=10, options=SubmitOptions(), source="api"
    )
    assert job.document.name == "x.txt"


def test_an_archive_through_the_upload_form_lands_on_its_jobs_page(client, captured_messages):
    response = client.post("/", {"file": SimpleUploadedFile("notes.zip", zip_of(FILES))})
    [job] = Job.objects.all()
    assert response.status_code == 303 and response["Location"] == f"/jobs/{job.pk}/"
    assert job.format == "archive"


def test_an_unpacked_archive_is_not_unpacked_again_by_a_reindex_a_retry_or_a_backfill(
    client, captured_messages
):
    from indexing.pipeline import backfills, finish

    archive = _unpacked(client, "notes.zip", zip_of(FILES))
    response = client.post(f"/api/documents/{archive.document_id}/reindex")
    assert response.status_code == 409 and response.json()["error"]["code"] == "archive_unpacked"
    finish.fail(archive.pk, {"code": "x", "message": "x"})  # (it succeeded; a retry is refused all the same)
    assert client.post(f"/api/jobs/{archive.pk}/retry").status_code == 409
    assert archive.document_id not in set(backfills.matching_documents({}).values_list("pk", flat=True))
    assert len(files_of(archive.pk)) == 3 and Job.objects.filter(format="archive").count() == 1


def test_an_archive_that_failed_before_storing_a_file_may_be_retried_with_its_options(
    client, captured_messages
):
    from indexing.pipeline import finish

    response = client.post(
        "/api/documents", {"file": SimpleUploadedFile("notes.zip", zip_of(FILES)), "chunk_size": "7"}
    )
    first = response.json()["id"]
    finish.fail(first, {"code": "bad_archive", "message": "as if it had been damaged"})
    retried = client.post(f"/api/jobs/{first}/retry")
    assert retried.status_code == 202, retried.content
    unpacking.split_alone(retried.json()["id"])
    assert sorted(j.chunk_size for j in files_of(retried.json()["id"])) == [7, 7, 7]
