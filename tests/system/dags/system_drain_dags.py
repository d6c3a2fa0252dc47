# Licensed under the Apache License, Version 2.0.
"""
A DAG the Celery drain tests copy into the stack: one plain (non-resumable) task that sleeps.

It never announces itself to a drain-aware worker, so a warm shutdown must wait for it as Celery
does; it writes when it started and ended into its task state store, so the test can compare the
worker's exit with the task's own end.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from airflow.sdk import dag, task

PLAIN_DAG_ID = "system_drain_plain_task"
PLAIN_TASK_ID = "sleep_briefly"
PLAIN_TASK_SECONDS = 12.0
"""Long enough to SIGTERM the worker while it runs, short enough to keep the test cheap."""


@dag(dag_id=PLAIN_DAG_ID, schedule=None, start_date=datetime(2025, 1, 1, tzinfo=timezone.utc), catchup=False)
def plain_task_dag() -> None:
    @task(task_id=PLAIN_TASK_ID, retries=1)
    def sleep_briefly(task_state_store: Any = None) -> None:
        task_state_store.set("started_at", time.time())
        time.sleep(PLAIN_TASK_SECONDS)
        task_state_store.set("ended_at", time.time())

    sleep_briefly()


plain_task_dag()
