#!/usr/bin/env bash
# make run: the processes of the Procfile under scripts/supervise.py — the web app (gunicorn), a
# Celery worker, celery beat (reconcile, backfills) and, with RabbitMQ, the open queue's consumer.
# One that ends is started again (the others go on); Ctrl-C or SIGTERM stops them all: SIGTERM
# to each one's leader, SIGKILL to what is left once they ended or 20 s later.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${QUERN_HOST:-127.0.0.1}
PORT=${QUERN_PORT:-8000}

# Which broker the settings name (indexing.broker, the one place that tells them apart), and
# whether API keys and logins are required (indexing.access).
facts=$(DJANGO_SETTINGS_MODULE=project.settings $BIN/python -c \
  'import django; django.setup(); from indexing import access, broker; print(broker.configured(), access.required())')
read -r broker keys <<<"$facts"
processes="web worker beat"
if [ "$broker" = rabbitmq ]; then
  processes="$processes consumer"
  echo "Open queue: send documents to the AMQP queue quern.submit; job events on exchange quern.events."
else
  echo "Open queue off: it needs RabbitMQ (set CELERY_BROKER_URL=amqp://…)."
fi
echo "Quern is starting: http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/ — create a user with"
echo "  .venv/bin/python manage.py createsuperuser). Press Ctrl-C to stop."
if [ "$keys" = False ]; then
  echo "Open mode: no API key or login is asked — anyone who can reach http://$HOST:$PORT/ may submit,"
  echo "  cancel and search. Before putting it on a network: DJANGO_DEBUG=0 (keys and logins required;"
  echo "  HTTPS too: behind a TLS proxy, or DJANGO_HTTPS=0 for plain HTTP)."
fi
# shellcheck disable=SC2086  # the process names are words
exec $BIN/python scripts/supervise.py $processes
