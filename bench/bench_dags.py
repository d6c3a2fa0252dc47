# Licensed under the Apache License, Version 2.0.
"""
The benchmark's DAGs: for every operator pair, one DAG with the upstream operator and one with ours,
configured alike (same job, same connection, same poll interval, ``retries=1`` and a retry delay
equal to our ``resume_after``), the same pair again with ``deferrable=True`` on both sides (``make
bench-deferrable``), plus the mass-drain DAG. Copied into the bench stack's dags folder.

The upstream Dataproc DAGs exist only where the google provider is installed (the bench venv); their
hooks are given a plain-text gRPC channel to the local fake, the one seam a local fake needs (the
operator, hook and trigger logic stay upstream's; see :mod:`bench.upstream_dataproc`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator, EmrServerlessStartJobOperator
from airflow.providers.databricks.operators.databricks import (
    DatabricksRunNowOperator,
    DatabricksSubmitRunOperator,
)
from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)
from airflow.providers.resumable.operators.dataproc import ResumableDataprocSubmitJobOperator
from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrServerlessStartJobOperator,
)

TASK_ID = "job"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
POLL = int(os.environ.get("RESUMABLE_BENCH_POLL_SECONDS", "2"))
DATAPROC_POLL = 10  # upstream's DataprocHook.wait_for_job polls every 10 s and the operator cannot change it
RESUME_AFTER = timedelta(seconds=10)
DEFAULT_ARGS: dict[str, Any] = {"retries": 1, "retry_delay": RESUME_AFTER}
DRAIN_TASKS = int(os.environ.get("RESUMABLE_BENCH_DRAIN_TASKS", "16"))
SERVERLESS_APP = "{{ var.value.resumable_bench_serverless_application_id }}"
ROLE = "arn:aws:iam::123456789012:role/bench"


def conn_id(stream: str) -> str:
    return f"bench_{stream}"


def dag_id(stream: str, side: str, *, deferrable: bool = False) -> str:
    return f"bench_{stream}_{side}" + ("_deferrable" if deferrable else "")


def _dag(stream: str, side: str, *, deferrable: bool = False) -> DAG:
    return DAG(
        dag_id(stream, side, deferrable=deferrable),
        schedule=None,
        start_date=START,
        catchup=False,
        default_args=DEFAULT_ARGS,
        max_active_runs=1,
    )


DATABRICKS_RUN: dict[str, Any] = {
    "existing_cluster_id": "bench-cluster",
    "notebook_task": {"notebook_path": "/Shared/bench"},
}
STEPS = [
    {
        "Name": "bench {{ run_id }}",
        "ActionOnFailure": "CONTINUE",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "s3://bench/job.py"]},
    }
]
JOB_DRIVER: dict[str, Any] = {"sparkSubmit": {"entryPoint": "s3://bench/job.py"}}
DATAPROC_JOB: dict[str, Any] = {
    "placement": {"cluster_name": "bench-cluster"},
    "pyspark_job": {"main_python_file_uri": "gs://bench/job.py"},
}

# Each pair's operators get the same arguments; ours only adds resume_after (the retry delay's twin).
DATABRICKS_SUBMIT: dict[str, Any] = {
    "task_id": TASK_ID,
    "databricks_conn_id": conn_id("databricks_submit"),
    "run_name": "bench-{{ run_id }}",
    "polling_period_seconds": POLL,
    "databricks_retry_delay": 1,
    **DATABRICKS_RUN,
}
DATABRICKS_RUN_NOW: dict[str, Any] = {
    "task_id": TASK_ID,
    "databricks_conn_id": conn_id("databricks_run_now"),
    "job_name": "bench-job",
    "polling_period_seconds": POLL,
    "databricks_retry_delay": 1,
}
EMR_STEPS: dict[str, Any] = {
    "task_id": TASK_ID,
    "aws_conn_id": conn_id("emr_steps"),
    "job_flow_name": "bench-cluster",
    "cluster_states": ["WAITING", "RUNNING"],
    "steps": STEPS,
    "wait_for_completion": True,  # upstream defaults to False: submit and move on
    "waiter_delay": POLL,
    "waiter_max_attempts": 600,
}
EMR_SERVERLESS: dict[str, Any] = {
    "task_id": TASK_ID,
    "aws_conn_id": conn_id("emr_serverless"),
    "application_id": SERVERLESS_APP,
    "execution_role_arn": ROLE,
    "job_driver": JOB_DRIVER,
    "name": "bench-{{ run_id }}",
    "waiter_delay": POLL,
    "waiter_max_attempts": 600,
}
DATAPROC: dict[str, Any] = {
    "task_id": TASK_ID,
    "gcp_conn_id": conn_id("dataproc_job"),
    "project_id": "fake-project",
    "region": "europe-west1",
    "job": DATAPROC_JOB,
}

for deferrable in (False, True):
    with _dag("databricks_submit", "upstream", deferrable=deferrable):
        DatabricksSubmitRunOperator(**DATABRICKS_SUBMIT, deferrable=deferrable)
    with _dag("databricks_submit", "ours", deferrable=deferrable):
        ResumableDatabricksSubmitRunOperator(
            **DATABRICKS_SUBMIT, resume_after=RESUME_AFTER, deferrable=deferrable
        )

    with _dag("databricks_run_now", "upstream", deferrable=deferrable):
        DatabricksRunNowOperator(**DATABRICKS_RUN_NOW, deferrable=deferrable)
    with _dag("databricks_run_now", "ours", deferrable=deferrable):
        ResumableDatabricksRunNowOperator(
            **DATABRICKS_RUN_NOW, resume_after=RESUME_AFTER, deferrable=deferrable
        )

    with _dag("emr_steps", "upstream", deferrable=deferrable):
        EmrAddStepsOperator(**EMR_STEPS, deferrable=deferrable)
    with _dag("emr_steps", "ours", deferrable=deferrable):
        ResumableEmrAddStepsOperator(**EMR_STEPS, resume_after=RESUME_AFTER, deferrable=deferrable)

    with _dag("emr_serverless", "upstream", deferrable=deferrable):
        EmrServerlessStartJobOperator(**EMR_SERVERLESS, deferrable=deferrable)
    with _dag("emr_serverless", "ours", deferrable=deferrable):
        ResumableEmrServerlessStartJobOperator(
            **EMR_SERVERLESS, resume_after=RESUME_AFTER, deferrable=deferrable
        )

    with _dag("dataproc_job", "ours", deferrable=deferrable):
        # Upstream's hook polls every 10 s whatever the operator says; ours is told the same.
        ResumableDataprocSubmitJobOperator(
            **DATAPROC,
            polling_interval_seconds=DATAPROC_POLL,
            resume_after=RESUME_AFTER,
            deferrable=deferrable,
        )

try:
    from bench.upstream_dataproc import BenchDataprocSubmitJobOperator
except ImportError:  # the main venv has no google provider; the bench venv does
    pass
else:
    for deferrable in (False, True):
        with _dag("dataproc_job", "upstream", deferrable=deferrable):
            # Deferred, upstream's trigger polls every polling_interval_seconds: the same 10 s.
            BenchDataprocSubmitJobOperator(
                **DATAPROC, deferrable=deferrable, polling_interval_seconds=DATAPROC_POLL
            )

with DAG(
    "bench_mass_drain",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args=DEFAULT_ARGS,
    max_active_tasks=DRAIN_TASKS,
):
    for index in range(DRAIN_TASKS):
        ResumableDatabricksSubmitRunOperator(
            task_id=f"{TASK_ID}_{index:02d}",
            databricks_conn_id=conn_id("mass_drain"),
            run_name=f"drain-{index:02d}-{{{{ run_id }}}}",
            polling_period_seconds=POLL,
            databricks_retry_delay=1,
            resume_after=RESUME_AFTER,
            **DATABRICKS_RUN,
        )
