# Licensed under the Apache License, Version 2.0.
"""
The worker running a Databricks run is SIGTERMed mid-run on a real Airflow stack (issue 4, system part).

A real stack (``airflow.providers.resumable.testing.stack``: scheduler, API server, dag processor, LocalExecutor, sqlite)
runs ``ResumableDatabricksSubmitRunOperator`` against the fake Jobs API served from this process,
through a real Airflow connection created over REST. The LocalExecutor worker (the task's
supervisor) is SIGTERMed while the run is going: a worker shutdown, not a person's decision.

Expected, per DESIGN §4: the run id never changes, one submission, zero cancels, the task succeeds
with its try_number unchanged (1 of a task with ``retries=0``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.databricks import FakeDatabricksService
from airflow.providers.resumable.testing.stack import FlavouredStack
from tests.system.conftest import fake_databricks_behind
from tests.system.dags.system_databricks_dags import CONN_ID, DAG_ID, TASK_ID

pytestmark = pytest.mark.system

DAG_FILE = Path(__file__).parent / "dags" / "system_databricks_dags.py"
FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}


@pytest.fixture
def databricks(checkpoint_flavour: FlavouredStack) -> Iterator[FakeDatabricksService]:
    """A fake workspace whose runs go on until the test ends them, and a real connection to it."""
    with fake_databricks_behind(checkpoint_flavour.stack, CONN_ID) as service:
        yield service


def test_worker_sigterm_mid_run_keeps_the_one_run_and_succeeds_on_the_same_try(
    checkpoint_flavour: FlavouredStack, databricks: FakeDatabricksService
) -> None:
    stack, wait_state = checkpoint_flavour.stack, checkpoint_flavour.wait_state
    stack.add_dag_file(DAG_FILE)
    stack.wait_for_dag(DAG_ID)
    run_id = stack.trigger_dag(DAG_ID)

    with stack.record_ti_states(DAG_ID, run_id) as recorder:
        processes = stack.find_task_processes(DAG_ID, TASK_ID, run_id=run_id, timeout=60)
        deadline = time.monotonic() + 60
        while databricks.counters["gets"] < 2:  # submitted, recorded, polling
            assert time.monotonic() < deadline, "the task never started polling its run"
            time.sleep(0.1)
        [run] = databricks.runs()

        os.kill(processes.worker_pid, signal.SIGTERM)  # worker shutdown, not user intent
        stack.wait_for_ti_state(DAG_ID, run_id, TASK_ID, wait_state, timeout=60)
        assert databricks.state_of(run["run_id"]) == "RUNNING", "the run was left going"

        databricks.finish(run["run_id"], "SUCCESS")
        final_state = stack.wait_for_dag_run(DAG_ID, run_id, timeout=120)

    assert final_state == "success"
    assert databricks.counters["runs_created"] == 1
    assert databricks.counters["requests:runs/submit"] == 1, "reconnected, never re-submitted"
    assert not any(op in ("runs/cancel", "runs/cancel-all") for op, _ in databricks.requests)
    ledger = stack.db.task_state_value(DAG_ID, run_id, TASK_ID, LEDGER_KEY)
    assert ledger["external_id"] == str(run["run_id"]), "the run id never changed"
    [ledger_row] = stack.db.query(
        "SELECT expires_at FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?",
        (DAG_ID, run_id, TASK_ID, LEDGER_KEY),
    )
    assert ledger_row["expires_at"] is None, "the ledger must outlive its job: no expiry, never cleaned up"
    task_states = recorder.states(TASK_ID)
    assert wait_state in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(DAG_ID, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    xcom = stack.rest.json(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/run_id"
    )
    assert int(xcom["value"]) == run["run_id"]
