# Licensed under the Apache License, Version 2.0.
"""
ResumableJobTrigger: polls, in the triggerer, a job a resumable operator submitted, and never cancels it.

**What it is for.** With ``deferrable=True`` a resumable operator submits its job in the worker,
under the ledger, exactly as without; then it defers to one of these triggers, which polls the job
from the triggerer while no worker slot is held, and hands the task back to a worker only to
conclude (:meth:`~airflow.providers.resumable.operators.deferral.DeferringOperator.execute_complete`).

**How it works.** The trigger is rebuilt in the triggerer from :meth:`serialize`: the job's id and
the plain arguments that rebuild the cloud's hook (the same ``hook_params`` the ledger records), so
it polls through the hook's async ``a_describe``, the one place that knows the cloud's wire. Throttling,
5xx and connection errors are retried with :class:`~airflow.providers.resumable.retrying.BackoffPolicy`
(``Retry-After`` honoured); a terminal state, a spent poll budget, or an error that will not go
away ends the trigger with one event, ``{"status": "terminal" | "budget_spent" | "error", "job_id":
..., ...}``. It never raises: a trigger that fails for good still sends the task back to a worker,
which reconnects from the ledger.

**What it does not do.** It never cancels the job: not in :meth:`on_kill`, not in ``cleanup``.
Airflow 3.3.2 calls ``on_kill`` also when a trigger is taken away from a triggerer that froze past
the health check and was reassigned (apache/airflow#73454), so a cancel there would end a job that a
second triggerer is still watching. A person's stop of a deferred task (mark failed or success,
clear, dag run failed) reaches the job another way: the :mod:`job reaper
<airflow.providers.resumable.job_reaper>` cancels the job of a task instance a decision ended while no
attempt ran, and a cleared task's next attempt cancels the old job before it submits a new one.

**Known limitation.** The triggerer is a shared event loop: a hook whose async call is a sync call in
a worker thread (EMR's boto3, the fake job service's ``requests``) takes a thread of the loop's
default executor per poll in flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow.providers.resumable.polling import PollBudget, PollSchedule
from airflow.providers.resumable.retrying import BackoffPolicy
from airflow.providers.resumable.status import JobState

TRIGGER_BACKOFF = BackoffPolicy(max_attempts=1000, max_delay=6 * 3600.0, initial_wait=1.0, max_wait=300.0)
"""Transient errors while polling from the triggerer: a throttle storm or an outage of hours is
waited out (a ``Retry-After`` of up to 5 min honoured) rather than sent back to a worker; past it
the trigger sends an error event and the task reconnects from the ledger."""


class EventStatus:
    """The ``status`` of a resumable trigger's event."""

    TERMINAL = "terminal"
    """The job ended; ``remote_status``, ``raw_state`` and ``message`` say how."""
    BUDGET_SPENT = "budget_spent"
    """The operator's poll budget is spent while the job still goes; ``spent`` says which limit."""
    ERROR = "error"
    """Polling failed for good; ``message`` says why. The task reconnects from the ledger."""


class ResumableJobTrigger(BaseTrigger):
    """
    Poll one job through its cloud's hook until it ends (see the module docstring).

    Subclasses (one module per cloud under ``triggers/``) set :attr:`hook_class`, the hook built from
    ``hook_params``.

    :param external_id: the job's id, as the ledger records it.
    :param hook_params: the keyword arguments that rebuild the cloud's hook (``hook_params()`` of the
        operator).
    :param poll_interval: seconds before the first poll.
    :param max_poll_interval: the longest interval between polls; intervals grow by 1.5x per poll up
        to it. Defaults to ``poll_interval`` (constant).
    :param max_polls: polls that may find the job still going before a ``budget_spent`` event
        (``None``: no limit).
    :param max_seconds: seconds of polling after which a poll that finds the job still going sends a
        ``budget_spent`` event (``None``: no limit).
    :param backoff: :class:`~airflow.providers.resumable.retrying.BackoffPolicy` fields for transient
        errors (default :data:`TRIGGER_BACKOFF`).
    :param job_noun: what the cloud calls the job, for log lines.
    """

    hook_class: ClassVar[Any]
    """The cloud's hook: called with ``hook_params``; has ``a_describe``, ``is_transient`` and ``retry_after``."""

    def __init__(
        self,
        *,
        external_id: str,
        hook_params: dict[str, Any],
        poll_interval: float = 10.0,
        max_poll_interval: float | None = None,
        max_polls: int | None = None,
        max_seconds: float | None = None,
        backoff: dict[str, Any] | None = None,
        job_noun: str = "job",
    ) -> None:
        super().__init__()
        self.external_id = str(external_id)
        self.hook_params = dict(hook_params)
        self.poll_interval = float(poll_interval)
        self.max_poll_interval = float(max_poll_interval if max_poll_interval is not None else poll_interval)
        self.max_polls = max_polls
        self.max_seconds = max_seconds
        self.backoff = dict(backoff) if backoff is not None else None
        self.job_noun = job_noun

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """This class's path and the arguments that rebuild it in the triggerer."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "external_id": self.external_id,
                "hook_params": self.hook_params,
                "poll_interval": self.poll_interval,
                "max_poll_interval": self.max_poll_interval,
                "max_polls": self.max_polls,
                "max_seconds": self.max_seconds,
                "backoff": self.backoff,
                "job_noun": self.job_noun,
            },
        )

    def make_hook(self) -> Any:
        """The cloud's hook, rebuilt from ``hook_params``."""
        return self.hook_class(**self.hook_params)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until the job ends, the budget is spent, or polling fails for good; one event."""
        job = f"{self.job_noun} {self.external_id}"
        try:
            hook = self.make_hook()
        except Exception as err:
            self.log.exception("Cannot build the hook to poll %s", job)
            yield self._event(EventStatus.ERROR, message=f"cannot build the hook: {err}")
            return
        policy = BackoffPolicy(**self.backoff) if self.backoff else TRIGGER_BACKOFF
        schedule = PollSchedule(
            self.poll_interval,
            self.max_poll_interval,
            factor=1.0 if self.max_poll_interval == self.poll_interval else 1.5,
        )
        allowance = PollBudget(max_polls=self.max_polls, max_seconds=self.max_seconds).start(time.monotonic())
        self.log.info("Polling %s every %g-%g s", job, self.poll_interval, self.max_poll_interval)
        last_raw: str | None = None
        for interval in schedule.intervals():
            # Wait first: the operator described the job (or submitted it) just before deferring.
            await asyncio.sleep(interval)
            try:
                state: JobState = await policy.acall(
                    lambda: hook.a_describe(self.external_id),
                    is_transient=hook.is_transient,
                    retry_after=hook.retry_after,
                    logger=self.log,
                    what=f"describe {job}",
                )
            except Exception as err:
                # Sent back to a worker, which reconnects from the ledger: never a failed task here.
                self.log.warning("Giving up polling %s: %s", job, err)
                yield self._event(EventStatus.ERROR, message=f"{type(err).__name__}: {err}")
                return
            if state.raw_state != last_raw:
                self.log.info("%s is %s", job[0].upper() + job[1:], state)
                last_raw = state.raw_state
            if state.status.is_terminal:
                yield self._event(EventStatus.TERMINAL, state=state)
                return
            if spent := allowance.spend(time.monotonic()):
                self.log.info("%s is still %s after %s of polling", job, state, spent)
                yield self._event(EventStatus.BUDGET_SPENT, state=state, spent=spent)
                return

    async def on_kill(self) -> None:
        """
        Leave the job running: Airflow 3.3.2 also calls this when the trigger merely moves to another
        triggerer (apache/airflow#73454). A person's stop is carried out by the job reaper instead.
        """
        self.log.info(
            "Trigger for %s %s removed; leaving the %s running (a person's stop is the job reaper's to "
            "carry out)",
            self.job_noun,
            self.external_id,
            self.job_noun,
        )

    def _event(
        self, status: str, *, state: JobState | None = None, message: str = "", spent: str | None = None
    ) -> TriggerEvent:
        payload: dict[str, Any] = {"status": status, "job_id": self.external_id, "message": message}
        if state is not None:
            payload |= {"remote_status": state.status.value, "raw_state": state.raw_state}
            payload["message"] = state.message
        if spent is not None:
            payload["spent"] = spent
        return TriggerEvent(payload)
