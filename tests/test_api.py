"""The JSON API's contract: its OpenAPI schema, JSON errors with fitting statuses, never HTML."""

from __future__ import annotations

import json

import jsonschema
import pytest
from django.test import Client
from openapi_spec_validator import validate

from indexing.api import api
from indexing.models import Job

pytestmark = pytest.mark.django_db


def _schema_for(name: str) -> dict:
    spec = api.get_openapi_schema(path_prefix="")
    return {"$ref": f"#/components/schemas/{name}", "components": spec["components"]}


def test_served_schema_is_valid_openapi_and_lists_every_endpoint(client):
    spec = client.get("/api/schema").json()
    validate(spec)
    assert spec["openapi"].startswith("3.1")
    assert set(spec["paths"]) == {
        "/api/documents",
        "/api/documents/{document_id}",
        "/api/jobs",
        "/api/jobs/{job_id}",
        "/api/search",
        "/api/suggest",
        "/api/schema",
        "/api/schema/messages/{name}",
        "/api/documents/{document_id}/reindex",
        "/api/jobs/{job_id}/cancel",
        "/api/jobs/{job_id}/retry",
        "/api/status",
    }


def test_submit_answer_matches_the_schema_and_nothing_is_sent_before_commit(
    client, captured_messages, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            "/api/documents",
            data={"name": "a.txt", "content": "hello there"},
            content_type="application/json",
        )
    assert response.status_code == 202
    jsonschema.validate(response.json(), _schema_for("Job"))
    job = Job.objects.get()
    assert captured_messages == []
    for callback in callbacks:
        callback()
    assert captured_messages == [("quern.split", [job.pk])]
    listing = client.get("/api/jobs", {"status": "queued"}).json()
    jsonschema.validate(listing, _schema_for("JobList"))
    assert [j["id"] for j in listing["results"]] == [job.pk]
    document = client.get(f"/api/documents/{job.document_id}").json()
    jsonschema.validate(document, _schema_for("Document"))


def test_search_answer_matches_the_schema(client):
    body = client.get("/api/search", {"q": "nothing here"}).json()
    jsonschema.validate(body, _schema_for("SearchResults"))
    assert body["total"] == 0 and body["hits"] == []


def test_interactive_docs_are_served_from_local_files(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert b"/api/schema" in page.content and b"cdn.jsdelivr" not in page.content


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("get", "/api/jobs/999999", {}, 404, "not_found"),
        ("get", "/api/documents/999999", {}, 404, "not_found"),
        ("get", "/api/nowhere", {}, 404, "not_found"),
        ("post", "/api/nowhere", {}, 404, "not_found"),
        ("get", "/api/jobs/abc", {}, 404, "not_found"),
        ("post", "/api/jobs/%0A%07/retry", {}, 404, "not_found"),
        ("get", "/api/", {}, 404, "not_found"),
        ("post", "/api/schema", {}, 405, "method_not_allowed"),
        ("delete", "/api/jobs", {}, 405, "method_not_allowed"),
        ("get", "/api/documents", {}, 405, "method_not_allowed"),
        (
            "post",
            "/api/documents",
            {"data": "x", "content_type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        (
            "post",
            "/api/documents",
            {"data": "{not json", "content_type": "application/json"},
            400,
            "invalid_json",
        ),
        (
            "post",
            "/api/documents",
            {"data": json.dumps({"content": "x"}), "content_type": "application/json"},
            400,
            "missing_name",
        ),
        (
            "post",
            "/api/documents",
            {
                "data": json.dumps({"name": "a", "content": "x", "content_base64": "eA=="}),
                "content_type": "application/json",
            },
            400,
            "bad_content",
        ),
        (
            "post",
            "/api/documents",
            {
                "data": json.dumps({"name": "a.xyz", "content": "x", "format": "pdf"}),
                "content_type": "application/json",
            },
            415,
            "unknown_format",
        ),
        (
            "post",
            "/api/documents",
            {
                "data": json.dumps({"name": "a.csv", "content": "x", "encoding": "klingon"}),
                "content_type": "application/json",
            },
            400,
            "unknown_encoding",
        ),
        (
            "post",
            "/api/documents",
            {
                "data": json.dumps({"name": "a.txt", "content": "x", "chunk_size": 0}),
                "content_type": "application/json",
            },
            400,
            "bad_chunk_size",
        ),
        (
            "post",
            "/api/documents",
            {
                "data": json.dumps({"name": "a.txt", "content": "x", "replace": 424242}),
                "content_type": "application/json",
            },
            404,
            "no_such_document",
        ),
        (
            "post",
            "/api/documents",
            {"data": json.dumps({"name": "a.txt", "content": ""}), "content_type": "application/json"},
            400,
            "empty_document",
        ),
        ("get", "/api/jobs", {"data": {"status": "sleeping"}}, 400, "bad_parameter"),
        ("get", "/api/search", {"data": {"q": "x", "limit": "lots"}}, 400, "bad_parameter"),
    ],
)
def test_api_errors_are_json_with_a_fitting_status(captured_messages, method, path, kwargs, status, code):
    # As a program calls the API: no session, no CSRF token (the checks enforced, as in production).
    response = getattr(Client(enforce_csrf_checks=True), method)(path, **kwargs)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    jsonschema.validate(body, _schema_for("Error"))
    assert body["error"]["code"] == code
    assert Job.objects.count() == 0


def test_an_upload_over_the_limit_answers_413(client, captured_messages, settings):
    settings.QUERN_MAX_UPLOAD_BYTES = 10
    response = client.post(
        "/api/documents", data={"name": "a.txt", "content": "x" * 11}, content_type="application/json"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_admin_shows_every_model_with_job_progress_and_errors(admin_client, captured_messages):
    admin_client.post(
        "/api/documents", data={"name": "a.txt", "content": "hi"}, content_type="application/json"
    )
    job = Job.objects.get()
    job.errors = [{"code": "jsonl_invalid", "message": "Line 3 is not valid JSON", "line": 3}]
    job.save()
    for path in [
        "/admin/indexing/document/",
        f"/admin/indexing/document/{job.document_id}/change/",
        "/admin/indexing/job/",
        f"/admin/indexing/job/{job.pk}/change/",
        "/admin/indexing/record/",
        "/admin/django_celery_results/taskresult/",
    ]:
        assert admin_client.get(path).status_code == 200, path
    page = admin_client.get(f"/admin/indexing/job/{job.pk}/change/").content.decode()
    assert "line 3: Line 3 is not valid JSON" in page
    assert "<progress" in page


@pytest.mark.parametrize("value", ["²", "9" * 30, "-1", "1.5", True])
def test_odd_numbers_for_chunk_size_or_replace_answer_400(client, captured_messages, value):
    for name in ("chunk_size", "replace"):
        response = client.post(
            "/api/documents",
            data={"name": "a.txt", "content": "x", name: value},
            content_type="application/json",
        )
        assert response.status_code == 400, (name, value)
        assert response.json()["error"]["code"] == "bad_parameter"


def test_a_long_encoding_alias_is_stored_by_its_canonical_name(client, captured_messages):
    alias = "latin" + "-" * 40 + "1"
    response = client.post(
        "/api/documents",
        data={"name": "a.csv", "content": "id,t\n1,x\n", "encoding": alias},
        content_type="application/json",
    )
    assert response.status_code == 202
    assert Job.objects.get().encoding == "iso8859-1"


def test_a_multi_file_upload_with_one_bad_file_creates_no_job(client, captured_messages):
    import io

    good, bad = io.BytesIO(b"fine text\n"), io.BytesIO(b"")
    good.name, bad.name = "a.txt", "b.txt"
    response = client.post("/api/documents", {"file": [good, bad]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "empty_document"
    assert Job.objects.count() == 0


def test_json_content_with_an_unpaired_surrogate_is_a_400_not_a_500(client):
    response = client.post(
        "/api/documents", data='{"name": "odd.txt", "content": "a\\ud800b"}', content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_content"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("metadata", '{"a\\u0000": 1}', "bad_metadata"),
        ("metadata", '{"k": ["x\\ud9f4"]}', "bad_metadata"),
        ("idempotency_key", '"k\\u0000"', "bad_idempotency_key"),
        ("idempotency_key", '"k\\udb00"', "bad_idempotency_key"),
    ],
)
def test_text_the_database_cannot_store_is_a_400_and_stores_nothing(
    client, captured_messages, field, value, code
):
    body = '{"name": "m.txt", "content": "x", "' + field + '": ' + value + "}"
    response = client.post("/api/documents", data=body, content_type="application/json")
    assert (response.status_code, response.json()["error"]["code"]) == (400, code)
    assert Job.objects.count() == 0


def test_blank_query_values_mean_the_defaults(client):
    listing = client.get("/api/jobs", {"status": "", "limit": "", "offset": ""})
    assert listing.status_code == 200
    assert (listing.json()["limit"], listing.json()["offset"]) == (20, 0)
    assert client.get("/api/search", {"q": "x", "limit": "", "document": ""}).json()["limit"] == 10


def test_format_aliases_and_mime_types_are_read_as_their_format(client, captured_messages):
    for declared, expected in [("md", "markdown"), ("TXT", "text"), ("text/csv; charset=utf-8", "csv")]:
        response = client.post(
            "/api/documents",
            data={"name": "a", "content": "x,y\n1,2\n", "format": declared},
            content_type="application/json",
        )
        assert response.status_code == 202, response.json()
        assert response.json()["document"]["format"] == expected


def test_an_error_names_only_what_is_known(client):
    body = client.get("/api/jobs/424242").json()
    assert body == {"error": {"code": "not_found", "message": "There is no job 424242."}}
