"""Whatever a document brings — its name, its title, its field values, an error quoting it — is
shown as text on every page and in admin: a `<script>` injected through each never runs."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User

from indexing import pipeline
from indexing.models import Job, Status

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def hostile(captured_messages, clean_index):
    """An indexed HTML document whose name, title and text carry a script, and a failed job whose
    error quotes one."""
    html = (
        f"<html><head><title>t {SCRIPT} heron</title></head><body>"
        f"<h1>heron {SCRIPT}</h1><p>heron &lt;script&gt;alert(1)&lt;/script&gt; waits</p></body></html>"
    )
    job = pipeline.submit(io.BytesIO(html.encode()), name=f"n{SCRIPT}.html")
    pipeline.split_alone(job.pk)
    job.refresh_from_db()
    assert job.status == Status.SUCCEEDED, job.errors
    failed = pipeline.submit(io.BytesIO(b"id,text\n1,x\n"), name=f"bad{SCRIPT}.csv")
    pipeline.fail(failed.pk, {"code": "bad_record", "message": f"Line 2: {SCRIPT} is not a number."})
    return job, Job.objects.get(pk=failed.pk)


def _assert_shown_as_text(html: str, where: str) -> None:
    assert SCRIPT not in html, f"{where} shows a live <script>"
    assert "alert(1)" not in html or ESCAPED in html, where


def _assert_pages_show_text(client, pages: dict[str, str]) -> None:
    for where, path in pages.items():
        response = client.get(path)
        assert response.status_code == 200, where
        _assert_shown_as_text(response.content.decode(), where)


@pytest.mark.django_db(transaction=True)
def test_a_script_through_name_title_fields_and_errors_is_escaped_on_every_page(client, hostile):
    job, failed = hostile
    pages = {
        "job list": "/jobs/",
        "job page": f"/jobs/{job.pk}/",
        "failed job page": f"/jobs/{failed.pk}/",
        "search page": "/search/?q=heron",
    }
    _assert_pages_show_text(client, pages)
    assert ESCAPED in client.get(f"/jobs/{failed.pk}/").content.decode()  # the error is there, as text
    search_page = client.get("/search/?q=heron").content.decode()
    assert "<mark>" in search_page  # the snippet's own markup survives, and only it


@pytest.mark.django_db(transaction=True)
def test_the_api_snippet_is_escaped_text_with_only_mark_tags(client, hostile):
    hits = client.get("/api/search?q=heron").json()["hits"]
    assert hits
    for hit in hits:
        snippet = hit["snippet"]
        assert SCRIPT not in snippet and "<script" not in snippet
        assert snippet.replace("<mark>", "").replace("</mark>", "").count("<") == 0


@pytest.mark.django_db(transaction=True)
def test_a_script_through_each_is_escaped_in_admin(client, hostile):
    job, failed = hostile
    User.objects.create_superuser("root", password="pw-for-tests")
    client.login(username="root", password="pw-for-tests")
    pages = {
        "documents": "/admin/indexing/document/",
        "document": f"/admin/indexing/document/{job.document_id}/change/",
        "jobs": "/admin/indexing/job/",
        "job": f"/admin/indexing/job/{job.pk}/change/",
        "failed job": f"/admin/indexing/job/{failed.pk}/change/",
        "records": "/admin/indexing/record/",
    }
    _assert_pages_show_text(client, {f"admin {where}": path for where, path in pages.items()})
