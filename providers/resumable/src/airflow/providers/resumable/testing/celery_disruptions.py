# Licensed under the Apache License, Version 2.0.
"""
The ways a Celery worker of ``CeleryAirflowStack`` goes away under its tasks, and what to read after.

What it is for: the system tests (tests/system/test_celery_*.py) and the bench (bench/celery_table.py)
disrupt a worker the same way, so a figure in docs/benchmarks.md and a test's assertion speak of the
same event.

How it works: each disruption is a function of the worker's process tree (taken before the
signal, so the task processes, which sit in process groups of their own, are in it):

- :func:`warm_shutdown`: SIGTERM to the ``celery worker`` main process (a deploy, a node drain);
- :func:`cold_shutdown`: SIGQUIT to it (Celery terminates its pool; a second SIGTERM does nothing
  in Celery >= 5.5);
- :func:`lose_host`: SIGKILL to every process of the tree at once (a lost host);
- :func:`evict_pod`: SIGTERM to every process at once (what the kubelet does to a pod's
  processes), SIGKILL to whatever is left after a grace period;
- :func:`warm_shutdown_cut_short`: a warm shutdown, then :func:`lose_host` if the worker is still
  there after a grace period (a pod's ``terminationGracePeriodSeconds`` ending a drain).

And what a worker's log and the broker say about a workload: :func:`workload_lines`,
:func:`unacked_celery_task_ids`.

The signals themselves are :mod:`~airflow.providers.resumable.testing.worker_signals`' (the drill's
Celery strikes send them too); this module names the disruptions by what happens to the worker.

What it does not do: decide what should happen next (the tests assert, the bench records).
"""

from __future__ import annotations

import json
import re
import signal
import time
from dataclasses import dataclass

import psutil

from airflow.providers.resumable.testing import worker_signals
from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
from airflow.providers.resumable.testing.worker_signals import signal_all

EXECUTING = "Executing workload in Celery"
"""The celery provider's log line when a worker begins a workload (after the Celery task id)."""
REFUSED = "Task already running elsewhere, ignoring redelivered message"
"""The celery provider's log line when ``ti_run`` refuses a redelivered workload."""


@dataclass(frozen=True)
class Struck:
    """What a disruption did: when it signalled, and what was left for SIGKILL after a grace period."""

    signalled_at: float
    """``time.monotonic()`` of the first signal."""
    killed_after_grace: list[int]
    """PIDs still there when the grace period ended, then SIGKILLed (empty: none, or no grace period)."""


def warm_shutdown(stack: CeleryAirflowStack, worker: str, tree: list[psutil.Process]) -> Struck:
    """SIGTERM to the worker's main process: Celery's warm shutdown.

    :param stack: the stack the worker belongs to.
    :param worker: the worker's name (``worker-a``...).
    :param tree: the worker's processes, taken before (unused: the main process alone is signalled).
    """
    at = time.monotonic()
    signal_all([psutil.Process(stack.worker_pid(worker))], signal.SIGTERM)
    return Struck(at, [])


def cold_shutdown(stack: CeleryAirflowStack, worker: str, tree: list[psutil.Process]) -> Struck:
    """SIGQUIT to the worker's main process: Celery's cold shutdown (the pool is terminated).

    :param stack: the stack the worker belongs to.
    :param worker: the worker's name.
    :param tree: the worker's processes, taken before (unused).
    """
    at = time.monotonic()
    signal_all([psutil.Process(stack.worker_pid(worker))], signal.SIGQUIT)
    return Struck(at, [])


def lose_host(stack: CeleryAirflowStack, worker: str, tree: list[psutil.Process]) -> Struck:
    """SIGKILL to every process of the worker's tree: nothing of it is left to report anything.

    :param stack: the stack the worker belongs to (unused: the tree is enough).
    :param worker: the worker's name (unused).
    :param tree: the worker's processes, taken before the signal.
    """
    at = time.monotonic()
    worker_signals.lose_host(tree)
    return Struck(at, [])


def evict_pod(
    stack: CeleryAirflowStack, worker: str, tree: list[psutil.Process], *, grace_seconds: float
) -> Struck:
    """SIGTERM to every process of the tree at once, SIGKILL to what is left after ``grace_seconds``.

    :param stack: the stack the worker belongs to (unused).
    :param worker: the worker's name (unused).
    :param tree: the worker's processes, taken before the signal.
    :param grace_seconds: the pod's termination grace period.
    """
    at = time.monotonic()
    return Struck(at, worker_signals.evict_pod(tree, grace_seconds=grace_seconds))


def warm_shutdown_cut_short(
    stack: CeleryAirflowStack, worker: str, tree: list[psutil.Process], *, grace_seconds: float
) -> Struck:
    """A warm shutdown, then SIGKILL of the whole tree if the worker outlives ``grace_seconds``.

    :param stack: the stack the worker belongs to.
    :param worker: the worker's name.
    :param tree: the worker's processes, taken before the signal.
    :param grace_seconds: how long the drain may take before the SIGKILL.
    """
    struck = warm_shutdown(stack, worker, tree)
    _, alive = psutil.wait_procs(tree[:1], timeout=grace_seconds)
    if not alive:
        return struck
    # The task processes too: a pod's SIGKILL takes every process of its cgroup.
    alive = [process for process in tree if process.is_running()]
    signal_all(alive, signal.SIGKILL)
    return Struck(struck.signalled_at, [process.pid for process in alive])


def workload_lines(stack: CeleryAirflowStack, worker: str, run_id: str) -> list[tuple[str, str]]:
    """(Celery task id, line) of each workload of ``run_id`` the worker's log says it began to execute.

    :param stack: the stack the worker belongs to.
    :param worker: the worker's name.
    :param run_id: the dag run the workloads belong to.
    """
    log_path = stack.component_logs / f"{worker}.log"
    if not log_path.exists():
        return []
    started = re.compile(rf"\[([0-9a-f-]{{36}})\] {re.escape(EXECUTING)}")
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = started.search(line)
        if match and run_id in line:
            found.append((match.group(1), line))
    return found


def unacked_celery_task_ids(stack: CeleryAirflowStack) -> set[str]:
    """The Celery task ids of the messages Redis holds as delivered but not acknowledged (kombu's hash).

    :param stack: the stack whose Redis to ask.
    """
    import redis

    client = redis.Redis(host="127.0.0.1", port=stack.redis_port, socket_timeout=5)
    try:
        entries = client.hvals("unacked")
    finally:
        client.close()
    return {json.loads(entry)[0]["headers"]["id"] for entry in entries}
