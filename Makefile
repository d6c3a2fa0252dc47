# Two commands for a newcomer: `make demo` and `make test`. Each bootstraps what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints-3.11.txt
INSTALLED := $(VENV)/.installed
PIP_VERSION := 26.3

.DEFAULT_GOAL := help
.PHONY: help venv patch-venv demo test upstream-tests unit system campaign lint format docs constraints clean bench bench-report bench-constraints

help:
	@echo "make demo   create .venv if missing, then run Airflow against fake clouds and shut its workers down mid-run (DEFERRABLE=1: restart its triggerer instead)"
	@echo "make test   create .venv if missing, install pinned dependencies, run the test suite"
	@echo "make upstream-tests  Airflow's own task SDK tests, stock vs patched (part of make test, ~2 min)"
	@echo "make campaign  the full kill campaign, 20 seeded disruptions per cloud (~25 min)"
	@echo "make lint   ruff (lint + format check) and mypy"
	@echo "make docs   build the Sphinx site (warnings are errors) into docs/_build/html"
	@echo "make bench  race the upstream operators against ours on the fakes (own venv, ~25 min); writes docs/benchmarks.md"
	@echo "make patch-venv  apply the bundled CHECKPOINTED core patch to .venv's Airflow (idempotent)"
	@echo "make clean  remove .venv and caches"

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else "This project needs Python 3.11; $(PYTHON) is %d.%d. Run: make PYTHON=python3.11 ..." % v)'
	@test -x $(BIN)/python || { echo ">> creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing airflow-provider-resumable (editable) and its pinned dependencies into $(VENV)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e ".[test,upstream-tests,lint,docs]"
	@touch $@

venv: $(INSTALLED)

# Apply the CHECKPOINTED core patch to .venv (a no-op when already applied). Revert it with
# `$(BIN)/airflow-resumable patch revert`.
patch-venv: venv
	@$(BIN)/airflow-resumable patch apply

demo: patch-venv
	@$(BIN)/airflow-resumable demo $(if $(KEEP_RUNNING),--keep-running,) $(if $(DEFERRABLE),--deferrable,)

# Airflow's own tests first: a patch change that breaks Airflow stops here, in under two minutes.
# Then ours, TEST_WORKERS at a time (pytest-xdist): most of the time is waiting on Airflow stacks
# (heartbeat timeouts, resume delays), so more workers than cores pay off; tests that share a stack
# are kept on one worker (tests/conftest.py assigns the groups).
TEST_WORKERS ?= 4
test: patch-venv
	$(BIN)/python -m upstream_tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# Airflow's own task SDK tests (supervisor, task runner, client, comms) on a stock Airflow and on the
# patched one with the patch's test diff; fails on any test that passes stock and not patched.
upstream-tests: patch-venv
	$(BIN)/python -m upstream_tests

unit: patch-venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests/unit

# A real Airflow stack (scheduler, API server, dag processor, LocalExecutor, sqlite) on 127.0.0.1.
system: patch-venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup tests/system

# The full kill campaign: CAMPAIGN_PER_CLOUD seeded disruptions per cloud (make test runs every kind
# once per cloud). Replay a failure with RESUMABLE_DRILL_SEED=<seed>.
CAMPAIGN_PER_CLOUD ?= 20
campaign: patch-venv
	RESUMABLE_CAMPAIGN_PER_CLOUD=$(CAMPAIGN_PER_CLOUD) $(BIN)/python -m pytest tests/system/test_kill_campaign.py

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-resolve the pinned set from pyproject.toml in a scratch venv (needs the package registry).
constraints:
	rm -rf .tmp/constraints-venv
	$(PYTHON) -m venv .tmp/constraints-venv
	.tmp/constraints-venv/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	.tmp/constraints-venv/bin/python -m pip install --quiet ".[test,upstream-tests,lint,docs]"
	{ sed -n '1,3p' $(CONSTRAINTS); .tmp/constraints-venv/bin/python -m pip freeze --exclude-editable | grep -v '^airflow-provider-resumable'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .tmp/constraints-venv

# Benchmarks: a venv of their own, because the google provider (for upstream's
# DataprocSubmitJobOperator) is too heavy for the main one. BENCH_ARGS are passed on, e.g.
# `make bench BENCH_ARGS="--disruptions 200 --seed 42"`.
BENCH_VENV ?= .venv-bench
BENCH_CONSTRAINTS := bench/constraints-bench.txt
BENCH_ARGS ?=

$(BENCH_VENV)/.installed: pyproject.toml $(BENCH_CONSTRAINTS)
	@test -x $(BENCH_VENV)/bin/python || { echo ">> creating $(BENCH_VENV)"; $(PYTHON) -m venv $(BENCH_VENV); }
	@echo ">> installing the provider, the upstream providers and matplotlib into $(BENCH_VENV)"
	@$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	@$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c $(BENCH_CONSTRAINTS) -e ".[test]" -r bench/requirements.txt
	@touch $@

bench: $(BENCH_VENV)/.installed
	@$(BENCH_VENV)/bin/airflow-resumable patch apply
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

# Regenerate docs/benchmarks.md and its chart from bench/results/latest.json without running anything.
bench-report: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench --report-only

bench-constraints:
	rm -rf .tmp/bench-venv
	$(PYTHON) -m venv .tmp/bench-venv
	.tmp/bench-venv/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	.tmp/bench-venv/bin/python -m pip install --quiet -c <(grep -i '^apache-airflow' $(CONSTRAINTS)) -e ".[test]" -r bench/requirements.txt
	{ sed -n '1,2p' $(BENCH_CONSTRAINTS); .tmp/bench-venv/bin/python -m pip freeze --exclude-editable | grep -v '^airflow-provider-resumable'; } > $(BENCH_CONSTRAINTS).new
	mv $(BENCH_CONSTRAINTS).new $(BENCH_CONSTRAINTS)
	rm -rf .tmp/bench-venv

clean:
	rm -rf $(VENV) $(BENCH_VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

docs: venv
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
