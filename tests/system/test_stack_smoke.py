# Licensed under the Apache License, Version 2.0.
"""The stack itself: a DAG triggered over REST runs to success on the real components."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from airflow.providers.resumable.testing.stack import AirflowStack

pytestmark = pytest.mark.system

DAG_ID = "system_smoke"


def test_two_task_dag_triggered_over_rest_runs_to_success(system_dags: AirflowStack) -> None:
    stack = system_dags
    run_id = stack.trigger_dag(DAG_ID)

    assert stack.wait_for_dag_run(DAG_ID, run_id, timeout=90) == "success"

    tis = stack.db.task_instances(DAG_ID, run_id)
    assert {task_id: ti.state for task_id, ti in tis.items()} == {"produce": "success", "consume": "success"}
    assert tis["produce"].end_date is not None
    assert tis["consume"].start_date is not None
    assert tis["consume"].start_date >= tis["produce"].end_date
    # The value crossed the Execution API twice (XCom push by produce, pull by consume).
    xcom = stack.rest.json(
        "GET",
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/consume/xcomEntries/return_value",
        params={"deserialize": True},
    )
    assert xcom["value"] == 42


def test_rest_api_rejects_requests_without_a_token(airflow_stack: AirflowStack) -> None:
    response = airflow_stack.rest.http.get("/dags", headers={"Authorization": ""})

    assert response.status_code == 401


def test_find_task_processes_locates_the_worker_and_its_task_process(
    system_dags: AirflowStack, tmp_path: Path
) -> None:
    stack = system_dags
    dag_id = "system_wait_for_flag"
    release_flag = tmp_path / "release"
    run_id = stack.trigger_dag(dag_id, conf={"flag": str(release_flag)})

    processes = stack.find_task_processes(dag_id, "wait_for_flag", run_id=run_id)

    worker = psutil.Process(processes.worker_pid)
    task_process = psutil.Process(processes.task_pid)
    assert " ".join(worker.cmdline()).startswith("airflow worker -- LocalExecutor:")
    assert task_process.ppid() == worker.pid
    # Both are in the tree the stack stops, so a test that leaves them running leaks nothing.
    assert {worker.pid, task_process.pid} <= stack.started_pids()
    ti = stack.db.task_instance(dag_id, run_id, "wait_for_flag")
    assert (ti.state, ti.id) == ("running", processes.ti_id)

    release_flag.touch()
    assert stack.wait_for_dag_run(dag_id, run_id, timeout=60) == "success"
