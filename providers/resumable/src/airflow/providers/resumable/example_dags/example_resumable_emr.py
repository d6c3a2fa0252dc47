# Licensed under the Apache License, Version 2.0.
"""
Example DAG: the two resumable EMR operators, as ``docs/operators/emr.rst`` shows them.

Swapping ``EmrAddStepsOperator`` for ``ResumableEmrAddStepsOperator`` (and
``EmrServerlessStartJobOperator`` for ``ResumableEmrServerlessStartJobOperator``) is the whole
migration: the arguments, templates, return values, XComs and links are the same.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrServerlessStartJobOperator,
)

# [START howto_resumable_emr]
with DAG(
    dag_id="example_resumable_emr",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"aws_conn_id": "aws_default", "retries": 1},
    tags=["example", "emr", "resumable"],
) as dag:
    # Two Spark steps on a long-lived cluster found by name. The ledger's key goes into each step's
    # Name, so a worker that dies at any moment cannot add the steps twice, and a worker shutdown
    # leaves them running. The step ids are the return value, as upstream.
    nightly_steps = ResumableEmrAddStepsOperator(
        task_id="nightly_steps",
        job_flow_name="analytics-cluster",
        cluster_states=["WAITING", "RUNNING"],
        steps=[
            {
                "Name": "aggregate {{ ds }}",
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "HadoopJarStep": {
                    "Jar": "command-runner.jar",
                    "Args": ["spark-submit", "s3://my-bucket/jobs/aggregate.py", "{{ ds }}"],
                },
            },
            {
                "Name": "export {{ ds }}",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {
                    "Jar": "command-runner.jar",
                    "Args": ["spark-submit", "s3://my-bucket/jobs/export.py", "{{ ds }}"],
                },
            },
        ],
        wait_for_completion=True,
        waiter_delay=60,
        waiter_max_attempts=240,  # four hours of polls per attempt, as upstream's waiter
        resume_after=timedelta(seconds=30),
    )

    # An EMR Serverless job run; the ledger's key is its clientToken.
    publish = ResumableEmrServerlessStartJobOperator(
        task_id="publish",
        application_id="00fabcdefghij012",
        execution_role_arn="arn:aws:iam::123456789012:role/emr-serverless-job",
        job_driver={
            "sparkSubmit": {
                "entryPoint": "s3://my-bucket/jobs/publish.py",
                "entryPointArguments": ["{{ ds }}"],
            }
        },
        configuration_overrides={
            "monitoringConfiguration": {"s3MonitoringConfiguration": {"logUri": "s3://my-bucket/logs/"}}
        },
        waiter_delay=60,
        waiter_max_attempts=120,
        execution_timeout=timedelta(hours=3),  # still cancels the job run, as upstream's kill does
    )

    nightly_steps >> publish
# [END howto_resumable_emr]
