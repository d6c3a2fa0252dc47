# Licensed under the Apache License, Version 2.0.
"""
Why was the task asked to stop? A worker shutdown and a person's decision look the same from inside.

Airflow 3.3.2 sends the task process SIGTERM both when the worker shuts down (eviction, deploy,
drain: the supervisor forwards its own SIGTERM) and when the server stops believing the task
should run (marked failed or success, or cleared: the supervisor sees 404/409/410 on heartbeat,
sends SIGTERM and SIGKILLs 5 s later). The only difference is what the server says about this task
instance, so we ask it. The supervisor keeps serving requests while it waits for the process to
exit, and the answer is one cheap query: it fits in the 5 s before SIGKILL.

Only an answer that records a decision may cancel the job. Anything the scheduler can set on its own
(``up_for_retry`` after a heartbeat timeout, ``queued`` for a resumed attempt, ``checkpointed``, ...)
and any state this release does not know are treated like a worker shutdown: checkpoint, never
cancel. A job cancelled for a scheduler's move is work lost that nobody asked to lose; left
running, it is the job the next attempt reconnects to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow.providers.resumable._compat import StrEnum


class StopCause(StrEnum):
    """Why a running task was told to stop, read from what the server says about it."""

    WORKER_SHUTDOWN = "worker_shutdown"
    """The server still says ``running`` (or cannot be asked): the worker is going away, not the
    task's purpose."""
    SCHEDULER = "scheduler"
    """The server says a state the scheduler or the task's own lifecycle sets (``queued``,
    ``scheduled``, ``up_for_retry``, ``up_for_reschedule``, ``deferred``, ``awaiting_input``,
    ``checkpointed``): this attempt is no longer the one the server tracks (say, a heartbeat timeout
    moved it on), but nobody decided the job should end."""
    UNKNOWN_STATE = "unknown_state"
    """The server says a state this release does not know: never cancel on a guess."""
    SUPERSEDED = "superseded"
    """Another attempt of this try has since taken the task instance over (this one was frozen or cut
    off long enough for the scheduler to resume the task elsewhere): what the server says now is about
    that attempt, and it owns the job. This attempt must neither cancel nor report."""
    USER_INTENT = "user_intent"
    """The server says a state only a decision sets (``failed``, ``success``, ``skipped``,
    ``removed``, ``upstream_failed``, ``restarting``, or no state or no row at all after a clear): a
    person (or the API) decided this run should end."""

    @property
    def cancels(self) -> bool:
        """Whether this cause may cancel the job. Only a decision does; every other cause checkpoints."""
        return self is StopCause.USER_INTENT


DECISION_STATES = frozenset({"failed", "success", "skipped", "removed", "upstream_failed", "restarting"})
"""States only a decision sets while an attempt runs: marked failed or success, skipped, removed from
the DAG, failed upstream, or cleared while running (``restarting``)."""

SCHEDULER_STATES = frozenset(
    {"scheduled", "queued", "up_for_retry", "up_for_reschedule", "deferred", "awaiting_input", "checkpointed"}
)
"""States the scheduler or the task's own lifecycle sets. Seeing one while this attempt runs means the
server has moved on from this attempt, not that anyone wants the job gone."""

_MISSING = "<missing>"


@dataclass(frozen=True)
class StopDiagnosis:
    """The cause and the evidence for it, for the task log."""

    cause: StopCause
    evidence: str

    @property
    def cancels(self) -> bool:
        """Whether the job may be cancelled for this stop (see :attr:`StopCause.cancels`)."""
        return self.cause.cancels


def cause_of_state(state: str | None) -> StopCause:
    """
    The stop cause a server-reported state stands for.

    :param state: the task instance's state as the server reports it: its value, ``None`` for no
        state (a clear resets it), or ``"<missing>"`` when the server has no row for it.
    """
    if state == "running":
        return StopCause.WORKER_SHUTDOWN
    if state is None or state == _MISSING or state in DECISION_STATES:
        return StopCause.USER_INTENT
    if state in SCHEDULER_STATES:
        return StopCause.SCHEDULER
    return StopCause.UNKNOWN_STATE


def attempt_that_took_over(declaration: Any, *, try_number: int, hostname: str, pid: int) -> str | None:
    """
    The later attempt of this try that has taken the task instance over, described; else ``None``.

    Every attempt of a resumable task declares itself (its try, host and pid) in the task state store
    when it starts its job or reconnects to it, overwriting the previous attempt's declaration. So,
    read by an attempt that has declared itself, a declaration of the same try naming another process
    was written by an attempt that started after it.

    :param declaration: the stored worker-loss declaration (``None`` when there is none).
    :param try_number: this attempt's try.
    :param hostname: this attempt's host, as it declared it.
    :param pid: this attempt's task process id, as it declared it.
    """
    if not isinstance(declaration, dict) or declaration.get("try_number") != try_number:
        return None
    if (declaration.get("hostname"), declaration.get("pid")) == (hostname, pid):
        return None
    return f"pid {declaration.get('pid')} on {declaration.get('hostname')}"


def diagnose_stop(ti: Any, *, taken_over_by: Callable[[], str | None] | None = None) -> StopDiagnosis:
    """
    Ask the server for this task instance's state and say why it was stopped.

    When the server cannot be asked, the answer is a shutdown: never cancel a job on a guess. The
    next attempt reconnects (or, if the task was in fact cleared, cancels and starts over).

    :param ti: the running task instance (``context["ti"]``).
    :param taken_over_by: when the server's answer would cancel, asked whether another attempt of
        this try has taken over since (see :func:`attempt_that_took_over`); if it names one, the
        answer was about that attempt and this one must not act on it. Asked only then, so a
        worker shutdown costs no extra round trip.
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
    state = (states or {}).get(ti.run_id, {}).get(task_key, _MISSING)
    state_value = getattr(state, "value", state)
    cause = cause_of_state(state_value)
    if cause.cancels and taken_over_by is not None and (successor := taken_over_by()):
        return StopDiagnosis(
            StopCause.SUPERSEDED,
            f"the server says this task is {state_value!r}, but another attempt of this try ({successor}) "
            "has taken it over since: that is its state, not a decision about this attempt",
        )
    evidence = {
        StopCause.WORKER_SHUTDOWN: "the server still says this task is running",
        StopCause.USER_INTENT: f"the server says this task is {state_value!r}, not running: a decision",
        StopCause.SCHEDULER: (
            f"the server says this task is {state_value!r}, a state the scheduler sets, not a "
            "person's decision"
        ),
        StopCause.UNKNOWN_STATE: (
            f"the server says this task is {state_value!r}, a state this release does not know; "
            "not cancelling on a guess"
        ),
    }[cause]
    return StopDiagnosis(cause, evidence)
