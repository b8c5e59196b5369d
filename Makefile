# leadflow: `make run` starts it on SQLite; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run serve demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up and serve the demo team on a throwaway SQLite database, with new leads arriving: sign in at
## http://127.0.0.1:8000/login with an account it prints
run: $(STAMP)
	$(BIN)/leadflow serve --demo

## Serve your own rules (leadflow/examples/rules.yaml unless LEADFLOW_RULES says) on leadflow.db
serve: $(STAMP)
	$(BIN)/leadflow serve

## Watch the first-contact chain work on a throwaway database
demo: $(STAMP)
	$(BIN)/leadflow demo

## Set up and run every check: ruff, mypy, and the tests on SQLite and PostgreSQL, the pages in Chromium
test: $(STAMP)
	./scripts/ensure-postgres
	./scripts/ensure-chromium
	./scripts/ensure-dovecot
	$(BIN)/ruff check leadflow tests bench
	$(BIN)/ruff format --check leadflow tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q --durations=25

lint: $(STAMP)
	$(BIN)/ruff check leadflow tests bench
	$(BIN)/mypy

## Benchmarks (not part of the tests); figures go to docs/performance.md
bench: $(STAMP)
	$(BIN)/python -m bench.intake
	$(BIN)/python -m bench.sla
	$(BIN)/python -m bench.routing
	$(BIN)/python -m bench.batch
	$(BIN)/python -m bench.accounts
	$(BIN)/python -m bench.web
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.soak --minutes 10

clean:
	rm -rf $(VENV) leadflow.db leadflow.db-wal leadflow.db-shm .pytest_cache .mypy_cache .ruff_cache
