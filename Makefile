# twir-mail developer entry points.
#   make demo   check, render and send the example issue (preview list, then main) through the local outbox
#   make test   install test dependencies and run the whole test suite, in parallel
#               (TEST_WORKERS=N pytest-xdist workers; TEST_WORKERS=0 runs it serially)
#   make bench  quick benchmarks with PASS/BELOW lines (BENCH_FULL=1: full sizes)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
TM     := $(BIN)/twir-mail --config examples/twir-mail.toml
PYTEST_ARGS ?=
# Each xdist worker has its own PostgreSQL database, moto server, ports and tmp folders
# (tests/fixtures/). More workers than CPUs: many tests wait on subprocesses and servers.
TEST_WORKERS ?= 4

.PHONY: demo test install install-test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	@BIN="$(BIN)" examples/demo.sh

test: install-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) $(PYTEST_ARGS)

# Each script prints its figures next to its target with a PASS/BELOW line, against a
# reference measured in the same run where there is one. Quick sizes by default (under
# 3 minutes on 2 CPUs); `make bench BENCH_FULL=1` for the full sizes; `make bench BENCH=render` runs one.
BENCH ?= render import send web lambda_cold_start linkcheck
BENCH_FULL ?=
bench: install-test
	@for b in $(BENCH); do echo "== bench/$$b.py"; BENCH_FULL=$(BENCH_FULL) $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf build examples/build examples/outbox examples/twir-mail.db* .pytest_cache
