# Licensed under the Apache License, Version 2.0.
"""
The Celery worker running a resumable task is shut down, as a deploy or a node drain does it.

The production flavour of the stack (``celery_stack.py``: Postgres, a Redis broker, the
CeleryExecutor, ``worker-a`` and ``worker-b``) runs the drill's Databricks DAG against the fake
workspace (the real Databricks hook over HTTP, a connection created over REST, ``retries=1`` so a
consumed retry shows). The worker whose name the task instance carries is signalled in its
``celery worker`` main process:

- cold shutdown (SIGQUIT): Celery terminates its pool at once, so the task's supervisor gets SIGTERM.
  Expected, per DESIGN §4: the task checkpoints, the job is left running, the task resumes on the
  other worker on the same try (``task_instance.hostname`` says where), one submission, zero
  cancels, the dag run succeeds.
- warm shutdown (SIGTERM, what a deploy or a node drain sends): Celery stops taking work and waits
  for the tasks it runs. The stack is configured as docs/celery_kubernetes.rst says
  (``celery_drain.py``), so the worker tells each resumable task to checkpoint at once: the worker
  exits within seconds (without the line it waited for the whole job), and the task resumes on the
  other worker with the cold shutdown's outcome. A resumable task the drain finds still starting
  up (it has not announced itself yet) checkpoints as soon as it does. A plain task on a draining
  worker is waited for, as Celery does: the drain leaves it alone.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from airflow.providers.resumable.drill import drill_dags
from airflow.providers.resumable.drill.naming import DRILL_TASK_ID, drill_conn_id, drill_dag_id
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.celery_stack import WORKERS, CeleryAirflowStack
from airflow.providers.resumable.testing.clouds import CloudCounts, FakeDatabricksCloud
from airflow.providers.resumable.testing.stack import poll_until
from tests.system.dags.system_drain_dags import (
    LOAD_SECONDS,
    LOADING_MARKER,
    PLAIN_DAG_ID,
    PLAIN_TASK_ID,
    PLAIN_TASK_SECONDS,
    SLOW_START_DAG_ID,
)

pytestmark = pytest.mark.system

FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}
JOB_SECONDS = 40.0
"""Longer than a cold shutdown's checkpoint and resume take together (about 11 s), so the job outlives them."""
DRAIN_EXIT_SECONDS = 10.0
"""What drain-aware checkpoints promise: a draining worker running only resumable tasks exits this soon."""
DRAIN_DAG_FILE = Path(__file__).parent / "dags" / "system_drain_dags.py"


def _wait_for_the_running_job(
    stack: CeleryAirflowStack, databricks: FakeDatabricksCloud, dag_id: str, run_id: str
) -> tuple[str, str]:
    """Once the task's Databricks run is running: (that run's id, the worker running the task)."""
    stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "running", timeout=60)

    def running_job() -> str | None:
        ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY) or {}
        job = ledger.get("external_id")
        return job if job and databricks.is_running(job) else None

    job = poll_until(running_job, timeout=60, describe=lambda: "the Databricks run to be running")
    worker = stack.worker_of(dag_id, run_id, DRILL_TASK_ID)
    assert worker in WORKERS, "the task instance's hostname names the worker that runs it"
    return job, worker


def _assert_none_left_running(processes: list[psutil.Process], *, timeout: float = 15) -> None:
    """Every process of a shut-down worker's tree exits: its supervisors and task processes too."""
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    assert not alive, f"processes of the shut-down worker still running: {[p.pid for p in alive]}"


def _assert_one_run_never_cancelled_success_on_try_1(
    stack: CeleryAirflowStack,
    databricks: FakeDatabricksCloud,
    before: CloudCounts,
    dag_id: str,
    run_id: str,
    job: str,
) -> None:
    assert stack.db.dag_run_state(dag_id, run_id) == "success"
    after = databricks.counts()
    submissions, cancellations = (
        after.submissions - before.submissions,
        after.cancellations - before.cancellations,
    )
    assert (submissions, cancellations) == (1, 0), "one submission, never cancelled"
    ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY)
    assert ledger["external_id"] == job, "the job id never changed"
    final_ti = stack.db.task_instance(dag_id, run_id, DRILL_TASK_ID)
    assert (final_ti.state, final_ti.try_number) == ("success", 1)
    assert stack.db.task_history_try_numbers(dag_id, run_id, DRILL_TASK_ID) == [], "no try was archived"


def _runs_again_on(stack: CeleryAirflowStack, dag_id: str, run_id: str, worker: str) -> float:
    """Once the task instance runs again on ``worker``, on the same try: when (monotonic), after which
    the dag run is waited for."""
    resumed = stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "running", timeout=60)
    resumed_at = time.monotonic()
    assert resumed.try_number == 1
    assert stack.worker_of(dag_id, run_id, DRILL_TASK_ID) == worker, "resumed on the other worker"
    stack.wait_for_dag_run(dag_id, run_id, timeout=JOB_SECONDS + 120)
    return resumed_at


def _assert_checkpointed_never_failed(task_states: list[str]) -> None:
    assert "checkpointed" in task_states, task_states
    assert not FAILURE_STATES & set(task_states), task_states


@pytest.fixture(scope="module")
def databricks(celery_stack: CeleryAirflowStack) -> Iterator[FakeDatabricksCloud]:
    """
    The fake workspace, the drill's connection to it and its DAG, for the whole module.

    One fake, not one per test: each fake numbers its runs from the same first id, and the job
    reaper (a scheduler plugin) cancels a run that an earlier, finished task's ledger names when it
    sees that id running again. Seen: a second fake's run, behind the same connection id, was
    cancelled that way. Tests count submissions and cancellations from their own start instead.
    """
    fake = FakeDatabricksCloud(run_seconds=JOB_SECONDS)
    fake.start()
    try:
        connection = fake.connection(drill_conn_id(fake.name))
        celery_stack.put_connection(connection)
        celery_stack.add_dag_file(Path(drill_dags.__file__))
        celery_stack.wait_for_dag(drill_dag_id(fake.name))
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def both_workers(celery_stack: CeleryAirflowStack) -> Iterator[CeleryAirflowStack]:
    """The stack with both workers running, and again after the test (a shut-down one starts anew)."""
    yield celery_stack
    for name in WORKERS:
        if not celery_stack.worker_running(name):
            celery_stack.start_worker(name)


def test_cold_shutdown_of_the_worker_checkpoints_and_resumes_on_the_other_worker_on_the_same_try(
    both_workers: CeleryAirflowStack, databricks: FakeDatabricksCloud
) -> None:
    stack = both_workers
    dag_id = drill_dag_id(databricks.name)
    before = databricks.counts()
    started = time.monotonic()
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        job, first_worker = _wait_for_the_running_job(stack, databricks, dag_id, run_id)
        [other_worker] = set(WORKERS) - {first_worker}

        tree = stack.worker_processes(first_worker)
        signalled = time.monotonic()
        os.kill(stack.worker_pid(first_worker), signal.SIGQUIT)  # Celery's cold shutdown
        stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "checkpointed", timeout=60)
        checkpointed = time.monotonic()
        assert databricks.is_running(job), f"the job was not left going: {databricks.job_state(job)}"
        stack.wait_for_worker_exit(first_worker, timeout=60)
        worker_exited = time.monotonic()
        _assert_none_left_running(tree)
        # A cold shutdown sends no worker_shutdown signal; the drain directory goes anyway.
        assert not list(stack.worker_tmp(first_worker).glob("airflow-resumable-drain-*"))
        resumed_at = _runs_again_on(stack, dag_id, run_id, other_worker)

    sys.stderr.write(
        f"\n[celery cold shutdown] checkpointed {checkpointed - signalled:.1f}s, {first_worker} exited "
        f"{worker_exited - signalled:.1f}s, running again on {other_worker} {resumed_at - signalled:.1f}s "
        f"after SIGQUIT; run finished {time.monotonic() - started:.1f}s after trigger\n"
    )
    _assert_one_run_never_cancelled_success_on_try_1(stack, databricks, before, dag_id, run_id, job)
    _assert_checkpointed_never_failed(recorder.states(DRILL_TASK_ID))
    assert stack.worker_of(dag_id, run_id, DRILL_TASK_ID) == other_worker, "it finished where it resumed"


def test_warm_shutdown_checkpoints_the_resumable_task_at_once_and_it_resumes_on_the_other_worker(
    both_workers: CeleryAirflowStack, databricks: FakeDatabricksCloud
) -> None:
    stack = both_workers
    dag_id = drill_dag_id(databricks.name)
    before = databricks.counts()
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        job, first_worker = _wait_for_the_running_job(stack, databricks, dag_id, run_id)
        [other_worker] = set(WORKERS) - {first_worker}
        tree = stack.worker_processes(first_worker)
        # The worker's drain directory holds one announcement: the task's, made when it declared itself.
        [drain_directory] = stack.worker_tmp(first_worker).glob("airflow-resumable-drain-*")
        assert len(list(drain_directory.iterdir())) == 1
        signalled = time.monotonic()
        # Celery's warm shutdown, as a deploy sends it.
        os.kill(stack.worker_pid(first_worker), signal.SIGTERM)
        # The promise of drain-aware checkpoints: the drain does not wait for the job (40 s).
        stack.wait_for_worker_exit(first_worker, timeout=DRAIN_EXIT_SECONDS)
        worker_exited = time.monotonic()
        assert not drain_directory.exists(), "the worker left its drain directory behind"
        assert databricks.is_running(job), f"the job was not left going: {databricks.job_state(job)}"
        _assert_none_left_running(tree)
        resumed_at = _runs_again_on(stack, dag_id, run_id, other_worker)

    sys.stderr.write(
        f"\n[celery warm shutdown, drain-aware] {first_worker} exited {worker_exited - signalled:.1f}s after "
        f"SIGTERM, running again on {other_worker} {resumed_at - signalled:.1f}s after it\n"
    )
    _assert_checkpointed_never_failed(recorder.states(DRILL_TASK_ID))
    _assert_one_run_never_cancelled_success_on_try_1(stack, databricks, before, dag_id, run_id, job)
    assert stack.worker_of(dag_id, run_id, DRILL_TASK_ID) == other_worker, "it finished where it resumed"


def test_warm_shutdown_while_a_resumable_task_starts_up_checkpoints_it_once_it_announces_itself(
    both_workers: CeleryAirflowStack, databricks: FakeDatabricksCloud
) -> None:
    stack = both_workers
    stack.add_dag_file(DRAIN_DAG_FILE)
    stack.wait_for_dag(SLOW_START_DAG_ID)
    marker = stack.home / LOADING_MARKER
    marker.unlink(missing_ok=True)
    before = databricks.counts()
    run_id = stack.trigger_dag(SLOW_START_DAG_ID)

    with stack.record_ti_states(SLOW_START_DAG_ID, run_id) as recorder:
        poll_until(
            lambda: marker.exists() or None, timeout=60, describe=lambda: "the task process to load its DAG"
        )
        worker = stack.worker_of(SLOW_START_DAG_ID, run_id, DRILL_TASK_ID)
        assert worker in WORKERS
        [other_worker] = set(WORKERS) - {worker}
        [drain_directory] = stack.worker_tmp(worker).glob("airflow-resumable-drain-*")
        assert list(drain_directory.iterdir()) == [], "still loading its DAG: nothing announced yet"
        tree = stack.worker_processes(worker)
        signalled = time.monotonic()
        os.kill(stack.worker_pid(worker), signal.SIGTERM)
        # Once loaded, the task announces itself, finds the drain under way and checkpoints: the
        # drain waits for the load, never for the job (40 s).
        stack.wait_for_worker_exit(worker, timeout=LOAD_SECONDS + DRAIN_EXIT_SECONDS)
        worker_exited = time.monotonic()
        assert not drain_directory.exists(), "the worker left its drain directory behind"
        _assert_none_left_running(tree)
        _runs_again_on(stack, SLOW_START_DAG_ID, run_id, other_worker)

    sys.stderr.write(
        f"\n[celery warm shutdown during start-up] {worker} exited {worker_exited - signalled:.1f}s after "
        f"SIGTERM (the task was loading its DAG for {LOAD_SECONDS}s)\n"
    )
    _assert_checkpointed_never_failed(recorder.states(DRILL_TASK_ID))
    ledger = stack.db.task_state_value(SLOW_START_DAG_ID, run_id, DRILL_TASK_ID, LEDGER_KEY)
    _assert_one_run_never_cancelled_success_on_try_1(
        stack, databricks, before, SLOW_START_DAG_ID, run_id, ledger["external_id"]
    )


def test_warm_shutdown_waits_for_a_plain_task_as_celery_does(both_workers: CeleryAirflowStack) -> None:
    stack = both_workers
    stack.add_dag_file(DRAIN_DAG_FILE)
    stack.wait_for_dag(PLAIN_DAG_ID)
    run_id = stack.trigger_dag(PLAIN_DAG_ID)

    with stack.record_ti_states(PLAIN_DAG_ID, run_id) as recorder:
        stack.wait_for_ti_state(PLAIN_DAG_ID, run_id, PLAIN_TASK_ID, "running", timeout=60)
        poll_until(
            lambda: stack.db.task_state_value(PLAIN_DAG_ID, run_id, PLAIN_TASK_ID, "started_at"),
            timeout=60,
            describe=lambda: "the plain task to start sleeping",
        )
        worker = stack.worker_of(PLAIN_DAG_ID, run_id, PLAIN_TASK_ID)
        assert worker in WORKERS
        tree = stack.worker_processes(worker)
        os.kill(stack.worker_pid(worker), signal.SIGTERM)
        stack.wait_for_worker_exit(worker, timeout=PLAIN_TASK_SECONDS + 60)
        worker_exited = time.time()
        _assert_none_left_running(tree)
        final = stack.wait_for_dag_run(PLAIN_DAG_ID, run_id, timeout=60)

    ended_at = stack.db.task_state_value(PLAIN_DAG_ID, run_id, PLAIN_TASK_ID, "ended_at")
    assert ended_at is not None, "the plain task was cut short: it never wrote its end"
    assert worker_exited >= ended_at, "the worker exited before the task it was running had finished"
    assert final == "success"
    ti = stack.db.task_instance(PLAIN_DAG_ID, run_id, PLAIN_TASK_ID)
    assert (ti.state, ti.try_number) == ("success", 1)
    task_states = recorder.states(PLAIN_TASK_ID)
    assert "checkpointed" not in task_states, task_states
    assert not FAILURE_STATES & set(task_states), task_states
    assert stack.worker_of(PLAIN_DAG_ID, run_id, PLAIN_TASK_ID) == worker, (
        "it ran to the end on the draining worker"
    )
