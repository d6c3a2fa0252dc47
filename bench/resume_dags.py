# Licensed under the Apache License, Version 2.0.
"""The DAG ``make bench-resume`` deploys: one task that checkpoints as often as the run's conf says."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import dag, task

from airflow.providers.resumable.checkpoint import checkpoint_exception

RESUME_DAG_ID = "bench_resume_latency"
RESUME_TASK_ID = "checkpointing"


@dag(
    dag_id=RESUME_DAG_ID,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=timezone.utc),
    catchup=False,
    tags=["bench"],
)
def bench_resume_latency() -> None:
    @task(task_id=RESUME_TASK_ID, retries=0)
    def checkpointing(dag_run: Any = None, task_state_store: Any = None, ti: Any = None) -> int:
        # Each attempt notes when its code started: the task state store survives the resumes.
        runs: list[list[float]] = task_state_store.get("runs", default=[]) or []
        runs.append([float(ti.try_number), time.time()])
        task_state_store.set("runs", runs)
        if len(runs) <= int(dag_run.conf["checkpoints"]):
            resume_after = timedelta(seconds=float(dag_run.conf["resume_after"]))
            raise checkpoint_exception(resume_after=resume_after, checkpoint_data=None)
        return len(runs)

    checkpointing()


bench_resume_latency()
