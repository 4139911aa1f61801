# The only commands anyone needs. `make ask` runs the main job; `make test` runs every check.
VENV := .venv
BIN := $(VENV)/bin
SHARED_CORPUS := ../shared/corpus
QUESTION ?= how do I do sagas

$(BIN)/.installed: pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU build; an unpinned torch would pull a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	# Then the exact set last tested (pyproject.toml gives ranges, for those embedding bekb).
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e '.[dev]'
	touch $@

install: $(BIN)/.installed

# Re-resolve the ranges of pyproject.toml into requirements.lock (after changing them).
lock: install
	$(BIN)/pip install -q -e '.[dev]'
	{ sed -n 1,2p requirements.lock; $(BIN)/pip freeze --exclude-editable | grep -iv '^torch=='; } > requirements.lock.new
	mv requirements.lock.new requirements.lock

# Offline (this machine, CI): copy the pinned corpus from the local mirror; else from upstream.
corpus: install
	@if [ -d "$(SHARED_CORPUS)" ]; then $(BIN)/bekb corpus sync --from $(SHARED_CORPUS); \
	else $(BIN)/bekb corpus sync; fi

ask: corpus
	$(BIN)/bekb ask "$(QUESTION)"

fmt: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

lint: install
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

# The README's test command: lint and type check first, then the quick selection (a few
# minutes: everything but the hardening and golden-question tests).
test: lint typecheck
	$(BIN)/pytest -n 2 --dist worksteal

# What `make test` leaves out: hostile input, faults and kills (`hardening`), and retrieval
# quality on the golden questions (`slow`). CI runs both targets.
test-rest: install
	$(BIN)/pytest -m "(hardening or slow) and not live"

# The wheel, installed outside the checkout into a fresh environment, on a root of its own.
wheel-check: install
	bash .ci/wheel_check

.PHONY: install lock corpus ask fmt lint typecheck test test-rest wheel-check
