# leadflow: `make run` starts it on SQLite; `make test` runs every check.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Set up, create the SQLite database with the example rules, and serve the API on http://127.0.0.1:8000
run: $(STAMP)
	$(BIN)/leadflow serve

## Watch the first-contact chain work on a throwaway database
demo: $(STAMP)
	$(BIN)/leadflow demo

## Set up and run every check: ruff, mypy, and the tests on SQLite and PostgreSQL
test: $(STAMP)
	./scripts/ensure-postgres
	$(BIN)/ruff check leadflow tests bench
	$(BIN)/ruff format --check leadflow tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

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
	command -v wrk >/dev/null || apt-get install -y wrk
	$(BIN)/python -m bench.http
	$(BIN)/python -m bench.soak --minutes 10

clean:
	rm -rf $(VENV) leadflow.db leadflow.db-wal leadflow.db-shm .pytest_cache .mypy_cache .ruff_cache
