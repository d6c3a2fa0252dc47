# Licensed under the Apache License, Version 2.0.
"""
The DAGs a drill runs: two per cloud (polling from the worker, and ``deferrable=True``: polling
from the triggerer), one resumable task each. Copied into the drill's dags folder.

``retries=1`` is deliberate: the drill must *observe* a consumed retry (and fail the drill for it)
rather than have the task simply fail, which would hide whether the job was kept or lost.

Against fakes, each task runs a fixed job on the fake's made-up cluster. Against your own
deployment, the drill puts your job spec (validated by
:func:`airflow.providers.resumable.drill.real_clouds.validate_job_spec`) in the stack's environment
as ``RESUMABLE_DRILL_JOB_<CLOUD>`` (JSON), and the task runs that instead, polling more gently.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG

from airflow.providers.resumable.drill.naming import (
    DRILL_TASK_ID,
    drill_conn_id,
    drill_dag_id,
    drill_job_env,
    drill_run_name,
)
from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator
from airflow.providers.resumable.operators.dataproc import ResumableDataprocSubmitJobOperator
from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator

# A checkpointed task resumes after 3 s: with the core patch a resume may follow at once (its minimum is
# 1 s); without it, the provider raises it to 10 s (the stock scheduler's executor-event race).
DEFAULT_ARGS = {"retries": 1, "retry_delay": timedelta(seconds=1), "resume_after": timedelta(seconds=3)}
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def _real_job(cloud: str) -> dict[str, Any] | None:
    raw = os.environ.get(drill_job_env(cloud))
    return json.loads(raw) if raw else None


REAL_POLL_SECONDS = 5
"""How often a task on a real cloud polls its job: often enough to strike mid-run, gently on the API."""

_FAKE_JOBS: dict[str, dict[str, Any]] = {
    "databricks": {
        "existing_cluster_id": "drill-cluster",
        "notebook_task": {"notebook_path": "/Shared/drill"},
        "polling_period_seconds": 1,
    },
    "dataproc": {
        "region": "europe-west1",
        "job": {
            "placement": {"cluster_name": "drill-cluster"},
            "pyspark_job": {"main_python_file_uri": "gs://drill-bucket/job.py"},
        },
        "polling_interval_seconds": 1,
    },
    "emr": {
        "job_flow_name": "resumable-cluster",  # the cluster the fake EMR starts with
        "cluster_states": ["WAITING", "RUNNING"],
        "steps": [
            {
                "Name": "drill {{ run_id }}",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "s3://drill/job.py"]},
            }
        ],
        "waiter_delay": 1,
        # Upstream's 60 polls are a minute here: too short once steps queue behind other task
        # instances' on the fake cluster (seen: a step PENDING 13 s, then 60 s RUNNING, failed its try).
        "waiter_max_attempts": 600,
    },
}
"""Each cloud's job against its fake: a fixed job on the fake's made-up cluster, polled every second."""

_REAL_POLLING: dict[str, dict[str, Any]] = {
    "databricks": {"polling_period_seconds": REAL_POLL_SECONDS},
    "dataproc": {"polling_interval_seconds": REAL_POLL_SECONDS},
    # A real step may take an hour: the waiter budget is delay x attempts.
    "emr": {"waiter_delay": REAL_POLL_SECONDS, "waiter_max_attempts": 720},
}


def _job_arguments(cloud: str) -> dict[str, Any]:
    """The operator's job arguments: on a real cloud the user's spec (polled gently), else the fake's job."""
    spec = _real_job(cloud)
    if spec is None:
        return _FAKE_JOBS[cloud]
    real = _REAL_POLLING[cloud]
    # A Databricks spec is a runs/submit body, which the operator takes whole as ``json``.
    return {**real, "json": spec} if cloud == "databricks" else {**spec, **real}


def _drill_dag(cloud: str, *, deferrable: bool) -> DAG:
    return DAG(
        drill_dag_id(cloud, deferrable=deferrable),
        schedule=None,
        start_date=START,
        catchup=False,
        default_args=DEFAULT_ARGS,
    )


for deferrable in (False, True):  # the same task polling from the worker, or from the triggerer
    with _drill_dag("databricks", deferrable=deferrable):
        ResumableDatabricksSubmitRunOperator(
            task_id=DRILL_TASK_ID,
            databricks_conn_id=drill_conn_id("databricks"),
            run_name=drill_run_name("{{ run_id }}"),
            databricks_retry_delay=1,
            deferrable=deferrable,
            **_job_arguments("databricks"),
        )
    with _drill_dag("dataproc", deferrable=deferrable):
        ResumableDataprocSubmitJobOperator(
            task_id=DRILL_TASK_ID,
            gcp_conn_id=drill_conn_id("dataproc"),
            deferrable=deferrable,
            **_job_arguments("dataproc"),
        )
    with _drill_dag("emr", deferrable=deferrable):
        ResumableEmrAddStepsOperator(
            task_id=DRILL_TASK_ID,
            aws_conn_id=drill_conn_id("emr"),
            wait_for_completion=True,  # upstream defaults to False: submit and move on
            deferrable=deferrable,
            **_job_arguments("emr"),
        )
