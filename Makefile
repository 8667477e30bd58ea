# microcred: `make run` and `make test` are all a fresh machine needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MICROCRED_ADMIN_TOKEN ?= dev-admin-token
# The dev token above is public: serve on loopback unless told otherwise (make run HOST=0.0.0.0).
# Only a value given on the command line counts: some shells export HOST as the machine's name.
HOST := $(if $(filter command line,$(origin HOST)),$(HOST),127.0.0.1)
PORT := $(if $(filter command line,$(origin PORT)),$(PORT),8000)
export MICROCRED_BASE_URL ?= http://localhost:$(PORT)

.PHONY: run test lint typecheck bench install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

## Migrate a local SQLite database, seed the demo issuer and credential, serve on $(HOST):$(PORT).
run: $(STAMP)
	$(BIN)/microcred db upgrade
	$(BIN)/microcred demo
	$(BIN)/microcred serve --host $(HOST) --port $(PORT)

## The whole suite: lint, types, tests (PostgreSQL too when MICROCRED_TEST_DATABASE_URL is set).
test: $(STAMP)
	$(BIN)/ruff check app migrations tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check app migrations tests bench
	$(BIN)/ruff format --check app migrations tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks against a real server on loopback; they print figures and ratios.
bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
