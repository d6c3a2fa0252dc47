# Licensed under the Apache License, Version 2.0.
"""A DAG the EMR system test copies into the stack's dags folder."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator

DAG_ID = "system_emr_sigterm"
TASK_ID = "nightly_steps"
CONN_ID = "aws_system_fake"
"""Created over REST by the test: fake keys, ``endpoint_url`` (the fake's proxy) in its extras."""
CLUSTER_NAME = "system-emr-cluster"

with DAG(dag_id=DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=UTC), catchup=False) as dag:
    ResumableEmrAddStepsOperator(
        task_id=TASK_ID,
        aws_conn_id=CONN_ID,
        job_flow_name=CLUSTER_NAME,
        cluster_states=["WAITING", "RUNNING"],
        steps=[
            {
                "Name": f"{step} {{{{ run_id }}}}",  # templated, as upstream
                "ActionOnFailure": "CANCEL_AND_WAIT",
                "HadoopJarStep": {
                    "Jar": "command-runner.jar",
                    "Args": ["spark-submit", f"s3://jobs/{step}.py"],
                },
            }
            for step in ("aggregate", "export")
        ],
        wait_for_completion=True,
        waiter_delay=1,
        waiter_max_attempts=10_000,
        # The default 10 s: shorter, a stock Airflow requeues the task before the SIGTERMed worker's
        # executor event arrives and then fails it ("state changed externally", DESIGN §4).
        resume_after=timedelta(seconds=10),
        retries=0,  # a resume must not need a retry
    )
