# Licensed under the Apache License, Version 2.0.
"""ResumableSubmitOperator: the flow every resumable cloud operator shares."""

from __future__ import annotations

import time
import uuid
from abc import abstractmethod
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowTaskTimeout

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
from airflow.providers.resumable.operators.adoption import adopt_upstream_job
from airflow.providers.resumable.operators.deferral import DeferringOperator
from airflow.providers.resumable.operators.job_control import _StopDuringRetries
from airflow.providers.resumable.polling import PollAllowance, PollBudget, PollSchedule
from airflow.providers.resumable.status import JobState, RemoteStatus
from airflow.providers.resumable.stop_request import StopRequest

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

T = TypeVar("T")

try:
    from airflow.providers.common.compat.sdk import conf

    # Upstream's defaults for the Spark operators' OpenLineage injection, read from the same options.
    OPENLINEAGE_PARENT_DEFAULT = conf.getboolean(
        "openlineage", "spark_inject_parent_job_info", fallback=False
    )
    """``openlineage_inject_parent_job_info``'s default: ``[openlineage] spark_inject_parent_job_info``."""
    OPENLINEAGE_TRANSPORT_DEFAULT = conf.getboolean(
        "openlineage", "spark_inject_transport_info", fallback=False
    )
    """``openlineage_inject_transport_info``'s default: ``[openlineage] spark_inject_transport_info``."""
    DEFERRABLE_DEFAULT = conf.getboolean("operators", "default_deferrable", fallback=False)
    """``deferrable``'s default, as upstream's: ``[operators] default_deferrable``."""
except Exception:  # pragma: no cover - configuration unreadable: upstream's fallback
    OPENLINEAGE_PARENT_DEFAULT = OPENLINEAGE_TRANSPORT_DEFAULT = DEFERRABLE_DEFAULT = False


class ResumableSubmitOperator(DeferringOperator):
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
    cloud call), :meth:`submit`, a :attr:`hook` whose ``describe`` and ``cancel`` the base calls (or
    :meth:`describe` and :meth:`cancel` themselves), optionally :meth:`find_existing`
    (clouds that cannot deduplicate), :meth:`result` and :meth:`result_without_waiting`,
    :meth:`on_job_known` (XComs, links), :meth:`recover` (restart a failed job in place, e.g. a
    Databricks repair), :meth:`on_poll_budget_spent`, and :meth:`is_transient` /
    :meth:`retry_after` for their client's errors, which a cloud's hook
    (:mod:`airflow.providers.resumable.hooks`) classifies; :meth:`hook_params` says how to rebuild
    that hook outside the task. They may turn polling off with :attr:`wait_for_completion`, bound it
    with :attr:`poll_budget`, and turn cancelling on a person's stop or ``execution_timeout`` off
    with :attr:`cancel_on_stop`. The flow stays here: no subclass overrides :meth:`execute`. See
    "Write your own resumable operator" in the docs.

    **Deferrable mode.** With ``deferrable=True`` the job is submitted here exactly as above, then a
    trigger polls it from the triggerer while no worker slot is held, and the task comes back only to
    conclude (:mod:`~airflow.providers.resumable.operators.deferral`).

    **What it does not do.** It does not stream remote logs.

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
    :param resume_after: how long after a checkpoint, or after a loss of its worker once the
        operator declared itself resumable, Airflow resumes the task: at least 1 s (one scheduler
        loop) with the core patch, at least 10 s on the ``up_for_reschedule`` fallback, where a stock
        scheduler can still fail a sooner resume.
    :param poll_interval: seconds between the first status polls.
    :param max_poll_interval: the longest interval between polls; intervals grow from
        ``poll_interval`` by 1.5x per poll up to this. Defaults to ``poll_interval`` (constant).
    :param deferrable: poll from the triggerer instead of the worker once the job is submitted
        (default ``[operators] default_deferrable``, as upstream); needs :attr:`trigger_class`.
    :param previous_job_stop_timeout: after a clear, how long to wait for the job the ledger
        records, once cancelled, to reach a terminal state before starting its replacement (cancels
        are asynchronous on Databricks, EMR and Dataproc). A job still going at the bound fails the
        task and stays in the ledger: two jobs of one task instance never run at once.
    :param trigger_max_backoff: (``deferrable=True``) the longest single wait of the trigger's
        backoff when the cloud throttles or fails a poll, a ``Retry-After`` included (a longer hint is
        cut to it). Default ``[resumable] trigger_max_backoff`` (5 minutes). EMR sends no
        ``Retry-After``, so its waits double up to this cap; lower it to notice the end of a job
        sooner after a long throttle storm, raise it to put less load on a struggling API.
    """

    ledger_kind: str = ""
    """Which operator family writes the ledger; a ledger of another kind is refused on resume."""

    wait_for_completion: bool = True
    """``False``: end the task as soon as the job is known (submitted or reconnected), without
    polling it, returning :meth:`result_without_waiting`. Subclasses set it from their upstream's
    "do not wait" argument (Databricks' ``wait_for_termination``); the job is still submitted
    exactly once."""

    poll_budget: PollBudget = PollBudget()
    """How long one attempt polls a job that is still going before :meth:`on_poll_budget_spent`
    ends the wait (no limit by default). Subclasses set it from their upstream's limits
    (``waiter_max_attempts``, ``wait_timeout``)."""

    def __init__(
        self,
        *,
        durable: bool = True,
        on_prior_failure: str | PriorFailurePolicy = PriorFailurePolicy.RESUBMIT,
        resume_after: timedelta = timedelta(seconds=10),
        poll_interval: float = 10.0,
        max_poll_interval: float | None = None,
        deferrable: bool = DEFERRABLE_DEFAULT,
        previous_job_stop_timeout: timedelta = timedelta(minutes=2),
        trigger_max_backoff: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        if trigger_max_backoff is not None and trigger_max_backoff <= timedelta(0):
            raise AirflowException(f"trigger_max_backoff must be positive, got {trigger_max_backoff}")
        self.trigger_max_backoff = trigger_max_backoff
        self.durable = durable
        self.deferrable = deferrable
        self._check_deferrable()
        self.resume_after = resume_after
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval if max_poll_interval is not None else poll_interval)
        self.poll_schedule = PollSchedule(
            self.poll_interval,
            self.max_poll_interval,
            factor=1.0 if self.max_poll_interval == self.poll_interval else 1.5,
        )
        self._stop = StopRequest()
        # Set once this attempt declared itself resumable on worker loss: only then can a later
        # declaration show that another attempt has taken this try over.
        self._successor_probe = None
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
    def submit(self, submission: Any, idempotency_key: str, *, resend: bool) -> str:
        """
        Submit the job and return its external id. Must be idempotent per ``idempotency_key``.

        Called again with the same key after an interrupted or retried submit; the cloud (or the
        adapter, via :meth:`find_existing`) must then return the job that already exists.

        :param submission: what :meth:`build_submission` returned.
        :param idempotency_key: the ledger's key for this job.
        :param resend: this send may repeat an earlier one under the same key (an attempt died
            mid-submit, or a response was lost): anything that must happen once per job and is not
            deduplicated by the key (e.g. Databricks' ``cancel_previous_runs``) must be skipped.
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

    def result(self, external_id: str, state: JobState) -> Any:
        """The task's return value (pushed to XCom as ``return_value``). Default: ``None``."""
        return None

    def result_without_waiting(self, external_id: str) -> Any:
        """The task's return value when it does not wait (:attr:`wait_for_completion` off). Default: ``None``."""
        return None

    def on_poll_budget_spent(self, external_id: str, state: JobState, spent: str) -> NoReturn:
        """
        End a wait whose :attr:`poll_budget` is spent while the job still goes: raise the task's error.

        Subclasses raise their upstream's message, and may cancel the job first if upstream does.

        :param external_id: the job.
        :param state: its last status.
        :param spent: which limit was reached, for the message (``"60 polls"``, ``"3600 s"``).
        """
        raise AirflowException(
            f"{self.job_noun.capitalize()} {external_id} is still {state} after {spent} of polling"
        )

    def hook_params(self) -> dict[str, Any]:
        """
        The plain, serialisable arguments that rebuild this operator's cloud hook outside a task
        attempt. Recorded in the ledger with the intent, so the :mod:`job reaper
        <airflow.providers.resumable.job_reaper>` can cancel the job of a task instance a person
        ended while no attempt was running. Default: ``{}`` (nothing recorded: such a job is then
        only reported by the reaper, not cancelled).
        """
        return {}

    def on_job_known(self, external_id: str, context: Context) -> None:
        """Called once per attempt when the job's id is known (submitted or reconnected): push XComs here."""

    upstream_state_key: str | None = None
    """Where the upstream operator this one replaces keeps its job id in the task state store
    (``ResumableJobMixin.external_id_key``), or ``None``. A task instance switched from it mid-flight
    has that key and no ledger; :func:`~airflow.providers.resumable.operators.adoption.adopt_upstream_job`
    reconnects to its job."""

    def job_belongs_here(self, external_id: str, submission: Any) -> str | None:
        """
        Why the job the upstream operator recorded is not this task's (``None`` when it is).

        Called with the job just described (:meth:`describe`), before the ledger adopts it. The
        default trusts the task state store's scope (the task instance); a cloud compares what it
        can, such as the run's name or job.

        :param external_id: the recorded job's id.
        :param submission: what this operator would submit (:meth:`build_submission`).
        """
        return None

    def recover(self, external_id: str, state: JobState, context: Context) -> bool:
        """
        Try to bring a job that ended unsuccessfully back to life *in place* (same external id).

        Called once the job polled by this attempt ends without succeeding. Return ``True`` if the
        job was restarted (e.g. a Databricks repair run) and should be polled again, ``False`` to
        let the task fail. A job found already failed when an attempt starts is handled by
        ``on_prior_failure`` instead. The default recovers nothing.

        :param external_id: the job.
        :param state: how it ended.
        :param context: the attempt's context: a recovery that must survive the attempt (a deferral,
            a checkpoint) records itself in its task state store, as a submission does.
        """
        return False

    # ------------------------------------------------------------------ Airflow entry points

    def execute(self, context: Context) -> Any:
        """Decide from the ledger, then submit, reconnect or finish; poll until the job ends."""
        with self._attempt():
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

    # ------------------------------------------------------------------ the flow

    def _execute_durably(self, submission: Any, ledgers: LedgerStore, context: Context) -> Any:
        try:
            ledger = ledgers.load()
        except LedgerError as err:
            raise AirflowFailException(str(err)) from err
        max_tries = int(getattr(context["ti"], "max_tries", 0) or 0)
        try_number = getattr(context["ti"], "try_number", None)
        try_number = int(try_number) if try_number is not None else None
        if ledger is None and self.upstream_state_key is not None:
            ledger = adopt_upstream_job(self, ledgers, context["task_state_store"], submission, max_tries)
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
                self._declare_resumable(context)
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
                hook_params=self.hook_params() or None,
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
        self._declare_resumable(context)
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
        sent_before = False

        def attempt() -> str:
            nonlocal sent_before
            resend, sent_before = sent_before, True
            return self.submit(submission, key, resend=resend)

        job_id = self._call(attempt, what=f"submit {self.job_noun}")
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
            return self.result_without_waiting(job_id)
        if self.deferrable:
            if self._stop.requested:  # asked to stop before the hand-over: decide here, as a poll would
                self._stop_while_running(job_id, context)
            self._defer(job_id)
        # One budget for the whole wait of this attempt, recoveries included, as upstream's waiter.
        allowance = self.poll_budget.start(time.monotonic())
        final = self._poll_until_done(job_id, context, allowance)
        while final.status is not RemoteStatus.SUCCEEDED and self.recover(job_id, final, context):
            self.log.warning(
                "%s %s ended %s; recovered in place, polling it again", self.job_noun, job_id, final
            )
            final = self._poll_until_done(job_id, context, allowance)
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
            resend, sent_before = sent_before, True
            return self.submit(submission, key, resend=resend)

        try:
            job_id = self._call(attempt, what=f"submit {self.job_noun} with key {key}")
        except _StopDuringRetries:
            # The ledger still says "submitting": the next attempt re-sends this same key.
            self._stop_before_submit(ledger)
            raise
        self.log.info("Submitted %s %s with key %s", self.job_noun, job_id, key)
        return job_id

    def _poll_until_done(self, job_id: str, context: Context, allowance: PollAllowance) -> JobState:
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
            if spent := allowance.spend(time.monotonic()):
                self.on_poll_budget_spent(job_id, state, spent)
        raise AssertionError("unreachable: the poll schedule is endless")  # pragma: no cover

    def _conclude(self, job_id: str, final: JobState) -> Any:
        if final.status is RemoteStatus.SUCCEEDED:
            self.log.info("%s %s succeeded", self.job_noun.capitalize(), job_id)
            return self.result(job_id, final)
        raise AirflowException(f"{self.job_noun.capitalize()} {job_id} did not succeed: {final}")

    def _record_decision(self, decision: Decision, remote: JobState | None) -> None:
        if remote is not None:
            self.log.info("Decision %s: %s [%s]", decision.action.value, decision.reason, remote)
        else:
            self.log.info("Decision %s: %s", decision.action.value, decision.reason)
        self._count(f"decision.{decision.action.value}")

    @staticmethod
    def _owner(context: Context) -> LedgerOwner:
        return LedgerOwner.of_task_instance(context["ti"])


def _utcnow() -> datetime:
    return datetime.now(tz=timezone.utc)
