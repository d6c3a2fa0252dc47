# Licensed under the Apache License, Version 2.0.
"""
A draining worker tells exactly the task processes that announced themselves to checkpoint (drain.py).

Real child processes stand in for a worker's task processes: one announces itself through
``announce_checkpointable`` as a resumable operator does, the other is a plain task that did not.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from airflow.providers.resumable.drain import (
    DRAIN_DIRECTORY_ENV,
    announce_checkpointable,
    checkpoint_announced,
)

ANNOUNCING_TASK = textwrap.dedent(
    """
    import sys, time
    from airflow.providers.resumable.drain import announce_checkpointable
    assert announce_checkpointable() is not None
    print("announced", flush=True)
    time.sleep(120)
    """
)
PLAIN_TASK = "import time; print('started', flush=True); time.sleep(120)"


def _start(code: str, directory: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", code],
        env={**os.environ, DRAIN_DIRECTORY_ENV: str(directory)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    # Airflow's logging writes to stdout too: read up to the child's own word that it is ready.
    for line in child.stdout:
        if line.strip() in {"announced", "started"}:
            return child
    raise AssertionError(f"the child exited with {child.wait(timeout=10)} before it was ready")


@pytest.fixture
def drain_directory(tmp_path: Path) -> Path:
    directory = tmp_path / "drain"
    directory.mkdir()
    return directory


@pytest.fixture
def tasks(drain_directory: Path) -> Iterator[tuple[subprocess.Popen[str], subprocess.Popen[str]]]:
    """(a task process that announced itself, a plain one), both children of this test."""
    announcing = _start(ANNOUNCING_TASK, drain_directory)
    plain = _start(PLAIN_TASK, drain_directory)
    yield announcing, plain
    for child in (announcing, plain):
        if child.poll() is None:
            child.kill()
        child.wait(timeout=10)


def test_a_drain_sigterms_the_announced_task_and_leaves_the_plain_one_running(
    drain_directory: Path, tasks: tuple[subprocess.Popen[str], subprocess.Popen[str]]
) -> None:
    announcing, plain = tasks
    assert sorted(p.name for p in drain_directory.iterdir()) == [str(announcing.pid)]

    assert checkpoint_announced(drain_directory, worker_pid=os.getpid()) == [announcing.pid]
    assert announcing.wait(timeout=10) == -signal.SIGTERM
    assert plain.poll() is None, "a task that did not announce itself was signalled"


def test_a_reused_pid_is_not_signalled(
    drain_directory: Path, tasks: tuple[subprocess.Popen[str], subprocess.Popen[str]]
) -> None:
    _, plain = tasks
    # An announcement left by an earlier process that had the plain task's pid (it was SIGKILLed
    # before it could withdraw): its start time is not the plain task's.
    earlier_start = psutil.Process(plain.pid).create_time() - 60
    (drain_directory / str(plain.pid)).write_text(repr(earlier_start))

    assert plain.pid not in checkpoint_announced(drain_directory, worker_pid=os.getpid())
    assert plain.poll() is None


def test_only_the_draining_workers_own_tasks_are_signalled(
    drain_directory: Path, tasks: tuple[subprocess.Popen[str], subprocess.Popen[str]]
) -> None:
    announcing, plain = tasks
    # The announcing task is not a descendant of the plain one, as another worker's task is not.
    assert checkpoint_announced(drain_directory, worker_pid=plain.pid) == []
    assert announcing.poll() is None


def test_an_announcement_is_withdrawn_and_nothing_is_announced_outside_a_drain_aware_worker(
    drain_directory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DRAIN_DIRECTORY_ENV, raising=False)
    assert announce_checkpointable() is None

    monkeypatch.setenv(DRAIN_DIRECTORY_ENV, str(drain_directory))
    announcement = announce_checkpointable()
    assert announcement is not None
    assert announcement.path == drain_directory / str(os.getpid())
    announcement.withdraw()
    assert list(drain_directory.iterdir()) == []


LATE_TASK = textwrap.dedent(
    """
    import signal, time
    from airflow.providers.resumable.drain import announce_checkpointable
    # What a resumable operator's SIGTERM handler does: note the request to stop, carry on.
    signal.signal(signal.SIGTERM, lambda *_: print("told to checkpoint", flush=True))
    print("started", flush=True)
    input()  # the test says when: after the drain began
    assert announce_checkpointable() is not None
    print("announced", flush=True)
    time.sleep(5)  # a SIGTERM from anywhere would be told by now
    """
)


def test_a_task_that_announces_itself_after_the_drain_began_is_told_to_checkpoint_at_once(
    drain_directory: Path,
) -> None:
    # A warm shutdown that finds a resumable task still starting up (loading its DAG, reconnecting)
    # cannot signal it: it has not announced itself. Nothing else would ever tell it, and the drain
    # would wait for its job, however long it runs.
    late = subprocess.Popen(
        [sys.executable, "-c", LATE_TASK],
        env={**os.environ, DRAIN_DIRECTORY_ENV: str(drain_directory)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert late.stdin is not None
        assert late.stdout is not None
        assert late.stdout.readline().strip() == "started"
        assert checkpoint_announced(drain_directory, worker_pid=os.getpid()) == []

        late.stdin.write("\n")
        late.stdin.flush()
        # Airflow's logging writes to stdout too: keep the child's own words.
        words = []
        while len(words) < 2:
            line = late.stdout.readline()
            assert line, f"the child ended ({late.wait(timeout=10)}), never told to checkpoint: {words}"
            if line.strip() in {"told to checkpoint", "announced"}:
                words.append(line.strip())

        assert words == ["told to checkpoint", "announced"]
    finally:
        late.kill()
        late.wait(timeout=10)
