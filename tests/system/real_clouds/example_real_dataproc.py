# Licensed under the Apache License, Version 2.0.
"""
Example DAG (upstream system-test style): SparkPi on a real Dataproc cluster.

Configured from the environment: ``RESUMABLE_DATAPROC_PROJECT``, ``RESUMABLE_DATAPROC_REGION``,
``RESUMABLE_DATAPROC_CLUSTER``; the test's ``google_cloud_platform`` connection points ``key_path``
at ``GOOGLE_APPLICATION_CREDENTIALS``. The examples jar ships on every Dataproc image.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow.providers.resumable.operators.dataproc import ResumableDataprocSubmitJobOperator

DAG_ID = "example_real_dataproc"
TASK_ID = "spark_pi"
CONN_ID = "google_cloud_real_system"
PROJECT = os.environ.get("RESUMABLE_DATAPROC_PROJECT", "unset")
REGION = os.environ.get("RESUMABLE_DATAPROC_REGION", "europe-west1")
CLUSTER = os.environ.get("RESUMABLE_DATAPROC_CLUSTER", "unset")

with DAG(
    dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False
) as dag:
    ResumableDataprocSubmitJobOperator(
        task_id=TASK_ID,
        gcp_conn_id=CONN_ID,
        project_id=PROJECT,
        region=REGION,
        job={
            "placement": {"cluster_name": CLUSTER},
            "spark_job": {
                "main_class": "org.apache.spark.examples.SparkPi",
                "jar_file_uris": ["file:///usr/lib/spark/examples/jars/spark-examples.jar"],
                "args": ["20000"],
            },
        },
        polling_interval_seconds=10,
        resume_after=timedelta(seconds=10),
        retries=0,  # a resume must not need a retry
    )
