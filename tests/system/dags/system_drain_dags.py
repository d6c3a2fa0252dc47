# Licensed under the Apache License, Version 2.0.
"""
The DAGs the Celery drain tests copy into the stack.

- One plain (non-resumable) task that sleeps. It never announces itself to a drain-aware worker, so
  a warm shutdown must wait for it as Celery does; it writes when it started and ended into its task
  state store, so the test can compare the worker's exit with the task's own end.
- One resumable Databricks task whose DAG file loads slowly in its first task process (a marker in
  ``AIRFLOW_HOME`` says when it loads): a warm shutdown then finds it still starting up, before it
  could announce itself.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import dag, task

from airflow.providers.resumable.drill.naming import drill_conn_id
from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator
from airflow.providers.resumable.testing.dag_files import load_slowly_the_first_time

PLAIN_DAG_ID = "system_drain_plain_task"
PLAIN_TASK_ID = "sleep_briefly"
PLAIN_TASK_SECONDS = 12.0
"""Long enough to SIGTERM the worker while it runs, short enough to keep the test cheap."""


@dag(dag_id=PLAIN_DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False)
def plain_task_dag() -> None:
    @task(task_id=PLAIN_TASK_ID, retries=1)
    def sleep_briefly(task_state_store: Any = None) -> None:
        task_state_store.set("started_at", time.time())
        time.sleep(PLAIN_TASK_SECONDS)
        task_state_store.set("ended_at", time.time())

    sleep_briefly()


plain_task_dag()


SLOW_START_DAG_ID = "system_drain_slow_start_resumable"
SLOW_START_TASK_ID = "job"
LOADING_MARKER = "drain_slow_start.loading"
LOAD_SECONDS = 10

load_slowly_the_first_time(SLOW_START_DAG_ID, marker=LOADING_MARKER, seconds=LOAD_SECONDS)


@dag(
    dag_id=SLOW_START_DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    default_args={"retries": 1, "resume_after": timedelta(seconds=3)},
)
def slow_start_resumable_dag() -> None:
    ResumableDatabricksSubmitRunOperator(
        task_id=SLOW_START_TASK_ID,
        databricks_conn_id=drill_conn_id("databricks"),
        run_name="drain-slow-start-{{ run_id }}",
        existing_cluster_id="drill-cluster",
        notebook_task={"notebook_path": "/Shared/drain"},
        polling_period_seconds=1,
        databricks_retry_delay=1,
    )


slow_start_resumable_dag()
