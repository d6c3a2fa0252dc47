# Licensed under the Apache License, Version 2.0.
"""
Example DAG: the two resumable Dataproc operators, as ``docs/operators/dataproc.rst`` shows them.

Swapping ``DataprocSubmitJobOperator`` for ``ResumableDataprocSubmitJobOperator`` (and
``DataprocCreateBatchOperator`` for ``ResumableDataprocCreateBatchOperator``) is the whole
migration: the arguments, templates, return values and the console links are the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.dataproc import (
    ResumableDataprocCreateBatchOperator,
    ResumableDataprocSubmitJobOperator,
)

# [START howto_resumable_dataproc]
with DAG(
    dag_id="example_resumable_dataproc",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"gcp_conn_id": "google_cloud_default", "retries": 1},
    tags=["example", "dataproc", "resumable"],
) as dag:
    # A PySpark job on an existing cluster. The ledger's key becomes the request_id, and the job id
    # is derived from it: a worker that dies at any moment cannot cause a second job, and a worker
    # shutdown leaves the job running.
    nightly_etl = ResumableDataprocSubmitJobOperator(
        task_id="nightly_etl",
        region="europe-west1",
        job={
            "placement": {"cluster_name": "etl-cluster"},
            "pyspark_job": {
                "main_python_file_uri": "gs://my-bucket/jobs/nightly_etl.py",
                "args": ["--day", "{{ ds }}"],
            },
            "labels": {"team": "data-platform"},
        },
        polling_interval_seconds=30,
        max_poll_interval=300,  # back off to one poll every 5 minutes on long jobs
        resume_after=timedelta(seconds=30),
        execution_timeout=timedelta(hours=6),  # still cancels the job, as upstream
    )

    # A Dataproc Serverless batch reading the job id the first task returned.
    report = ResumableDataprocCreateBatchOperator(
        task_id="report",
        region="europe-west1",
        batch={
            "pyspark_batch": {
                "main_python_file_uri": "gs://my-bucket/jobs/report.py",
                "args": ["--source-job", "{{ ti.xcom_pull(task_ids='nightly_etl') }}"],
            },
        },
        batch_id_prefix="report",  # <prefix>-<8 hex>, the hex derived from the ledger key
    )

    nightly_etl >> report
# [END howto_resumable_dataproc]
