# Licensed under the Apache License, Version 2.0.
"""
How a drill strikes the worker under a task, once the runner has reached the planned moment.

The runner decides *when* (once the ledger's intent is written, once the job runs, ...); a
:class:`WorkerStrikes` decides *what* a disruption kind does to the processes of that executor. The
LocalExecutor's is here (:class:`LocalWorkerStrikes`: signals to the task's supervisor and task
process); the Celery one, which signals whole workers and brings them back, is in
:mod:`airflow.providers.resumable.drill.celery_strikes`.
"""

from __future__ import annotations

import os
import signal
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

from airflow.providers.resumable.drill.plan import DisruptionKind
from airflow.providers.resumable.testing.stack import AirflowStack, TaskProcesses


@dataclass(frozen=True)
class StrikeTarget:
    """
    The drilled task instance a strike is aimed at.

    :param number: the disruption's number in the plan (for the collateral record).
    :param dag_id: the drill DAG.
    :param run_id: the DAG run.
    :param task_id: the drilled task.
    """

    number: int
    dag_id: str
    run_id: str
    task_id: str


class WorkerStrikes(Protocol):
    """What each worker-striking kind does on one executor."""

    def strike(self, kind: DisruptionKind, target: StrikeTarget, *, stall_seconds: float) -> None:
        """
        Strike the worker running ``target`` as ``kind`` means; return once the strike has landed
        (a worker it takes down may still be coming back).

        :param kind: a kind that strikes a worker (not a fault, not a triggerer kind).
        :param target: the task instance aimed at.
        :param stall_seconds: how long a freeze lasts.
        """
        ...

    def collateral_of(self, run_id: str) -> tuple[int, ...]:
        """The disruptions (by number) whose strike also hit the task instance of ``run_id``."""
        ...

    def close(self) -> None:
        """Wait for every worker a strike took down to be back (or give up on it)."""
        ...


def send(pid: int, signum: int) -> None:
    """Signal ``pid``, which may have exited since it was found."""
    with suppress(ProcessLookupError):
        os.kill(pid, signum)


class LocalWorkerStrikes:
    """
    The LocalExecutor: a SIGTERM to the task's supervisor is a worker shutdown; a SIGKILL or SIGSTOP
    to the supervisor and its task together is a lost or frozen worker. Each strike touches only its
    own task instance: nothing collateral, nothing to bring back.

    :param stack: the drill's stack.
    """

    def __init__(self, stack: AirflowStack) -> None:
        self.stack = stack

    def _processes(self, target: StrikeTarget) -> TaskProcesses:
        return self.stack.find_task_processes(target.dag_id, target.task_id, run_id=target.run_id, timeout=90)

    def strike(self, kind: DisruptionKind, target: StrikeTarget, *, stall_seconds: float) -> None:
        processes = self._processes(target)
        if kind.shuts_the_worker_down or kind is DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED:
            send(processes.worker_pid, signal.SIGTERM)
        elif kind.freezes_the_worker:
            # A frozen machine stops the worker and its task together; both come back together.
            send(processes.worker_pid, signal.SIGSTOP)
            send(processes.task_pid, signal.SIGSTOP)
            try:
                time.sleep(stall_seconds)
            finally:
                send(processes.task_pid, signal.SIGCONT)
                send(processes.worker_pid, signal.SIGCONT)
        elif kind.kills_the_worker:  # a node loss takes the worker and its task together
            send(processes.worker_pid, signal.SIGKILL)
            send(processes.task_pid, signal.SIGKILL)
        else:
            raise ValueError(f"{kind.value} does not strike a LocalExecutor worker")

    def collateral_of(self, run_id: str) -> tuple[int, ...]:
        return ()

    def close(self) -> None:
        return None
