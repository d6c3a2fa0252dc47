# Licensed under the Apache License, Version 2.0.
"""
The DAG the UI screenshots show (docs/screenshots/take_screenshots.py deploys it on a stack).

``extract`` succeeds; ``long_job`` checkpoints for an hour (so it stays ``checkpointed`` while the
screenshots are taken); ``other_job`` keeps running beside it, so ``running`` (cyan) and
``checkpointed`` (teal) are seen side by side; ``publish`` waits downstream of ``long_job``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from airflow.providers.resumable.checkpoint import checkpoint_exception


@dag(dag_id="ui_checkpointed", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def ui_checkpointed() -> None:
    @task
    def extract() -> int:
        return 1

    @task
    def long_job(value: int, ti: Any = None) -> int:
        raise checkpoint_exception(resume_after=timedelta(hours=1), checkpoint_data=None, ti=ti)

    @task
    def other_job(value: int) -> None:
        time.sleep(900)

    @task
    def publish(value: int) -> None:
        pass

    value = extract()
    publish(long_job(value))
    other_job(value)


ui_checkpointed()
