# Licensed under the Apache License, Version 2.0.
"""
Databricks for real (issue 4): the worker running a notebook run is SIGTERMed mid-run, and the run is
kept, counted once through the Jobs API, never cancelled, and the task succeeds on try 1.

Needs ``DATABRICKS_HOST``, ``DATABRICKS_TOKEN`` and ``RESUMABLE_DATABRICKS_NOTEBOOK_PATH`` (optional
``RESUMABLE_DATABRICKS_CLUSTER_ID``); skipped with that reason otherwise. Starts one real run.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow.providers.resumable.drill.real_clouds import RealDatabricksCloud
from airflow.providers.resumable.testing.stack import AirflowStack
from tests.system.real_clouds import example_real_databricks as example
from tests.system.real_clouds.environment import DATABRICKS
from tests.system.real_clouds.scenario import sigterm_mid_run_keeps_the_one_job, use_connection

pytestmark = [pytest.mark.system, DATABRICKS.skipif()]


@pytest.mark.timeout(5400)
def test_real_databricks_worker_sigterm_mid_run_keeps_the_one_run(
    airflow_stack: AirflowStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = os.environ["DATABRICKS_HOST"].removeprefix("https://").rstrip("/")
    use_connection(
        airflow_stack,
        monkeypatch,
        example.CONN_ID,
        {"conn_type": "databricks", "host": host, "password": os.environ["DATABRICKS_TOKEN"]},
    )

    sigterm_mid_run_keeps_the_one_job(
        airflow_stack,
        dag_file=Path(example.__file__),
        dag_id=example.DAG_ID,
        task_id=example.TASK_ID,
        cloud=RealDatabricksCloud(example.CONN_ID, run_name=example.run_name),
    )
