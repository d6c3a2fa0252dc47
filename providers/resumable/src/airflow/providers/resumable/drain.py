# Licensed under the Apache License, Version 2.0.
"""
Which task processes on a draining worker may be checkpointed at once, and telling them to.

What it is for: a worker that is being drained (a deploy, a node drain) should not wait for a
resumable task's job, which may run for hours: the task can checkpoint and resume on another worker
without losing anything. Every other task must be left alone, because a SIGTERM makes a stock
operator kill its work (``on_kill()``). The draining worker cannot tell the two apart by itself, so a
resumable task says so, locally, once losing it is safe.

How it works: the worker creates a private directory and names it in :data:`DRAIN_DIRECTORY_ENV`
before it forks anything (``celery_drain.py`` does it in a Celery worker), so every task process it
starts inherits the variable. A resumable operator calls :func:`announce_checkpointable` once its
ledger lets a fresh attempt continue the job (where it declares itself resumable on worker loss to
Airflow): that writes a file named after its pid, holding the process's start time. When the worker
begins to drain, :func:`checkpoint_announced` marks the directory as draining, then sends SIGTERM to
each announced process that is still one of the worker's descendants and still the process that
announced (same start time, so a reused pid is never signalled). That SIGTERM takes the operator's
usual path: it asks the server why, hears the task instance is still running (nobody decided
anything), leaves the job running and checkpoints. A task that announces itself once the drain has
begun (it was still starting up: loading its DAG, reconnecting) finds the mark and sends itself the
same SIGTERM; without that, nothing would ever tell it, and the drain would wait for its job. Both
sides write before they read, so a task that announces while the drain begins is told at least once;
a second SIGTERM is the same request to stop, and changes nothing.

What it does not do: nothing happens where the variable is not set (the LocalExecutor, the
KubernetesExecutor, whose pod SIGTERM already reaches the task); it never signals a task that did not
announce itself, so other tasks keep the executor's drain semantics.

Known limitation: a task process that runs as another user (``run_as_user``) cannot write into the
worker's private directory; it is then drained like any other task (logged once per attempt). The
directory of a worker that is SIGKILLed stays behind in the temporary directory (a few bytes).
"""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

DRAIN_DIRECTORY_ENV = "AIRFLOW_RESUMABLE_DRAIN_DIR"
"""Names the draining worker's directory of announcements; set by the worker, inherited by its tasks."""

DRAINING_MARK = "draining"
"""The file a draining worker leaves in its directory of announcements (not a pid: never signalled)."""

_SAME_START_TOLERANCE = 0.05
"""Seconds within which two readings of a process's start time are the same process (float noise)."""


@dataclass(frozen=True)
class Announcement:
    """A task process's standing announcement that a SIGTERM checkpoints it; withdraw it when done."""

    path: Path

    def withdraw(self) -> None:
        """Remove the announcement (the attempt is ending: nothing is left to checkpoint)."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError:
            log.debug("Could not withdraw the drain announcement %s", self.path, exc_info=True)


def announce_checkpointable() -> Announcement | None:
    """
    Tell this process's worker that a SIGTERM now checkpoints the task, so a drain need not wait for it.

    Call it once a fresh attempt can continue this one's work (the resumable operators: once the
    ledger records the intent, or on reconnecting). A no-op outside a drain-aware worker.

    :return: the announcement to withdraw when the attempt ends, or ``None`` when nothing was
        announced (no drain-aware worker, or the directory cannot be written).
    """
    directory = os.environ.get(DRAIN_DIRECTORY_ENV)
    if not directory:
        return None
    pid = os.getpid()
    path = Path(directory) / str(pid)
    try:
        path.write_text(repr(psutil.Process(pid).create_time()))
    except (OSError, psutil.Error):
        log.warning(
            "Could not tell the worker this task can be checkpointed on a drain (%s); a drain waits for it",
            path,
            exc_info=True,
        )
        return None
    log.info("Told the worker a drain may checkpoint this task (pid %d)", pid)
    if (Path(directory) / DRAINING_MARK).exists():
        # The drain began before this task could announce itself, so it was not among those told.
        log.warning("The worker is draining: checkpointing this task now (pid %d)", pid)
        os.kill(pid, signal.SIGTERM)
    return Announcement(path)


def checkpoint_announced(directory: Path, *, worker_pid: int) -> list[int]:
    """
    Send SIGTERM to every task process under ``worker_pid`` that announced itself in ``directory``.

    Marks the directory as draining first (:data:`DRAINING_MARK`), so a task that announces itself
    from now on checkpoints at once. Safe to call from a signal handler in the worker: it writes one
    empty file, reads a few small ones and sends signals, and waits for nothing.

    :param directory: the worker's directory of announcements (:data:`DRAIN_DIRECTORY_ENV`).
    :param worker_pid: the worker's main process; only its descendants are signalled.
    :return: the pids signalled.
    """
    try:
        (directory / DRAINING_MARK).touch()
        descendants = {child.pid: child for child in psutil.Process(worker_pid).children(recursive=True)}
        entries = list(directory.iterdir())
    except (OSError, psutil.Error):
        log.exception("Could not list the tasks to checkpoint in %s", directory)
        return []
    signalled: list[int] = []
    for entry in entries:
        process = descendants.get(int(entry.name)) if entry.name.isdigit() else None
        if process is None:
            continue  # the attempt ended without withdrawing (killed), or not this worker's
        try:
            announced_start = float(entry.read_text())
            if abs(process.create_time() - announced_start) > _SAME_START_TOLERANCE:
                continue  # the pid was reused by a process that announced nothing
            os.kill(process.pid, signal.SIGTERM)
        except (OSError, ValueError, psutil.Error):
            continue  # it ended meanwhile, or the file was cut short: nothing to checkpoint
        signalled.append(process.pid)
    return signalled
