# Licensed under the Apache License, Version 2.0.
"""
The drill's triggerer strikes (``--deferrable``): kill, stop or freeze the triggerer tier under a
deferred task, and bring it back, as a node loss, a redeploy or a frozen pod would.

The drill strikes several clouds side by side, but there is one triggerer tier: a lock makes the
strikes take turns, and each leaves the tier as it found it, with one triggerer running (a freeze
adds a second one that takes the trigger over; the thawed first one is then stopped cleanly).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from airflow.providers.resumable.drill.naming import DRILL_TASK_ID
from airflow.providers.resumable.drill.plan import DisruptionKind
from airflow.providers.resumable.testing.stack import AirflowStack, poll_until

MOVE_TIMEOUT_SECONDS = 90.0
"""How long a trigger may take to reach another triggerer: the health-check threshold, heartbeats
and a loaded machine."""
THAW_SECONDS = 5.0
"""How long a thawed triggerer is left to find its trigger gone (and call its ``on_kill``)."""

_TIER = threading.Lock()


def strike_triggerers(
    stack: AirflowStack, kind: DisruptionKind, dag_id: str, run_id: str, job_running: Callable[[], bool]
) -> None:
    """
    Strike the triggerer running the deferred task's trigger, then wait until another one runs it.

    :param stack: the drill's stack (started with a triggerer).
    :param kind: a triggerer kind (:attr:`DisruptionKind.disrupts_the_triggerer`).
    :param dag_id: the deferred task's DAG.
    :param run_id: its run.
    :param job_running: whether the task's job still runs; a strike after it ended would prove
        nothing, so it is reported as missed (an error) rather than passed.
    """
    with _TIER:
        before = _assigned(stack, dag_id, run_id)
        if before is None or not job_running():
            raise RuntimeError(f"missed: the job had ended before the {kind.value} strike (not mid-poll)")
        if kind is DisruptionKind.TRIGGERER_FREEZE_MOVES:
            frozen = stack.live_triggerers()
            stack.start_triggerer()
            for name in frozen:  # a frozen pod: the triggerer and its trigger runner together
                stack.signal_triggerer(name, signal.SIGSTOP, whole_group=True)
            try:
                _moved(stack, dag_id, run_id, before)
            finally:
                for name in frozen:
                    stack.signal_triggerer(name, signal.SIGCONT, whole_group=True)
            time.sleep(THAW_SECONDS)
            for name in frozen:  # back to one triggerer for the next strike
                stack.signal_triggerer(name, signal.SIGTERM, whole_group=False)
                stack.wait_for_triggerer_exit(name)
            return
        # SIGKILL: a node lost, trigger runner included; SIGTERM: a redeploy stops the triggerer.
        signum = signal.SIGKILL if kind is DisruptionKind.TRIGGERER_SIGKILL else signal.SIGTERM
        for name in stack.live_triggerers():
            stack.signal_triggerer(name, signum, whole_group=signum == signal.SIGKILL)
            stack.wait_for_triggerer_exit(name)
        stack.start_triggerer()
        _moved(stack, dag_id, run_id, before)


def wait_for_trigger(stack: AirflowStack, dag_id: str, run_id: str, *, timeout: float = 90.0) -> int:
    """Wait until the task is deferred and a triggerer runs its trigger; that triggerer's job id."""
    stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "deferred", timeout=timeout)
    return poll_until(
        lambda: _assigned(stack, dag_id, run_id),
        timeout=timeout,
        describe=lambda: f"a triggerer to run the trigger of {dag_id} {run_id}",
    )


def _assigned(stack: AirflowStack, dag_id: str, run_id: str) -> int | None:
    trigger = stack.trigger_of(dag_id, run_id, DRILL_TASK_ID)
    return trigger[1] if trigger else None


def _moved(stack: AirflowStack, dag_id: str, run_id: str, before: int | None) -> None:
    """Wait until another triggerer runs the trigger, or the task no longer waits on one (it ended)."""

    def moved() -> bool | None:
        trigger = stack.trigger_of(dag_id, run_id, DRILL_TASK_ID)
        if trigger is None:
            return True  # the job ended meanwhile and the task took its event
        return True if trigger[1] not in (None, before) else None

    poll_until(
        moved, timeout=MOVE_TIMEOUT_SECONDS, describe=lambda: f"the trigger to leave triggerer {before}"
    )
