# One command to serve, one to test; both build the virtualenv first when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test test-fast lint bench setup

$(BIN)/torchkiln: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/torchkiln

serve: setup  ## set up, apply migrations, serve on SQLite with an in-process worker pool
	$(BIN)/torchkiln serve --host $(HOST) --port $(PORT)

test: setup  ## set up and run the whole test suite (needs PostgreSQL on 127.0.0.1:5432, see README)
	$(BIN)/python -m pytest

test-fast: setup  ## everything but the slow tests (live servers, browser, real data, wheel)
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: setup  ## benchmarks: print timings and ratios measured side by side
	$(BIN)/python bench/metrics_history.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/predict.py --torchserve
