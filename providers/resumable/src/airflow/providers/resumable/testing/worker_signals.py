# Licensed under the Apache License, Version 2.0.
"""
What production does to a Celery worker's processes, as functions over a snapshot of its tree.

What it is for: the Celery system tests and the drill's Celery strikes lose a worker host, evict a
worker pod and freeze a machine the same way, so the way each is done lives here once.

How it works: each function takes the worker's tree as
:meth:`~airflow.providers.resumable.testing.celery_stack.CeleryAirflowStack.worker_processes` returns
it (the ``celery worker`` main process, its pool processes, each an Airflow supervisor while it runs a
task, and the task processes they fork). The tree is snapshotted by parent PID, not by process group:
a task process sits in a process group of its own, so signalling the worker's group would leave it
running. ``psutil.Process`` refuses to signal a PID that was reused since the snapshot.

What it does not do: it never signals by name, and nothing outside the snapshot.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Sequence

import psutil

POD_GRACE_SECONDS = 10.0
"""How long a pod-style termination waits after its SIGTERM before SIGKILL (a short
``terminationGracePeriodSeconds``: a checkpoint takes 0.3 to 2.2 s)."""


def signal_all(processes: Sequence[psutil.Process], signum: signal.Signals) -> None:
    """
    Send ``signum`` to every process of ``processes`` still there.

    :param processes: a snapshot of a worker's tree.
    :param signum: the signal.
    """
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signum)


def lose_host(tree: Sequence[psutil.Process]) -> None:
    """
    The worker's host is lost (a node failure, an OOM kill of the pod): SIGKILL to every process.

    :param tree: a snapshot of the worker's tree.
    """
    signal_all(tree, signal.SIGKILL)


def evict_pod(tree: Sequence[psutil.Process], *, grace_seconds: float = POD_GRACE_SECONDS) -> list[int]:
    """
    A pod-style termination: SIGTERM to every process at once (what the kubelet does when the image's
    init signals the process group), SIGKILL to whatever is left after ``grace_seconds``.

    :param tree: a snapshot of the worker's tree.
    :param grace_seconds: the pod's termination grace period.
    :return: the PIDs that were still there at the end of the grace period (and got SIGKILL).
    """
    signal_all(tree, signal.SIGTERM)
    _, alive = psutil.wait_procs(list(tree), timeout=grace_seconds)
    signal_all(alive, signal.SIGKILL)
    return [process.pid for process in alive]


def freeze(tree: Sequence[psutil.Process]) -> None:
    """
    Freeze the worker (a paused VM, a cgroup freeze): SIGSTOP to every process.

    :param tree: a snapshot of the worker's tree.
    """
    signal_all(tree, signal.SIGSTOP)


def thaw(tree: Sequence[psutil.Process]) -> None:
    """
    Thaw a frozen worker: SIGCONT to every process, task processes first (so none of them sees its
    supervisor run before it can answer).

    :param tree: the snapshot :func:`freeze` was given.
    """
    signal_all(list(reversed(tree)), signal.SIGCONT)


def wait_gone(tree: Sequence[psutil.Process], *, timeout: float) -> list[int]:
    """
    Wait until every process of ``tree`` has exited; the PIDs still there after ``timeout``.

    :param tree: a snapshot of a worker's tree.
    :param timeout: seconds to wait.
    """
    _, alive = psutil.wait_procs(list(tree), timeout=timeout)
    return [process.pid for process in alive]
