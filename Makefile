# Two commands for a newcomer: `make demo` and `make test`. Each bootstraps what it needs.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSTRAINTS := constraints-3.11.txt
INSTALLED := $(VENV)/.installed
PIP_VERSION := 26.3

.DEFAULT_GOAL := help
.PHONY: help venv patch-venv demo test test-celery test-deferrable test-oldest upstream-tests-oldest test-python upstream-tests unit system campaign campaign-celery lint format docs constraints clean bench bench-deferrable bench-drain bench-drain-64 bench-celery-table bench-campaign bench-resume bench-report bench-constraints

help:
	@echo "make demo   create .venv if missing, then run Airflow against fake clouds and shut its workers down mid-run (DEFERRABLE=1: restart its triggerer instead; EXECUTOR=celery: Postgres, Redis, two Celery workers, one drained)"
	@echo "make test   create .venv if missing, install pinned dependencies, run the test suite"
	@echo "make test-celery  every system test on the Celery/Postgres stack: the Celery flavour of the checkpoint/resume and worker-loss tests, and the Celery disruptions (not in make test; ~6 min)"
	@echo "make upstream-tests  Airflow's own task SDK tests, stock vs patched (part of make test, ~2 min)"
	@echo "make test-oldest  the patched pieces and the checkpoint/resume and worker-loss system tests on Airflow 3.3.0 (own .venv-oldest, ~8 min; not in make test)"
	@echo "make upstream-tests-oldest  Airflow's own task SDK tests, stock vs patched, on Airflow 3.3.0 (~3 min)"
	@echo "make campaign  the full kill campaign, 20 seeded disruptions per cloud, on the LocalExecutor then on Celery (~25 + ~25 min)"
	@echo "make campaign-celery  the full kill campaign on Postgres, Redis and Celery workers only, two task instances per cloud at once (~25 min)"
	@echo "make test-deferrable  every deferrable system scenario on every cloud and flavour (~40 min)"
	@echo "make lint   ruff (lint + format check) and mypy"
	@echo "make docs   build the Sphinx site (warnings are errors) into docs/_build/html"
	@echo "make bench  race the upstream operators against ours on the fakes (own venv, ~25 min); writes docs/benchmarks.md"
	@echo "make bench-resume  checkpointed -> running latency on the local and Celery stacks (~6 min); its section of docs/benchmarks.md"
	@echo "make bench-deferrable  the same with deferrable=True on both sides, triggerer strikes included (~45 min; BENCH_ARGS=\"--disruptions 8\", each kind once: ~27 min); adds its tables to docs/benchmarks.md"
	@echo "make bench-drain  drain a Celery worker under 16 long tasks, upstream vs ours (~13 min); its section of docs/benchmarks.md"
	@echo "make bench-drain-64  drain a Celery worker under 64 tasks (ours), with the scheduler's loop time and health probes (~12 min); its section"
	@echo "make bench-celery-table  #17's table: warm, cut-short, cold, host-lost and pod-style disruptions of a Celery worker, upstream vs ours (~25 min); its section"
	@echo "make bench-campaign  200 seeded disruptions per cloud on the Celery stack, 4 task instances per cloud at once (~100 min on 2 cores); its section of docs/benchmarks.md"
	@echo "make patch-venv  apply the bundled CHECKPOINTED core patch to .venv's Airflow (idempotent)"
	@echo "make test-python PY=python3.10  install the provider on another Python (own venv) and run the unit tests it can"
	@echo "make clean  remove .venv and caches"

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; v = sys.version_info[:2]; sys.exit(0 if v == (3, 11) else "The dev venv (make test, demo, lint, docs) is pinned for Python 3.11 by $(CONSTRAINTS); $(PYTHON) is %d.%d. Run: make PYTHON=python3.11 ... (the provider itself supports 3.10-3.14: make test-python PY=python%d.%d)" % (v + v))'
	@test -x $(BIN)/python || { echo ">> creating $(VENV) with $$($(PYTHON) --version)"; $(PYTHON) -m venv $(VENV); }
	@echo ">> installing airflow-provider-resumable (editable) and its pinned dependencies into $(VENV)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e ".[all,test,upstream-tests,lint,docs,celery]"
	@touch $@

venv: $(INSTALLED)

# Apply the CHECKPOINTED core patch to .venv (a no-op when already applied). Revert it with
# `$(BIN)/airflow-resumable patch revert`.
patch-venv: venv
	@$(BIN)/airflow-resumable patch apply

demo: patch-venv
	@$(BIN)/airflow-resumable demo $(if $(KEEP_RUNNING),--keep-running,) $(if $(DEFERRABLE),--deferrable,) $(if $(EXECUTOR),--executor $(EXECUTOR),)

# Airflow's own tests first: a patch change that breaks Airflow stops here, in under two minutes.
# Then ours, TEST_WORKERS at a time (pytest-xdist): most of the time is waiting on Airflow stacks
# (heartbeat timeouts, resume delays; a system test keeps about a third of a core busy: 48 s of CPU
# over 153 s for the three patched worker-SIGTERM tests), so three workers per core pay off; tests
# that share a stack are kept on one worker (tests/conftest.py assigns the groups).
TEST_WORKERS ?= 6
test: patch-venv
	$(BIN)/python -m upstream_tests
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# Every system test on the Celery/Postgres stack (Postgres, Redis, the CeleryExecutor, two workers): the
# Celery flavour of the tests that run on both stacks (checkpoint/resume, worker loss), the Celery
# disruptions, and the Celery tests make test runs too. Not part of make test: each Celery stack costs
# about a minute of start-up, and make test is over its time budget. RESUMABLE_CELERY_SYSTEM_TESTS keeps
# the Celery flavour from being deselected (tests/conftest.py); -m celery selects what runs on Celery.
TEST_CELERY_WORKERS ?= 3
test-celery: patch-venv
	RESUMABLE_CELERY_SYSTEM_TESTS=1 $(BIN)/python -m pytest -n $(TEST_CELERY_WORKERS) --dist loadgroup -m celery tests/system

# Airflow's own task SDK tests (supervisor, task runner, client, comms) on a stock Airflow and on the
# patched one with the patch's test diff; fails on any test that passes stock and not patched.
upstream-tests: patch-venv
	$(BIN)/python -m upstream_tests

# The oldest supported Airflow (3.3.0), in a venv of its own: the same pinned set as .venv except
# Airflow itself, the provider installed editable, the 3.3.0 core patch applied, then the patched
# pieces in-process and the real-stack checkpoint/resume and worker-loss tests (stock and patched
# flavours both run there). `all` names
# the cloud extras where pyproject has them; pip only warns about an extra it does not know.
# Airflow 3.3.0 caps aiosqlite below 0.22, so its pin is replaced too. Another supported release:
# `make test-oldest OLDEST_AIRFLOW=3.3.1 OLDEST_TASK_SDK=1.3.1 OLDEST_VENV=.venv-3.3.1`.
# `make upstream-tests-oldest`: Airflow's own task SDK tests, stock vs patched, on that release.
OLDEST_VENV ?= .venv-oldest
OLDEST_AIRFLOW ?= 3.3.0
OLDEST_TASK_SDK ?= 1.3.0
OLDEST_CONSTRAINTS := .tmp/constraints-oldest.txt
OLDEST_TESTS ?= tests/unit/core_patch/test_patched_airflow.py tests/system/test_checkpoint_resume.py tests/system/test_worker_loss.py

$(OLDEST_VENV)/.installed: pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "make test-oldest needs Python 3.11")'
	@mkdir -p .tmp
	@{ grep -v -E '^(apache-airflow(-core|-task-sdk)?|aiosqlite)==' $(CONSTRAINTS); echo "aiosqlite==0.21.0"; } > $(OLDEST_CONSTRAINTS)
	@test -x $(OLDEST_VENV)/bin/python || { echo ">> creating $(OLDEST_VENV)"; $(PYTHON) -m venv $(OLDEST_VENV); }
	@echo ">> installing apache-airflow $(OLDEST_AIRFLOW) and airflow-provider-resumable (editable) into $(OLDEST_VENV)"
	@$(OLDEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	@$(OLDEST_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c $(OLDEST_CONSTRAINTS) \
		-e ".[test,upstream-tests,all]" "apache-airflow==$(OLDEST_AIRFLOW)" "apache-airflow-core==$(OLDEST_AIRFLOW)" \
		"apache-airflow-task-sdk==$(OLDEST_TASK_SDK)"
	@touch $@

test-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/airflow-resumable patch apply
	$(OLDEST_VENV)/bin/airflow-resumable patch status
	$(OLDEST_VENV)/bin/python -m pytest -p no:xdist $(OLDEST_TESTS)

upstream-tests-oldest: $(OLDEST_VENV)/.installed
	$(OLDEST_VENV)/bin/airflow-resumable patch apply
	$(OLDEST_VENV)/bin/python -m upstream_tests --python $(OLDEST_VENV)/bin/python --work .tmp/upstream-tests-$(OLDEST_AIRFLOW)

# The provider on another Python than the dev venv's 3.11 (the package supports 3.10-3.14; the
# constraints file pins 3.11 only): a venv of its own, the provider built from this tree with the
# extras that Python can take (the amazon and databricks providers need 3.11+: 3.10 gets [google]),
# Airflow pinned to the dev venv's version and the rest resolved for that Python; then every module
# that install can import, and the unit tests that need only that, on an Airflow with the core patch.
PY ?= python3.12
PY_VERSION = $(shell $(PY) -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PY_VENV = .venv-py$(PY_VERSION)
PY_EXTRAS = $(shell $(PY) -c 'import sys; print("all" if sys.version_info >= (3, 11) else "google")')
PY_UNIT_CORE = test_compat test_decision test_ledger test_ledger_retention test_reaping test_building_blocks \
	test_termination test_fakes_kit test_resumable_submit_operator test_import_direction \
	test_provider_info test_dataproc_hook test_dataproc_operators test_dataproc_parity
PY_UNIT_ALL = $(PY_UNIT_CORE) test_drill_plan test_extras test_databricks_operators test_databricks_parity test_emr_operators \
	test_emr_parity test_hooks_async
PY_UNIT = $(if $(filter all,$(PY_EXTRAS)),$(PY_UNIT_ALL),$(PY_UNIT_CORE))
# Tests in the core files that build every cloud's operator or fake: deselected when some cloud is missing.
PY_NEEDS_EVERY_CLOUD = test_reaping.py::test_every_bundled_operator_kind_has_a_hook_the_reaper_can_build \
	test_fakes_kit.py::test_fake_cloud_adapters_route_each_drill_fault_to_their_wire_and_refuse_unknown_ones \
	test_fakes_kit.py::test_fake_cloud_adapter_counts_sum_their_counters
PY_DESELECT = $(if $(filter all,$(PY_EXTRAS)),,$(addprefix --deselect tests/unit/,$(PY_NEEDS_EVERY_CLOUD)))
test-python:
	@test -n "$(PY_VERSION)" || { echo "no interpreter $(PY)"; exit 1; }
	@test -x $(PY_VENV)/bin/python || { echo ">> creating $(PY_VENV) with $$($(PY) --version)"; $(PY) -m venv $(PY_VENV); }
	@echo ">> installing airflow-provider-resumable[$(PY_EXTRAS),test] into $(PY_VENV)"
	@$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "pip==$(PIP_VERSION)"
	@$(PY_VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		-c <(grep -iE '^apache-airflow(-core|-task-sdk)?==' $(CONSTRAINTS)) ".[$(PY_EXTRAS),test]"
	cd tests && ../$(PY_VENV)/bin/python -c 'import airflow, airflow.providers.resumable.cli as c, sys; \
		print("Python", sys.version.split()[0], "Airflow", airflow.__version__, "provider from", c.__file__)'
	$(PY_VENV)/bin/airflow-resumable patch apply
	$(PY_VENV)/bin/python -m pytest -p no:cacheprovider -p no:xdist $(PY_DESELECT) -rs \
		$(addprefix tests/unit/,$(addsuffix .py,$(PY_UNIT)))

unit: patch-venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) tests/unit

# A real Airflow stack (scheduler, API server, dag processor, LocalExecutor, sqlite) on 127.0.0.1.
system: patch-venv
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup tests/system

# Every deferrable system scenario on every cloud and both flavours (make test runs each scenario
# once, clouds and flavours rotating): about 40 minutes of one worker per flavour.
test-deferrable: patch-venv
	RESUMABLE_FULL_DEFERRABLE_MATRIX=1 $(BIN)/python -m pytest -n 2 --dist loadgroup tests/system/test_deferrable.py

# The full kill campaign: CAMPAIGN_PER_CLOUD seeded disruptions per cloud (make test runs every kind
# once, dealt across the clouds). Replay a failure with RESUMABLE_DRILL_SEED=<seed>.
CAMPAIGN_PER_CLOUD ?= 20
campaign: patch-venv
	RESUMABLE_CAMPAIGN_PER_CLOUD=$(CAMPAIGN_PER_CLOUD) $(BIN)/python -m pytest tests/system/test_kill_campaign.py tests/system/test_kill_campaign_celery.py

# The same on the production flavour alone: Postgres, Redis, three Celery workers, every default
# Celery kind (warm and cold shutdown, host lost, pod eviction, freeze, the fault kinds, ...), two
# task instances per cloud at once (make test runs the Celery-only strikes once, across the clouds).
campaign-celery: patch-venv
	RESUMABLE_CAMPAIGN_PER_CLOUD=$(CAMPAIGN_PER_CLOUD) $(BIN)/python -m pytest tests/system/test_kill_campaign_celery.py

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
	.tmp/constraints-venv/bin/python -m pip install --quiet ".[all,test,upstream-tests,lint,docs,celery]"
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
	@$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -c $(BENCH_CONSTRAINTS) -e ".[all,test]" -r bench/requirements.txt
	@touch $@

bench: $(BENCH_VENV)/.installed
	@$(BENCH_VENV)/bin/airflow-resumable patch apply
	$(BENCH_VENV)/bin/python -m bench $(BENCH_ARGS)

# deferrable=True on both sides of every pair, on a stack with a triggerer, with the triggerer kinds;
# writes bench/results/deferrable.json (latest.json, the sync run, is kept) and the page from both.
bench-deferrable: $(BENCH_VENV)/.installed
	@$(BENCH_VENV)/bin/airflow-resumable patch apply
	$(BENCH_VENV)/bin/python -m bench --deferrable $(BENCH_ARGS)

# A Celery worker drained under N long Databricks tasks, upstream vs ours, with and without the
# drain-aware configuration line (bench/celery_drain.py; ~13 min). Runs in .venv, which has the celery
# extra; writes its own section of docs/benchmarks.md. BENCH_DRAIN_ARGS="--tasks 16 --job-seconds 180".
BENCH_DRAIN_ARGS ?=
bench-drain: patch-venv
	$(BIN)/python -m bench.celery_drain $(BENCH_DRAIN_ARGS)

# The mass drain at scale: 64 resumable tasks on one worker (its worker_concurrency, parallelism, pool
# and max_active_tasks sized for them), ours with the line only (upstream's drain waits for its jobs,
# as bench-drain shows), with the scheduler's loop time and the API server's health probed before and
# through the drain (bench/drain_probes.py). Jobs of 480 s, so every task is running before the
# SIGTERM however slowly 64 tasks start on this machine.
BENCH_DRAIN_64_ARGS ?=
bench-drain-64: patch-venv
	$(BIN)/python -m bench.celery_drain --tasks 64 --job-seconds 480 --sides ours --skip-without-line --label 64 $(BENCH_DRAIN_64_ARGS)

# #17's table of Celery worker disruptions, upstream's DatabricksSubmitRunOperator vs ours, one task at a
# time on one Celery stack (bench/celery_table.py). BENCH_TABLE_ARGS="--rows cold_shutdown --sides ours".
BENCH_TABLE_ARGS ?=
bench-celery-table: patch-venv
	$(BIN)/python -m bench.celery_table $(BENCH_TABLE_ARGS)

# BENCH_CAMPAIGN_PER_CLOUD seeded disruptions per cloud (200) on the Celery stack in one run, several
# task instances per cloud at once (bench/campaign.py); writes bench/results/campaign.json and its own
# section of docs/benchmarks.md. In .venv (the celery extra, the core patch). Validate small first:
# `make bench-campaign BENCH_CAMPAIGN_ARGS="--per-cloud 10"`.
BENCH_CAMPAIGN_ARGS ?=
bench-campaign: patch-venv
	$(BIN)/python -m bench.campaign $(BENCH_CAMPAIGN_ARGS)

# Regenerate docs/benchmarks.md and its chart from bench/results/latest.json without running anything.
bench-report: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m bench --report-only

# checkpointed -> running latency with a short resume_after, on the LocalExecutor/sqlite and the
# Celery/Postgres stacks (~6 min); writes its own section of docs/benchmarks.md. The dev venv: it
# has the celery extra and the core patch. `make bench-resume BENCH_RESUME_ARGS="--transitions 50"`.
.PHONY: bench-resume
bench-resume: patch-venv
	$(BIN)/python -m bench.resume_latency $(BENCH_RESUME_ARGS)

bench-constraints:
	rm -rf .tmp/bench-venv
	$(PYTHON) -m venv .tmp/bench-venv
	.tmp/bench-venv/bin/python -m pip install --quiet "pip==$(PIP_VERSION)"
	.tmp/bench-venv/bin/python -m pip install --quiet -c <(grep -i '^apache-airflow' $(CONSTRAINTS)) -e ".[all,test]" -r bench/requirements.txt
	{ sed -n '1,2p' $(BENCH_CONSTRAINTS); .tmp/bench-venv/bin/python -m pip freeze --exclude-editable | grep -v '^airflow-provider-resumable'; } > $(BENCH_CONSTRAINTS).new
	mv $(BENCH_CONSTRAINTS).new $(BENCH_CONSTRAINTS)
	rm -rf .tmp/bench-venv

clean:
	rm -rf $(VENV) $(BENCH_VENV) $(OLDEST_VENV) .venv-py* .pytest_cache .mypy_cache .ruff_cache build *.egg-info

docs: venv
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
