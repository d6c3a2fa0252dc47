# Licensed under the Apache License, Version 2.0.
"""
Start a command in its own process group and stop it, and everything it spawned, by PID.

What it is for: the system-test stack runs long-lived Airflow components (scheduler, API server,
dag processor) that fork their own children (LocalExecutor workers, their task processes, parsing
processes). A test that fails or is interrupted must not leave any of them behind.

How it works: each command starts in a new session (so it is its own process-group leader and a
terminal's Ctrl-C does not reach it directly) with ``PR_SET_PDEATHSIG`` set, so the kernel sends it
SIGTERM if the test process dies without cleaning up. Stopping snapshots the whole descendant tree
by parent PID (which also finds task processes that moved to their own process group), sends
SIGTERM to the leader so it can shut down its children gracefully, and after a grace period sends
SIGKILL to every process of the tree that is still alive.

What it does not do: it never signals by name or by process group alone, so nothing outside the
tree it started is touched. A descendant that re-parents itself to init before the first snapshot
(double fork) escapes; Airflow's components do not do that.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGTERM when our parent dies."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


@dataclass
class ManagedProcess:
    """One command we started, its log file, and every descendant seen so far."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    seen: dict[int, psutil.Process] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def is_running(self) -> bool:
        return self.popen.poll() is None

    def refresh_tree(self) -> None:
        """Remember every live descendant; psutil.Process objects refuse to signal a reused PID."""
        try:
            leader = psutil.Process(self.pid)
            tree = [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in tree:
            self.seen.setdefault(proc.pid, proc)

    def alive(self) -> list[psutil.Process]:
        """Processes of the tree that still exist (zombies of ours are reaped first)."""
        self.popen.poll()
        survivors = []
        for proc in self.seen.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(proc)
        return survivors


def identity_arguments(run_as: tuple[int, int] | None) -> dict[str, Any]:
    """
    ``subprocess`` arguments that run a child as ``run_as`` (uid, gid), or as this process if ``None``.

    :param run_as: the user and group ids, or ``None``.
    """
    if run_as is None:
        return {}
    # Root's supplementary groups must not come along.
    return {"user": run_as[0], "group": run_as[1], "extra_groups": []}


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    log_path: Path,
    run_as: tuple[int, int] | None = None,
) -> ManagedProcess:
    """
    Start ``argv`` as the leader of a new session, stdout and stderr appended to ``log_path``.

    ``run_as`` (uid, gid) drops root for servers that refuse it (Postgres). The kernel clears the
    parent-death signal on a change of credentials; Python runs ``preexec_fn`` after the switch, so
    it is still set.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        popen = subprocess.Popen(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            **identity_arguments(run_as),
        )
    managed = ManagedProcess(name=name, popen=popen, log_path=log_path)
    managed.refresh_tree()
    return managed


def stop_processes(processes: Iterable[ManagedProcess], *, grace_seconds: float) -> list[str]:
    """
    SIGTERM each leader, wait up to ``grace_seconds`` for its tree to exit, then SIGKILL what is left.

    Returns a description of every process that survived even SIGKILL (empty when all is clean).
    """
    processes = list(processes)
    for managed in processes:
        managed.refresh_tree()
        if managed.is_running():
            with contextlib.suppress(ProcessLookupError):
                os.kill(managed.pid, signal.SIGTERM)

    deadline = time.monotonic() + grace_seconds
    while time.monotonic() < deadline:
        # Keep collecting: a leader may still fork while it shuts down.
        for managed in processes:
            managed.refresh_tree()
        if not any(managed.alive() for managed in processes):
            break
        time.sleep(0.1)

    for managed in processes:
        for proc in managed.alive():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()

    survivors: list[str] = []
    for managed in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            managed.popen.wait(timeout=5)
        _, still_alive = psutil.wait_procs(managed.alive(), timeout=5)
        survivors.extend(f"{managed.name}: pid {proc.pid}" for proc in still_alive)
    return survivors
