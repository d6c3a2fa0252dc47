# Licensed under the Apache License, Version 2.0.
"""
The worker running EMR steps is SIGTERMed mid-run on a real Airflow stack (issue 5, system part).

A real stack (``airflow.providers.resumable.testing.stack``) runs ``ResumableEmrAddStepsOperator`` against moto's
``ThreadedMotoServer`` on 127.0.0.1, behind the kit's proxy and lifecycle driver
(:mod:`airflow.providers.resumable.testing.emr`), through a real AWS connection created over REST
with ``endpoint_url`` in its extras. The first ``AddJobFlowSteps`` response is dropped on the wire
(the steps are added, the worker never hears of it), then the LocalExecutor worker is SIGTERMed
while the steps run: a worker shutdown, not a person's decision. Runs on a stock and on a patched
Airflow (``checkpoint_flavour``).

Expected, per DESIGN §4: the steps are added once, their ids never change, zero ``CancelSteps``, the
task succeeds with its try_number unchanged (1 of a task with ``retries=0``).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.emr import FakeEmr, FakeEmrServer, Fault, StepScript
from airflow.providers.resumable.testing.stack import AirflowStack, FlavouredStack
from tests.system.dags.system_emr_dags import CLUSTER_NAME, CONN_ID, DAG_ID, TASK_ID

pytestmark = pytest.mark.system

DAG_FILE = Path(__file__).parent / "dags" / "system_emr_dags.py"
FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}


def _create_connection(stack: AirflowStack, server: FakeEmrServer) -> None:
    connection = {
        "connection_id": CONN_ID,
        "conn_type": "aws",
        "login": "fake-access-key",
        "password": "fake-secret-key",
        "extra": json.dumps(server.connection_extra()),
    }
    response = stack.rest.post("/connections", json=connection)
    if response.status_code == 409:
        stack.rest.json("PATCH", f"/connections/{CONN_ID}", json=connection)
    else:
        assert not response.is_error, response.text


@pytest.fixture
def aws(checkpoint_flavour: FlavouredStack) -> Iterator[FakeEmrServer]:
    """moto + the kit on 127.0.0.1, steps that run until the test ends them, a real connection to it."""
    with FakeEmrServer(FakeEmr(default_step=StepScript(run_seconds=None))) as server:
        _create_connection(checkpoint_flavour.stack, server)
        yield server


def test_worker_sigterm_mid_steps_keeps_the_steps_added_once_and_succeeds_on_the_same_try(
    checkpoint_flavour: FlavouredStack, aws: FakeEmrServer
) -> None:
    stack, wait_state = checkpoint_flavour.stack, checkpoint_flavour.wait_state
    emr = aws.emr
    cluster_id = emr.create_cluster(CLUSTER_NAME)
    aws.inject("AddJobFlowSteps", Fault.drop_response())
    stack.add_dag_file(DAG_FILE)
    stack.wait_for_dag(DAG_ID)
    run_id = stack.trigger_dag(DAG_ID)

    with stack.record_ti_states(DAG_ID, run_id) as recorder:
        processes = stack.find_task_processes(DAG_ID, TASK_ID, run_id=run_id, timeout=60)
        deadline = time.monotonic() + 90
        # Added (answer lost), found by listing, recorded, and polled at least twice.
        while emr.counters["requests:ListSteps"] < 3:
            assert time.monotonic() < deadline, f"the task never started polling: {dict(emr.counters)}"
            time.sleep(0.1)
        step_ids = [s["Id"] for s in emr.steps(cluster_id)]

        os.kill(processes.worker_pid, signal.SIGTERM)  # worker shutdown, not user intent
        stack.wait_for_ti_state(DAG_ID, run_id, TASK_ID, wait_state, timeout=60)
        assert [emr.step_state(cluster_id, i) for i in step_ids] == ["RUNNING", "PENDING"], "left going"

        for step_id in step_ids:
            emr.finish_step(step_id)
        final_state = stack.wait_for_dag_run(DAG_ID, run_id, timeout=120)

    assert final_state == "success"
    assert emr.counters["steps_added"] == 2, "the steps were added once"
    assert emr.counters["requests:AddJobFlowSteps"] == 1, "the lost answer was not re-sent blind"
    assert emr.counters["requests:CancelSteps"] == 0
    assert [s["State"] for s in emr.steps(cluster_id)] == ["COMPLETED", "COMPLETED"]
    ledger = stack.db.task_state_value(DAG_ID, run_id, TASK_ID, LEDGER_KEY)
    assert ledger["external_id"] == f"{cluster_id}:{','.join(step_ids)}", "the step ids never changed"
    task_states = recorder.states(TASK_ID)
    assert wait_state in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(DAG_ID, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    xcom = stack.rest.json(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/return_value"
    )
    value = xcom["value"]
    assert (json.loads(value) if isinstance(value, str) else value) == step_ids
