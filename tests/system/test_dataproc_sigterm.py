# Licensed under the Apache License, Version 2.0.
"""
The worker running a Dataproc job is SIGTERMed mid-run on a real Airflow stack (issue 6, system part).

A real stack (``airflow.providers.resumable.testing.stack``: scheduler, API server, dag processor, LocalExecutor, sqlite)
runs ``ResumableDataprocSubmitJobOperator`` against the gRPC fake served from this process on
127.0.0.1, through a real Airflow connection created over REST (``api_endpoint`` + ``insecure``
extras); the task's real ``JobControllerClient`` talks gRPC to it. The LocalExecutor worker (the
task's supervisor) is SIGTERMed while the job runs: a worker shutdown, not a person's decision.
``checkpoint_flavour`` runs it on a stock Airflow 3.3.2 (``up_for_reschedule``) and on a patched one
(``checkpointed``).

Expected, per DESIGN §4: the job id never changes, one SubmitJob creating one job, zero CancelJob,
the task succeeds with its try_number unchanged (1 of a task with ``retries=0``).
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
from airflow.providers.resumable.testing.dataproc import FakeDataprocServer, FakeDataprocService, JobScript
from airflow.providers.resumable.testing.stack import AirflowStack, FlavouredStack
from tests.system.dags.system_dataproc_dags import CONN_ID, DAG_ID, TASK_ID

pytestmark = pytest.mark.system

DAG_FILE = Path(__file__).parent / "dags" / "system_dataproc_dags.py"
FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}


@pytest.fixture
def dataproc(checkpoint_flavour: FlavouredStack) -> Iterator[FakeDataprocService]:
    """A fake Dataproc whose jobs run until the test ends them, and a real connection to it."""
    stack = checkpoint_flavour.stack
    service = FakeDataprocService(default_job_script=JobScript(run_seconds=None))
    with FakeDataprocServer(service) as server:
        connection = {
            "connection_id": CONN_ID,
            "conn_type": "google_cloud_platform",
            "extra": json.dumps(server.connection_extras()),
        }
        response = stack.rest.post("/connections", json=connection)
        if response.status_code == 409:
            stack.rest.json("PATCH", f"/connections/{CONN_ID}", json=connection)
        else:
            assert not response.is_error, response.text
        yield service


def test_worker_sigterm_mid_job_keeps_the_one_job_and_succeeds_on_the_same_try(
    checkpoint_flavour: FlavouredStack, dataproc: FakeDataprocService
) -> None:
    stack: AirflowStack = checkpoint_flavour.stack
    wait_state = checkpoint_flavour.wait_state
    stack.add_dag_file(DAG_FILE)
    stack.wait_for_dag(DAG_ID)
    run_id = stack.trigger_dag(DAG_ID)

    with stack.record_ti_states(DAG_ID, run_id) as recorder:
        processes = stack.find_task_processes(DAG_ID, TASK_ID, run_id=run_id, timeout=60)
        deadline = time.monotonic() + 60
        while dataproc.counters["gets"] < 2:  # submitted, recorded, polling
            assert time.monotonic() < deadline, "the task never started polling its job"
            time.sleep(0.1)
        [job] = dataproc.jobs()
        job_id = job.reference.job_id

        os.kill(processes.worker_pid, signal.SIGTERM)  # worker shutdown, not user intent
        stack.wait_for_ti_state(DAG_ID, run_id, TASK_ID, wait_state, timeout=60)
        assert dataproc.job_state(job_id) == "RUNNING", "the job was left going"

        dataproc.finish(job_id, "DONE")
        final_state = stack.wait_for_dag_run(DAG_ID, run_id, timeout=120)

    assert final_state == "success"
    assert dataproc.counters["jobs_created"] == 1
    assert dataproc.counters["requests:SubmitJob"] == 1, "reconnected, never re-submitted"
    assert dataproc.counters["requests:CancelJob"] == 0
    ledger = stack.db.task_state_value(DAG_ID, run_id, TASK_ID, LEDGER_KEY)
    assert ledger["external_id"] == job_id, "the job id never changed"
    task_states = recorder.states(TASK_ID)
    assert wait_state in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(DAG_ID, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    returned = stack.rest.json(
        "GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/return_value"
    )
    assert returned["value"] == job_id, "upstream's return value: the job id"
