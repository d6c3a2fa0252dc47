# Licensed under the Apache License, Version 2.0.
"""
Example DAG (upstream system-test style): SparkPi on a real EMR Serverless application.

Configured from the environment: ``RESUMABLE_EMR_SERVERLESS_APPLICATION_ID`` (a Spark application)
and ``RESUMABLE_EMR_SERVERLESS_EXECUTION_ROLE_ARN`` (a role the job runs as); credentials and region
from boto3's default chain. The examples jar ships in the EMR Serverless image.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow.providers.resumable.operators.emr import ResumableEmrServerlessStartJobOperator

DAG_ID = "example_real_emr_serverless"
TASK_ID = "spark_pi"
CONN_ID = "aws_real_system"
APPLICATION_ID = os.environ.get("RESUMABLE_EMR_SERVERLESS_APPLICATION_ID", "unset")
EXECUTION_ROLE_ARN = os.environ.get(
    "RESUMABLE_EMR_SERVERLESS_EXECUTION_ROLE_ARN", "arn:aws:iam::000000000000:role/unset"
)


def run_name(run_id: str) -> str:
    """The job run name of a DAG run's task: how the test finds this run's job runs."""
    return f"resumable-system-{run_id}"


with DAG(
    dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False
) as dag:
    ResumableEmrServerlessStartJobOperator(
        task_id=TASK_ID,
        aws_conn_id=CONN_ID,
        application_id=APPLICATION_ID,
        execution_role_arn=EXECUTION_ROLE_ARN,
        name=run_name("{{ run_id }}"),
        job_driver={
            "sparkSubmit": {
                "entryPoint": "local:///usr/lib/spark/examples/jars/spark-examples.jar",
                "entryPointArguments": ["20000"],
                "sparkSubmitParameters": "--class org.apache.spark.examples.SparkPi",
            }
        },
        wait_for_completion=True,
        waiter_delay=10,
        waiter_max_attempts=360,
        resume_after=timedelta(seconds=10),
        retries=0,  # a resume must not need a retry
    )
