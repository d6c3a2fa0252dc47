# Licensed under the Apache License, Version 2.0.
"""
Example DAG: the two resumable Databricks operators, as ``docs/operators/databricks.rst`` shows them.

Swapping ``DatabricksSubmitRunOperator`` for ``ResumableDatabricksSubmitRunOperator`` (and
``DatabricksRunNowOperator`` for ``ResumableDatabricksRunNowOperator``) is the whole migration: the
arguments, templates, XComs and the "See Databricks Job Run" link are the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)

# [START howto_resumable_databricks]
with DAG(
    dag_id="example_resumable_databricks",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"databricks_conn_id": "databricks_default", "retries": 1},
    tags=["example", "databricks", "resumable"],
) as dag:
    # A one-time run. The ledger's key becomes the idempotency_token: a worker that dies at any
    # moment cannot cause a second run, and a worker shutdown leaves the run going.
    nightly_etl = ResumableDatabricksSubmitRunOperator(
        task_id="nightly_etl",
        run_name="nightly-etl-{{ ds }}",
        new_cluster={
            "spark_version": "15.4.x-scala2.12",
            "node_type_id": "i3.xlarge",
            "num_workers": 4,
        },
        notebook_task={
            "notebook_path": "/Shared/etl/nightly",
            "base_parameters": {"day": "{{ ds }}"},
        },
        polling_period_seconds=60,
        max_poll_interval=300,  # back off to one poll every 5 minutes on long runs
        resume_after=timedelta(seconds=30),
        execution_timeout=timedelta(hours=6),  # still cancels the run, as upstream
    )

    # An existing job, found by name; the run id travels downstream by XCom as upstream's does.
    publish = ResumableDatabricksRunNowOperator(
        task_id="publish",
        job_name="publish-reports",
        job_parameters={
            "day": "{{ ds }}",
            "source_run": "{{ ti.xcom_pull(task_ids='nightly_etl', key='run_id') }}",
        },
        repair_run=True,
    )

    nightly_etl >> publish
# [END howto_resumable_databricks]
