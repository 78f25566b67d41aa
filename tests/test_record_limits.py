"""Records per document and fields per record, through the pipeline: a clear error on the job,
the rest of the document (or the index) untouched."""

from __future__ import annotations

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from indexing import pipeline
from indexing.models import Job, Record, Status
from indexing.pipeline import splitting
from tests.conftest import wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_record_past_the_field_limit_is_reported_and_its_neighbours_indexed(client, pipeline, settings):
    wide = {"id": "wide", **{f"f{i}": "x" for i in range(settings.QUERN_MAX_FIELDS_PER_RECORD + 1)}}
    lines = [{"id": n, "text": f"an avocet number {n}"} for n in range(5)] + [wide]
    body = "".join(json.dumps(line) + "\n" for line in lines).encode()
    response = client.post("/api/documents", {"file": SimpleUploadedFile("birds.jsonl", body)})
    job = wait_for_job(response.json()["id"])
    assert job.status == Status.SUCCEEDED and job.records_indexed == 5
    assert [(e["code"], e["record"]) for e in job.errors] == [("too_many_fields", 5)]  # the 6th
    assert "QUERN_MAX_FIELDS_PER_RECORD" in job.errors[0]["message"]


def test_a_csv_whose_header_is_past_the_field_limit_fails_its_job_on_line_1(client, pipeline, settings):
    header = ",".join(f"c{i}" for i in range(settings.QUERN_MAX_FIELDS_PER_RECORD + 1))
    body = f"{header}\n{','.join('x' for _ in header.split(','))}\n".encode()
    response = client.post("/api/documents", {"file": SimpleUploadedFile("wide.csv", body)})
    job = wait_for_job(response.json()["id"])
    assert job.status == Status.FAILED
    assert (job.errors[-1]["code"], job.errors[-1]["line"]) == ("too_many_fields", 1)
    assert not Record.objects.filter(job=job).exists()


def test_a_document_past_the_record_limit_fails_with_the_line_and_indexes_nothing(
    captured_messages, settings
):
    settings.QUERN_MAX_RECORDS_PER_DOCUMENT = 3
    body = b"id,text\n" + b"".join(b"%d,a stilt\n" % n for n in range(10))
    job = pipeline.submit(io.BytesIO(body), name="stilts.csv")
    splitting.split(job.pk)
    job = Job.objects.get(pk=job.pk)
    assert job.status == Status.FAILED
    error = job.errors[-1]
    assert (error["code"], error["line"], error["record"]) == ("too_many_records", 5, 3)
    assert "more than 3 records" in error["message"] and not Record.objects.filter(job=job).exists()
