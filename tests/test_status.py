"""The live view: /status/ and GET /api/status against the real worker and broker."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from django.conf import settings

from indexing import broker
from indexing.models import Status
from tests.conftest import WORKER_NAME, wait_for, wait_for_job

pytestmark = pytest.mark.django_db(transaction=True)

WORKER = WORKER_NAME  # the session's worker


def test_status_is_for_staff_only(client):
    page = client.get("/status/")
    assert page.status_code == 302 and "/admin/login/" in page["Location"]
    api = client.get("/api/status")
    assert api.status_code == 403
    assert api.json()["error"]["code"] == "forbidden"


def test_status_shows_queues_workers_jobs_and_records_per_minute(admin_client, pipeline):
    from project.celery import app

    response = admin_client.post(
        "/api/documents",
        data={"name": "s.txt", "content": "one\n\ntwo\n\nthree\n"},
        content_type="application/json",
    )
    job = wait_for_job(response.json()["id"])
    assert job.status == Status.SUCCEEDED

    status = admin_client.get("/api/status").json()
    inspected = app.control.inspect(timeout=1).active() or {}
    assert {w["name"] for w in status["workers"]} == set(inspected) >= {WORKER}
    worker = next(w for w in status["workers"] if w["name"] == WORKER)
    assert worker["queues"] == ["backfill", "index", "ingest"]
    # quern.submit (the open queue) is shown where it exists: on RabbitMQ.
    expected = ["ingest", "index", "backfill"] + (["quern.submit"] if broker.is_rabbitmq() else [])
    assert [q["name"] for q in status["queues"]] == expected
    for queue in status["queues"]:
        # The session's worker consumes the task queues; no `manage.py consume` runs here.
        assert queue["ready"] is not None
        assert queue["consumers"] >= (1 if queue["name"] != "quern.submit" else 0)
    assert status["jobs"]["succeeded"] >= 1
    assert len(status["records_per_minute"]) == 60
    assert sum(p["records"] for p in status["records_per_minute"]) == 3
    assert status["oldest_waiting_job_seconds"] is None
    assert status["waiting"]["limit"] == settings.QUERN_MAX_WAITING

    page = admin_client.get("/status/")
    assert page.status_code == 200
    assert b'id="chart"' in page.content and b"status-data" in page.content


def test_queue_numbers_match_rabbitmqctl_and_celery_inspect_at_the_same_moment(admin_client, pipeline):
    """RabbitMQ only: pausing a consumer by broadcast is reliable there, racy on the filesystem broker."""
    from project.celery import app

    if not broker.is_rabbitmq() or not shutil.which("rabbitmqctl"):
        pytest.skip("RabbitMQ (with rabbitmqctl on this host) only")
    from indexing.broker.policy import broker_vhost

    app.control.cancel_consumer("backfill", destination=[WORKER], reply=True, timeout=5)
    try:
        for n in range(7):  # harmless: purge_job of jobs that do not exist
            app.send_task("quern.purge_job", args=[10**12 + n], queue="backfill")
        status = admin_client.get("/api/status").json()
        listing = subprocess.run(
            [
                "rabbitmqctl",
                "list_queues",
                "-q",
                "-p",
                broker_vhost(),
                "name",
                "messages_ready",
                "messages_unacknowledged",
                "consumers",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        rows = [line.split("\t") for line in listing.strip().splitlines()]
        on_broker = {
            name: (int(r), int(u), int(c)) for name, r, u, c in rows if r.isdigit()
        }  # past the header line
        ours = {q["name"]: (q["ready"], q["unacked"], q["consumers"]) for q in status["queues"]}
        assert ours["backfill"] == on_broker["backfill"] == (7, 0, 0)
        assert ours["ingest"] == on_broker["ingest"] and ours["index"] == on_broker["index"]
        inspected = app.control.inspect(timeout=1).active() or {}
        assert {w["name"]: len(w["active"]) for w in status["workers"]} == {
            name: len(tasks) for name, tasks in inspected.items()
        }
    finally:
        app.control.add_consumer("backfill", destination=[WORKER], reply=True, timeout=5)
    wait_for(
        lambda: admin_client.get("/api/status").json()["queues"][2]["ready"] == 0,
        timeout=30,
        message="the backfill queue to drain",
    )
