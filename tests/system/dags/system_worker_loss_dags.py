# Licensed under the Apache License, Version 2.0.
"""
DAGs for the worker-loss system tests: a task that declares itself resumable, and one that does not.

Both keep a diary in their task state store (key ``runs``: the try number and start time of each
run), say ``ready`` once they have reached the point where the test may kill their worker, and
then sleep. A second run of the task (a resume) finishes at once. The declaration uses the core
patch's generic opt-in directly, as any task could, not this provider's helper.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import dag, task

START_DATE = datetime(2025, 1, 1, tzinfo=UTC)
RESUMABLE_DAG_ID = "system_worker_loss_resumable"
CONTROL_DAG_ID = "system_worker_loss_control"
TASK_ID = "sleeper"
READY_KEY = "ready"


def _run_or_sleep(*, declare: bool, task_state_store: Any, ti: Any) -> dict[str, int]:
    runs: list[dict[str, Any]] = task_state_store.get("runs", default=[]) or []
    runs.append({"try_number": ti.try_number, "started_at": time.time()})
    task_state_store.set("runs", runs)
    if len(runs) > 1:
        return {"runs": len(runs)}
    if declare:
        from airflow.sdk.exceptions import AirflowTaskCheckpointed

        key = AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY  # type: ignore[attr-defined,unused-ignore]
        task_state_store.set(key, ti.try_number)
    task_state_store.set(READY_KEY, time.time())
    time.sleep(300)  # until the test kills the worker
    raise RuntimeError("the test never killed this task's worker")


@dag(dag_id=RESUMABLE_DAG_ID, schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_worker_loss_resumable() -> None:
    @task(task_id=TASK_ID, retries=0)
    def sleeper(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        return _run_or_sleep(declare=True, task_state_store=task_state_store, ti=ti)

    sleeper()


@dag(dag_id=CONTROL_DAG_ID, schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_worker_loss_control() -> None:
    @task(task_id=TASK_ID, retries=0)
    def sleeper(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        return _run_or_sleep(declare=False, task_state_store=task_state_store, ti=ti)

    sleeper()


system_worker_loss_resumable()
system_worker_loss_control()
