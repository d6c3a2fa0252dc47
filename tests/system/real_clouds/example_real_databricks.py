# Licensed under the Apache License, Version 2.0.
"""
Example DAG (upstream system-test style): a notebook run on a real Databricks workspace.

Configured from the environment (``tests/system/real_clouds/environment.py``):
``RESUMABLE_DATABRICKS_NOTEBOOK_PATH`` (a notebook that runs for a few minutes, e.g. one cell with
``time.sleep(300)``) and optionally ``RESUMABLE_DATABRICKS_CLUSTER_ID`` (without it: serverless).
The connection (``DATABRICKS_HOST``, ``DATABRICKS_TOKEN``) is created by the test.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator

DAG_ID = "example_real_databricks"
TASK_ID = "notebook"
CONN_ID = "databricks_real_system"
NOTEBOOK_PATH = os.environ.get("RESUMABLE_DATABRICKS_NOTEBOOK_PATH", "/Shared/unset")
CLUSTER_ID = os.environ.get("RESUMABLE_DATABRICKS_CLUSTER_ID")


def run_name(run_id: str) -> str:
    """The run name of a DAG run's task: how the test finds this run's runs in the workspace."""
    return f"resumable-system-{run_id}"


with DAG(
    dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False
) as dag:
    ResumableDatabricksSubmitRunOperator(
        task_id=TASK_ID,
        databricks_conn_id=CONN_ID,
        run_name=run_name("{{ run_id }}"),
        notebook_task={"notebook_path": NOTEBOOK_PATH},
        existing_cluster_id=CLUSTER_ID,  # None: serverless compute
        polling_period_seconds=10,
        resume_after=timedelta(seconds=10),
        retries=0,  # a resume must not need a retry
    )
