# Licensed under the Apache License, Version 2.0.
"""
The DAGs a drill runs: one per cloud, one resumable task each. Copied into the drill's dags folder.

``retries=1`` is deliberate: the drill must *observe* a consumed retry (and fail the drill for it)
rather than have the task simply fail, which would hide whether the job was kept or lost.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.databricks import ResumableDatabricksSubmitRunOperator
from airflow.providers.resumable.operators.dataproc import ResumableDataprocSubmitJobOperator
from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator

DRILL_TASK_ID = "job"
DEFAULT_ARGS = {"retries": 1, "retry_delay": timedelta(seconds=1), "resume_after": timedelta(seconds=10)}
START = datetime(2026, 1, 1, tzinfo=UTC)


def drill_dag_id(cloud: str) -> str:
    """The DAG a drill triggers for ``cloud``."""
    return f"resumable_drill_{cloud}"


def drill_conn_id(cloud: str) -> str:
    """The connection the drill's task for ``cloud`` uses."""
    return f"resumable_drill_{cloud}"


with DAG(
    drill_dag_id("databricks"), schedule=None, start_date=START, catchup=False, default_args=DEFAULT_ARGS
):
    ResumableDatabricksSubmitRunOperator(
        task_id=DRILL_TASK_ID,
        databricks_conn_id=drill_conn_id("databricks"),
        run_name="drill-{{ run_id }}",
        existing_cluster_id="drill-cluster",
        notebook_task={"notebook_path": "/Shared/drill"},
        polling_period_seconds=1,
        databricks_retry_delay=1,
    )

with DAG(drill_dag_id("dataproc"), schedule=None, start_date=START, catchup=False, default_args=DEFAULT_ARGS):
    ResumableDataprocSubmitJobOperator(
        task_id=DRILL_TASK_ID,
        gcp_conn_id=drill_conn_id("dataproc"),
        region="europe-west1",
        job={
            "placement": {"cluster_name": "drill-cluster"},
            "pyspark_job": {"main_python_file_uri": "gs://drill-bucket/job.py"},
        },
        polling_interval_seconds=1,
    )

with DAG(drill_dag_id("emr"), schedule=None, start_date=START, catchup=False, default_args=DEFAULT_ARGS):
    ResumableEmrAddStepsOperator(
        task_id=DRILL_TASK_ID,
        aws_conn_id=drill_conn_id("emr"),
        job_flow_name="resumable-cluster",  # the cluster the fake EMR starts with
        cluster_states=["WAITING", "RUNNING"],
        steps=[
            {
                "Name": "drill {{ run_id }}",
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "s3://drill/job.py"]},
            }
        ],
        wait_for_completion=True,  # upstream defaults to False: submit and move on
        waiter_delay=1,
    )
