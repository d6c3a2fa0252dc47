# Licensed under the Apache License, Version 2.0.
"""
What a valid Databricks request body is, checked before anything is sent: pure functions, no HTTP.

The resumable Databricks operators merge ``json`` with their named arguments as upstream does, then
check the result here, so invalid input fails the task (no retry) before a run exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow.providers.resumable.extras import missing_extra

try:
    from airflow.providers.databricks.utils.databricks import normalise_json_content
except ImportError as err:
    raise missing_extra("databricks", err) from err

from airflow.providers.resumable.hooks.databricks import MAX_TOKEN_LENGTH, SINGLE_TASK_KEYS


def normalised(json: dict[str, Any], task_id: str) -> dict[str, Any]:
    """
    Upstream's own type check and stringification; a bad value fails the task, not a retry.

    :param json: the merged request body.
    :param task_id: the task, for the message.
    """
    try:
        return cast("dict[str, Any]", normalise_json_content(json))
    except AirflowException as err:
        raise AirflowFailException(f"Invalid Databricks payload for task {task_id!r}: {err}") from err


def check_token(json: Mapping[str, Any]) -> None:
    """
    Refuse an ``idempotency_token`` longer than Databricks accepts.

    :param json: the merged request body.
    """
    token = json.get("idempotency_token")
    if token is not None and len(str(token)) > MAX_TOKEN_LENGTH:
        raise AirflowFailException(
            f"idempotency_token must be at most {MAX_TOKEN_LENGTH} characters, got {len(str(token))}"
        )


def check_tasks_and_clusters(json: Mapping[str, Any], task_id: str) -> None:
    """
    A ``runs/submit`` body gives its work as ``tasks`` or as one top-level ``*_task``, never both,
    and each unit of work names one cluster at most.

    :param json: the merged request body.
    :param task_id: the task, for the message.
    """
    tasks = json.get("tasks")
    units: list[tuple[str, Mapping[str, Any]]]
    if tasks:
        if not isinstance(tasks, list):
            raise AirflowFailException(f"'tasks' must be a list of task settings, got {type(tasks).__name__}")
        units = [(f"tasks[{i}]", t) for i, t in enumerate(tasks) if isinstance(t, Mapping)]
        if any(key in json for key in SINGLE_TASK_KEYS):
            raise AirflowFailException(
                "Give the run's work either as 'tasks' or as one top-level *_task "
                f"({', '.join(k for k in SINGLE_TASK_KEYS if k in json)}), not both"
            )
    else:
        if not any(key in json for key in SINGLE_TASK_KEYS):
            raise AirflowFailException(
                f"Task {task_id!r} gives Databricks nothing to run: set 'tasks' or one of "
                "notebook_task, spark_jar_task, spark_python_task, spark_submit_task, pipeline_task, "
                "dbt_task (directly or in 'json')"
            )
        units = [("the run", json)]
    for where, unit in units:
        if "new_cluster" in unit and "existing_cluster_id" in unit:
            raise AirflowFailException(
                f"{where} sets both 'existing_cluster_id' and 'new_cluster': choose one cluster"
            )
