# Licensed under the Apache License, Version 2.0.
"""
Why was the task asked to stop? A worker shutdown and a person's decision look the same from inside.

Airflow 3.3.2 sends the task process SIGTERM both when the worker shuts down (eviction, deploy,
drain: the supervisor forwards its own SIGTERM) and when the server stops believing the task
should run (marked failed or success, or cleared: the supervisor sees 404/409/410 on heartbeat,
sends SIGTERM and SIGKILLs 5 s later). The only difference is what the server says about this task
instance, so we ask it. The supervisor keeps serving requests while it waits for the process to
exit, and the answer is one cheap query: it fits in the 5 s before SIGKILL.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class StopCause(StrEnum):
    """Why a running task was told to stop."""

    WORKER_SHUTDOWN = "worker_shutdown"
    """The server still says ``running``: the worker is going away, not the task's purpose."""
    USER_INTENT = "user_intent"
    """The server says something else: a person (or the API) decided this run should end."""


@dataclass(frozen=True)
class StopDiagnosis:
    """The cause and the evidence for it, for the task log."""

    cause: StopCause
    evidence: str


def diagnose_stop(ti: Any) -> StopDiagnosis:
    """
    Ask the server for this task instance's state and say why it was stopped.

    When the server cannot be asked, the answer is a shutdown: never cancel a job on a guess. The
    next attempt reconnects (or, if the task was in fact cleared, cancels and starts over).

    :param ti: the running task instance (``context["ti"]``).
    """
    map_index = getattr(ti, "map_index", -1)
    mapped = map_index is not None and map_index >= 0
    try:
        states = ti.get_task_states(
            dag_id=ti.dag_id,
            task_ids=[ti.task_id],
            run_ids=[ti.run_id],
            map_index=map_index if mapped else None,
        )
    except Exception as err:
        return StopDiagnosis(
            StopCause.WORKER_SHUTDOWN,
            f"could not ask the server for this task's state ({type(err).__name__}: {err}); "
            "treating it as a worker shutdown so the job is not cancelled on a guess",
        )
    task_key = f"{ti.task_id}_{map_index}" if mapped else ti.task_id
    state = (states or {}).get(ti.run_id, {}).get(task_key, "<missing>")
    state_value = getattr(state, "value", state)
    if state_value == "running":
        return StopDiagnosis(StopCause.WORKER_SHUTDOWN, "the server still says this task is running")
    return StopDiagnosis(StopCause.USER_INTENT, f"the server says this task is {state_value!r}, not running")
