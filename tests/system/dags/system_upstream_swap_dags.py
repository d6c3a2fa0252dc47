# Licensed under the Apache License, Version 2.0.
"""
A DAG whose author swaps the import from the Databricks provider's durable operator to ours while a
task runs: the file picks the class when it is parsed, by whether the swap marker exists beside it
(what editing the import and deploying the file would do; the worker parses the file at each try).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from airflow.sdk import DAG

DAG_ID = "system_upstream_swap"
TASK_ID = "nightly_etl"
CONN_ID = "databricks_upstream_swap_fake"
"""Created over REST by the test, pointing at the fake it runs."""
SWAP_MARKER = "system_upstream_swap.swapped"


def swap_marker(dags_folder: Path) -> Path:
    """The file whose presence makes this DAG use ours."""
    return dags_folder / SWAP_MARKER


if swap_marker(Path(__file__).parent).exists():
    from airflow.providers.resumable.operators.databricks import (
        ResumableDatabricksSubmitRunOperator as DatabricksSubmitRunOperator,
    )
else:
    from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator

with DAG(dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False):
    DatabricksSubmitRunOperator(
        task_id=TASK_ID,
        databricks_conn_id=CONN_ID,
        run_name="system-upstream-swap",
        notebook_task={"notebook_path": "/Shared/nightly"},
        existing_cluster_id="0923-164208-meows279",
        polling_period_seconds=1,
        databricks_retry_delay=1,
        retries=1,
        retry_delay=timedelta(seconds=1),
    )
