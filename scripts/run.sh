#!/usr/bin/env bash
# make run: the processes of the Procfile, run by honcho — the web app, a Celery worker (with beat:
# reconcile, backfills) and, with RabbitMQ, the open queue's consumer. Ctrl-C, SIGTERM, or any one
# of them ending stops them all: SIGTERM to each one's process group, SIGKILL 5 s later.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${QUERN_HOST:-127.0.0.1}
PORT=${QUERN_PORT:-8000}

# Which broker the settings name (indexing.broker, the one place that tells them apart).
broker=$(DJANGO_SETTINGS_MODULE=project.settings $BIN/python -c \
  'import django; django.setup(); from indexing import broker; print(broker.configured())')
processes="web worker"
if [ "$broker" = rabbitmq ]; then
  processes="$processes consumer"
  echo "Open queue: send documents to the AMQP queue quern.submit; job events on exchange quern.events."
else
  echo "Open queue off: it needs RabbitMQ (set CELERY_BROKER_URL=amqp://…)."
fi
echo "Quern is starting: http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/ — create a user with"
echo "  .venv/bin/python manage.py createsuperuser). Press Ctrl-C to stop."
# shellcheck disable=SC2086  # the process names are words
# --env /dev/null: the settings come from this environment only, as the broker check above saw it
# (honcho would otherwise read a .env file that nothing else reads).
exec $BIN/honcho --env /dev/null --procfile Procfile --app-root . start $processes
