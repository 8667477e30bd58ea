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

JS_STAMP := tests/js/node_modules/.installed

.PHONY: run test test-deps chromium lint typecheck bench bench-scale bench-deps install clean

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

## What the tests need besides Python: the JavaScript packages the interop tests run (node, from
## tests/js's lockfile) and headless Chromium (Debian's package, installed when root). Idempotent.
test-deps: $(STAMP) $(JS_STAMP) chromium

$(JS_STAMP): tests/js/package-lock.json tests/js/package.json
	@if command -v npm >/dev/null 2>&1; then \
	  cd tests/js && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.installed; \
	else echo "make: npm is not installed; the JavaScript interop tests will be skipped" >&2; fi

chromium:
	@command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing chromium (apt-get)"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
	      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }; } \
	      || echo "make: could not install chromium; the browser tests will be skipped" >&2; \
	  else echo "make: chromium is not installed (apt-get install chromium); the browser tests will be skipped" >&2; fi; }

## The whole suite: lint, types, tests. PostgreSQL variants run on MICROCRED_TEST_DATABASE_URL
## when set, else on a throwaway cluster (tests/pgcluster.py) when PostgreSQL's binaries exist.
test: test-deps
	$(BIN)/ruff check app migrations tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n 2 --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check app migrations tests bench
	$(BIN)/ruff format --check app migrations tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

## Benchmarks against a real server on loopback (hot paths against bench/reference.py, QR cache,
## bulk issuance); they print figures, ratios and PASS/FAIL. `make bench-scale`: the 10M-row run.
bench: $(STAMP) bench-deps
	$(BIN)/python -m bench.run

bench-scale: $(STAMP) bench-deps
	$(BIN)/python -m bench.run scale

## wrk drives the load (Debian's package, installed when root); without it, httpx (slower).
bench-deps:
	@command -v wrk >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing wrk (apt-get)"; \
	    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1 \
	      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }; } \
	      || echo "make: could not install wrk; the bench uses httpx" >&2; \
	  else echo "make: wrk is not installed (apt-get install wrk); the bench uses httpx" >&2; fi; }

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
