# Licensed under the Apache License, Version 2.0.
"""
How a resumable operator talks to its job and how it stops: the half of the base operator's flow
that is about a job already sent (or being sent) to the cloud.

:class:`JobControlOperator` is the base of
:class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and holds what both the
submission flow and the poll loop need: cloud calls retried with a backoff that wakes on a stop
request (:meth:`~JobControlOperator._call`), the cancel that must land inside the supervisor's SIGKILL
window (:data:`CANCEL_ON_STOP_BUDGET`), the choice between checkpointing and cancelling when the task
is asked to stop, and the bounded wait for a cleared task's previous job to end. It is not meant to
be subclassed on its own; the contract a cloud implements is documented on the base operator.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.observability.stats import Stats

from airflow.providers.resumable.checkpoint import checkpoint_exception
from airflow.providers.resumable.hooks.errors import http_retry_after, is_transient_http
from airflow.providers.resumable.hooks.job_hook import JobHook
from airflow.providers.resumable.retrying import BackoffPolicy
from airflow.providers.resumable.status import JobState
from airflow.providers.resumable.stop_request import StopRequest
from airflow.providers.resumable.termination import StopCause, diagnose_stop

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow.providers.resumable.ledger import SubmissionLedger

T = TypeVar("T")

CANCEL_ON_STOP_BUDGET = 3.0
"""Seconds a cancel on a stop may take in all, every call and retry included.

On a person's decision the supervisor SIGKILLs the task 5 s after its SIGTERM, and asking the server
why takes part of that. Each cloud call gets what is left of this as its own timeout: the clients'
defaults (botocore 60 s, the Databricks hook 180 s, gRPC none) would outlive the window."""
STOP_TO_CANCELLED_BUDGET = 4.0
"""Seconds from the SIGTERM to the end of the cancel, asking the server why included.

The last second of the 5 s window is left for the attempt to report how it ended: a report the
SIGKILL cuts off leaves the task to the heartbeat timeout."""
_CANCEL_RETRY = BackoffPolicy(max_attempts=3, max_delay=CANCEL_ON_STOP_BUDGET, initial_wait=0.2, max_wait=0.5)
_MIN_RETRY_BUDGET = 1.0
"""No retry of a cancel starts with less than this left (after its backoff, at least 0.5 s)."""

_ENDED_CHECK_SECONDS = 1.0
"""At most this long (and at most a third of what is left of the cancel's budget) to ask whether a job
a person's stop would cancel has ended meanwhile."""

_NOT_A_DECISION = {
    StopCause.WORKER_SHUTDOWN: "Worker shutdown",
    StopCause.SCHEDULER: "Stopped by the scheduler, not by a person",
    StopCause.UNKNOWN_STATE: "Stopped for a reason this release does not know",
    StopCause.SUPERSEDED: "Another attempt has taken this task over",
}
"""How the log names each stop that checkpoints instead of cancelling."""


class JobControlOperator(BaseOperator):
    """Cloud calls, cancels and stops for a resumable operator (see the module docstring)."""

    job_noun: str = "job"
    """What the cloud calls the thing this operator starts, for log lines ("run", "step", ...)."""

    cloud_call_backoff: BackoffPolicy = BackoffPolicy()
    """Transient-error retries for every cloud call made while the task runs normally."""

    cancel_on_stop: bool = True
    """Whether a stop that is *not* a worker shutdown cancels the job: a person's decision (user
    intent), ``execution_timeout``, or any kill with ``durable=False``. Subclasses set it from their
    upstream's switch (Dataproc's ``cancel_on_kill``). A worker shutdown never cancels either way,
    and clearing a task whose job still runs always cancels it first (never orphaned)."""

    # Set by ResumableSubmitOperator.__init__.
    durable: bool
    resume_after: timedelta
    poll_interval: float
    previous_job_stop_timeout: timedelta
    _stop: StopRequest
    _successor_probe: Callable[[], str | None] | None
    """Once this attempt has declared itself: names an attempt of this try that declared itself since."""

    @property
    def hook(self) -> JobHook:
        """
        This operator's cloud calls: one of this provider's hooks, or anything with ``describe`` and
        ``cancel`` as below. An operator without one overrides :meth:`describe` and :meth:`cancel`.
        """
        raise NotImplementedError(
            f"{type(self).__name__} has no hook: give it one, or override describe() and cancel()"
        )

    def describe(self, external_id: str) -> JobState:
        """Return the job's normalised status, the cloud's raw state and a human message."""
        return self.hook.describe(external_id)

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        """
        Cancel the job. Cancelling a job that has already ended must not raise.

        :param external_id: the job.
        :param timeout: seconds each cloud call may take before it gives up (connection included),
            or ``None`` for the client's usual timeout. A cancel on a person's stop passes what is
            left of :data:`CANCEL_ON_STOP_BUDGET`, so it ends before the supervisor's SIGKILL.
        """
        self.hook.cancel(external_id, timeout=timeout)

    def is_transient(self, error: BaseException) -> bool:
        """
        Whether ``error`` is worth retrying (429, 5xx, connection errors, timeouts).

        The default recognises socket-level failures and anything carrying an HTTP status of 429 or
        5xx (``error.status_code`` or ``error.response.status_code``). Subclasses add their client's.
        """
        return is_transient_http(error)

    def retry_after(self, error: BaseException) -> float | None:
        """Seconds the server asked us to wait before retrying ``error`` (``Retry-After``), if any."""
        return http_retry_after(error)

    def on_kill(self) -> None:
        """
        Record that the task was asked to stop and wake the poll loop. Nothing else.

        Runs inside Airflow's SIGTERM handler, so it does no I/O: the poll loop, woken at once,
        works out whether this is a worker shutdown (checkpoint, keep the job) or a person's
        decision (cancel the job).
        """
        self._stop.request()

    def _end_previous_job(self, ledger: SubmissionLedger) -> None:
        """
        Cancel the job a clear replaces and wait, bounded, until the cloud says it has ended.

        Cancels are asynchronous (a Databricks run is ``TERMINATING``, an EMR step
        ``CANCEL_PENDING``, a Dataproc job ``CANCEL_STARTED`` for a while), and a refused one leaves
        the job running: either way, starting the new generation now would run two jobs of one task
        instance at once. So the new job waits; if the old one cannot be ended, the task fails and
        the ledger keeps naming it. A stop request during the wait checkpoints: the ledger still
        names the old job, so the next attempt cancels and waits again.

        :raises AirflowFailException: the cancel was refused, or the job had not ended at
            :attr:`previous_job_stop_timeout`.
        """
        job_id = ledger.external_id
        assert job_id is not None
        try:
            self._call(lambda: self.cancel(job_id), what=f"cancel {self.job_noun} {job_id}")
        except _StopDuringRetries:
            self._stop_before_submit(ledger)
            raise
        except Exception as err:
            raise AirflowFailException(
                self._previous_job_still_running(job_id, f"the cancel was refused: {err}")
            ) from err
        self._count("cancel")
        self.log.warning(
            "Cancelled %s %s (the task was cleared); waiting up to %s for it to end before submitting anew",
            self.job_noun,
            job_id,
            self.previous_job_stop_timeout,
        )
        deadline = time.monotonic() + self.previous_job_stop_timeout.total_seconds()
        while True:
            try:
                state = self._call(lambda: self.describe(job_id), what=f"describe {self.job_noun} {job_id}")
            except _StopDuringRetries:
                self._stop_before_submit(ledger)
                raise
            if state.status.is_terminal:
                self.log.info("%s %s has ended: %s", self.job_noun.capitalize(), job_id, state)
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AirflowFailException(
                    self._previous_job_still_running(
                        job_id,
                        f"{self.previous_job_stop_timeout.total_seconds():g} s after the cancel it is "
                        f"still {state}",
                    )
                )
            if self._stop.wait(min(self.poll_interval, remaining)):
                self._stop_before_submit(ledger)

    def _previous_job_still_running(self, job_id: str, what_happened: str) -> str:
        noun = self.job_noun
        return (
            f"The task was cleared, but its previous {noun} {job_id} could not be stopped ({what_happened}). "
            f"No new {noun} was started, so two never run at once, and the ledger still records {job_id}. "
            f"Cancel {noun} {job_id} in the cloud (or check that this connection may cancel it, or wait "
            "for it to end), then clear the task again."
        )

    def ensure_this_attempt_may_send(self) -> None:
        """
        Call right before a submission the cloud cannot deduplicate (it takes no idempotency token or
        job id a re-send could repeat: EMR's ``AddJobFlowSteps``), after every slower call before it.

        A stop requested meanwhile checkpoints before anything is sent: the next attempt re-sends the
        ledger's key and finds nothing. So does a later attempt of this try having declared itself:
        this one was frozen or starved past the heartbeat timeout on its way here (its supervisor's
        SIGTERM may not have come yet), the task resumed elsewhere, and that attempt owns the key now;
        sending would add a second job beside the one it sends. What is left is the moment between
        this look (one read of the task state store) and the request itself.

        :raises AirflowTaskCheckpointed: (or the reschedule without the core patch) instead of sending.
        """
        if self._stop.requested:
            self._stop_before_submit(None)
        successor = self._successor_probe() if self._successor_probe is not None else None
        if successor is not None:
            self.log.warning(
                "%s (%s) while this one was about to submit: sending nothing, the ledger's key is "
                "its to send. This attempt ends as a checkpoint, which the server refuses from a "
                "superseded attempt, so nothing is reported",
                _NOT_A_DECISION[StopCause.SUPERSEDED],
                successor,
            )
            self._count("superseded_before_submit")
            raise checkpoint_exception(resume_after=self.resume_after, checkpoint_data=None)

    def _stop_before_submit(self, ledger: SubmissionLedger | None) -> None:
        self.log.info("Asked to stop before submitting: checkpointing; the next attempt submits")
        self._count("checkpoint")
        raise checkpoint_exception(resume_after=self.resume_after, checkpoint_data=None)

    def _stop_while_running(self, job_id: str, context: Context) -> None:
        if not self.durable:
            self.log.warning("Task killed with durable=False (%s %s)", self.job_noun, job_id)
            outcome = self._cancel_on_stop(job_id, reason="task killed (durable=False)")
            raise AirflowException(f"Task killed; {self.job_noun} {job_id} {outcome} (durable=False)")
        diagnosis = diagnose_stop(
            context["ti"],
            taken_over_by=self._successor_probe,
        )
        if diagnosis.cancels:
            self.log.warning("Stop requested and %s (%s %s)", diagnosis.evidence, self.job_noun, job_id)
            if (ended := self._ended_meanwhile(job_id)) is not None:
                # E.g. an attempt that thaws after its task resumed elsewhere, where the resumed
                # attempt found the job finished and concluded: nobody wants a finished job cancelled.
                self.log.warning(
                    "%s %s had already ended (%s): nothing to cancel", self.job_noun, job_id, ended.status
                )
                raise AirflowException(
                    f"Task stopped by the user; {self.job_noun} {job_id} had already ended ({ended.status})"
                )
            outcome = self._cancel_on_stop(job_id, reason="stopped by the user")
            raise AirflowException(f"Task stopped by the user; {self.job_noun} {job_id} {outcome}")
        if diagnosis.cause is StopCause.SUPERSEDED:
            self.log.warning(
                "%s (%s): leaving %s %s to it. This attempt ends as a checkpoint, which the server "
                "refuses from a superseded attempt (with the core patch), so nothing is reported",
                _NOT_A_DECISION[diagnosis.cause],
                diagnosis.evidence,
                self.job_noun,
                job_id,
            )
            raise checkpoint_exception(resume_after=self.resume_after, checkpoint_data=None)
        self.log.info(
            "%s (%s): checkpointing and leaving %s %s running; resuming in %s",
            _NOT_A_DECISION[diagnosis.cause],
            diagnosis.evidence,
            self.job_noun,
            job_id,
            self.resume_after,
        )
        self._count("checkpoint")
        # No checkpoint data: the ledger already holds the job id the next attempt resumes from, and
        # data would cost two metadata writes per checkpoint (written now, deleted on success).
        raise checkpoint_exception(resume_after=self.resume_after, checkpoint_data=None)

    def _ended_meanwhile(self, job_id: str) -> JobState | None:
        """
        The job's state if it has ended since the last poll; ``None`` if it has not, or if the cloud
        does not say so within :data:`_ENDED_CHECK_SECONDS` (one call, no retries: the rest of the
        stop's budget stays for the cancel, which the check must never cost).
        """
        answer: list[JobState | BaseException] = []

        def ask() -> None:
            try:
                answer.append(self.describe(job_id))
            except Exception as err:
                answer.append(err)

        # A daemon thread: describe() has no timeout of its own, and an answer too late is dropped.
        asking = threading.Thread(target=ask, name=f"ended-check-{job_id}", daemon=True)
        asking.start()
        asking.join(min(_ENDED_CHECK_SECONDS, max(0.0, self._cancel_deadline() - time.monotonic()) / 3))
        if not answer or isinstance(answer[0], BaseException):
            why = f"{answer[0]}" if answer else "no answer in time"
            self.log.info(
                "Could not check whether %s %s has ended (%s); cancelling it", self.job_noun, job_id, why
            )
            return None
        state = answer[0]
        return state if state.status.is_terminal else None

    def _cancel_on_stop(self, job_id: str, *, reason: str) -> str:
        """Cancel for a stop that is not a worker shutdown, unless :attr:`cancel_on_stop` is off; say which."""
        if not self.cancel_on_stop:
            self.log.warning(
                "Leaving %s %s running (%s): cancelling on a stop is turned off",
                self.job_noun,
                job_id,
                reason,
            )
            return "was left running (cancelling on a stop is turned off)"
        if self._cancel_bounded(job_id, reason=reason):
            return "was cancelled"
        return "could not be cancelled (see the error in the log) and may still be running"

    def _cancel_bounded(self, job_id: str, *, reason: str) -> bool:
        """
        Cancel within :data:`CANCEL_ON_STOP_BUDGET` seconds in all; whether the cloud accepted it.

        A cancel that cannot be made in time is logged as an error naming the job (a person has to
        cancel it by hand), never raised: the stop it serves goes on either way.
        """
        deadline = self._cancel_deadline()
        allowed = deadline - time.monotonic()
        try:
            _CANCEL_RETRY.call(
                lambda: self.cancel(job_id, timeout=deadline - time.monotonic()),
                is_transient=self.is_transient,
                retry_after=lambda _: None,
                give_up=lambda: deadline - time.monotonic() < _MIN_RETRY_BUDGET,
                logger=self.log,
                what=f"cancel {self.job_noun} {job_id}",
            )
        except Exception as err:
            self.log.exception(
                "Could not cancel %s %s (%s; %.1f s allowed): %s. It may still be running: cancel it by hand.",
                self.job_noun,
                job_id,
                reason,
                allowed,
                err,
            )
            return False
        self._count("cancel")
        self.log.warning("Cancelled %s %s (%s)", self.job_noun, job_id, reason)
        return True

    def _cancel_deadline(self) -> float:
        """
        When a cancel on a stop must have ended (``time.monotonic()``).

        :data:`CANCEL_ON_STOP_BUDGET` from now, but never past :data:`STOP_TO_CANCELLED_BUDGET` after
        the SIGTERM: on a loaded worker asking the server why can take seconds of the window. A
        cancel always gets one call of at least :data:`_MIN_RETRY_BUDGET`, though, as the only
        chance to spare a person the cancel by hand.
        """
        now = time.monotonic()
        deadline = now + CANCEL_ON_STOP_BUDGET
        if self._stop.requested_at is not None:
            deadline = min(deadline, self._stop.requested_at + STOP_TO_CANCELLED_BUDGET)
        return max(deadline, now + _MIN_RETRY_BUDGET)

    def _call(self, fn: Callable[[], T], *, what: str) -> T:
        """
        A cloud call with transient-error retries whose backoff wakes on a stop request.

        :raises _StopDuringRetries: a stop was requested while retrying a transient error; the
            caller turns that into a checkpoint (or a cancel) rather than a failed task.
        """
        try:
            return self.cloud_call_backoff.call(
                fn,
                is_transient=self.is_transient,
                retry_after=self.retry_after,
                give_up=lambda: self._stop.requested,
                sleep=self._stop.wait,
                logger=self.log,
                what=what,
            )
        except Exception as err:
            if self._stop.requested and self.is_transient(err):
                raise _StopDuringRetries(what) from err
            raise

    def _count(self, event: str) -> None:
        Stats.incr(f"resumable.{event}", tags={"operator": type(self).__name__})


class _StopDuringRetries(Exception):
    """A stop was requested while a cloud call was being retried; the call was abandoned."""
