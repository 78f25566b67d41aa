"""Who gets in: API keys with scopes and expiry, logins for the pages, rate limits, and the open
mode of the embedded first try that says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from indexing import access
from indexing.models import ApiKey, Document, Job
from tests.conftest import ROOT

DOC = {"name": "hello.txt", "content": "a quiet heron\n"}


@pytest.fixture
def keys_required(settings, captured_messages):
    settings.QUERN_REQUIRE_KEYS = True
    settings.QUERN_RATE_PER_KEY = ""
    settings.QUERN_RATE_PER_ADDRESS = ""
    cache.clear()
    yield settings
    cache.clear()


def _key(*scopes, **fields) -> str:
    return access.create_key("test", scopes, **fields)[1]


def _submit(client, key: str | None = None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return client.post("/api/documents", json.dumps(DOC), content_type="application/json", **headers)


def _nothing_created() -> bool:
    return not Document.objects.exists() and not Job.objects.exists()


@pytest.mark.django_db
def test_without_a_key_a_submission_gets_401_in_the_error_shape_and_nothing_is_stored(client, keys_required):
    response = _submit(client)
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "unauthorized" and "Authorization: Bearer" in error["message"]
    assert _nothing_created()


@pytest.mark.django_db
def test_a_search_only_key_may_search_but_gets_403_to_submit(client, keys_required):
    key = _key("search")
    refused = _submit(client, key)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden" and "submit" in refused.json()["error"]["message"]
    assert _nothing_created()
    found = client.get("/api/search?q=heron", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert found.status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: _key("submit", expires_at=timezone.now() - timedelta(seconds=1)), id="expired"),
        pytest.param(lambda: _key("submit")[:-2] + "xx", id="wrong secret"),
        pytest.param(lambda: "qrn_00000000_nope", id="unknown prefix"),
        pytest.param(lambda: "not-even-a-key", id="garbage"),
    ],
)
def test_an_expired_wrong_or_unknown_key_gets_401_and_nothing_is_stored(client, keys_required, make):
    response = _submit(client, make())
    assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert _nothing_created()


@pytest.mark.django_db
def test_a_revoked_key_gets_401(client, keys_required):
    key = _key("submit")
    ApiKey.objects.update(revoked=True)
    response = _submit(client, key)
    assert response.status_code == 401 and "revoked" in response.json()["error"]["message"]


@pytest.mark.django_db
def test_a_submit_key_submits_and_follows_its_job_but_needs_manage_to_cancel(client, keys_required):
    key = _key("submit")
    accepted = _submit(client, key)
    assert accepted.status_code == 202
    job = accepted.json()["id"]
    auth = {"HTTP_AUTHORIZATION": f"Bearer {key}"}
    assert client.get(f"/api/jobs/{job}", **auth).status_code == 200
    assert client.get("/api/jobs", **auth).status_code == 200
    assert client.post(f"/api/jobs/{job}/cancel", **auth).status_code == 403
    manage = {"HTTP_AUTHORIZATION": f"Bearer {_key('manage')}"}
    assert client.post(f"/api/jobs/{job}/cancel", **manage).status_code == 200
    assert client.get("/api/status", **manage).status_code == 403
    admin = {"HTTP_AUTHORIZATION": f"Bearer {_key('admin')}"}
    assert client.get("/api/status", **admin).status_code == 200


@pytest.mark.django_db
def test_keys_are_stored_as_a_digest_only(keys_required):
    row, key = access.create_key("importer", ["submit"])
    stored = ApiKey.objects.get(pk=row.pk)
    assert key.startswith(f"qrn_{stored.prefix}_") and len(key) > 40
    assert key not in json.dumps([stored.prefix, stored.digest, stored.name])
    assert access.authenticate(f"Bearer {key}", ["submit"]).pk == row.pk


@pytest.mark.django_db
def test_the_documentation_stays_readable_without_a_key(client, keys_required):
    assert client.get("/api/schema").status_code == 200
    assert client.get("/api/schema/messages/submit").status_code == 200


@pytest.mark.django_db
def test_the_pages_need_a_login_and_search_only_when_not_made_public(client, keys_required):
    for path in ("/", "/jobs/", "/search/?q=heron"):
        response = client.get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/?next="), path
    keys_required.QUERN_PUBLIC_SEARCH = True
    assert client.get("/search/?q=heron").status_code == 200
    assert client.get("/api/search?q=heron").status_code == 200  # the page's live search, too
    assert client.get("/").status_code == 302
    User.objects.create_user("ada", password="pw-for-tests")
    client.login(username="ada", password="pw-for-tests")
    assert client.get("/").status_code == 200
    assert client.get("/api/jobs").status_code == 200  # the pages' reads with the session
    assert client.get("/status/").status_code == 302  # staff only
    assert client.get("/api/status").status_code == 401


@pytest.mark.django_db
def test_open_mode_says_so_on_every_page(client, settings):
    settings.QUERN_REQUIRE_KEYS = False
    for path in ("/", "/jobs/", "/search/"):
        assert b"Open mode: anyone who can reach this server" in client.get(path).content, path
    settings.QUERN_REQUIRE_KEYS = True
    User.objects.create_user("ada", password="pw-for-tests")
    client.login(username="ada", password="pw-for-tests")
    assert b"Open mode" not in client.get("/").content


@pytest.mark.django_db
def test_past_the_rate_per_address_calls_get_429_with_retry_after(client, keys_required):
    keys_required.QUERN_RATE_PER_ADDRESS = "3/m"
    statuses = [client.get("/api/search?q=heron").status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]  # bad or missing keys are counted too
    refused = client.get("/api/search?q=heron")
    assert refused.json()["error"]["code"] == "too_many_requests"
    assert "QUERN_RATE_PER_ADDRESS" in refused.json()["error"]["message"]
    assert int(refused["Retry-After"]) >= 1


@pytest.mark.django_db
def test_past_the_rate_per_key_that_key_gets_429_and_another_key_goes_on(client, keys_required):
    keys_required.QUERN_RATE_PER_KEY = "2/m"
    busy, other = _key("search"), _key("search")
    calls = [client.get("/api/search?q=x", HTTP_AUTHORIZATION=f"Bearer {busy}").status_code for _ in range(3)]
    assert calls == [200, 200, 429]
    assert client.get("/api/search?q=x", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200


@pytest.mark.django_db
def test_createkey_prints_the_key_once_and_it_works(client, keys_required, capsys):
    call_command("createkey", "--scope", "submit", "--scope", "search", "--expires", "30d", "--name", "ci")
    out, err = capsys.readouterr()
    key = out.strip()
    row = ApiKey.objects.get()
    assert row.scopes == ["search", "submit"] and row.name == "ci"
    assert timedelta(days=29) < row.expires_at - timezone.now() <= timedelta(days=30)
    assert "shown this once" in err and key not in err
    assert _submit(client, key).status_code == 202
    with pytest.raises(CommandError, match="in the past"):
        call_command("createkey", "--scope", "submit", "--expires", "2020-01-01")


@pytest.mark.django_db
def test_a_key_made_in_admin_is_shown_once_after_saving(client):
    User.objects.create_superuser("root", password="pw-for-tests")
    client.login(username="root", password="pw-for-tests")
    response = client.post(
        "/admin/indexing/apikey/add/",
        {"name": "from admin", "scopes": ["search"], "expires_at": ""},
        follow=True,
    )
    row = ApiKey.objects.get()
    shown = [str(m) for m in response.context["messages"] if "qrn_" in str(m)]
    assert len(shown) == 1 and f"qrn_{row.prefix}_" in shown[0]
    key = shown[0].split("The new API key is ")[1].split(" ")[0]
    assert access.authenticate(f"Bearer {key}", ["search"]).pk == row.pk
    assert key not in client.get(f"/admin/indexing/apikey/{row.pk}/change/").content.decode()


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env |= {"DJANGO_DEBUG": "0", "DJANGO_SETTINGS_MODULE": "project.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0 and "DJANGO_SECRET_KEY is not set" in result.stderr


def test_production_settings_pass_the_deploy_check():
    # (the browser tests' DJANGO_ALLOW_ASYNC_UNSAFE is theirs, not production's)
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | {
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "x" * 60 + "-a-long-random-secret-for-the-check",
        "DJANGO_SETTINGS_MODULE": "project.settings",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["word " * 70, "x" * 1001], ids=["too many words", "too many characters"])
def test_a_query_past_its_bounds_gets_a_clear_400_on_the_api_and_the_page(client, query):
    response = client.get("/api/search", {"q": query})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "query_too_long" and "QUERN_MAX_QUERY_" in error["message"]
    page = client.get("/search/", {"q": query})
    assert page.status_code == 200 and b"QUERN_MAX_QUERY_" in page.content
    assert client.get("/api/suggest", {"q": query}).status_code == 400


@pytest.mark.django_db
def test_replacing_a_document_needs_manage_not_submit_alone(client, keys_required):
    first = _submit(client, _key("submit")).json()
    again = {**DOC, "replace": first["document"]["id"]}
    submit_only = client.post(
        "/api/documents",
        json.dumps(again),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {_key('submit')}",
    )
    assert submit_only.status_code == 403 and "manage" in submit_only.json()["error"]["message"]
    assert Job.objects.count() == 1
    managed = client.post(
        "/api/documents",
        json.dumps(again),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {_key('submit', 'manage')}",
    )
    assert managed.status_code == 202 and Job.objects.count() == 2


@pytest.mark.django_db
def test_a_body_nested_100000_deep_is_invalid_json_not_a_crash(client, captured_messages):
    body = b"[" * 100_000 + b"]" * 100_000
    response = client.post("/api/documents", body, content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    lines = client.post("/api/documents", body + b"\n", content_type="application/x-ndjson")
    assert lines.status_code == 400 and lines.json()["error"]["code"] == "invalid_json"


@pytest.mark.django_db
def test_only_a_superuser_makes_an_admin_key_in_admin(client):
    from django.contrib.auth.models import Permission

    staff = User.objects.create_user("staff", password="pw-for-tests", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_apikey", "view_apikey"]))
    client.login(username="staff", password="pw-for-tests")
    refused = client.post("/admin/indexing/apikey/add/", {"name": "x", "scopes": ["admin"], "expires_at": ""})
    assert refused.status_code == 200 and b"Only a superuser" in refused.content
    assert not ApiKey.objects.exists()
    made = client.post("/admin/indexing/apikey/add/", {"name": "y", "scopes": ["search"], "expires_at": ""})
    assert made.status_code == 302 and ApiKey.objects.get().scopes == ["search"]


@pytest.mark.django_db
@pytest.mark.parametrize("login", ["/login/", "/admin/login/"])
def test_an_address_that_keeps_failing_to_log_in_is_held_off_even_with_the_right_password(client, login):
    cache.clear()  # the counts of earlier tests' logins
    User.objects.create_superuser("ada", password="the right one")
    address = "10.9.0.1"
    for _ in range(settings.QUERN_LOGIN_FAILURES):
        wrong = client.post(login, {"username": "ada", "password": "a guess"}, REMOTE_ADDR=address)
        assert wrong.status_code == 200  # the form again, with its error
    held = client.post(login, {"username": "ada", "password": "the right one"}, REMOTE_ADDR=address)
    assert held.status_code == 429 and held["Retry-After"] == str(settings.QUERN_LOGIN_WINDOW)
    assert "Too many failed logins" in held.content.decode()
    elsewhere = client.post(login, {"username": "ada", "password": "the right one"}, REMOTE_ADDR="10.8.0.1")
    assert elsewhere.status_code == 302  # another address logs in
