"""The Celery app: configured from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

app = Celery("quern")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _keep_no_statements(**_) -> None:
    # DEBUG (make run's default) makes Django keep the text of the last 9,000 SQL statements of
    # each connection, bulk INSERTs and all: unpacking an archive of 100,000 files took a worker
    # to 192 MB with it, 108 MB without (make bench-pg). A worker has no page to show them on.
    from django.conf import settings

    settings.DEBUG = False
