# Licensed under the Apache License, Version 2.0.
"""
The demo's runner: its watcher tells each task's story to its end, and it leaves the stack's Airflow
home behind only when there is something to read in it.

The run's end is only known after its tasks' ends, so a watcher that reads the tasks and then the run
can see the run end after a pass that still showed a task running: the Celery demo reported
``something did not go as designed`` that way once (EMR's ``running -> success`` happened between the
two reads, so its story ended on ``running``). A small in-memory stand-in for the stack's database
plays that order here; the real stack runs in ``tests/system/test_demo.py``.
"""

from __future__ import annotations

import io
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

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


@pytest.mark.parametrize(
    ("verdict", "kept"), [(True, False), (False, True)], ids=["went-as-designed", "did-not"]
)
def test_the_stacks_home_is_removed_after_a_demo_that_went_as_designed_and_kept_after_one_that_did_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, verdict: bool, kept: bool
) -> None:
    # Every seam that would start Airflow or a fake is stubbed; the home is made where the test looks.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class Stack:
        def trigger_dag(self, dag_id: str) -> str:
            return "run"

    def start_stack(narrator: Narrator, cleanup: ExitStack, home: Path, **_: Any) -> Stack:
        (home / "logs").mkdir()  # as a real stack would have written there
        return Stack()

    monkeypatch.setattr(runner, "_start_stack", start_stack)
    monkeypatch.setattr(runner, "_start_clouds", lambda narrator, cleanup: [])
    monkeypatch.setattr(runner, "_connect_and_deploy", lambda *args: None)
    monkeypatch.setattr(runner, "_watch", lambda *args, **kwargs: "success" if verdict else "failed")
    monkeypatch.setattr(runner, "_summarise", lambda *args, **kwargs: verdict)
    out = io.StringIO()

    code = runner.run_demo(out=out)

    homes = sorted(tmp_path.glob("airflow-resumable-demo-*"))
    assert code == (0 if verdict else 1)
    assert len(homes) == (1 if kept else 0)
    if kept:
        assert (
            f"kept the stack's Airflow home, with every component's and task's log: {homes[0]}"
            in out.getvalue()
        )
