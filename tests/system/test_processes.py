# Licensed under the Apache License, Version 2.0.
"""
The stack's process handling, on plain shell processes (no Airflow, so not marked ``system``).

The shapes mirror Airflow's: a LocalExecutor worker forks a task process that moves to its own
process group, and a task can ignore SIGTERM (Airflow 3.3.2's runner does: ``on_kill`` and return).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import psutil

from airflow.providers.resumable.testing.processes import start_process, stop_processes
from airflow.providers.resumable.testing.stack import poll_until

# A leader that forks a child into a new session (like a task process leaving its worker's process
# group), and both ignore SIGTERM: only SIGKILL ends them.
STUBBORN_TREE = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("child", os.getpid(), flush=True)
    time.sleep(600)
    sys.exit(0)
print("leader", os.getpid(), flush=True)
time.sleep(600)
"""


def _pids_in_log(log_path: Path) -> dict[str, int]:
    """The pids the tree has logged so far, from whole lines: a read can land while one is written."""
    lines = [line.split() for line in log_path.read_text().splitlines(keepends=True) if line.endswith("\n")]
    return {words[0]: int(words[1]) for words in lines if len(words) == 2}


def test_a_line_still_being_written_is_not_read_as_a_pid(tmp_path: Path) -> None:
    # Seen in CI: the poll read "leader <pid>\nchild" while the child's line was being written.
    log_path = tmp_path / "tree.log"
    log_path.write_text("leader 41\nchild 4")

    assert _pids_in_log(log_path) == {"leader": 41}


def test_stop_kills_a_sigterm_ignoring_tree_including_a_child_in_another_session(tmp_path: Path) -> None:
    log_path = tmp_path / "tree.log"
    managed = start_process(
        "stubborn", [sys.executable, "-c", STUBBORN_TREE], env=os.environ, cwd=tmp_path, log_path=log_path
    )
    pids = poll_until(
        lambda: found if len(found := _pids_in_log(log_path)) == 2 else None,
        timeout=30,
        describe=lambda: f"both processes to start ({log_path.read_text()!r})",
    )
    assert os.getpgid(pids["child"]) != os.getpgid(pids["leader"])

    started = time.monotonic()
    survivors = stop_processes([managed], grace_seconds=1.0)

    assert survivors == []
    assert time.monotonic() - started >= 1.0  # SIGTERM was tried first, and ignored
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_stop_returns_as_soon_as_a_cooperative_process_exits(tmp_path: Path) -> None:
    managed = start_process(
        "sleeper", ["sleep", "600"], env=os.environ, cwd=tmp_path, log_path=tmp_path / "sleep.log"
    )

    started = time.monotonic()
    survivors = stop_processes([managed], grace_seconds=30.0)

    assert survivors == []
    assert time.monotonic() - started < 5.0
    assert managed.popen.returncode == -15  # ended by our SIGTERM, not by SIGKILL


def test_started_process_leads_its_own_process_group(tmp_path: Path) -> None:
    managed = start_process(
        "sleeper", ["sleep", "600"], env=os.environ, cwd=tmp_path, log_path=tmp_path / "sleep.log"
    )
    try:
        assert os.getpgid(managed.pid) == managed.pid
        assert os.getpgid(managed.pid) != os.getpgid(0)
    finally:
        stop_processes([managed], grace_seconds=5.0)


def test_stop_is_idempotent(tmp_path: Path) -> None:
    managed = start_process(
        "sleeper", ["sleep", "600"], env=os.environ, cwd=tmp_path, log_path=tmp_path / "sleep.log"
    )

    assert stop_processes([managed], grace_seconds=0.0) == []
    assert stop_processes([managed], grace_seconds=0.0) == []
