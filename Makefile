# ivpush — two commands: `make demo` and `make test`. Everything else is a helper target.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# A throwaway local RabbitMQ for `make test` and `make demo` (deploy/local/rabbitmq.sh: Debian's
# rabbitmq-server on loopback, private ports, files under .local/rabbitmq). Each target stops
# the node only when it started it.
RMQ     := deploy/local/rabbitmq.sh
RMQ_ENV := $(or $(IVPUSH_RABBITMQ_DIR),.local/rabbitmq)/env
BROKER_UP = started=; trap '[ -n "$$started" ] && $(RMQ) stop; exit 130' INT TERM; \
	if ! $(RMQ) status >/dev/null 2>&1; then \
	  if $(RMQ) start >/dev/null; then started=1; else echo "no local RabbitMQ (see above)" >&2; fi; \
	fi; \
	if $(RMQ) status >/dev/null 2>&1; then set -a; . ./$(RMQ_ENV); set +a; fi
BROKER_DOWN = if [ -n "$$started" ]; then $(RMQ) stop; fi
# Same for a throwaway PostgreSQL cluster (deploy/local/postgres.sh: Debian's server on loopback,
# port 45432, files under .local/postgres) for the PostgreSQL store's tests; without one they skip
# (fail under CI).
PG     := deploy/local/postgres.sh
PG_ENV := $(or $(IVPUSH_POSTGRES_DIR),.local/postgres)/env
PG_UP = pg_started=; trap '[ -n "$$pg_started" ] && $(PG) stop; [ -n "$$started" ] && $(RMQ) stop; exit 130' INT TERM; \
	if ! $(PG) status >/dev/null 2>&1; then \
	  if $(PG) start >/dev/null; then pg_started=1; else echo "no local PostgreSQL (see above)" >&2; fi; \
	fi; \
	if $(PG) status >/dev/null 2>&1; then set -a; . ./$(PG_ENV); set +a; fi
# The demo keeps its state here, for `ivpush serve --state` (the last line of `make demo` says so).
DEMO_STATE := .local/demo/state.db

PG_DOWN = if [ -n "$$pg_started" ]; then $(PG) stop; fi

.PHONY: setup demo test lint typecheck contracts unit bench bench-quick clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ivpush needs Python 3.11+")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

setup: $(STAMP)

## demo: set up, run the bundled sample feeds (HL7 v2 + FHIR) through RabbitMQ and `ivpush consume`, print the charges and the administrations without a line (facility, then professional claims), then how to open the console on the demo's state
demo: setup
	$(BIN)/ivpush check
	@rm -f $(DEMO_STATE) $(DEMO_STATE)-wal $(DEMO_STATE)-shm; $(BROKER_UP); \
	if [ -n "$${IVPUSH_AMQP_URL:-}" ]; then $(BIN)/python -m connector.cli.live_demo --state $(DEMO_STATE); status=$$?; \
	else echo "no broker: replaying the feeds without one" >&2; $(BIN)/ivpush demo --state $(DEMO_STATE); status=$$?; fi; \
	$(BROKER_DOWN); exit $$status

## test: set up and pass the whole suite (lint, types, purity contracts, tests; bus tests on a local RabbitMQ, store tests on a local PostgreSQL)
test: lint typecheck contracts
	@$(BROKER_UP); $(PG_UP); $(BIN)/pytest; status=$$?; $(PG_DOWN); $(BROKER_DOWN); exit $$status

lint: setup
	$(BIN)/ruff check connector tests benchmarks

typecheck: setup
	$(BIN)/mypy

contracts: setup
	$(BIN)/lint-imports

unit: setup
	$(BIN)/pytest tests/unit

BENCH_STAMP := $(VENV)/.bench-stamp
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	@touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --quick

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

## deploy-check: only the deploy/ checks (Helm render + lint, Kubernetes schemas, compose config, hadolint, RabbitMQ files)
.PHONY: deploy-check
deploy-check: setup
	$(BIN)/pytest tests/integration/test_deploy.py
