"""The naive way, for comparison: what a Django team writes first — one Celery task per record.

Each task saves one Record with the ORM (a commit) and then updates its search entry (another
commit), on the same database, broker and settings as Quern (task results stored by
django-celery-results, as Quern's are). Run by the benchmark as its own worker:
`celery -A bench.naive worker -Q naive`.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
django.setup()

from celery import Celery  # noqa: E402
from django.contrib.postgres.search import SearchVector  # noqa: E402
from django.db import connection  # noqa: E402
from kombu import Queue  # noqa: E402

from indexing.models import Record  # noqa: E402

app = Celery("naive")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = (Queue("naive", durable=True),)
app.conf.task_default_queue = "naive"
app.conf.task_routes = {}
app.conf.beat_schedule = {}


@app.task(name="naive.index_record")
def index_record(
    job_id: int, document_id: int, ordinal: int, key: str, title: str, body: str, fields: dict
) -> int:
    record = Record.objects.create(
        job_id=job_id,
        document_id=document_id,
        ordinal=ordinal,
        key=key,
        title=title,
        body=body,
        fields=fields,
    )
    if connection.vendor == "postgresql":
        Record.objects.filter(pk=record.pk).update(
            search=SearchVector("title", weight="A", config="english")
            + SearchVector("body", weight="B", config="english")
        )
    else:
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO indexing_record_fts (rowid, title, body) VALUES (%s, %s, %s)",
                [record.pk, title, body],
            )
    return record.pk
