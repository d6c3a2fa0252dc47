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
import os
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

log = logging.getLogger(__name__)

MIN_SAFE_RESUME_AFTER = timedelta(seconds=10)
"""The shortest wait before a resumed attempt may be scheduled, on the reschedule fallback.

Airflow 3.3.2 has a race: when the old worker's executor event for an attempt arrives after the
scheduler has already queued the resumed attempt (same try number), the scheduler takes the resumed
one for an externally killed task and fails it (seen on a stock stack with a 1 s reschedule). The
core patch's scheduler recognises that event (``TaskInstance.awaits_its_resumed_attempt``), so a
``checkpointed`` task needs no such wait (the patch keeps a 1 s minimum, one scheduler loop). The
fallback runs where the scheduler may be stock, so it keeps this one."""


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

    # A core patch from before per-attempt declarations has the key but not this function; its
    # declaration format differs, so nothing is declared there (the task fails on worker loss).
    return hasattr(exceptions, "worker_loss_declaration")


def declare_resumable_on_worker_loss(context: Context, *, resume_after: timedelta | None = None) -> bool:
    """
    Tell a patched Airflow that losing this attempt's worker from now on is a checkpoint, not a failure.

    The core patch reads the task state store key ``AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY``
    when a task instance's worker vanishes (SIGKILL, OOM kill, node loss): if it names this try and
    the host and process the server recorded for the running attempt, the task instance goes to
    ``checkpointed`` and resumes with the same try number after ``resume_after``, instead of failing
    and consuming a retry (at most ``[core] max_worker_loss_checkpoints`` times per try). Call this
    once a fresh attempt can safely continue the work (for the operators: once the ledger records
    the intent, and again in every attempt that reconnects).

    A stock Airflow has no such path, so nothing is written there. Each attempt writes its own
    declaration, one write; call it once per attempt. A declaration covers the rest of its try: the
    first attempt of a try lost before it declares (e.g. while loading its DAG) is not forgiven, a
    resumed one is, since the work it continues exists. A failure to write is logged and otherwise ignored (the task then fails on worker
    loss, as stock Airflow does).

    :param context: the running task's context.
    :param resume_after: how long Airflow waits before resuming after a worker loss; ``None`` for
        the server's ``[core] default_checkpoint_resume_after``. The server raises it to its minimum.
    :return: whether the declaration is in place.
    """
    if not worker_loss_checkpoints_available():
        return False
    from airflow.sdk import exceptions
    from airflow.sdk.api.client import get_hostname
    from airflow.sdk.execution_time.context import NEVER_EXPIRE

    key = exceptions.AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY  # type: ignore[attr-defined,unused-ignore]
    try_number = int(context["ti"].try_number)
    # The host and pid the supervisor reported when this attempt started: the task process is the
    # supervisor's child, on the same host.
    declaration = exceptions.worker_loss_declaration(  # type: ignore[attr-defined,unused-ignore]
        try_number=try_number,
        hostname=get_hostname(),
        pid=os.getpid(),
        resume_after=resume_after.total_seconds() if resume_after is not None else None,
    )
    # No read first: each attempt has its own pid, so an earlier value never matches and the read
    # would only cost a round trip. Never to expire: like the ledger, it must outlive the longest job.
    try:
        context["task_state_store"].set(key, declaration, retention=NEVER_EXPIRE)
    except Exception:
        log.warning(
            "Could not declare the task resumable on worker loss; if its worker is lost it fails as usual",
            exc_info=True,
        )
        return False
    log.info(
        "Declared resumable on worker loss (try %d, pid %d): a lost worker checkpoints this attempt",
        try_number,
        declaration["pid"],
    )
    return True


def attempt_that_took_over(context: Context) -> str | None:
    """
    Another attempt of this try that has declared itself since this one did, described; else ``None``.

    Only meaningful in an attempt whose own :func:`declare_resumable_on_worker_loss` succeeded (a later
    declaration then overwrote it). A store that cannot be read names nobody.

    :param context: the running task's context.
    """
    if not worker_loss_checkpoints_available():
        return None
    from airflow.sdk import exceptions
    from airflow.sdk.api.client import get_hostname

    from airflow.providers.resumable import termination

    key = exceptions.AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY  # type: ignore[attr-defined,unused-ignore]
    try:
        declaration = context["task_state_store"].get(key, default=None)
    except Exception:
        log.warning("Could not read which attempt declared itself last", exc_info=True)
        return None
    return termination.attempt_that_took_over(
        declaration, try_number=int(context["ti"].try_number), hostname=get_hostname(), pid=os.getpid()
    )


@functools.cache
def _warn_unpatched_server_once() -> None:
    log.warning(
        "This worker's Airflow has the 'checkpointed' state but the API server does not say it accepts "
        "it (an unpatched or not yet restarted API server would mark the task failed), so the task is "
        "rescheduled (up_for_reschedule) instead; it resumes the same way without consuming a retry. "
        "Run 'airflow-resumable patch apply' on every API server and restart it."
    )


@functools.cache
def _warn_fallback_once() -> None:
    log.warning(
        "This Airflow has no 'checkpointed' state, so the task is rescheduled (up_for_reschedule) "
        "instead; it resumes the same way without consuming a retry. Run "
        "'airflow-resumable patch apply' on every Airflow component to get the explicit state."
    )


def server_accepts_checkpoints(ti: Any) -> bool | None:
    """
    Whether the API server this attempt started with understands the ``checkpointed`` state.

    A patched Execution API says so (``accepts_checkpoint``) in the run context it answers when an
    attempt starts; an unpatched one, or one not restarted since the patch, says nothing. A
    ``checkpointed`` report to such a server would mark the task instance *failed*.

    :param ti: the running task instance (``context["ti"]``).
    :return: ``None`` when ``ti`` carries no run context from a server (it was not started through
        the Execution API, e.g. in a unit test), so there is nobody to ask.
    """
    run_context = getattr(ti, "_ti_context_from_server", None)
    if run_context is None:
        return None
    return getattr(run_context, "accepts_checkpoint", None) is True


def _current_ti() -> Any:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()["ti"]
    except Exception:
        return None  # not inside a running task


def checkpoint_exception(
    *, resume_after: timedelta, checkpoint_data: dict[str, Any] | None, ti: Any = None
) -> BaseException:
    """
    The exception that ends this attempt as a checkpoint, to be resumed after ``resume_after``.

    ``AirflowTaskCheckpointed`` when this worker's Airflow and the API server both carry the core
    patch; otherwise ``AirflowRescheduleException``, which any Airflow 3.3 resumes the same way.

    :param resume_after: how long Airflow waits before running the task again; never less than
        :data:`MIN_SAFE_RESUME_AFTER` on the reschedule fallback, nor than 1 s with the core patch.
    :param checkpoint_data: what the patched runner keeps for the resumed attempt, or ``None`` to
        write nothing (the resumable operators resume from their ledger and pass ``None``).
    :param ti: the running task instance; by default the current task's.
    """
    from airflow.sdk import exceptions

    if checkpointed_state_available():
        if server_accepts_checkpoints(ti if ti is not None else _current_ti()) is not False:
            checkpointed: type[BaseException] = exceptions.AirflowTaskCheckpointed  # type: ignore[attr-defined,unused-ignore]
            return checkpointed(checkpoint_data=checkpoint_data, resume_after=resume_after)  # type: ignore[call-arg]
        _warn_unpatched_server_once()
    else:
        _warn_fallback_once()
    wait = max(resume_after, MIN_SAFE_RESUME_AFTER)
    return exceptions.AirflowRescheduleException(reschedule_date=datetime.now(tz=timezone.utc) + wait)
