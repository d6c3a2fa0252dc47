# Licensed under the Apache License, Version 2.0.
"""
How a task says "pause me here and resume me later" on the Airflow it is running on.

With the bundled core patch applied (``airflow-resumable patch apply``), the task raises
``AirflowTaskCheckpointed`` and its row goes to the ``checkpointed`` state. Without it, the task
raises ``AirflowRescheduleException``: state ``up_for_reschedule``, which Airflow 3.3.2 also resumes
automatically without consuming a retry. Either way the remote job is left running.

Patching only part of the path is worse than nothing (an unpatched Execution API marks a
``checkpointed`` report *failed*), so the explicit state is used only when every in-process marker
of the patch is present.
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)

MIN_SAFE_RESUME_AFTER = timedelta(seconds=10)
"""The shortest wait before a resumed attempt may be scheduled.

Airflow 3.3.2 has a race: when the old worker's executor event for an attempt arrives after the
scheduler has already queued the resumed attempt (same try number), the scheduler takes the resumed
one for an externally killed task and fails it (seen on a stock stack with a 1 s reschedule). The
core patch enforces this minimum server-side for ``checkpointed``; the reschedule fallback has no
such guard, so it is applied here."""


@functools.cache
def checkpointed_state_available() -> bool:
    """
    Whether this interpreter's Airflow carries the CHECKPOINTED wiring end to end.

    Checks the three places a checkpoint passes through in this process: the exception the
    operator raises, the state enum the runner reports, and the message the supervisor forwards.
    """
    try:
        from airflow.sdk import exceptions
        from airflow.sdk.execution_time import comms
        from airflow.utils.state import TaskInstanceState
    except ImportError:
        return False
    return (
        hasattr(exceptions, "AirflowTaskCheckpointed")
        and hasattr(comms, "CheckpointTask")
        and "checkpointed" in {state.value for state in TaskInstanceState}
    )


def worker_loss_checkpoints_available() -> bool:
    """Whether this Airflow checkpoints (rather than fails) a declared task whose worker is lost."""
    if not checkpointed_state_available():
        return False
    from airflow.sdk import exceptions

    return hasattr(exceptions.AirflowTaskCheckpointed, "RESUME_ON_WORKER_LOSS_KEY")  # type: ignore[attr-defined,unused-ignore]


def declare_resumable_on_worker_loss(context: Context) -> bool:
    """
    Tell a patched Airflow that losing this task's worker from now on is a checkpoint, not a failure.

    The core patch reads the task state store key ``AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY``
    when a task instance's worker vanishes (SIGKILL, OOM kill, node loss): if it holds the current
    try number, the task instance goes to ``checkpointed`` and resumes with the same try, instead of
    failing and consuming a retry. Call this once a fresh attempt can safely continue the work (for
    the operators: once the ledger records the job).

    A stock Airflow has no such path, so nothing is written there. The key outlives the attempt, so a
    resumed attempt of the same try finds its declaration and writes nothing either: one write per try.
    A failure to write is logged and otherwise ignored (the task then fails on worker loss, as stock
    Airflow does).

    :return: whether the declaration is in place.
    """
    if not checkpointed_state_available():
        return False
    from airflow.sdk import exceptions
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    # Absent when the applied core patch predates worker-loss checkpoints.
    key = getattr(exceptions.AirflowTaskCheckpointed, "RESUME_ON_WORKER_LOSS_KEY", None)  # type: ignore[attr-defined,unused-ignore]
    if key is None:
        return False
    try_number = int(context["ti"].try_number)
    store = context["task_state_store"]
    try:
        declared = store.get(key)
        # The exact type: a stored True would compare equal to try 1.
        if type(declared) is int and declared == try_number:
            return True
        # Never to expire: like the ledger, it must outlive the longest job (see ledger_store).
        store.set(key, try_number, retention=NEVER_EXPIRE)
    except Exception:
        log.warning(
            "Could not declare the task resumable on worker loss; if its worker is lost it fails as usual",
            exc_info=True,
        )
        return False
    log.info("Declared resumable on worker loss (try %d): a lost worker checkpoints this task", try_number)
    return True


@functools.cache
def _warn_fallback_once() -> None:
    log.warning(
        "This Airflow has no 'checkpointed' state, so the task is rescheduled (up_for_reschedule) "
        "instead; it resumes the same way without consuming a retry. Run "
        "'airflow-resumable patch apply' on every Airflow component to get the explicit state."
    )


def checkpoint_exception(*, resume_after: timedelta, checkpoint_data: dict[str, Any] | None) -> BaseException:
    """
    The exception that ends this attempt as a checkpoint, to be resumed after ``resume_after``.

    :param resume_after: how long Airflow waits before running the task again; never less than
        :data:`MIN_SAFE_RESUME_AFTER` (the core patch enforces the same minimum server-side).
    :param checkpoint_data: what the patched runner keeps for the resumed attempt, or ``None`` to
        write nothing (the resumable operators resume from their ledger and pass ``None``).
    """
    from airflow.sdk import exceptions

    if checkpointed_state_available():
        checkpointed: type[BaseException] = exceptions.AirflowTaskCheckpointed  # type: ignore[attr-defined,unused-ignore]
        return checkpointed(checkpoint_data=checkpoint_data, resume_after=resume_after)  # type: ignore[call-arg]

    _warn_fallback_once()
    wait = max(resume_after, MIN_SAFE_RESUME_AFTER)
    return exceptions.AirflowRescheduleException(reschedule_date=datetime.now(tz=UTC) + wait)
