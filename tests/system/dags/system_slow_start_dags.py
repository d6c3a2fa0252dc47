# Licensed under the Apache License, Version 2.0.
"""
A plain task (no declaration, no retries) whose DAG file loads slowly in its task process, once.

The first time a task process loads this file it leaves a marker in ``AIRFLOW_HOME`` and sleeps:
a window in which the task runner has not yet taken SIGTERM over, so a worker shutdown ends the
task process outright. Later loads (the dag processor's, a resumed attempt's) are fast.
"""

from __future__ import annotations

from datetime import datetime, timezone

from airflow.sdk import dag, task

from airflow.providers.resumable.testing.dag_files import load_slowly_the_first_time

SLOW_START_DAG_ID = "system_slow_start"
TASK_ID = "plain"
LOADING_MARKER = "slow_start.loading"
LOAD_SECONDS = 15

load_slowly_the_first_time(SLOW_START_DAG_ID, marker=LOADING_MARKER, seconds=LOAD_SECONDS)


@dag(
    dag_id=SLOW_START_DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["system-test"],
)
def system_slow_start() -> None:
    @task(task_id=TASK_ID, retries=0)
    def plain(ti: object = None) -> int:
        return int(getattr(ti, "try_number", 0))

    plain()


system_slow_start()
