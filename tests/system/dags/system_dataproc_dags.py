# Licensed under the Apache License, Version 2.0.
"""A DAG the Dataproc system test copies into the stack's dags folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.dataproc import ResumableDataprocSubmitJobOperator

DAG_ID = "system_dataproc_sigterm"
TASK_ID = "nightly_pyspark"
CONN_ID = "dataproc_system_fake"
"""Created over REST by the test, pointing at the gRPC fake it runs (``api_endpoint`` + ``insecure``)."""
REGION = "europe-west1"

with DAG(dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False) as dag:
    ResumableDataprocSubmitJobOperator(
        task_id=TASK_ID,
        gcp_conn_id=CONN_ID,
        region=REGION,
        job={
            "placement": {"cluster_name": "system-cluster"},
            "pyspark_job": {"main_python_file_uri": "gs://system-bucket/nightly.py"},
        },
        polling_interval_seconds=1,
        resume_after=timedelta(seconds=2),
        retries=0,  # a resume must not need a retry
    )
