# Licensed under the Apache License, Version 2.0.
"""
A Celery worker the drill brings back must keep running after the thread that brought it back ends.

The stack starts every process with ``PR_SET_PDEATHSIG`` (SIGTERM when its parent dies, so nothing
outlives a crashed test). The kernel fires it when the *thread* that forked the child exits, not the
process: a worker restarted from a short-lived recovery thread got SIGTERM, a warm shutdown, as soon
as that thread returned, and the drill ran out of workers.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

from airflow.providers.resumable.drill.celery_strikes import CeleryWorkerStrikes
from airflow.providers.resumable.testing.processes import ManagedProcess, start_process


def _start_in_a_thread_that_ends(start) -> None:
    thread = threading.Thread(target=start)
    thread.start()
    thread.join(timeout=30)


def _still_running_after(process: ManagedProcess, seconds: float) -> bool:
    try:
        process.popen.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return True
    return False


def test_a_process_started_from_a_thread_that_ends_gets_sigterm(tmp_path: Path):
    started: list[ManagedProcess] = []

    def start() -> None:
        started.append(
            start_process("sleeper", ["sleep", "30"], env={}, cwd=tmp_path, log_path=tmp_path / "sleeper.log")
        )

    _start_in_a_thread_that_ends(start)
    [process] = started
    try:
        assert not _still_running_after(process, 5)
        assert process.popen.returncode == -signal.SIGTERM
    finally:
        process.popen.kill()
        process.popen.wait()


class _Stack:
    """The part of a Celery stack a worker's restart uses, starting a stand-in worker (``sleep``)."""

    workers = ("worker-a", "worker-b")

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[ManagedProcess] = []

    def start_worker(self, name: str, *, wait: bool = True) -> None:
        self.started.append(
            start_process(
                name, ["sleep", "30"], env={}, cwd=self.tmp_path, log_path=self.tmp_path / f"{name}.log"
            )
        )

    def wait_for_worker_ready(self, name: str) -> None:
        return None


def test_the_drill_brings_a_worker_back_from_a_thread_that_outlives_the_recovery(tmp_path: Path):
    stack = _Stack(tmp_path)
    strikes = CeleryWorkerStrikes(stack)  # type: ignore[arg-type]

    _start_in_a_thread_that_ends(lambda: strikes._start_worker("worker-a"))

    [process] = stack.started
    try:
        assert _still_running_after(process, 5), f"the worker exited with {process.popen.returncode}"
    finally:
        process.popen.kill()
        process.popen.wait()
