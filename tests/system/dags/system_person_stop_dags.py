# Licensed under the Apache License, Version 2.0.
"""
DAGs for the "a person ends a task that waits to resume" system test.

A Databricks task (against the test's fake) that, stopped by a worker shutdown, waits five minutes
before resuming: long enough for the test to decide about it meanwhile. The second DAG times its
dag runs out after 40 s, while the task waits.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator

DAG_ID = "system_person_stops_a_waiting_task"
TIMEOUT_DAG_ID = "system_person_stops_a_waiting_task_timeout"
TASK_ID = "nightly_etl"
CONN_ID = "databricks_person_stop_fake"
"""Created over REST by the test, pointing at the fake it runs."""
DAGRUN_TIMEOUT = timedelta(seconds=40)

for dag_id, dagrun_timeout in ((DAG_ID, None), (TIMEOUT_DAG_ID, DAGRUN_TIMEOUT)):
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        dagrun_timeout=dagrun_timeout,
    ):
        ResumableDatabricksSubmitRunOperator(
            task_id=TASK_ID,
            databricks_conn_id=CONN_ID,
            run_name="system-person-stop",
            notebook_task={"notebook_path": "/Shared/nightly"},
            existing_cluster_id="0923-164208-meows279",
            polling_period_seconds=1,
            databricks_retry_delay=1,
            resume_after=timedelta(minutes=5),
            retries=0,
        )
