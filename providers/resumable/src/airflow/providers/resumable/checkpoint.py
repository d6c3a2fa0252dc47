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
from typing import Any

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


@functools.cache
def _warn_fallback_once() -> None:
    log.warning(
        "This Airflow has no 'checkpointed' state, so the task is rescheduled (up_for_reschedule) "
        "instead; it resumes the same way without consuming a retry. Run "
        "'airflow-resumable patch apply' on every Airflow component to get the explicit state."
    )


def checkpoint_exception(*, resume_after: timedelta, checkpoint_data: dict[str, Any]) -> BaseException:
    """
    The exception that ends this attempt as a checkpoint, to be resumed after ``resume_after``.

    :param resume_after: how long Airflow waits before running the task again; never less than
        :data:`MIN_SAFE_RESUME_AFTER` (the core patch enforces the same minimum server-side).
    :param checkpoint_data: what the patched runner keeps for the resumed attempt (informational
        here: the ledger in the task state store is what the operator resumes from).
    """
    from airflow.sdk import exceptions

    if checkpointed_state_available():
        checkpointed: type[BaseException] = exceptions.AirflowTaskCheckpointed  # type: ignore[attr-defined,unused-ignore]
        return checkpointed(checkpoint_data=checkpoint_data, resume_after=resume_after)  # type: ignore[call-arg]

    _warn_fallback_once()
    wait = max(resume_after, MIN_SAFE_RESUME_AFTER)
    return exceptions.AirflowRescheduleException(reschedule_date=datetime.now(tz=UTC) + wait)
