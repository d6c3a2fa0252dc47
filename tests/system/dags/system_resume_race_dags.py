# Licensed under the Apache License, Version 2.0.
"""
A task that checkpoints once with a short ``resume_after``, for the executor-event race test.

Its first attempt checkpoints; ``tests/system/plugins/late_exit_listener_plugin.py`` then keeps that
attempt's task process alive for a few seconds (its checkpoint listener sleeps), so the executor
reports the attempt's end only after the task was resumed. The task runs in its own pool, which the
test closes (0 slots) to hold the resumed task instance in ``scheduled`` while that report arrives.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import dag, task

from airflow.providers.resumable.checkpoint import checkpoint_exception

LATE_EVENT_DAG_ID = "system_late_executor_event"
RACE_POOL = "resumable_resume_race"
RESUME_AFTER = timedelta(seconds=1)


@dag(
    dag_id=LATE_EVENT_DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["system-test"],
)
def system_late_executor_event() -> None:
    @task(retries=0, pool=RACE_POOL)
    def checkpointing(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        runs: list[int] = task_state_store.get("runs", default=[]) or []
        runs.append(ti.try_number)
        task_state_store.set("runs", runs)
        if len(runs) == 1:
            raise checkpoint_exception(resume_after=RESUME_AFTER, checkpoint_data=None)
        return {"runs": len(runs)}

    checkpointing()


system_late_executor_event()
