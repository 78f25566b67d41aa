"""Quern settings: everything comes from the environment, with safe embedded defaults.

Every setting is listed in README.md ("Settings").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from indexing import broker

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


# Where the embedded default keeps its database, broker folders and uploaded files.
QUERN_DATA_DIR = Path(os.environ.get("QUERN_DATA_DIR", BASE_DIR / "var")).resolve()
# Made here, once for every process: beat's schedule file lives in it, and on a fresh
# clone with DATABASE_URL set nothing else had created it (the beat crashed; reconcile never ran).
QUERN_DATA_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        # A fixed fallback would let anyone who read this file forge sessions and CSRF tokens.
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. With DJANGO_DEBUG off Quern needs a secret of its own: "
            "export DJANGO_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    SECRET_KEY = "quern-insecure-development-key-for-debug-only"
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,testserver").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o]
# HTTPS (on by default in production): plain HTTP is redirected, cookies are sent over HTTPS only,
# and browsers are told to keep to HTTPS (HSTS). Behind a proxy that ends TLS, set
# QUERN_TRUSTED_PROXIES so its X-Forwarded-Proto is believed. DJANGO_HTTPS=0 for plain HTTP (a
# machine's own loopback, the benchmarks).
HTTPS = env_bool("DJANGO_HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31_536_000) if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# W021 asks for HSTS preload: a listing in browsers that is hard to undo, the site owner's choice.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",  # intcomma: counts as people read them (30,000)
    "django.contrib.postgres",
    "django_celery_results",
    "ninja",  # its templates and static files: /api/docs served locally, not from a CDN
    "indexing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin's, the pages' CSS, Ninja's docs) from the app server itself, with or
    # without DEBUG: make run's gunicorn and the container serve them with no web server in front.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "upload"
LOGOUT_REDIRECT_URL = "login"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "indexing.views.access_mode",
            ],
        },
    },
]
WSGI_APPLICATION = "project.wsgi.application"

# --- Database: SQLite file by default, PostgreSQL through DATABASE_URL ---------------------
DATABASE_URL = os.environ.get("DATABASE_URL") or f"sqlite:///{QUERN_DATA_DIR / 'quern.sqlite3'}"
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=600)}
# PostgreSQL: each process borrows from a pool of at most QUERN_DB_POOL_SIZE connections. A
# persistent connection per thread let the development server's threads, one per client, take
# every connection PostgreSQL had ("sorry, too many clients already" at 2,000 documents from 8
# clients); a pool waits QUERN_DB_POOL_TIMEOUT seconds for a free one instead, then answers busy.
QUERN_DB_POOL_SIZE = env_int("QUERN_DB_POOL_SIZE", 8)
QUERN_DB_POOL_TIMEOUT = env_int("QUERN_DB_POOL_TIMEOUT", 10)
# Not in a Celery worker: its Django fixup closes the pool before and after every task of a prefork
# worker (celery/fixups/django.py), so a pool there meant a new connection per task. A worker's
# process serves one task at a time and keeps its one persistent connection (CELERY_DB_REUSE_MAX).
CELERY_WORKER_PROCESS = "celery" in Path(sys.argv[0]).as_posix() and "worker" in sys.argv[1:]
if CELERY_WORKER_PROCESS:
    # Its connection lasts across tasks (project/celery.py) and is checked before the first query
    # of each, so one broken by a database restart is replaced instead of failing the task.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and not CELERY_WORKER_PROCESS:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps connections; Django refuses both
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": QUERN_DB_POOL_SIZE,
        "timeout": QUERN_DB_POOL_TIMEOUT,
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several worker processes write at once: WAL + BEGIN IMMEDIATE + a busy timeout, or
    # "database is locked" at once (PITFALLS.md). Connections persist (CONN_MAX_AGE 600, as on
    # PostgreSQL): a new SQLite connection starts with a cold page cache, which made a search
    # through the API ~3x slower than the same SQL on a warm connection (make bench).
    # The WAL is copied back into the database (a checkpoint) every 20,000 pages (80 MB), not
    # SQLite's 1,000: the commit that crosses the mark copies it, inside the one writer's turn,
    # and a chunk of 5,000 records is about that much. sentences.csv: 17.44 s -> 15.01 s (make
    # bench, medians of 3); 100,000 pages measured the same as 20,000.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=20000",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
    DATABASES["default"]["TEST"] = {
        "NAME": os.environ.get("QUERN_TEST_DB", str(QUERN_DATA_DIR / "test.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("QUERN_STATIC_ROOT", QUERN_DATA_DIR / "static")).resolve()
# From the apps' and STATICFILES_DIRS' own folders, read once at start: nothing to collect first.
WHITENOISE_USE_FINDERS = True
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise also serves collectstatic's output
MEDIA_ROOT = Path(os.environ.get("QUERN_MEDIA_ROOT", QUERN_DATA_DIR / "media")).resolve()
MEDIA_URL = "media/"
# Files on disk, and small documents' bytes in the database (indexing/blobs.py).
STORAGES = {
    "default": {"BACKEND": "indexing.blobs.Storage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Uploads stream to a temporary file past 2.5 MB; Quern never holds a whole upload in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("QUERN_MAX_JSON_BYTES", 50 * 1024 * 1024)

# --- Quern --------------------------------------------------------------------------------
# Records per index_chunk task. 5,000 is where throughput reaches its plateau in the chunk-size
# sweep (make bench-pg; docs/chunk-size.png): larger chunks gained under 10 %, within run-to-run
# noise, and cost memory, parallelism and the granularity of progress and cancel.
QUERN_CHUNK_SIZE = env_int("QUERN_CHUNK_SIZE", 5000)
# A chunk also ends at this many bytes, so a worker's memory is bounded whatever the record size.
QUERN_MAX_CHUNK_BYTES = env_int("QUERN_MAX_CHUNK_BYTES", 4 * 1024 * 1024)
QUERN_MAX_UPLOAD_BYTES = env_int("QUERN_MAX_UPLOAD_BYTES", 2 * 1024**3)
# A document of more records fails its job (too_many_records); a record of more fields is a bad
# record of its own, and a CSV header of more columns fails its job (too_many_fields).
QUERN_MAX_RECORDS_PER_DOCUMENT = env_int("QUERN_MAX_RECORDS_PER_DOCUMENT", 100_000_000)
QUERN_MAX_FIELDS_PER_RECORD = env_int("QUERN_MAX_FIELDS_PER_RECORD", 1000)
# Seconds a failed or cancelled job's stored input is kept for a retry; then reconcile removes it.
QUERN_KEEP_FAILED_INPUT = env_int("QUERN_KEEP_FAILED_INPUT", 24 * 3600)
QUERN_RECONCILE_INTERVAL = env_int("QUERN_RECONCILE_INTERVAL", 30)  # seconds between reconcile runs
QUERN_RECONCILE_AFTER = env_int("QUERN_RECONCILE_AFTER", 60)  # a step idle this long is re-sent
QUERN_PAGE_SIZE = 20
# The open queue (manage.py consume): a larger submit message is dead-lettered; bigger documents go
# through the HTTP API, which streams them. Well under RabbitMQ's own max_message_size (128 MiB).
QUERN_MAX_MESSAGE_BYTES = env_int("QUERN_MAX_MESSAGE_BYTES", 32 * 1024**2)
# A chunk whose runs killed their worker this many times fails its job instead of being redelivered for ever.
# Autobatching (indexing/pipeline/batching.py): documents up to this size are split, indexed and
# made live together with the others waiting, up to this many in one batch. Any document of one
# chunk: the 51 corpus pages over 256 KiB, split and parsed twice on their own and each made live
# in its own transaction, took a fifth of the archive's worker time (py-spy, 2026-12-03).
QUERN_BATCH_MAX_BYTES = env_int("QUERN_BATCH_MAX_BYTES", QUERN_MAX_CHUNK_BYTES)
# A document up to this size is kept in the database (StoredBytes), not as a file of its own.
# 4 KiB: a one-record message gains (no file to create), but the 2,391 corpus web pages (15 KB on
# average) as rows took their archive 32–39 s against 27 s as files (measured; 28 s at 4 KiB).
QUERN_INLINE_MAX_BYTES = env_int("QUERN_INLINE_MAX_BYTES", 4 * 1024)
QUERN_BATCH_SIZE = env_int("QUERN_BATCH_SIZE", 500)
# A batch's documents, in all. Each batch's commit counts its words once (one row each in
# indexing_term): the corpus archive measured 14.95 s at 1 MiB (with all pages in batches: 13.62),
# 10.81 at 4, 10.42 at 8 and 9.00 / 8.91 at 16 MiB, a worker at most 122 MB (2026-12-03).
QUERN_BATCH_BYTES = env_int("QUERN_BATCH_BYTES", 16 * 1024 * 1024)
# … and it commits its documents in groups, each ending with the document that brings it to this
# many records, since a worker holds a group's parsed records until its commit: 16 MiB of 0.45 MB
# CSV files (about 160,000 records) took a worker to 238 MB in one commit, where 16 MiB of web
# pages (about 4,000 records) took it to 122 MB.
QUERN_BATCH_RECORDS = env_int("QUERN_BATCH_RECORDS", 50_000)
# Milliseconds a lane's next batch waits after the one before it was claimed: in a crowd, the
# documents of that time go together (a batch has a fixed cost, ~17 ms of CPU: 2.3 ms a document
# in batches of 10, 0.6 in batches of 500, measured); a lone document, long after the last claim,
# never waits.
QUERN_BATCH_LINGER_MS = env_int("QUERN_BATCH_LINGER_MS", 200)
if not 0 <= QUERN_BATCH_LINGER_MS < 5000:
    # Past batching.TRIGGER_RESEND (10 s) a lingering trigger would look lost and be sent again.
    raise ImproperlyConfigured("QUERN_BATCH_LINGER_MS must be between 0 and 4999 milliseconds.")
# Archives (.zip, .tar, .tar.gz), unpacked by a worker a batch at a time: at most this many files,
# unpacking to at most this many bytes and this many times the archive's own size (a bomb fails
# the archive's job, and none of its files is stored).
QUERN_ARCHIVE_MAX_MEMBERS = env_int("QUERN_ARCHIVE_MAX_MEMBERS", 1_000_000)
QUERN_ARCHIVE_MAX_BYTES = env_int("QUERN_ARCHIVE_MAX_BYTES", 2 * 1024**3)
QUERN_ARCHIVE_MAX_RATIO = env_int("QUERN_ARCHIVE_MAX_RATIO", 100)
# The open queue's consumer takes up to this many messages in one transaction (its prefetch).
QUERN_CONSUMER_BATCH = env_int("QUERN_CONSUMER_BATCH", 500)
QUERN_MAX_QUERY_CHARS = env_int("QUERN_MAX_QUERY_CHARS", 1000)  # a longer query: 400 query_too_long
QUERN_MAX_QUERY_TERMS = env_int("QUERN_MAX_QUERY_TERMS", 64)  # words in a query: 400 past this
QUERN_MAX_BULK_DOCUMENTS = env_int("QUERN_MAX_BULK_DOCUMENTS", 10_000)  # per JSON Lines request
# 5, not 3: twenty random pool kills during one job (make faults) hit one chunk three times in a
# CI run and failed the job; a chunk that kills its worker by itself is still stopped after 5.
QUERN_MAX_CHUNK_ATTEMPTS = env_int("QUERN_MAX_CHUNK_ATTEMPTS", 5)
# Backpressure (indexing/pipeline/backpressure.py): past this much waiting work (jobs not yet split +
# chunks not yet indexed) new submissions are refused with 503 + Retry-After.
QUERN_MAX_WAITING = env_int("QUERN_MAX_WAITING", 2000)
# Who may call: API keys (indexing.access). Off in the embedded first try (DEBUG on), which says
# so on every page and at start; on in production unless turned off on purpose.
QUERN_REQUIRE_KEYS = env_bool("QUERN_REQUIRE_KEYS", not DEBUG)
# Searching (page and API) without a login or key, for a public index.
QUERN_PUBLIC_SEARCH = env_bool("QUERN_PUBLIC_SEARCH", False)
# Requests per key and per client address ("N/s", "N/m", "N/h"; "" for none): past them, 429 with
# Retry-After. The address's counts every request, so a flood of bad keys is held too.
QUERN_RATE_PER_KEY = os.environ.get("QUERN_RATE_PER_KEY", "100/s" if QUERN_REQUIRE_KEYS else "")
# Proxies in front of the web server whose X-Forwarded-For is believed (0: the caller's own address).
QUERN_TRUSTED_PROXIES = env_int("QUERN_TRUSTED_PROXIES", 0)
if QUERN_TRUSTED_PROXIES:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
QUERN_RATE_PER_ADDRESS = os.environ.get("QUERN_RATE_PER_ADDRESS", "200/s" if QUERN_REQUIRE_KEYS else "")
# Failed logins (pages and admin) allowed per address within the window; then 429 until it ends.
QUERN_LOGIN_FAILURES = env_int("QUERN_LOGIN_FAILURES", 10)
QUERN_LOGIN_WINDOW = env_int("QUERN_LOGIN_WINDOW", 15 * 60)
QUERN_RETRY_AFTER = env_int("QUERN_RETRY_AFTER", 30)  # seconds, the Retry-After of a refusal
# Backfills feed new jobs only while waiting work is below this share of QUERN_MAX_WAITING, so
# interactive submissions keep room (indexing/pipeline/backfills.py).
QUERN_BACKFILL_WINDOW = env_int("QUERN_BACKFILL_WINDOW", QUERN_MAX_WAITING // 2)
QUERN_BACKFILL_QUEUE = "backfill"
QUERN_BACKFILL_INTERVAL = env_int("QUERN_BACKFILL_INTERVAL", 5)  # seconds between feeds of running backfills
# RabbitMQ's safety net per queue (a policy: `manage.py broker_policy`), far above QUERN_MAX_WAITING.
QUERN_BROKER_MAX_LENGTH = env_int("QUERN_BROKER_MAX_LENGTH", 100_000)

# --- Celery -------------------------------------------------------------------------------
BROKER_DIR = QUERN_DATA_DIR / "broker"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if broker.kind(CELERY_BROKER_URL) == "filesystem":
    for _folder in ("queue", "processed", "control", "staging"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
    # kombu's filesystem transport with atomic publishing (indexing/broker/transport.py says why).
    CELERY_BROKER_TRANSPORT = "indexing.broker.transport:Transport"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # A message is written here, then renamed into the queue folder: never read half-written.
        "staging_folder": str(BROKER_DIR / "staging"),
        # One folder for both directions; processed messages are not kept (a processed_folder
        # equal to the queue folder makes messages silently never consumed: PITFALLS.md).
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # Broadcasts (celery inspect/control) keep their exchange bindings here, not in the cwd.
        "control_folder": str(BROKER_DIR / "control"),
        # Every hop costs about one polling interval (1 s by default: a 1-chunk job took 4 s).
        "polling_interval": float(os.environ.get("QUERN_FILESYSTEM_POLL", "0.02")),
    }
elif broker.kind(CELERY_BROKER_URL) == "rabbitmq":
    # Publisher confirms: a publish RabbitMQ refuses (a queue full under the max-length policy,
    # overflow reject-publish) raises instead of vanishing; pipeline.dispatch logs it and the
    # database keeps the work for reconcile.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
# Tasks reuse their process's database connection; Django's CONN_MAX_AGE and health checks close
# it (project/celery.py). Celery's fixup still recycles it after this many tasks.
CELERY_DB_REUSE_MAX = 10_000
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# On the filesystem broker, one more message per pool process waits in the worker: a worker
# there polls for its next message only after the last one's ack, and each poll waited up to the
# polling interval, 19 ms median between two chunks (measured). sentences.csv, medians of 3 in
# the same runs: 15.25 -> 13.44 s against a floor of 7.05 and 7.03 s. RabbitMQ pushes the next
# message as the ack arrives: prefetch stays at one there.
CELERY_WORKER_PREFETCH_MULTIPLIER = 2 if broker.kind(CELERY_BROKER_URL) == "filesystem" else 1
# RabbitMQ closes a channel whose message stays unacked past consumer_timeout (30 min) and the
# worker exits: every task ends long before that; big work is more chunks.
CELERY_TASK_TIME_LIMIT = env_int("QUERN_TASK_TIME_LIMIT", 600)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 30
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues are declared without arguments everywhere: RabbitMQ refuses a redeclaration with other
# arguments (PRECONDITION_FAILED), so the x-max-length safety net is a policy (README, "Backpressure").
CELERY_TASK_QUEUES = (
    Queue("ingest", durable=True),
    Queue("index", durable=True),
    Queue(QUERN_BACKFILL_QUEUE, durable=True),
)
CELERY_TASK_DEFAULT_QUEUE = "ingest"
CELERY_TASK_ROUTES = {
    "quern.split": {"queue": "ingest"},
    "quern.reconcile": {"queue": "ingest"},
    "quern.feed_backfills": {"queue": "ingest"},
    "quern.index_chunk": {"queue": "index"},
    "quern.finalize": {"queue": "index"},
    "quern.purge_job": {"queue": "index"},
}
CELERY_BEAT_SCHEDULE = {
    "reconcile": {"task": "quern.reconcile", "schedule": float(QUERN_RECONCILE_INTERVAL)},
    # Backfills feed their next jobs as capacity frees; a feed older than its interval is dropped.
    "feed-backfills": {
        "task": "quern.feed_backfills",
        "schedule": float(QUERN_BACKFILL_INTERVAL),
        "options": {"expires": float(QUERN_BACKFILL_INTERVAL)},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(QUERN_DATA_DIR / "celerybeat-schedule")
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"indexing": {"handlers": ["console"], "level": os.environ.get("QUERN_LOG_LEVEL", "INFO")}},
}
