# Licensed under the Apache License, Version 2.0.
"""
The demo's watcher tells each task's story to its end.

The run's end is only known after its tasks' ends, so a watcher that reads the tasks and then the run
can see the run end after a pass that still showed a task running: the Celery demo reported
``something did not go as designed`` that way once (EMR's ``running -> success`` happened between the
two reads, so its story ended on ``running``). A small in-memory stand-in for the stack's database
plays that order here; the real stack runs in ``tests/system/test_demo.py``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airflow.providers.resumable.demo import runner
from airflow.providers.resumable.demo.runner import Narrator, TaskStory
from airflow.providers.resumable.testing.clouds import CloudCounts
from airflow.providers.resumable.testing.stack import TaskInstanceRow

TASK_ID = "emr_steps"


@dataclass
class _Cloud:
    name: str = "emr"
    task_id: str = TASK_ID

    def counts(self) -> CloudCounts:
        return CloudCounts(submissions=1, cancellations=0)

    def job_state(self, external_id: str) -> str:
        return "COMPLETED"


class _Database:
    """The task finishes, and with it the run, right after the first time the tasks are read."""

    def __init__(self) -> None:
        self.task_reads = 0

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, TaskInstanceRow]:
        state = "running" if self.task_reads == 0 else "success"
        self.task_reads += 1
        return {TASK_ID: TaskInstanceRow("ti", TASK_ID, -1, state, 1, 0, "default_pool", None, None)}

    def dag_run_state(self, dag_id: str, run_id: str) -> str:
        return "running" if self.task_reads == 0 else "success"

    def task_state_value(self, *args: Any) -> None:
        return None


@dataclass
class _Stack:
    db: _Database
    task_logs: Path


def test_a_task_that_ends_with_its_run_between_two_reads_still_ends_its_story_on_success(
    tmp_path: Path,
) -> None:
    story = TaskStory(cloud=_Cloud())  # type: ignore[arg-type]
    narrator = Narrator(io.StringIO())
    try:
        final = runner._watch(narrator, _Stack(_Database(), tmp_path), "run", [story], deferrable=False)  # type: ignore[arg-type]
    finally:
        narrator.close()

    assert final == "success"
    assert story.states == ["running", "success"]
