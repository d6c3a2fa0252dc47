# Licensed under the Apache License, Version 2.0.
"""
The Celery mass-drain bench's DAGs (``bench/celery_drain.py``): the same N long Databricks runs, once
with upstream's ``DatabricksSubmitRunOperator`` and once with ours, configured alike (same payload,
same connection, same poll interval, ``retries=1`` and a retry delay equal to our ``resume_after``).
Self-contained: the stack copies this file alone into its dags folder.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.databricks.operators.databricks import DatabricksSubmitRunOperator
from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator

TASKS = int(os.environ.get("RESUMABLE_BENCH_CELERY_DRAIN_TASKS", "16"))
CONN_ID = "bench_celery_drain"
RESUME_AFTER = timedelta(seconds=10)
OPERATORS: dict[str, type[Any]] = {
    "upstream": DatabricksSubmitRunOperator,
    "ours": ResumableDatabricksSubmitRunOperator,
}


def dag_id(side: str) -> str:
    return f"bench_celery_drain_{side}"


def task_id(index: int) -> str:
    return f"job_{index:02d}"


for side, operator in OPERATORS.items():
    with DAG(
        dag_id(side),
        schedule=None,
        start_date=datetime(2026, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        default_args={"retries": 1, "retry_delay": RESUME_AFTER},
        max_active_tasks=TASKS,
    ):
        for index in range(TASKS):
            operator(
                task_id=task_id(index),
                databricks_conn_id=CONN_ID,
                run_name=f"drain-{side}-{index:02d}-{{{{ run_id }}}}",
                polling_period_seconds=2,
                databricks_retry_delay=1,
                existing_cluster_id="bench-cluster",
                notebook_task={"notebook_path": "/Shared/bench"},
                **({"resume_after": RESUME_AFTER} if side == "ours" else {}),
            )
