# TruLayer: two commands on a fresh machine.
#   make up    install, start Kafka + Redis + every service (one process, embedded chDB), print a key
#   make test  install, start a private Kafka + Redis for the tests, run lint, types and the suite
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROJECTS := pyproject.toml uv.lock $(wildcard libs/*/pyproject.toml services/*/pyproject.toml deploy/local/pyproject.toml)

# The test session's own ports and throw-away data (never the dev stack's). Two checkouts on
# one machine run their suites side by side with different ports: `make test TEST_PORT_SHIFT=100`.
TEST_PORT_SHIFT ?= 0
PYTEST_ARGS ?=  # a subset: make test PYTEST_ARGS="tests/integration/test_sdk.py -k buffer"
TEST_KAFKA_PORT := $(shell echo $$((39092 + $(TEST_PORT_SHIFT))))
TEST_KAFKA_CONTROLLER_PORT := $(shell echo $$((39093 + $(TEST_PORT_SHIFT))))
TEST_REDIS_PORT := $(shell echo $$((36379 + $(TEST_PORT_SHIFT))))
TEST_DATA := .trulayer/test
TEST_ENV := TRULAYER_DATA_DIR=$(TEST_DATA) TRULAYER_KAFKA_PORT=$(TEST_KAFKA_PORT) \
            TRULAYER_KAFKA_CONTROLLER_PORT=$(TEST_KAFKA_CONTROLLER_PORT) TRULAYER_REDIS_PORT=$(TEST_REDIS_PORT)
INFRA_TEST := $(BIN)/python -m trulayer_local.infra --data-dir $(TEST_DATA) --kafka-port $(TEST_KAFKA_PORT) \
              --kafka-controller-port $(TEST_KAFKA_CONTROLLER_PORT) --redis-port $(TEST_REDIS_PORT)

.PHONY: help install up down test test-unit check lint fmt bench bench-otlp bench-sdk bench-reads chaos topic-schemas clean

help:
	@echo "make up     start the local stack (Ctrl-C stops it)"
	@echo "make down   stop a local stack left behind"
	@echo "make test   lint, types and the whole test suite against a private Kafka/Redis/chDB"
	@echo "make bench  benchmarks against a running 'make up' stack, then the read bench on a stack of its own (bench-otlp, bench-sdk, bench-reads: one each)"
	@echo "make chaos  fault injection on a stack of its own (own ports and data); prints the fault table"
	@echo "make topic-schemas  regenerate docs/topics/*.json from the record types"

$(UV):
	@echo "[install] uv into $(TOOLS)/"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/pip install --quiet --disable-pip-version-check 'uv>=0.5,<1'

$(STAMP): $(UV) $(PROJECTS)
	@echo "[install] Python packages into $(VENV)/ (uv sync, locked)"
	@UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --locked --all-packages --python $(PYTHON) --quiet
	@touch $(STAMP)

install: $(STAMP)

up: install
	@$(BIN)/trulayer-local up

down: install
	@$(BIN)/trulayer-local down

check: install
	@echo "[check] ruff"
	@$(BIN)/ruff check .
	@$(BIN)/ruff format --check --quiet . || { echo "ruff format: run 'make fmt'"; exit 1; }
	@echo "[check] mypy"
	@$(BIN)/mypy libs services deploy/local/src

lint: check

fmt: install
	@$(BIN)/ruff format .
	@$(BIN)/ruff check --fix .

test-unit: install
	@$(BIN)/pytest tests/unit -q

# The private infra is torn down whatever pytest's outcome; pytest's exit code 5
# ("no tests collected") is a failure here, not a pass.
test: check
	@rm -rf $(TEST_DATA)
	@$(INFRA_TEST) start
	@set +e; $(TEST_ENV) $(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS); rc=$$?; \
	  $(INFRA_TEST) stop; rm -rf $(TEST_DATA); \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

bench: install
	@$(BIN)/python bench/ingest_bench.py
	@$(BIN)/python bench/eval_bench.py
	@$(BIN)/python bench/control_bench.py
	@$(BIN)/python bench/otlp_bench.py
	@$(BIN)/python bench/sdk_overhead_bench.py
	@# The read path at 10 million traces: a stack of its own (.trulayer/bench-reads, ports 28xxx).
	@$(BIN)/python bench/read_bench.py

bench-otlp: install
	@$(BIN)/python bench/otlp_bench.py

bench-sdk: install
	@$(BIN)/python bench/sdk_overhead_bench.py

# The read path at 10 million traces: a stack of its own (.trulayer/bench-reads, ports 28xxx).
bench-reads: install
	@$(BIN)/python bench/read_bench.py

# Its own stack on free ports and in .trulayer/chaos: runs beside a `make up` stack.
chaos: install
	@$(BIN)/python -m tests.chaos

# The JSON Schemas of the topic records (docs/topics/*.json), generated from their types.
topic-schemas: install
	@$(BIN)/python -m trulayer_common.topics.catalog docs/topics

clean:
	rm -rf $(VENV) $(TOOLS) .mypy_cache .ruff_cache .pytest_cache
