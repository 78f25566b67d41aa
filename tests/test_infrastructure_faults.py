"""A fault of the infrastructure that heals never fails a job: a step that gave up while the
database was away leaves its job for reconcile; a fault of the document still fails it."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from indexing import pipeline, tasks
from indexing.models import Job, Status


def _queued_csv() -> Job:
    return pipeline.submit(io.BytesIO(b"id,text\n1,a heron\n2,an egret\n"), name="birds.csv")


@pytest.mark.django_db
@pytest.mark.parametrize(
    "fault",
    [
        OperationalError("server closed the connection unexpectedly"),
        InterfaceError("connection already closed"),
    ],
)
def test_a_step_that_gave_up_while_the_database_was_away_leaves_its_job_for_reconcile(
    captured_messages, fault
):
    job = _queued_csv()
    tasks.split.on_failure(fault, "task-id", (job.pk,), {}, None)
    job.refresh_from_db()
    assert job.status == Status.QUEUED and not job.errors  # not failed, nothing purged
    later = timezone.now() + timedelta(seconds=settings.QUERN_RECONCILE_AFTER + 1)
    assert pipeline.reconcile(now=later)["split"] == 1  # sent again once it is back


@pytest.mark.django_db
def test_a_bug_in_a_step_still_fails_its_job_with_a_message(captured_messages):
    job = _queued_csv()
    tasks.split.on_failure(ValueError("unexpected"), "task-id", (job.pk,), {}, None)
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert job.errors[-1]["code"] == "internal_error" and "ValueError" in job.errors[-1]["message"]


def test_the_retry_schedule_outlasts_a_thirty_second_outage_many_times_over():
    waits = [min(tasks.JobTask.retry_backoff_max, 2**n) for n in range(tasks.JobTask.max_retries)]
    assert sum(waits[:4]) < 30 < sum(waits)  # the old 4 quick retries: 15 s in all
    assert sum(waits) > 10 * 60
    assert tasks.JobTask.autoretry_for == (OperationalError, InterfaceError)
