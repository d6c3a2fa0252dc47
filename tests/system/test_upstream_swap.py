# Licensed under the Apache License, Version 2.0.
"""
A DAG author swaps the import from the Databricks provider's durable ``DatabricksSubmitRunOperator``
to ours while a task runs: the next attempt reconnects to the run upstream started, never submits.

Upstream's operator (provider 7.23.0, ``durable=True`` by default) records its run id in the task
state store under ``databricks_run_id``. Its worker is lost (worker and task SIGKILLed, as a lost
node); upstream's operator declared nothing, so the heartbeat timeout fails the try and the retry
runs, by now, our operator. It finds upstream's key and no ledger, checks the run is this task's
and adopts it: one run in all, nothing cancelled.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.databricks import FakeDatabricksService
from airflow.providers.resumable.testing.stack import AirflowStack, poll_until
from tests.system.conftest import fake_databricks_behind
from tests.system.dags.system_upstream_swap_dags import CONN_ID, DAG_ID, TASK_ID, swap_marker

pytestmark = pytest.mark.system

DAG_FILE = Path(__file__).parent / "dags" / "system_upstream_swap_dags.py"
UPSTREAM_KEY = "databricks_run_id"


@pytest.fixture
def databricks(airflow_stack: AirflowStack) -> Iterator[FakeDatabricksService]:
    with fake_databricks_behind(airflow_stack, CONN_ID) as service:
        yield service


def test_a_run_started_by_upstreams_durable_operator_is_adopted_after_the_import_swap(
    airflow_stack: AirflowStack, databricks: FakeDatabricksService
) -> None:
    stack = airflow_stack
    marker = swap_marker(stack.dags_folder)
    marker.unlink(missing_ok=True)
    stack.add_dag_file(DAG_FILE)
    stack.wait_for_dag(DAG_ID)
    run_id = stack.trigger_dag(DAG_ID)

    processes = stack.find_task_processes(DAG_ID, TASK_ID, run_id=run_id, timeout=60)
    run = poll_until(
        lambda: stack.db.task_state_value(DAG_ID, run_id, TASK_ID, UPSTREAM_KEY),
        timeout=60,
        describe=lambda: "upstream's operator to record its run",
    )
    assert stack.db.task_state_value(DAG_ID, run_id, TASK_ID, LEDGER_KEY) is None, "upstream's try"

    marker.write_text("the author swapped the import\n")  # deployed before the next try parses it
    os.kill(processes.worker_pid, signal.SIGKILL)
    os.kill(processes.task_pid, signal.SIGKILL)

    ledger = poll_until(
        lambda: stack.db.task_state_value(DAG_ID, run_id, TASK_ID, LEDGER_KEY),
        timeout=120,
        describe=lambda: "the retry, with our operator, to write its ledger",
    )
    assert ledger["external_id"] == str(run), "adopted upstream's run"
    databricks.finish(run, "SUCCESS")

    assert stack.wait_for_dag_run(DAG_ID, run_id, timeout=90) == "success", stack.diagnostics(dag_id=DAG_ID)
    ti = stack.db.task_instance(DAG_ID, run_id, TASK_ID)
    assert (ti.state, ti.try_number) == ("success", 2), "upstream's lost try failed; ours reconnected"
    assert databricks.counters["runs_created"] == 1
    assert databricks.counters["cancel_requests"] == 0
    marker.unlink()
