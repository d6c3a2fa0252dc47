# Licensed under the Apache License, Version 2.0.
"""
The benchmark's DAGs: for every operator pair, one DAG with the upstream operator and one with ours,
configured alike (same job, same connection, same poll interval, ``retries=1`` and a retry delay
equal to our ``resume_after``), plus the mass-drain DAG. Copied into the bench stack's dags folder.

The upstream Dataproc DAG exists only where the google provider is installed (the bench venv); its
hook is given a plain-text gRPC channel to the local fake, the one seam a local fake needs (the
operator and hook logic stay upstream's).
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


def dag_id(stream: str, side: str) -> str:
    return f"bench_{stream}_{side}"


def _dag(stream: str, side: str) -> DAG:
    return DAG(
        dag_id(stream, side),
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

with _dag("databricks_submit", "upstream"):
    DatabricksSubmitRunOperator(**DATABRICKS_SUBMIT)
with _dag("databricks_submit", "ours"):
    ResumableDatabricksSubmitRunOperator(**DATABRICKS_SUBMIT, resume_after=RESUME_AFTER)

with _dag("databricks_run_now", "upstream"):
    DatabricksRunNowOperator(**DATABRICKS_RUN_NOW)
with _dag("databricks_run_now", "ours"):
    ResumableDatabricksRunNowOperator(**DATABRICKS_RUN_NOW, resume_after=RESUME_AFTER)

with _dag("emr_steps", "upstream"):
    EmrAddStepsOperator(**EMR_STEPS)
with _dag("emr_steps", "ours"):
    ResumableEmrAddStepsOperator(**EMR_STEPS, resume_after=RESUME_AFTER)

with _dag("emr_serverless", "upstream"):
    EmrServerlessStartJobOperator(**EMR_SERVERLESS)
with _dag("emr_serverless", "ours"):
    ResumableEmrServerlessStartJobOperator(**EMR_SERVERLESS, resume_after=RESUME_AFTER)

with _dag("dataproc_job", "ours"):
    # Upstream's hook polls every 10 s whatever the operator says; ours is told the same.
    ResumableDataprocSubmitJobOperator(
        **DATAPROC, polling_interval_seconds=DATAPROC_POLL, resume_after=RESUME_AFTER
    )

try:
    from airflow.providers.google.cloud.hooks.dataproc import DataprocHook
    from airflow.providers.google.cloud.operators.dataproc import DataprocSubmitJobOperator
except ImportError:  # the main venv has no google provider; the bench venv does
    pass
else:

    def _local_job_client(hook: DataprocHook, region: str | None = None) -> Any:
        """The upstream hook's job client, on a plain-text channel to the fake named by the connection."""
        import grpc
        from google.cloud.dataproc_v1 import JobControllerClient
        from google.cloud.dataproc_v1.services.job_controller.transports import JobControllerGrpcTransport

        endpoint = hook.get_connection(hook.gcp_conn_id).extra_dejson["api_endpoint"]
        return JobControllerClient(
            transport=JobControllerGrpcTransport(channel=grpc.insecure_channel(endpoint))
        )

    class _LocalDataprocHook(DataprocHook):
        get_job_client = _local_job_client

    class _BenchDataprocSubmitJobOperator(DataprocSubmitJobOperator):
        """Upstream's operator with the transport seam above; everything else is upstream's."""

        @property
        def hook(self) -> DataprocHook | None:
            return self.__dict__.get("_bench_hook")

        @hook.setter
        def hook(self, value: DataprocHook | None) -> None:
            # execute() builds a DataprocHook; swap in the same hook with the local channel.
            self.__dict__["_bench_hook"] = (
                None if value is None else _LocalDataprocHook(gcp_conn_id=self.gcp_conn_id)
            )

    with _dag("dataproc_job", "upstream"):
        _BenchDataprocSubmitJobOperator(**DATAPROC)

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
