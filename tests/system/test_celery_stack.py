# Licensed under the Apache License, Version 2.0.
"""
The Celery worker running a resumable task is shut down, as a deploy or a node drain does it.

The production flavour of the stack (``celery_stack.py``: Postgres, a Redis broker, the
CeleryExecutor, ``worker-a`` and ``worker-b``) runs the drill's Databricks DAG against the fake
workspace (the real Databricks hook over HTTP, a connection created over REST, ``retries=1`` so a
consumed retry shows). The worker whose name the task instance carries is signalled in its
``celery worker`` main process:

- cold shutdown (SIGQUIT): Celery terminates its pool at once, so the task's supervisor gets SIGTERM;

Expected, per DESIGN §4: the task checkpoints, the job is left running, the task resumes on the
other worker on the same try (``task_instance.hostname`` says where), one submission, zero cancels,
the dag run succeeds.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow.providers.resumable.drill import drill_dags
from airflow.providers.resumable.drill.naming import DRILL_TASK_ID, drill_conn_id, drill_dag_id
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.celery_stack import WORKERS, CeleryAirflowStack
from airflow.providers.resumable.testing.clouds import FakeDatabricksCloud
from airflow.providers.resumable.testing.stack import poll_until

pytestmark = pytest.mark.system

FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}
JOB_SECONDS = 60.0
"""Longer than the checkpoint and the resume take together, so the job is still running throughout."""


@pytest.fixture
def databricks(celery_stack: CeleryAirflowStack) -> Iterator[FakeDatabricksCloud]:
    """The fake workspace, the drill's connection to it and its DAG; both workers running after."""
    fake = FakeDatabricksCloud(run_seconds=JOB_SECONDS)
    fake.start()
    try:
        connection = fake.connection(drill_conn_id(fake.name))
        response = celery_stack.rest.post("/connections", json=connection)
        if response.status_code == 409:
            celery_stack.rest.json("PATCH", f"/connections/{connection['connection_id']}", json=connection)
        else:
            assert not response.is_error, response.text
        celery_stack.add_dag_file(Path(drill_dags.__file__))
        celery_stack.wait_for_dag(drill_dag_id(fake.name))
        yield fake
    finally:
        fake.stop()
        # The next test starts from two workers again (a shut-down worker is started anew).
        for name in WORKERS:
            if not celery_stack.worker_running(name):
                celery_stack.start_worker(name)


@pytest.mark.parametrize(
    "shutdown",
    [pytest.param(signal.SIGQUIT, id="cold-shutdown")],
)
def test_worker_shutdown_checkpoints_and_resumes_on_the_other_worker_on_the_same_try(
    celery_stack: CeleryAirflowStack, databricks: FakeDatabricksCloud, shutdown: signal.Signals
) -> None:
    stack = celery_stack
    dag_id = drill_dag_id(databricks.name)
    started = time.monotonic()
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "running", timeout=60)

        def running_job() -> str | None:
            ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY) or {}
            job = ledger.get("external_id")
            return job if job and databricks.is_running(job) else None

        job = poll_until(running_job, timeout=60, describe=lambda: "the Databricks run to be running")
        first_worker = stack.worker_of(dag_id, run_id, DRILL_TASK_ID)
        assert first_worker in WORKERS, "the task instance's hostname names the worker that runs it"
        [other_worker] = set(WORKERS) - {first_worker}

        signalled = time.monotonic()
        os.kill(stack.worker_pid(first_worker), shutdown)  # the worker's shutdown, not a person's decision
        stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "checkpointed", timeout=60)
        checkpointed = time.monotonic()
        assert databricks.is_running(job), f"the job was not left going: {databricks.job_state(job)}"
        stack.wait_for_worker_exit(first_worker, timeout=60)
        worker_exited = time.monotonic()
        resumed = stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "running", timeout=60)
        resumed_at = time.monotonic()
        assert resumed.try_number == 1
        assert stack.worker_of(dag_id, run_id, DRILL_TASK_ID) == other_worker, "resumed on the other worker"
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=JOB_SECONDS + 120)

    sys.stderr.write(
        f"\n[celery {shutdown.name}] checkpointed {checkpointed - signalled:.1f}s, worker exited "
        f"{worker_exited - signalled:.1f}s, running again on {other_worker} {resumed_at - signalled:.1f}s "
        f"after the signal; run finished {time.monotonic() - started:.1f}s after trigger\n"
    )
    assert final_state == "success"
    counts = databricks.counts()
    assert (counts.submissions, counts.cancellations) == (1, 0), "one submission, never cancelled"
    ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY)
    assert ledger["external_id"] == job, "the job id never changed"
    task_states = recorder.states(DRILL_TASK_ID)
    assert "checkpointed" in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(dag_id, run_id, DRILL_TASK_ID)
    assert (final_ti.state, final_ti.try_number) == ("success", 1)
    assert stack.db.task_history_try_numbers(dag_id, run_id, DRILL_TASK_ID) == [], "no try was archived"
    assert stack.worker_of(dag_id, run_id, DRILL_TASK_ID) == other_worker, "it finished where it resumed"
