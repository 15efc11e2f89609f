# WarmHouse — every developer and CI command starts here.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
BUF_VERSION := 1.75.0
BUF := .tools/node_modules/.bin/buf
PROTODEPS := .build/protodeps
PROTOS := $(shell find protos -name '*.proto' | sort)
export PYTHONPATH := $(CURDIR)/gen:$(CURDIR)

.PHONY: help venv gen gen-check lint buf-lint buf-breaking test test-unit test-integration test-e2e run demo bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

venv: $(BIN)/.installed  ## create the virtualenv and install everything

$(BUF):
	npm install --silent --no-save --no-package-lock --prefix .tools @bufbuild/buf@$(BUF_VERSION)

$(PROTODEPS): $(BIN)/.installed
	$(PY) -m services.devtools.protodeps $(PROTODEPS)

gen: $(BIN)/.installed $(PROTODEPS)  ## regenerate gen/ from protos/
	$(PY) -m services.devtools.protogen --protodeps $(PROTODEPS) --out gen $(PROTOS)

gen-check: $(BIN)/.installed $(PROTODEPS)  ## fail when gen/ differs from a fresh `make gen`
	$(PY) -m services.devtools.protogen --protodeps $(PROTODEPS) --out .build/gen-check $(PROTOS)
	diff -r --exclude=__pycache__ gen .build/gen-check || { echo "gen/ is stale: run 'make gen' and commit"; exit 1; }

buf-lint: $(BUF) $(PROTODEPS)
	$(BUF) lint

buf-breaking: $(BUF)  ## compare the protos with main's (no-op on main itself)
	@if git rev-parse --verify -q main >/dev/null && git cat-file -e main:gen/warmhouse.binpb 2>/dev/null; then \
	  git show main:gen/warmhouse.binpb > .build/main.binpb; \
	  $(BUF) breaking gen/warmhouse.binpb --against .build/main.binpb --config buf.yaml; \
	else echo "buf-breaking: main has no descriptor set yet, nothing to compare"; fi

lint: $(BIN)/.installed gen-check buf-lint buf-breaking  ## ruff, mypy, import boundaries, buf lint/breaking, gen/ freshness
	$(BIN)/ruff check services tests bench
	$(BIN)/ruff format --check services tests bench
	$(BIN)/mypy services tests bench
	$(PY) -m services.devtools.import_boundaries services

test-unit: $(BIN)/.installed
	$(BIN)/pytest tests/unit

test-integration: $(BIN)/.installed
	$(BIN)/pytest tests/integration

test-e2e: $(BIN)/.installed
	$(BIN)/pytest tests/e2e

test: lint test-unit test-integration test-e2e  ## everything CI runs

run: $(BIN)/.installed  ## start the whole stack; REST on 127.0.0.1:$${WARMHOUSE_HTTP_PORT:-8080} (DEMO=1: see demo)
	$(if $(DEMO),WARMHOUSE_DEMO=$(DEMO) )$(PY) -m services.devstack

demo: $(BIN)/.installed  ## `make run` with a demo home: heaters on a schedule, simulated hardware
	WARMHOUSE_DEMO=1 $(PY) -m services.devstack

bench: $(BIN)/.installed  ## print throughput and latency figures
	$(PY) -m bench
	$(PY) -m bench.billing
	$(PY) -m bench.notifications

clean:  ## remove build output (keeps .venv and data)
	rm -rf .build .pytest_cache .mypy_cache .ruff_cache
