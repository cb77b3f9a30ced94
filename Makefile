# dockyard — developer commands. `make serve` and `make test` work on a fresh Debian/Ubuntu machine.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install serve test test-fast lint format typecheck clean system-deps bench reliability

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/dockyard serve

system-deps:
	scripts/install-system-deps.sh

# The whole suite: unit, API, conformance and the real-client interop tests (in parallel).
test: $(STAMP) system-deps
	$(BIN)/pytest -n auto --dist loadgroup $(PYTEST_ARGS)

# Everything that needs no external tool.
test-fast: $(STAMP)
	$(BIN)/pytest -n auto -m 'not interop' $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

# dockyard vs CNCF Distribution 2.8, side by side (issue 8); results in bench/out/. make bench BENCH_ARGS=--quick
BENCH_ARGS ?=
bench: $(STAMP) system-deps
	mkdir -p bench/out
	$(BIN)/python -m bench --json bench/out/last-run.json --markdown bench/out/last-run.md $(BENCH_ARGS)

# The reliability suite (issue 9) and its report, tests/reliability/REPORT.md. make reliability HEAVY=1 for the
# larger fault counts (local runs; CI runs the default counts inside make test).
HEAVY ?= 0
reliability: $(STAMP) system-deps
	rm -rf bench/out/tally && mkdir -p bench/out/tally
	DOCKYARD_RELIABILITY_TALLY=$(CURDIR)/bench/out/tally DOCKYARD_RELIABILITY_HEAVY=$(HEAVY) \
		$(BIN)/pytest -n auto --dist loadgroup tests/reliability $(PYTEST_ARGS) -p no:cacheprovider \
		| tee bench/out/tally/pytest.log; status=$${PIPESTATUS[0]}; \
	DOCKYARD_RELIABILITY_HEAVY=$(HEAVY) $(BIN)/python -m tests.reliability.report bench/out/tally \
		--summary "pytest: $$(tail -n 1 bench/out/tally/pytest.log | tr -d '=')" > tests/reliability/REPORT.md.new \
		&& mv tests/reliability/REPORT.md.new tests/reliability/REPORT.md; exit $$status

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
