# Licensed under the Apache License, Version 2.0.
"""
One resumable task per cloud: the DAG ``make demo`` runs (against local fakes) and disrupts.

Point the standard connections at real accounts and it runs there unchanged: each task submits its
job once, survives its worker being shut down, and resumes by reconnecting.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator
from airflow.providers.resumable.operators.dataproc import ResumableDataprocSubmitJobOperator
from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator

# [START howto_resumable_demo]
with DAG(
    dag_id="example_resumable_demo",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    # retries=0: a worker shutdown is a checkpoint, not a failure, so none is needed for it.
    default_args={"retries": 0, "resume_after": timedelta(seconds=10)},
    tags=["example", "resumable"],
) as dag:
    databricks_etl = ResumableDatabricksSubmitRunOperator(
        task_id="databricks_etl",
        databricks_conn_id="databricks_default",
        run_name="nightly-etl",
        existing_cluster_id="0923-164208-meows279",
        notebook_task={"notebook_path": "/Shared/etl/nightly"},
        polling_period_seconds=2,
    )
    emr_steps = ResumableEmrAddStepsOperator(
        task_id="emr_steps",
        aws_conn_id="aws_default",
        wait_for_completion=True,  # upstream defaults to False: submit and move on
        waiter_delay=2,
        job_flow_name="resumable-cluster",
        cluster_states=["WAITING", "RUNNING"],
        steps=[
            {
                "Name": "nightly-etl",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "s3://etl/etl.py"]},
            }
        ],
    )
    dataproc_etl = ResumableDataprocSubmitJobOperator(
        task_id="dataproc_etl",
        gcp_conn_id="google_cloud_default",
        region="europe-west1",
        job={
            "placement": {"cluster_name": "etl-cluster"},
            "pyspark_job": {"main_python_file_uri": "gs://etl-bucket/nightly.py"},
        },
        polling_interval_seconds=2,
    )
# [END howto_resumable_demo]
