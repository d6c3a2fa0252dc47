# Licensed under the Apache License, Version 2.0.
"""A DAG the Databricks system test copies into the stack's dags folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator

DAG_ID = "system_databricks_sigterm"
TASK_ID = "nightly_etl"
CONN_ID = "databricks_system_fake"
"""Created over REST by the test, pointing at the fake it runs (``schema=http`` plus its port)."""

with DAG(dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False) as dag:
    ResumableDatabricksSubmitRunOperator(
        task_id=TASK_ID,
        databricks_conn_id=CONN_ID,
        run_name="system-nightly-etl",
        notebook_task={"notebook_path": "/Shared/nightly"},
        existing_cluster_id="0923-164208-meows279",
        polling_period_seconds=1,
        databricks_retry_delay=1,
        resume_after=timedelta(seconds=2),
        retries=0,  # a resume must not need a retry
    )
