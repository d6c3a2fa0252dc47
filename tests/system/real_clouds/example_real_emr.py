# Licensed under the Apache License, Version 2.0.
"""
Example DAG (upstream system-test style): a SparkPi step on a real EMR cluster.

Configured from the environment: ``RESUMABLE_EMR_CLUSTER_ID`` (a cluster in ``WAITING`` or
``RUNNING``); credentials and region come from boto3's default chain (the test's ``aws`` connection
has no login). ``spark-example`` ships with EMR, so nothing needs uploading; 20,000 slices keep it
running for a few minutes.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from airflow.sdk import DAG

from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator

DAG_ID = "example_real_emr"
TASK_ID = "spark_pi"
CONN_ID = "aws_real_system"
CLUSTER_ID = os.environ.get("RESUMABLE_EMR_CLUSTER_ID", "j-UNSET")

with DAG(
    dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False
) as dag:
    ResumableEmrAddStepsOperator(
        task_id=TASK_ID,
        aws_conn_id=CONN_ID,
        job_flow_id=CLUSTER_ID,
        steps=[
            {
                "Name": "resumable-system-pi {{ run_id }}",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-example", "SparkPi", "20000"]},
            }
        ],
        wait_for_completion=True,
        waiter_delay=10,
        waiter_max_attempts=360,
        resume_after=timedelta(seconds=10),
        retries=0,  # a resume must not need a retry
    )
