"""The Celery app: configured from Django settings (CELERY_* names)."""

import os

from celery import Celery
from celery.signals import task_postrun, task_prerun, worker_init
from django.db import close_old_connections

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


# Celery's Django fixup closes every database connection before and after every task unless
# CELERY_DB_REUSE_MAX is set (settings.py sets it): a new connection per chunk, which on PostgreSQL
# is a new server process with cold caches (221 sessions for sentences.csv's 204 chunks). Django's
# own rules decide instead, as at the start and end of a request: a connection that failed or
# outlived CONN_MAX_AGE is closed, a broken one is noticed by CONN_HEALTH_CHECKS.
task_prerun.connect(lambda **_: close_old_connections(), weak=False)
task_postrun.connect(lambda **_: close_old_connections(), weak=False)
