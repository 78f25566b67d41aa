#!/usr/bin/env bash
# Start Quern's web app and one Celery worker (with the reconcile schedule); Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
HOST=${QUERN_HOST:-127.0.0.1}
PORT=${QUERN_PORT:-8000}

worker_pid=""
web_pid=""
consumer_pid=""
stop() {
  trap - INT TERM EXIT
  echo; echo "Stopping Quern…"
  [ -n "$web_pid" ] && kill -TERM "$web_pid" 2>/dev/null || true
  [ -n "$worker_pid" ] && kill -TERM "$worker_pid" 2>/dev/null || true
  [ -n "$consumer_pid" ] && kill -TERM "$consumer_pid" 2>/dev/null || true
  # Give the worker its warm shutdown, then make sure nothing is left behind.
  for _ in $(seq 1 50); do
    kill -0 "$worker_pid" 2>/dev/null || kill -0 "$web_pid" 2>/dev/null \
      || { [ -n "$consumer_pid" ] && kill -0 "$consumer_pid" 2>/dev/null; } || break
    sleep 0.2
  done
  [ -n "$worker_pid" ] && kill -KILL -- "-$worker_pid" 2>/dev/null || true
  [ -n "$web_pid" ] && kill -KILL -- "-$web_pid" 2>/dev/null || true
  [ -n "$consumer_pid" ] && kill -KILL -- "-$consumer_pid" 2>/dev/null || true
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

# Each in its own process group, so stopping takes its children (pool processes) too.
setsid $BIN/celery -A project worker -B -Q ingest,index,backfill -c "${QUERN_WORKER_CONCURRENCY:-2}" \
  -n "quern@localhost" -l "${QUERN_WORKER_LOG_LEVEL:-info}" &
worker_pid=$!
setsid $BIN/python manage.py runserver --noreload "$HOST:$PORT" &
web_pid=$!

# The open queue (submit over AMQP, events) needs RabbitMQ; on the filesystem broker it is off.
case "${CELERY_BROKER_URL:-}" in
  amqp://*|amqps://*|pyamqp://*)
    setsid $BIN/python manage.py consume &
    consumer_pid=$!
    echo "Open queue: send documents to the AMQP queue quern.submit; job events on exchange quern.events." ;;
  *) echo "Open queue off: it needs RabbitMQ (set CELERY_BROKER_URL=amqp://…)." ;;
esac

echo "Quern is starting: http://$HOST:$PORT/  (admin: http://$HOST:$PORT/admin/ — create a user with"
echo "  .venv/bin/python manage.py createsuperuser). Press Ctrl-C to stop."
# Exit (and stop the other) as soon as either one ends.
wait -n "$worker_pid" "$web_pid" $consumer_pid || true
