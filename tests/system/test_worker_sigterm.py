# Licensed under the Apache License, Version 2.0.
"""
The worker running a job is SIGTERMed mid-run, on every cloud, on a stock and on a patched Airflow.

A real stack runs each cloud's resumable operator (the drill's DAGs) against that cloud's fake,
reached through its real client (the Databricks hook over HTTP, boto3 against moto, the Dataproc
gRPC client) and a real Airflow connection created over REST. The LocalExecutor worker (the task's
supervisor) is SIGTERMed while the job runs: a worker shutdown, not a person's decision.

Expected, per DESIGN §4: one submission, zero cancels, the job left running through the shutdown,
the ledger's job id never changing, the task succeeding on try 1 after waiting in ``checkpointed``
(patched) or ``up_for_reschedule`` (stock), and the XCom upstream's operator pushes.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow.providers.resumable.drill import drill_dags
from airflow.providers.resumable.drill.naming import DRILL_TASK_ID, drill_conn_id, drill_dag_id
from airflow.providers.resumable.drill.runner import FAKE_CLOUDS
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.clouds import FakeCloud
from airflow.providers.resumable.testing.stack import FlavouredStack, poll_until

pytestmark = pytest.mark.system

FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}
JOB_SECONDS = 25.0
"""Long enough to SIGTERM the worker mid-job and see the job still running while the task waits."""


def _upstream_xcom(cloud: str, job: str) -> tuple[str, Any]:
    """The XCom key and value the upstream operator pushes for its job, which ours pushes too."""
    if cloud == "databricks":
        return "run_id", int(job)
    if cloud == "emr":
        return "return_value", job.partition(":")[2].split(",")  # the step ids
    return "return_value", job  # Dataproc: the job id


@pytest.fixture(params=sorted(FAKE_CLOUDS))
def cloud(request: pytest.FixtureRequest, checkpoint_flavour: FlavouredStack) -> Iterator[FakeCloud]:
    """The cloud's fake, started, with the drill's connection to it and its DAG deployed."""
    fake = FAKE_CLOUDS[str(request.param)](run_seconds=JOB_SECONDS)
    fake.start()
    try:
        stack = checkpoint_flavour.stack
        connection = fake.connection(drill_conn_id(fake.name))
        stack.put_connection(connection)
        stack.add_dag_file(Path(drill_dags.__file__))
        stack.wait_for_dag(drill_dag_id(fake.name))
        yield fake
    finally:
        fake.stop()


def test_worker_sigterm_mid_job_keeps_the_one_job_and_succeeds_on_the_same_try(
    checkpoint_flavour: FlavouredStack, cloud: FakeCloud
) -> None:
    stack, wait_state = checkpoint_flavour.stack, checkpoint_flavour.wait_state
    dag_id = drill_dag_id(cloud.name)
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        processes = stack.find_task_processes(dag_id, DRILL_TASK_ID, run_id=run_id, timeout=60)

        def running_job() -> str | None:
            ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY) or {}
            job = ledger.get("external_id")
            return job if job and cloud.is_running(job) else None

        job = poll_until(running_job, timeout=60, describe=lambda: f"the {cloud.name} job to run")
        os.kill(processes.worker_pid, signal.SIGTERM)  # worker shutdown, not user intent
        stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, wait_state, timeout=60)
        assert cloud.is_running(job), f"the job was not left going: {cloud.job_state(job)}"
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=JOB_SECONDS + 120)

    assert final_state == "success"
    counts = cloud.counts()
    assert (counts.submissions, counts.cancellations) == (1, 0), "one submission, never cancelled"
    ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY)
    assert ledger["external_id"] == job, "the job id never changed"
    [ledger_row] = stack.db.query(
        "SELECT expires_at FROM task_state_store WHERE dag_id = ? AND run_id = ? AND task_id = ? AND key = ?",
        (dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY),
    )
    assert ledger_row["expires_at"] is None, "the ledger must outlive its job: no expiry"
    task_states = recorder.states(DRILL_TASK_ID)
    assert wait_state in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(dag_id, run_id, DRILL_TASK_ID)
    assert (final_ti.state, final_ti.try_number) == ("success", 1)
    key, expected = _upstream_xcom(cloud.name, job)
    xcom = stack.rest.json(
        "GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{DRILL_TASK_ID}/xcomEntries/{key}"
    )
    value = xcom["value"]
    if isinstance(value, str) and not isinstance(expected, str):
        value = json.loads(value)
    assert value == expected
