# seedworker: every install step lives here (and in pyproject.toml), never on a machine by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help setup run test test-fast lint lock lock-check flower bench bench-large eval-tags eval-dedup clean

help:
	@echo "make run     set up and run seedworker (embedded Redis + SQLite, inbox ./inbox)"
	@echo "make test    set up and run the whole test suite"
	@echo "make lint    ruff + mypy"
	@echo "make lock    regenerate requirements/run.lock and dev.lock from pyproject.toml (make lock-check: verify)"
	@echo "make flower  Flower against the configured broker"
	@echo "make bench   CPU per stage against budgets, throughput, latency, memory (writes bench/results.json; BENCH_ARGS=\"--quick\")"
	@echo "make eval-tags  learned auto labels on unlabelled documents, through the real stack (per section)"
	@echo "make eval-dedup precision/recall of near-duplicate detection and index cost (bench/eval_dedup.json)"
	@echo "make clean   remove the virtualenv, caches and local data"

# Two installs into one virtualenv, each from a hash-locked file made from pyproject.toml by
# `make lock`: run.lock (what running needs) for `make run`, dev.lock (plus tests, lint,
# profiling) for everything else.  The project itself goes in last, without dependencies.
RUN_STAMP := $(VENV)/.installed-run
LOCK_VENV := .venv-lock
UV        := $(LOCK_VENV)/bin/uv

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml requirements/run.lock | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/run.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
	  echo "pyproject.toml needs what requirements/*.lock does not pin: run make lock"; exit 1; }
	@touch $(RUN_STAMP)

$(STAMP): pyproject.toml requirements/dev.lock | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
	  echo "pyproject.toml needs what requirements/*.lock does not pin: run make lock"; exit 1; }
	@touch $(STAMP) $(RUN_STAMP)

setup: $(STAMP)

run: $(RUN_STAMP)
	$(BIN)/seedworker run

$(UV): requirements/tools.lock
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --require-hashes -r requirements/tools.lock
	@touch $(UV)

# Regenerate requirements/run.lock and dev.lock after editing pyproject.toml's dependencies
# (keeps every other pin; `make lock LOCK_ARGS=--upgrade` moves all pins to the newest allowed).
lock: $(UV)
	$(PYTHON) requirements/lock.py --uv $(UV) $(LOCK_ARGS)

# Fails when the lock files are not what pyproject.toml resolves to (CI runs it; needs PyPI).
lock-check: $(UV)
	$(PYTHON) requirements/lock.py --uv $(UV) --check

# Tests run on every core (pytest-xdist): each pytest worker starts its own embedded Redis,
# and every test has its own directories and databases.  PYTEST_XDIST= runs them in one process.
PYTEST_XDIST ?= -n auto

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_XDIST) -m "not e2e" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check worker tasks tests
	$(BIN)/ruff format --check worker tasks tests
	$(BIN)/mypy

flower: $(RUN_STAMP)
	$(BIN)/seedworker flower

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

# Store + dedup CPU/doc with 10,000 and 1,000,000 documents already stored (SQLite, PostgreSQL);
# prefilled databases are kept and reused.  Example: make bench-large LARGE_ARGS="--sizes 10000,100000"
bench-large: $(STAMP)
	$(BIN)/python -m bench.large --store-scaling $(LARGE_ARGS)

eval-tags: $(STAMP)
	$(BIN)/python -m bench.eval_tags

eval-dedup: $(STAMP)
	$(BIN)/python -m bench.eval_dedup $(EVAL_ARGS)

clean:
	rm -rf $(VENV) $(LOCK_VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info data
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
