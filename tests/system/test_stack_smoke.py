# Licensed under the Apache License, Version 2.0.
"""The stack itself: a DAG triggered over REST runs to success on the real components."""

from __future__ import annotations

import pytest

from tests.system.stack import AirflowStack

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
