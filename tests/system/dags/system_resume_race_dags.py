# Licensed under the Apache License, Version 2.0.
"""
Tasks that checkpoint once, for the executor-event race tests (``test_resume_race*.py``).

``system_late_executor_event``: its first attempt checkpoints with a short ``resume_after``;
``tests/system/plugins/late_exit_listener_plugin.py`` then keeps that attempt's task process alive for
a few seconds (its checkpoint listener sleeps), so the executor reports the attempt's end only after
the task was resumed. The task runs in its own pool, which the test closes (0 slots) to hold the
resumed task instance in ``scheduled`` while that report arrives.

``system_resumed_workload_lost_before_start``: declares itself resumable on worker loss, then
checkpoints; the Celery test loses the resumed workload before it starts.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import dag, task

from airflow.providers.resumable.checkpoint import checkpoint_exception

LATE_EVENT_DAG_ID = "system_late_executor_event"
RACE_POOL = "resumable_resume_race"
RESUME_AFTER = timedelta(seconds=1)


# What both DAGs of this file are besides their id: run only when a test triggers them.
TRIGGERED_ONLY: dict[str, Any] = {
    "schedule": None,
    "start_date": datetime(2025, 1, 1, tzinfo=timezone.utc),
    "catchup": False,
    "tags": ["system-test"],
}


@dag(dag_id=LATE_EVENT_DAG_ID, **TRIGGERED_ONLY)
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


LOST_BEFORE_START_DAG_ID = "system_resumed_workload_lost_before_start"
LOST_BEFORE_START_RESUME_AFTER = timedelta(seconds=8)
"""Long enough for the test to see the checkpointed attempt's workload end before the resume is queued."""


@dag(dag_id=LOST_BEFORE_START_DAG_ID, **TRIGGERED_ONLY)
def system_resumed_workload_lost_before_start() -> None:
    """Declares itself resumable on worker loss, checkpoints once, and succeeds when it runs again."""

    @task(retries=0)
    def checkpointing(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        from airflow.sdk import get_current_context

        from airflow.providers.resumable.checkpoint import declare_resumable_on_worker_loss

        runs: list[int] = task_state_store.get("runs", default=[]) or []
        runs.append(ti.try_number)
        task_state_store.set("runs", runs)
        if len(runs) == 1:
            declare_resumable_on_worker_loss(
                get_current_context(), resume_after=LOST_BEFORE_START_RESUME_AFTER
            )
            raise checkpoint_exception(resume_after=LOST_BEFORE_START_RESUME_AFTER, checkpoint_data=None)
        return {"runs": len(runs)}

    checkpointing()


system_resumed_workload_lost_before_start()
