# Licensed under the Apache License, Version 2.0.
"""ResumableSubmitOperator: the flow every resumable cloud operator shares."""

from __future__ import annotations

import socket
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowTaskTimeout
from airflow.sdk.observability.stats import Stats

from airflow.providers.resumable.checkpoint import (
    attempt_that_took_over,
    checkpoint_exception,
    declare_resumable_on_worker_loss,
)
from airflow.providers.resumable.deadline import TryDeadline
from airflow.providers.resumable.decision import Action, Decision, PriorFailurePolicy, decide
from airflow.providers.resumable.ledger import (
    IdempotencyKey,
    LedgerError,
    LedgerOwner,
    LedgerPhase,
    SubmissionLedger,
)
from airflow.providers.resumable.ledger_store import LedgerStore
from airflow.providers.resumable.polling import PollSchedule
from airflow.providers.resumable.retrying import BackoffPolicy
from airflow.providers.resumable.status import JobState, RemoteStatus
from airflow.providers.resumable.stop_request import StopRequest
from airflow.providers.resumable.termination import StopCause, diagnose_stop

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

T = TypeVar("T")

CANCEL_ON_STOP_BUDGET = 3.0
"""Seconds a cancel on a stop may take in all, every call and retry included.

On a person's decision the supervisor SIGKILLs the task 5 s after its SIGTERM, and asking the server
why takes part of that. Each cloud call gets what is left of this as its own timeout: the clients'
defaults (botocore 60 s, the Databricks hook 180 s, gRPC none) would outlive the window."""
_CANCEL_RETRY = BackoffPolicy(max_attempts=3, max_delay=CANCEL_ON_STOP_BUDGET, initial_wait=0.2, max_wait=0.5)
_MIN_RETRY_BUDGET = 1.0
"""No retry of a cancel starts with less than this left (after its backoff, at least 0.5 s)."""

_NOT_A_DECISION = {
    StopCause.WORKER_SHUTDOWN: "Worker shutdown",
    StopCause.SCHEDULER: "Stopped by the scheduler, not by a person",
    StopCause.UNKNOWN_STATE: "Stopped for a reason this release does not know",
    StopCause.SUPERSEDED: "Another attempt has taken this task over",
}
"""How the log names each stop that checkpoints instead of cancelling."""


class ResumableSubmitOperator(BaseOperator):
    """
    Submit one long-running remote job exactly once, poll it, and survive the worker dying.

    **What it is for.** Operators that start a Databricks run, an EMR step or a Dataproc job and
    then poll it for hours. Workers die under such tasks (evictions, deploys, spot reclaims). This
    base makes that a non-event: the job is submitted once, never cancelled because a worker went
    away, and the next attempt reconnects to it without consuming a retry.

    **How it works.** Each task instance keeps a
    :class:`~airflow.providers.resumable.ledger.SubmissionLedger` in Airflow's task state store. The
    intent to submit is written *before* the cloud is called, with an idempotency key the cloud
    deduplicates on; every later attempt reads the ledger and
    :func:`~airflow.providers.resumable.decision.decide` says whether to submit, re-send the same
    key, reconnect, return a finished result, or start a new generation. On SIGTERM the task asks
    the server why: only a state that records a person's decision (failed, success, cleared, ...)
    cancels the job, as the stock operators do; ``running`` (a worker shutdown), any state the
    scheduler sets, and any state this release does not know make the task checkpoint (state
    ``checkpointed`` with the core patch, ``up_for_reschedule`` without) and leave the job running
    (see :mod:`~airflow.providers.resumable.termination`). ``execution_timeout`` cancels the job and
    fails the task; it bounds the whole try, counted from the try's first intent across every resume
    (see :mod:`~airflow.providers.resumable.deadline`), not each attempt afresh.

    **What subclasses implement.** :meth:`build_submission` (validate and build the request; no
    cloud call), :meth:`submit`, :meth:`describe`, :meth:`cancel`, optionally :meth:`find_existing`
    (clouds that cannot deduplicate), :meth:`result`, :meth:`on_job_known` (XComs, links),
    :meth:`recover` (restart a failed job in place, e.g. a Databricks repair), and
    :meth:`is_transient` / :meth:`retry_after` for their client's errors; they may turn polling off
    with :attr:`wait_for_completion`, and cancelling on a person's stop or ``execution_timeout`` off
    with :attr:`cancel_on_stop`. The flow stays here.

    **What it does not do.** It does not free the worker slot while polling (deferrable operators
    do; ``deferrable=True`` is not supported yet) and does not stream remote logs.

    **Known limitation.** Exactly-once is as strong as the cloud's deduplication of the key (or, for
    clouds without it, :meth:`find_existing`, which is told the ledger's intent time so it can bound
    its search). A user-supplied token or id replaces the generated key;
    resubmitting after a real failure then needs a token that changes (e.g. templated per try).

    :param durable: keep the ledger in the task state store (default). ``False`` behaves like the
        stock operator: no reconnection, and the job is cancelled whenever the task is killed. Same
        meaning as ``durable`` in Airflow's ``ResumableJobMixin``.
    :param on_prior_failure: what a later attempt does when the job recorded by an earlier attempt
        failed, was cancelled or disappeared: ``"resubmit"`` (default) starts a new job, ``"fail"``
        fails the task without submitting.
    :param resume_after: how long after a checkpoint Airflow resumes the task. The core patch
        raises anything shorter to its 10 s minimum, which keeps the resumed attempt clear of the
        old worker's executor event.
    :param poll_interval: seconds between the first status polls.
    :param max_poll_interval: the longest interval between polls; intervals grow from
        ``poll_interval`` by 1.5x per poll up to this. Defaults to ``poll_interval`` (constant).
    :param deferrable: not supported yet; ``True`` raises at DAG parse time.
    :param previous_job_stop_timeout: after a clear, how long to wait for the job the ledger
        records, once cancelled, to reach a terminal state before starting its replacement (cancels
        are asynchronous on Databricks, EMR and Dataproc). A job still going at the bound fails the
        task and stays in the ledger: two jobs of one task instance never run at once.
    """

    ledger_kind: str = ""
    """Which operator family writes the ledger; a ledger of another kind is refused on resume."""

    job_noun: str = "job"
    """What the cloud calls the thing this operator starts, for log lines ("run", "step", ...)."""

    cloud_call_backoff: BackoffPolicy = BackoffPolicy()
    """Transient-error retries for every cloud call made while the task runs normally."""

    cancel_on_stop: bool = True
    """Whether a stop that is *not* a worker shutdown cancels the job: a person's decision (user
    intent), ``execution_timeout``, or any kill with ``durable=False``. Subclasses set it from their
    upstream's switch (Dataproc's ``cancel_on_kill``). A worker shutdown never cancels either way,
    and clearing a task whose job still runs always cancels it first (never orphaned)."""

    wait_for_completion: bool = True
    """``False``: end the task as soon as the job is known (submitted or reconnected), without
    polling it. Subclasses set it from their upstream's "do not wait" argument (Databricks'
    ``wait_for_termination``); the job is still submitted exactly once."""

    def __init__(
        self,
        *,
        durable: bool = True,
        on_prior_failure: str | PriorFailurePolicy = PriorFailurePolicy.RESUBMIT,
        resume_after: timedelta = timedelta(seconds=10),
        poll_interval: float = 10.0,
        max_poll_interval: float | None = None,
        deferrable: bool = False,
        previous_job_stop_timeout: timedelta = timedelta(minutes=2),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if deferrable:
            raise AirflowException(
                f"{type(self).__name__} (task {self.task_id!r}) does not support deferrable=True yet: "
                "a resumable operator polls from the worker and survives the worker dying instead. "
                "Remove deferrable=True, or use the upstream deferrable operator for this task."
            )
        if not self.ledger_kind:
            raise TypeError(f"{type(self).__name__} must set the class attribute 'ledger_kind'")
        try:
            self.on_prior_failure = PriorFailurePolicy(on_prior_failure)
        except ValueError:
            choices = ", ".join(repr(p.value) for p in PriorFailurePolicy)
            raise AirflowException(
                f"on_prior_failure={on_prior_failure!r} is not one of {choices} (task {self.task_id!r})"
            ) from None
        if resume_after < timedelta(0):
            raise AirflowException(f"resume_after must not be negative, got {resume_after}")
        if previous_job_stop_timeout < timedelta(0):
            raise AirflowException(
                f"previous_job_stop_timeout must not be negative, got {previous_job_stop_timeout}"
            )
        self.previous_job_stop_timeout = previous_job_stop_timeout
        self.durable = durable
        self.deferrable = deferrable
        self.resume_after = resume_after
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval if max_poll_interval is not None else poll_interval)
        self.poll_schedule = PollSchedule(
            self.poll_interval,
            self.max_poll_interval,
            factor=1.0 if self.max_poll_interval == self.poll_interval else 1.5,
        )
        self._stop = StopRequest()
        # Whether this attempt declared itself resumable on worker loss: only then can a later
        # declaration show that another attempt has taken this try over.
        self._declared = False
        self._job_id: str | None = None
        self._deadline: TryDeadline | None = None

    # ------------------------------------------------------------------ the subclass contract

    @abstractmethod
    def build_submission(self, context: Context) -> Any:
        """
        Validate the task's arguments and build the cloud request. No cloud call may happen here.

        Raise ``AirflowFailException`` (or ``ValueError``/``TypeError``) with a message naming the
        bad argument: invalid input must fail before anything is submitted.
        """

    @abstractmethod
    def submit(self, submission: Any, idempotency_key: str) -> str:
        """
        Submit the job and return its external id. Must be idempotent per ``idempotency_key``.

        Called again with the same key after an interrupted or retried submit; the cloud (or the
        adapter, via :meth:`find_existing`) must then return the job that already exists.
        """

    def find_existing(self, idempotency_key: str, *, intent_at: datetime | None = None) -> str | None:
        """
        Return the id of a job already submitted with ``idempotency_key``, or ``None``.

        Only clouds without server-side deduplication need this; it is consulted before every
        submit that may repeat an earlier one (an interrupted submit, or a retry of a submit whose
        response was lost). The default finds nothing.

        :param idempotency_key: the key the earlier submit carried.
        :param intent_at: when the ledger recorded the intent to submit under this key (UTC): no job
            with this key can be older, so a search through the cloud's history may stop there.
            The base always passes it; it defaults to ``None`` (search everything) so that callers
            and overrides written before it existed keep working.
        """
        return None

    @abstractmethod
    def describe(self, external_id: str) -> JobState:
        """Return the job's normalised status, the cloud's raw state and a human message."""

    @abstractmethod
    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        """
        Cancel the job. Cancelling a job that has already ended must not raise.

        :param external_id: the job.
        :param timeout: seconds each cloud call may take before it gives up (connection included),
            or ``None`` for the client's usual timeout. A cancel on a person's stop passes what is
            left of :data:`CANCEL_ON_STOP_BUDGET`, so it ends before the supervisor's SIGKILL.
        """

    def hook_params(self) -> dict[str, Any] | None:
        """
        How to reach this task's job from outside any attempt: plain, JSON-serialisable arguments
        for the cloud hook registered for :attr:`ledger_kind` (connection id, region, project, ...).

        Recorded in the ledger with the intent, so the :mod:`job reaper
        <airflow.providers.resumable.job_reaper>` can cancel the job of a task instance a person
        ended while no attempt was running. ``None`` (the default) records nothing: such a job is
        then only reported, not cancelled, by the reaper.
        """
        return None

    def result(self, external_id: str, state: JobState) -> Any:
        """The task's return value (pushed to XCom as ``return_value``). Default: ``None``."""
        return None

    def on_job_known(self, external_id: str, context: Context) -> None:
        """Called once per attempt when the job's id is known (submitted or reconnected): push XComs here."""

    def recover(self, external_id: str, state: JobState) -> bool:
        """
        Try to bring a job that ended unsuccessfully back to life *in place* (same external id).

        Called once the job polled by this attempt ends without succeeding. Return ``True`` if the
        job was restarted (e.g. a Databricks repair run) and should be polled again, ``False`` to
        let the task fail. A job found already failed when an attempt starts is handled by
        ``on_prior_failure`` instead. The default recovers nothing.
        """
        return False

    def is_transient(self, error: BaseException) -> bool:
        """
        Whether ``error`` is worth retrying (429, 5xx, connection errors, timeouts).

        The default recognises socket-level failures and anything carrying an HTTP status of 429 or
        5xx (``error.status_code`` or ``error.response.status_code``). Subclasses add their client's.
        """
        if isinstance(error, (ConnectionError, TimeoutError, socket.timeout)):
            return True
        status = _http_status(error)
        return status is not None and (status == 429 or 500 <= status < 600)

    def retry_after(self, error: BaseException) -> float | None:
        """Seconds the server asked us to wait before retrying ``error`` (``Retry-After``), if any."""
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None)
        value = headers.get("Retry-After") if headers is not None else None
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            return None

    # ------------------------------------------------------------------ Airflow entry points

    def execute(self, context: Context) -> Any:
        """Decide from the ledger, then submit, reconnect or finish; poll until the job ends."""
        self._stop.arm()
        try:
            submission = self.build_submission(context)
            if not self.durable:
                return self._execute_without_ledger(submission, context)
            store = context.get("task_state_store")
            if store is None:
                self.log.warning(
                    "No task_state_store in the context: running without crash recovery "
                    "(as durable=False) for this attempt."
                )
                return self._execute_without_ledger(submission, context)
            return self._execute_durably(
                submission, LedgerStore(store, owner=self._owner(context), kind=self.ledger_kind), context
            )
        except AirflowTaskTimeout:
            # Airflow calls on_kill() after this, but on_kill may not do I/O: cancel here.
            if self._job_id is not None:
                self.log.error("execution_timeout reached (%s %s)", self.job_noun, self._job_id)
                self._cancel_on_stop(self._job_id, reason="execution_timeout")
            raise
        finally:
            self._stop.close()

    def on_kill(self) -> None:
        """
        Record that the task was asked to stop and wake the poll loop. Nothing else.

        Runs inside Airflow's SIGTERM handler, so it does no I/O: the poll loop, woken at once,
        works out whether this is a worker shutdown (checkpoint, keep the job) or a person's
        decision (cancel the job).
        """
        self._stop.request()

    # ------------------------------------------------------------------ the flow

    def _execute_durably(self, submission: Any, ledgers: LedgerStore, context: Context) -> Any:
        try:
            ledger = ledgers.load()
        except LedgerError as err:
            raise AirflowFailException(str(err)) from err
        max_tries = int(getattr(context["ti"], "max_tries", 0) or 0)
        try_number = getattr(context["ti"], "try_number", None)
        try_number = int(try_number) if try_number is not None else None
        remote = self._describe_recorded_job(ledger)
        decision = decide(
            ledger, remote.status if remote else None, self.on_prior_failure, max_tries=max_tries
        )
        self._record_decision(decision, remote)

        if decision.action is Action.FAIL:
            raise AirflowFailException(f"{decision.reason}. {remote}" if remote else decision.reason)
        if decision.action in (Action.COMPLETE, Action.RECONNECT):
            assert ledger is not None and ledger.external_id is not None  # decide() only says so then
            job_id = ledger.external_id
            if decision.action is Action.RECONNECT:
                self._start_clock(self._take_up_for_this_try(ledger, ledgers, try_number))
                self._declared = declare_resumable_on_worker_loss(context, resume_after=self.resume_after)
        else:
            job_id = self._start_job(
                decision.action, ledger, ledgers, submission, max_tries, try_number, context
            )

        self._job_id = job_id
        self.on_job_known(job_id, context)
        if decision.action is Action.COMPLETE:
            assert remote is not None
            return self.result(job_id, remote)
        return self._follow(job_id, context)

    def _describe_recorded_job(self, ledger: SubmissionLedger | None) -> JobState | None:
        """The status of the job the ledger records, if it records one."""
        if ledger is None or ledger.phase is not LedgerPhase.SUBMITTED or not ledger.external_id:
            return None
        job_id = ledger.external_id
        try:
            return self._call(lambda: self.describe(job_id), what=f"describe {self.job_noun} {job_id}")
        except _StopDuringRetries:
            self._stop_before_submit(ledger)
            raise

    def _start_job(
        self,
        action: Action,
        ledger: SubmissionLedger | None,
        ledgers: LedgerStore,
        submission: Any,
        max_tries: int,
        try_number: int | None,
        context: Context,
    ) -> str:
        """Write the intent (unless re-sending an interrupted submit), submit, record the id."""
        if self._stop.requested:
            # Told to stop before anything new was sent: nothing is lost by resuming later.
            self._stop_before_submit(ledger)
        if action is Action.SUBMIT:
            ledger = SubmissionLedger.begin(
                owner=ledgers.owner,
                kind=self.ledger_kind,
                max_tries=max_tries,
                now=_utcnow(),
                try_number=try_number,
                hook_params=self.hook_params(),
            )
        elif action is Action.RESUBMIT_SAME_KEY:
            assert ledger is not None
            # Persisted with the job id below; until then this attempt counts from it in memory.
            ledger = ledger.taken_up_by_try(try_number, now=_utcnow())
            self._start_clock(ledger)
        else:
            assert ledger is not None and ledger.external_id is not None
            if action is Action.CANCEL_THEN_SUBMIT_NEW_GENERATION:
                self._end_previous_job(ledger)
            ledger = ledger.next_generation(max_tries=max_tries, now=_utcnow(), try_number=try_number)
        resend = action is Action.RESUBMIT_SAME_KEY
        if not resend:
            self._write_intent(ledger, ledgers)
        # From here on the ledger lets a fresh attempt continue (re-send the key, or reconnect), so
        # a lost worker can be a checkpoint rather than a failure (with the core patch).
        self._declared = declare_resumable_on_worker_loss(context, resume_after=self.resume_after)
        try:
            job_id = self._submit_once(submission, ledger, may_exist=resend)
        except Exception as err:
            if not resend or not self._is_refusal(err):
                raise
            replacement = self._give_up_refused_key(ledger, err, max_tries, try_number)
            if replacement is None:
                raise
            ledger = replacement
            self._write_intent(ledger, ledgers)
            job_id = self._submit_once(submission, ledger, may_exist=False)
        # With the current max_tries: a job adopted after a clear is the run the clear asked for.
        ledgers.save(ledger.mark_submitted(job_id, now=_utcnow(), max_tries=max_tries))
        self.log.info("Recorded %s %s in the ledger (key %s)", self.job_noun, job_id, ledger.key)
        return job_id

    def _write_intent(self, ledger: SubmissionLedger, ledgers: LedgerStore) -> None:
        """Write the intent for a new job, before the cloud hears of it (unless the try's time is up)."""
        self._start_clock(ledger)
        if self._deadline is not None and self._deadline.spent:
            # A new job in a try whose budget is gone would only be cancelled at once.
            raise AirflowTaskTimeout(f"{self._deadline.explain()}, is spent; no new {self.job_noun} started")
        ledgers.save(ledger)

    def _is_refusal(self, error: Exception) -> bool:
        """Whether a submit failed because the cloud refused it, rather than being stopped or cut off."""
        return not (self._stop.requested or isinstance(error, AirflowTaskTimeout) or self.is_transient(error))

    def _give_up_refused_key(
        self, ledger: SubmissionLedger, error: Exception, max_tries: int, try_number: int | None
    ) -> SubmissionLedger | None:
        """
        The next generation to submit under when the cloud refused an interrupted submit's key after
        a clear, or ``None`` when the key is kept (the refusal is then the task's error).
        """
        decision = decide(ledger, None, self.on_prior_failure, max_tries=max_tries, resend_refused=True)
        self.log.warning("The cloud refused %s key %s: %s", self.job_noun, ledger.key, error)
        self._record_decision(decision, None)
        if decision.action is not Action.SUBMIT_NEW_GENERATION:
            return None
        self.log.warning(
            "Gave up key %s: if a %s was started under it before the clear, this task no longer tracks "
            "it; look in the cloud for a %s carrying that key",
            ledger.key,
            self.job_noun,
            self.job_noun,
        )
        return ledger.next_generation(max_tries=max_tries, now=_utcnow(), try_number=try_number)

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

    def _take_up_for_this_try(
        self, ledger: SubmissionLedger, ledgers: LedgerStore, try_number: int | None
    ) -> SubmissionLedger:
        """Record that a new try took up the ledger's job, if its execution_timeout needs the clock."""
        if self.execution_timeout is None:
            return ledger  # no budget to count: spare the metadata write
        taken = ledger.taken_up_by_try(try_number, now=_utcnow())
        if taken is not ledger:
            ledgers.save(taken)
        return taken

    def _start_clock(self, ledger: SubmissionLedger) -> None:
        """Count this attempt's execution_timeout from the try's start, as the ledger records it."""
        if self.execution_timeout is None or ledger.try_started_at is None:
            return
        self._deadline = TryDeadline.of(self.execution_timeout, ledger.try_started_at, now=_utcnow())
        self.log.info(
            "%.0f s of the try's execution_timeout left (%s)",
            self._deadline.remaining(),
            self._deadline.explain(),
        )

    def _execute_without_ledger(self, submission: Any, context: Context) -> Any:
        # A throwaway key still makes the client's own retries of this one request safe.
        key = str(IdempotencyKey(uuid.uuid4().hex, 0))
        job_id = self._call(lambda: self.submit(submission, key), what=f"submit {self.job_noun}")
        self._job_id = job_id
        self.log.info("Submitted %s %s (durable=False: no crash recovery)", self.job_noun, job_id)
        self.on_job_known(job_id, context)
        return self._follow(job_id, context)

    def _follow(self, job_id: str, context: Context) -> Any:
        """Poll the job to its end (recovering it in place if the subclass can) and conclude."""
        if not self.wait_for_completion:
            self.log.info(
                "Not waiting for %s %s to finish (wait_for_completion is off)", self.job_noun, job_id
            )
            return None
        final = self._poll_until_done(job_id, context)
        while final.status is not RemoteStatus.SUCCEEDED and self.recover(job_id, final):
            self.log.warning(
                "%s %s ended %s; recovered in place, polling it again", self.job_noun, job_id, final
            )
            final = self._poll_until_done(job_id, context)
        return self._conclude(job_id, final)

    def _submit_once(self, submission: Any, ledger: SubmissionLedger, *, may_exist: bool) -> str:
        """Submit under the ledger's key; any repeat of a send first asks whether the job exists."""
        key = str(ledger.key)
        sent_before = may_exist

        def attempt() -> str:
            nonlocal sent_before
            if sent_before and (found := self.find_existing(key, intent_at=ledger.intent_at)):
                self.log.info(
                    "Found %s %s already submitted with key %s; not submitting again",
                    self.job_noun,
                    found,
                    key,
                )
                return found
            sent_before = True
            return self.submit(submission, key)

        try:
            job_id = self._call(attempt, what=f"submit {self.job_noun} with key {key}")
        except _StopDuringRetries:
            # The ledger still says "submitting": the next attempt re-sends this same key.
            self._stop_before_submit(ledger)
            raise
        self.log.info("Submitted %s %s with key %s", self.job_noun, job_id, key)
        return job_id

    def _poll_until_done(self, job_id: str, context: Context) -> JobState:
        last_raw: str | None = None
        for interval in self.poll_schedule.intervals():
            # Wait first: the job was just submitted, reconnected to (its state read a moment ago) or
            # recovered, so an immediate look would only cost an API call. A stop wakes the wait.
            self._stop.wait(self._deadline.bound(interval) if self._deadline else interval)
            if self._stop.requested:
                self._stop_while_running(job_id, context)
            if self._deadline is not None and self._deadline.spent:
                # As Airflow's own timer would, and execute() cancels the job on the way out.
                raise AirflowTaskTimeout(f"{self._deadline.explain()}, is spent ({self.job_noun} {job_id})")
            try:
                state = self._call(lambda: self.describe(job_id), what=f"describe {self.job_noun} {job_id}")
            except _StopDuringRetries:
                self._stop_while_running(job_id, context)
                raise
            if state.raw_state != last_raw:
                self.log.info("%s %s is %s", self.job_noun.capitalize(), job_id, state)
                last_raw = state.raw_state
            if state.status.is_terminal:
                return state
        raise AssertionError("unreachable: the poll schedule is endless")  # pragma: no cover

    def _conclude(self, job_id: str, final: JobState) -> Any:
        if final.status is RemoteStatus.SUCCEEDED:
            self.log.info("%s %s succeeded", self.job_noun.capitalize(), job_id)
            return self.result(job_id, final)
        raise AirflowException(f"{self.job_noun.capitalize()} {job_id} did not succeed: {final}")

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
            context["ti"], taken_over_by=(lambda: attempt_that_took_over(context)) if self._declared else None
        )
        if diagnosis.cancels:
            self.log.warning("Stop requested and %s (%s %s)", diagnosis.evidence, self.job_noun, job_id)
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
        deadline = time.monotonic() + CANCEL_ON_STOP_BUDGET
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
                "Could not cancel %s %s (%s; %g s allowed): %s. It may still be running: cancel it by hand.",
                self.job_noun,
                job_id,
                reason,
                CANCEL_ON_STOP_BUDGET,
                err,
            )
            return False
        self._count("cancel")
        self.log.warning("Cancelled %s %s (%s)", self.job_noun, job_id, reason)
        return True

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

    def _record_decision(self, decision: Decision, remote: JobState | None) -> None:
        if remote is not None:
            self.log.info("Decision %s: %s [%s]", decision.action.value, decision.reason, remote)
        else:
            self.log.info("Decision %s: %s", decision.action.value, decision.reason)
        self._count(f"decision.{decision.action.value}")

    def _count(self, event: str) -> None:
        Stats.incr(f"resumable.{event}", tags={"operator": type(self).__name__})

    @staticmethod
    def _owner(context: Context) -> LedgerOwner:
        return LedgerOwner.of_task_instance(context["ti"])


class _StopDuringRetries(Exception):
    """A stop was requested while a cloud call was being retried; the call was abandoned."""


def _http_status(error: BaseException) -> int | None:
    # Only a status set on the instance counts: AirflowException has a *class* attribute
    # status_code = 500 (for the REST API), which would make every AirflowException look like a 5xx.
    for candidate in (
        vars(error).get("status_code"),
        getattr(getattr(error, "response", None), "status_code", None),
    ):
        if isinstance(candidate, int):
            return candidate
    return None


def _utcnow() -> datetime:
    return datetime.now(tz=UTC)
