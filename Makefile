# Quern — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
BENCH_STAMP := $(VENV)/.installed-bench
NODE_STAMP := examples/node_modules/.installed

.PHONY: run test test-unit fuzz lint install install-test install-bench migrate worker web bench bench-pg bench-relevance faults clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(TEST_STAMP): $(STAMP) requirements-test.txt
	$(BIN)/python -m pip install -q -r requirements-test.txt
	touch $@

install: $(STAMP)

# The open queue's Node.js example (examples/submit.js) is run by the tests: amqplib from its lock file.
$(NODE_STAMP): examples/package.json examples/package-lock.json
	@command -v npm >/dev/null || { echo "Installing Debian's nodejs and npm for the Node.js example"; \
	  (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm >/dev/null) \
	  || { echo "Could not install nodejs: run 'apt-get install nodejs npm' as root"; exit 1; }; }
	cd examples && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install-test: $(TEST_STAMP) $(NODE_STAMP)
	@# Browser tests drive Debian's Chromium (no browser download from the test tool).
	@# DPkg::Lock::Timeout: another apt-get at once (a second install beside this one) is waited for, not failed on.
	@command -v chromium >/dev/null || { echo "Installing Debian's chromium for the browser tests"; \
	  (apt-get -o DPkg::Lock::Timeout=600 update -qq && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq chromium >/dev/null) \
	  || { echo "Could not install chromium: run 'apt-get install chromium' as root"; exit 1; }; }

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

## make run: the web app and a real Celery worker on the embedded default (SQLite + filesystem broker).
run: migrate
	@bash scripts/run.sh

## make test: install what the tests need, then run them all (real worker, real broker).
test: install-test
	QUERN_DATA_DIR=$(CURDIR)/var/test $(BIN)/python -m pytest $(PYTEST_ARGS)

## make lint: ruff (lint and format) and the import contracts in pyproject.toml (lint-imports).
lint: $(TEST_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

## make fuzz: coverage-guided fuzzing (atheris) of every format's split and parse, format
## detection and the query parser for FUZZ_SECONDS (120), starting from tests/fuzz/regressions/;
## exits 1 at the first input that raises anything but ParseError, or is too slow or too big.
FUZZ_SECONDS ?= 120
# libFuzzer's line per new input is left out of the log (its crash report and final stats stay).
fuzz: install-test
	set -o pipefail; $(BIN)/python -m tests.fuzz --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS) 2>&1 \
	  | grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)'; status=$${PIPESTATUS[0]}; exit $$status

test-unit: install-test
	$(BIN)/python -m pytest tests/formats tests/test_query.py -p no:django

$(BENCH_STAMP): $(STAMP) requirements-bench.txt
	$(BIN)/python -m pip install -q -r requirements-bench.txt
	touch $@

install-bench: $(BENCH_STAMP)

## make bench: Quern vs the database's floor and the naive way on the embedded default
## (SQLite + filesystem broker); builds the corpus into corpus/ first if it is missing.
## Options go through BENCH_ARGS, e.g. make bench BENCH_ARGS="--only search,tts --runs 5".
bench: install-bench
	$(BIN)/python -m bench --mode sqlite $(BENCH_ARGS)

## make bench-pg: the same on PostgreSQL + RabbitMQ (database quern_bench, created afresh).
bench-pg: install-bench
	$(BIN)/python -m bench --mode pg $(BENCH_ARGS)

## make bench-relevance: search quality on the judged Cranfield collection (../shared/relevance),
## nDCG@10, recall@10 and questions with no hit beside a plain BM25 of the same run, on SQLite then
## PostgreSQL + RabbitMQ; BENCH_ARGS="--mode sqlite" for one, --docs/--queries/--qrels for another
## SMART collection.
bench-relevance: install-bench
	$(BIN)/python -m bench relevance $(BENCH_ARGS)

## make faults: break one part at a time (pool processes, the worker host, RabbitMQ, PostgreSQL, a
## task delivered twice, a full media disk) while a 200-chunk job runs on make run's processes over PostgreSQL +
## RabbitMQ, count what is left and print the table; exit 1 if a row is not as expected. It stops
## and starts this machine's RabbitMQ and PostgreSQL and mounts a small tmpfs (run as root).
## FAULTS_ARGS="--only pool,postgres" for some.
faults: install-bench
	$(BIN)/python -m bench faults $(FAULTS_ARGS)

## make bench-chart: docs/chunk-size.png from the latest results files that swept chunk sizes.
bench-chart: install-bench
	$(BIN)/python -m bench chart

clean:
	rm -rf var/test var/broker
