# Licensed under the Apache License, Version 2.0.
"""
The one scenario every real-cloud system test runs, as ``tests/system/test_worker_sigterm.py``
runs it on the fakes: the task's worker is SIGTERMed while the real job runs.

Accounting goes through the cloud's own API with the drill's real-cloud adapters
(:mod:`airflow.providers.resumable.drill.real_clouds`), filtered to this DAG run: one job, never
cancelled, the same external id before and after, success on try 1.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.drill.clouds import DrillCloud, DrilledTask
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.stack import AirflowStack

FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}
JOB_START_TIMEOUT = 1800.0
"""A real job may wait for capacity (a cluster scaling up, serverless warming) before it runs."""
RUN_TIMEOUT = 3600.0


def use_connection(
    stack: AirflowStack, monkeypatch: pytest.MonkeyPatch, conn_id: str, fields: dict[str, Any]
) -> None:
    """
    Make ``conn_id`` resolvable in the stack (over REST) and in this process (``AIRFLOW_CONN_*``, for
    the adapter that counts the jobs).
    """
    body = {"connection_id": conn_id, **fields}
    stack.put_connection(body)
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))


def sigterm_mid_run_keeps_the_one_job(
    stack: AirflowStack, *, dag_file: Path, dag_id: str, task_id: str, cloud: DrillCloud
) -> None:
    """Run the DAG, SIGTERM the worker while the job runs, and check exactly-once through the API."""
    wait_state = "checkpointed" if checkpointed_state_available() else "up_for_reschedule"
    stack.add_dag_file(dag_file)
    stack.wait_for_dag(dag_id)
    triggered_at = datetime.now(timezone.utc)
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        processes = stack.find_task_processes(dag_id, task_id, run_id=run_id, timeout=120)
        deadline = time.monotonic() + JOB_START_TIMEOUT
        while True:
            ledger = stack.db.task_state_value(dag_id, run_id, task_id, LEDGER_KEY) or {}
            before = ledger.get("external_id")
            if before and cloud.is_running(before):
                break
            assert time.monotonic() < deadline, f"the job never ran (ledger {ledger})"
            time.sleep(cloud.poll_seconds)

        os.kill(processes.worker_pid, signal.SIGTERM)  # worker shutdown, not user intent
        stack.wait_for_ti_state(dag_id, run_id, task_id, wait_state, timeout=120)
        assert cloud.is_running(before), "the job was left running"
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=RUN_TIMEOUT)

    assert final_state == "success"
    after = stack.db.task_state_value(dag_id, run_id, task_id, LEDGER_KEY)
    assert after["external_id"] == before, "the external id never changed"
    jobs = cloud.jobs_of(DrilledTask(dag_id, run_id, after["nonce"], triggered_at))
    assert jobs == [before], "one submission, counted through the cloud's API"
    assert cloud.cancellations_of(before) == 0
    task_states = recorder.states(task_id)
    assert wait_state in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(dag_id, run_id, task_id)
    assert (final_ti.state, final_ti.try_number) == ("success", 1)
