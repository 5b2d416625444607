# One command to serve, one to test; both build the virtualenv first when it is missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: serve test test-fast lint bench setup

# Byte-compiled at install: the environment here sets PYTHONDONTWRITEBYTECODE=1, so a module
# left uncompiled is compiled again in every process that imports it (7 s instead of 3.3 s to
# import the service in each process). compileall on every core does what pip's one-process
# compile does, in a third of the time (and, like pip, skips files of newer Pythons' syntax,
# such as torch's py312 test helpers, which fail it).
$(BIN)/torchkiln: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	touch $@

setup: $(BIN)/torchkiln

serve: setup  ## set up, apply migrations, serve on SQLite with an in-process worker pool
	$(BIN)/torchkiln serve --host $(HOST) --port $(PORT)

# Two processes: most slow tests wait on servers and workers, so they overlap well. Files stay
# whole on one process (their module fixtures start one server each); timing bounds run after.
test: setup  ## set up and run the whole test suite (needs PostgreSQL on 127.0.0.1:5432, see README)
	$(BIN)/python -m pytest -n 2 --dist loadfile -m "not serial" --durations=15
	$(BIN)/python -m pytest -m serial

test-fast: setup  ## everything but the slow tests (live servers, browser, real data, wheel)
	$(BIN)/python -m pytest -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: setup  ## benchmarks: print timings and ratios measured side by side
	$(BIN)/python bench/metrics_history.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/wakeup.py
	$(BIN)/python bench/predict.py --ceiling --torchserve --repeats 3
