# Licensed under the Apache License, Version 2.0.
"""
Drain-aware checkpoints for the CeleryExecutor: a warm shutdown checkpoints the resumable tasks at once.

What it is for: a Celery worker that gets SIGTERM (a deploy, a node drain) begins a *warm shutdown*:
it stops taking work and waits for every task it runs to finish, however long. For a resumable task
that wait buys nothing: its job runs in the cloud either way, and it can checkpoint and resume on
another worker (the same try, no resubmission). With this module, the worker's warm shutdown sends
SIGTERM to each resumable task it runs, right away; those checkpoint within about a second, and the
worker exits as soon as its *other* tasks are done, which keep Celery's semantics (the drain waits).

How to use it: one line of Airflow configuration on every component (the scheduler publishes with
the same Celery configuration, the workers connect the signals below when they import it)::

    [celery]
    celery_config_options = airflow.providers.resumable.celery_drain.DRAIN_AWARE_CELERY_CONFIG

:data:`DRAIN_AWARE_CELERY_CONFIG` is the celery provider's default configuration, unchanged; importing
this module is what connects three Celery signals in the worker's main process:

- ``worker_init`` (before the pool forks): create a private directory and name it in
  :data:`~airflow.providers.resumable.drain.DRAIN_DIRECTORY_ENV`, which every pool process and task
  process inherits; resumable operators announce themselves there (``drain.py``).
- ``worker_shutting_down`` with ``how="Warm"``: SIGTERM every announced task process of this worker.
  A cold shutdown (SIGQUIT) is left to Celery, which terminates the pool, so every task's supervisor
  forwards SIGTERM to its task anyway.
- ``worker_shutdown`` (a warm shutdown ends), and at the exit of the worker's main process (a cold
  shutdown sends no ``worker_shutdown``): remove the directory.

With your own ``celery_config_options`` dict instead, import this module from the module that holds
it (``import airflow.providers.resumable.celery_drain  # noqa: F401``): the signals are connected on
import.

Known limitation: a SIGTERM that Celery remaps to a cold shutdown (``REMAP_SIGTERM=SIGQUIT``) is a
cold shutdown here too; every task gets SIGTERM then, as Celery decides.
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG
from celery import signals

from airflow.providers.resumable.drain import DRAIN_DIRECTORY_ENV, checkpoint_announced

log = logging.getLogger(__name__)

DRAIN_AWARE_CELERY_CONFIG: dict[str, Any] = dict(DEFAULT_CELERY_CONFIG)
"""The celery provider's default Celery configuration; naming it in ``[celery] celery_config_options``
imports this module, which makes the worker's warm shutdown checkpoint the resumable tasks."""


@signals.worker_init.connect(dispatch_uid="airflow-resumable-drain-init", weak=False)
def make_drain_directory(**_: Any) -> None:
    """``worker_init``: the directory where this worker's resumable tasks announce themselves."""
    os.environ[DRAIN_DIRECTORY_ENV] = tempfile.mkdtemp(prefix="airflow-resumable-drain-")
    # Celery's cold shutdown (WorkController.terminate) sends no worker_shutdown. The forked pool and
    # task processes inherit this exit handler, hence the pid: only the worker's own exit removes it.
    atexit.register(_remove_drain_directory_of, os.getpid())


@signals.worker_shutting_down.connect(dispatch_uid="airflow-resumable-drain-checkpoint", weak=False)
def checkpoint_resumable_tasks(how: str = "", **_: Any) -> None:
    """
    ``worker_shutting_down``: on a warm shutdown, SIGTERM each resumable task this worker runs.

    Runs inside Celery's signal handler in the worker's main process, so it only sends signals.

    :param how: ``"Warm"`` or ``"Cold"``, as Celery sends it.
    """
    directory = os.environ.get(DRAIN_DIRECTORY_ENV)
    if how != "Warm" or not directory:
        return
    signalled = checkpoint_announced(Path(directory), worker_pid=os.getpid())
    log.warning(
        "Warm shutdown: %d resumable task(s) told to checkpoint (pids %s); other tasks are waited for",
        len(signalled),
        signalled,
    )


@signals.worker_shutdown.connect(dispatch_uid="airflow-resumable-drain-cleanup", weak=False)
def remove_drain_directory(**_: Any) -> None:
    """``worker_shutdown``: remove the directory of announcements."""
    _remove_drain_directory_of(os.getpid())


def _remove_drain_directory_of(worker_pid: int) -> None:
    """Remove the directory of announcements, in the worker's main process only."""
    if os.getpid() != worker_pid:
        return
    directory = os.environ.pop(DRAIN_DIRECTORY_ENV, None)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
