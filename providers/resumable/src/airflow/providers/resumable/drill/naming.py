# Licensed under the Apache License, Version 2.0.
"""
The names a drill and its DAG file agree on: DAG and task ids, connection ids, environment variables.

Kept apart from :mod:`~airflow.providers.resumable.drill.drill_dags` so that the runner and the
real-cloud adapters can use them without importing a DAG file (and, through it, the operators).
"""

from __future__ import annotations

DRILL_TASK_ID = "job"
"""The one task of every drill DAG."""


def drill_dag_id(cloud: str, *, deferrable: bool = False) -> str:
    """The DAG a drill triggers for ``cloud``; its task polls from the triggerer when ``deferrable``."""
    return f"resumable_drill_{cloud}" + ("_deferrable" if deferrable else "")


def drill_conn_id(cloud: str) -> str:
    """The connection the drill's task for ``cloud`` uses."""
    return f"resumable_drill_{cloud}"


def drill_job_env(cloud: str) -> str:
    """The environment variable that carries a real-cloud job spec (JSON) to the drill's stack."""
    return f"RESUMABLE_DRILL_JOB_{cloud.upper()}"


def drill_run_name(run_id: str) -> str:
    """The name the Databricks drill task gives its run: how a real workspace's runs are attributed."""
    return f"drill-{run_id}"
