# Licensed under the Apache License, Version 2.0.
"""
Deferrable mode (``deferrable=True``): the half of the base operator's flow that hands a submitted
job to the triggerer and concludes it when the trigger fires.

**What changes.** The job is submitted exactly as without deferral: in the worker, under the ledger
(write-ahead intent, idempotency key, ``find_existing``). Once its id is recorded, the task defers to
the cloud's trigger (:mod:`airflow.providers.resumable.triggers`), which polls from the triggerer
while no worker slot is held; the task returns to a worker only to conclude in
:meth:`DeferringOperator.execute_complete`: result, XComs and links, exactly as a polling attempt
concludes.

**What does not.** The ledger stays the only truth about which job belongs to the task instance:
``execute_complete`` reads it and follows the ledger's job, whatever the event says. An event about
another job is refused (the ledger's job is followed instead), and an event that says polling failed
makes the task reconnect from the ledger, re-deferring while the job still runs; after
:data:`MAX_TRIGGER_GIVE_UPS` such events in a row, or a trigger the triggerer could not run
(``__fail__``), the attempt polls from the worker instead. Nothing in this path submits: a job is only ever started by ``execute``'s
decision. A worker shutdown while concluding checkpoints as usual. ``execution_timeout`` still bounds
the whole try: the trigger is given what is left of it, and a timed-out deferral cancels the job and
fails the task, as a polling attempt does.

**What it does not do.** The trigger never cancels (see
:mod:`~airflow.providers.resumable.triggers.base`): a person's stop while the task is deferred is
carried out by the job reaper, which cancels the job of a task instance a decision ended while no
attempt runs, or by the next attempt after a clear.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from airflow.configuration import conf
from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowTaskTimeout

from airflow.providers.resumable.checkpoint import attempt_that_took_over, declare_resumable_on_worker_loss
from airflow.providers.resumable.drain import Announcement, announce_checkpointable
from airflow.providers.resumable.ledger import LedgerError, LedgerPhase
from airflow.providers.resumable.ledger_store import LedgerStore
from airflow.providers.resumable.operators.job_control import JobControlOperator, _StopDuringRetries
from airflow.providers.resumable.polling import PollBudget
from airflow.providers.resumable.retrying import BackoffPolicy
from airflow.providers.resumable.status import JobState, RemoteStatus
from airflow.providers.resumable.triggers.base import TRIGGER_BACKOFF, EventStatus, ResumableJobTrigger

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

    from airflow.providers.resumable.deadline import TryDeadline
    from airflow.providers.resumable.ledger import LedgerOwner, SubmissionLedger


MAX_TRIGGER_GIVE_UPS = 3
"""Error events in a row (a trigger that gave up polling) after which the task polls from the worker
instead of deferring again: a trigger that keeps failing while the worker's own calls work (an async
client broken on the triggerer) must not bounce the task between worker and triggerer forever."""


class DeferringOperator(JobControlOperator):
    """Defer to the triggerer and conclude from the ledger (see the module docstring)."""

    trigger_class: ClassVar[type[ResumableJobTrigger] | None] = None
    """The trigger this operator defers to; ``None``: the operator cannot defer (``deferrable=True``
    is refused when the DAG is parsed)."""

    trigger_backoff: BackoffPolicy = TRIGGER_BACKOFF
    """Transient-error retries of the trigger's polls; its ``max_wait`` is replaced by
    :attr:`trigger_max_backoff` (or ``[resumable] trigger_max_backoff``)."""

    _drain_announcement: Announcement | None = None
    """This attempt's standing word to a drain-aware worker that a SIGTERM checkpoints it."""

    # Set by ResumableSubmitOperator.
    deferrable: bool
    trigger_max_backoff: timedelta | None
    ledger_kind: str
    max_poll_interval: float
    poll_budget: PollBudget
    _job_id: str | None
    _deadline: TryDeadline | None

    if TYPE_CHECKING:  # implemented by ResumableSubmitOperator and the clouds' operators

        def hook_params(self) -> dict[str, Any]: ...
        def on_job_known(self, external_id: str, context: Context) -> None: ...
        def recover(self, external_id: str, state: JobState, context: Context) -> bool: ...
        def on_poll_budget_spent(self, external_id: str, state: JobState, spent: str) -> NoReturn: ...
        def _conclude(self, job_id: str, final: JobState) -> Any: ...
        def _follow(self, job_id: str, context: Context) -> Any: ...
        def _start_clock(self, ledger: SubmissionLedger) -> None: ...
        @staticmethod
        def _owner(context: Context) -> LedgerOwner: ...

    def _check_deferrable(self) -> None:
        """Refuse ``deferrable=True`` when the DAG is parsed if this operator has no trigger."""
        if self.deferrable and self.trigger_class is None:
            raise AirflowException(
                f"{type(self).__name__} (task {self.task_id!r}) has no trigger to defer to: set its "
                "trigger_class, or remove deferrable=True"
            )

    def _defer(self, job_id: str, *, give_ups: int = 0) -> NoReturn:
        """
        Hand the job to the triggerer; the task comes back in :meth:`execute_complete`.

        :param job_id: the ledger's job.
        :param give_ups: error events in a row so far, handed back to :meth:`execute_complete`.
        """
        assert self.trigger_class is not None  # _check_deferrable refused the DAG otherwise
        trigger = self.trigger_class(
            external_id=job_id,
            hook_params=self.hook_params(),
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            max_polls=self.poll_budget.max_polls,
            max_seconds=self.poll_budget.max_seconds,
            backoff=dataclasses.asdict(self._trigger_policy()),
            job_noun=self.job_noun,
        )
        # The try's execution_timeout, counted from its first intent, bounds the deferral too.
        timeout = timedelta(seconds=self._deadline.remaining()) if self._deadline is not None else None
        self.log.info(
            "Deferring: the triggerer polls %s %s from here, and this worker slot is freed%s",
            self.job_noun,
            job_id,
            f" (at most {timeout})" if timeout is not None else "",
        )
        self._count("defer")
        kwargs = {"trigger_give_ups": give_ups} if give_ups else None
        self.defer(trigger=trigger, method_name="execute_complete", kwargs=kwargs, timeout=timeout)

    def _trigger_policy(self) -> BackoffPolicy:
        """The trigger's backoff, capped by the operator's argument or else the worker's setting."""
        cap = self.trigger_max_backoff
        # Read where the task defers, not where the DAG is parsed: the workers' setting applies.
        seconds = (
            cap.total_seconds()
            if cap is not None
            else conf.getfloat("resumable", "trigger_max_backoff", fallback=self.trigger_backoff.max_wait)
        )
        if seconds <= 0:
            raise AirflowException(f"[resumable] trigger_max_backoff must be positive, got {seconds:g}")
        return dataclasses.replace(self.trigger_backoff, max_wait=seconds)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """
        Airflow's entry point after a deferral. A trigger that crashed (``__fail__``: the triggerer
        could not run it, e.g. the provider is missing there) makes the task reconnect from the
        ledger and poll from the worker instead of failing; a deferral that reached the try's
        ``execution_timeout`` cancels the job and fails the task.
        """
        if next_method != TRIGGER_FAIL_REPR or not self.durable:
            return super().resume_execution(next_method, next_kwargs, context)
        error = (next_kwargs or {}).get("error", "Unknown")
        if error == TriggerFailureReason.TRIGGER_TIMEOUT:
            job_id = self._ledger_job_id(context)
            self.log.error("execution_timeout reached while deferred (%s %s)", self.job_noun, job_id)
            self._cancel_on_stop(job_id, reason="execution_timeout")
            raise AirflowTaskTimeout(f"execution_timeout reached while deferred ({self.job_noun} {job_id})")
        traceback = (next_kwargs or {}).get("traceback")
        self.log.warning(
            "The trigger failed (%s); reconnecting from the ledger, polling from the worker:\n%s",
            error,
            "\n".join(traceback or []),
        )
        return self.execute_complete(
            context,
            {"status": EventStatus.ERROR, "message": str(error)},
            trigger_give_ups=MAX_TRIGGER_GIVE_UPS,
        )

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, trigger_give_ups: int = 0
    ) -> Any:
        """
        Conclude a deferred job from the ledger (the trigger fired), or defer again if it still runs.

        :param context: the task's context.
        :param event: the trigger's event payload (``status``, ``job_id``, ...).
        :param trigger_give_ups: error events in a row before this one (see :data:`MAX_TRIGGER_GIVE_UPS`).
        """
        with self._attempt():
            return self._complete(context, event or {}, trigger_give_ups)

    @contextmanager
    def _attempt(self) -> Iterator[None]:
        """
        Around every entry point of an attempt (``execute``, ``execute_complete``): the stop request
        armed, and an ``execution_timeout`` that cancels the job here, because Airflow calls
        ``on_kill()`` after it and ``on_kill`` may not do I/O.
        """
        self._stop.arm()
        self._drain_announcement = None
        self._successor_probe = None
        try:
            yield
        except AirflowTaskTimeout:
            if self._job_id is not None:
                self.log.error("execution_timeout reached (%s %s)", self.job_noun, self._job_id)
                self._cancel_on_stop(self._job_id, reason="execution_timeout")
            raise
        finally:
            if self._drain_announcement is not None:
                self._drain_announcement.withdraw()
            self._stop.close()

    def _declare_resumable(self, context: Context) -> None:
        """
        From here on a fresh attempt can continue this one's job: say so to a patched Airflow (a lost
        worker is then a checkpoint) and to a drain-aware worker (its drain then checkpoints this task
        at once instead of waiting for the job; ``drain.py``). Once per attempt.
        """
        declared = declare_resumable_on_worker_loss(context, resume_after=self.resume_after)
        self._successor_probe = functools.partial(attempt_that_took_over, context) if declared else None
        if self._drain_announcement is None:
            self._drain_announcement = announce_checkpointable()

    def _complete(self, context: Context, event: dict[str, Any], give_ups: int) -> Any:
        status = event.get("status")
        give_ups = give_ups + 1 if status == EventStatus.ERROR else 0
        job_id = self._ledger_job_id(context) if self.durable else str(event.get("job_id"))
        if status == EventStatus.ERROR:
            self.log.warning(
                "The trigger gave up polling %s %s (%s); reconnecting from the ledger",
                self.job_noun,
                job_id,
                event.get("message"),
            )
        elif event.get("job_id") != job_id:
            self.log.warning(
                "Refusing the trigger's event about %s %s: the ledger records %s %s, which is followed",
                self.job_noun,
                event.get("job_id"),
                self.job_noun,
                job_id,
            )
            status = None
        self._job_id = job_id
        if self.durable:
            self._declare_resumable(context)
        self.on_job_known(job_id, context)
        # The event only wakes the task: the job's state is read again, so the result, the links and
        # a recovery see the cloud's own answer, as a polling attempt's conclusion does.
        try:
            state = self._call(lambda: self.describe(job_id), what=f"describe {self.job_noun} {job_id}")
        except _StopDuringRetries:
            self._stop_while_running(job_id, context)
            raise
        self.log.info("%s %s is %s", self.job_noun.capitalize(), job_id, state)
        if not state.status.is_terminal:
            if status == EventStatus.BUDGET_SPENT:
                self.on_poll_budget_spent(job_id, state, str(event.get("spent")))
            if give_ups >= MAX_TRIGGER_GIVE_UPS:
                self.log.warning(
                    "The trigger gave up %d times in a row on %s %s; polling it from the worker instead",
                    give_ups,
                    self.job_noun,
                    job_id,
                )
                # For the rest of this attempt only: the next attempt (a resume) defers again.
                self.deferrable = False
                return self._follow(job_id, context)
            self._defer(job_id, give_ups=give_ups)
        if state.status is not RemoteStatus.SUCCEEDED and self.recover(job_id, state, context):
            self.log.warning(
                "%s %s ended %s; recovered in place, deferring again", self.job_noun, job_id, state
            )
            self._defer(job_id)
        return self._conclude(job_id, state)

    def _ledger_job_id(self, context: Context) -> str:
        """The job the ledger records; the task fails (no new job) when it records none."""
        store = context.get("task_state_store")
        try:
            ledger = (
                LedgerStore(store, owner=self._owner(context), kind=self.ledger_kind).load()
                if store is not None
                else None
            )
        except LedgerError as err:
            raise AirflowFailException(str(err)) from err
        if ledger is None or ledger.phase is not LedgerPhase.SUBMITTED or not ledger.external_id:
            raise AirflowFailException(
                f"Resumed from the triggerer, but the ledger records no submitted {self.job_noun} "
                f"({ledger.phase.value if ledger else 'no ledger'}); nothing is submitted from here. "
                "Clear the task to start over."
            )
        if self.execution_timeout is not None:
            self._start_clock(ledger)
        return ledger.external_id
