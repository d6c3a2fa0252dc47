# Licensed under the Apache License, Version 2.0.
"""
Which ledgers name a job that nobody watches any more, and may be cancelled from outside any attempt.

**What it is for.** A running attempt cancels its job when a person ends its task instance (marks it
failed or success, fails its dag run): it is told by SIGTERM and checks the server's state
(:mod:`~airflow.providers.resumable.termination`). When no attempt is running, nobody is told: a task
instance waiting in ``checkpointed`` (or ``up_for_reschedule`` on a stock Airflow) and then marked
failed, a dag run failed by ``dagrun_timeout`` while its task waits, a worker lost for good with no
retry left, an attempt frozen when the decision came. Its job would run on, unobserved, to its end.
The reaper (:mod:`~airflow.providers.resumable.job_reaper`) sweeps the ledgers of such task instances
and cancels their jobs through the ledger.

**How it decides (this module, pure).** Only a task instance that a decision finished is reaped:
``failed``, ``success``, ``skipped``, ``removed``, ``upstream_failed`` (the states that make a
running attempt cancel). A cleared task instance (no state) is not: its next attempt cancels the old
job and starts the new one (:class:`~airflow.providers.resumable.decision.Action`). A task instance
the decision finished only moments ago is left alone for a grace period: a running attempt cancels
its own job within that time, and the reaper must not send a second cancel. After it, the reaper
asks the cloud: a job already ended (it succeeded, failed, or the attempt cancelled it) is settled
without a cancel. Every ledger is settled once (the outcome is recorded in it), so a job is cancelled
at most once from here.

**What it does not do.** It never touches a ledger it cannot read, one of a kind it has no hook for,
or one a newer release wrote; it reports them. Mark success cancels the job like mark failed: that
is what upstream's operators do when a running task is marked success (its ``on_kill`` cancels).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from airflow.providers.resumable._compat import StrEnum
from airflow.providers.resumable.ledger import LedgerError, LedgerPhase, SubmissionLedger

REAPED_STATES = frozenset({"failed", "success", "skipped", "removed", "upstream_failed"})
"""Task instance states that end its job: set by a decision (or by the task itself, whose job has
then ended already and is only settled)."""

REAPED_FIELD = "reaped"
"""Where the reaper records, inside the ledger, that it settled the ledger's job (and how). A later
attempt's rewrite of the ledger (a clear, a new generation) drops it, so the new job is watched."""


class ReapAction(StrEnum):
    """What the reaper does with one ledger."""

    IGNORE = "ignore"
    """Not the reaper's business: the task instance is not finished, or the ledger is settled."""
    WAIT = "wait"
    """Finished only moments ago: a running attempt may be cancelling its own job right now."""
    CANCEL = "cancel"
    """Look the job up (by its id, or by the ledger's key when the id was never recorded) and cancel
    it unless it has ended; then record the outcome in the ledger."""
    REFUSE = "refuse"
    """The ledger cannot be acted on (unreadable, foreign, newer): report it, touch nothing."""


@dataclass(frozen=True)
class ReapVerdict:
    """The action and why, for the log; with the parsed ledger when there is one."""

    action: ReapAction
    reason: str
    ledger: SubmissionLedger | None = None


def judge_ledger(
    stored: Any,
    *,
    ti_state: str | None,
    finished_at: datetime | None,
    now: datetime,
    grace: timedelta,
) -> ReapVerdict:
    """
    What the reaper should do with one stored ledger, given its task instance's state.

    :param stored: the ledger as stored (the parsed JSON value).
    :param ti_state: the task instance's state (``None`` when it has none, after a clear).
    :param finished_at: when the task instance's state last changed to a finished one (its
        ``end_date``), or ``None`` when unknown; an unknown time waits out the grace period from
        the first sweep that sees it (the caller passes when it first saw it).
    :param now: the current time (UTC).
    :param grace: how long after the decision a running attempt may still be cancelling.
    """
    if ti_state not in REAPED_STATES:
        return ReapVerdict(ReapAction.IGNORE, f"the task instance is {ti_state!r}, not finished")
    if isinstance(stored, dict) and stored.get(REAPED_FIELD):
        return ReapVerdict(ReapAction.IGNORE, f"already settled: {stored[REAPED_FIELD]}")
    try:
        ledger = SubmissionLedger.from_json(stored)
    except LedgerError as err:
        return ReapVerdict(ReapAction.REFUSE, f"the ledger cannot be read ({type(err).__name__}: {err})")
    if finished_at is not None and now - finished_at < grace:
        return ReapVerdict(
            ReapAction.WAIT,
            f"finished {(now - finished_at).total_seconds():.0f} s ago; a running attempt may still be "
            f"cancelling (grace {grace.total_seconds():.0f} s)",
            ledger,
        )
    if ledger.phase is LedgerPhase.SUBMITTING and ledger.external_id is None:
        return ReapVerdict(
            ReapAction.CANCEL,
            f"the task instance is {ti_state!r}; a job may exist under key {ledger.key} (its id was "
            "never recorded)",
            ledger,
        )
    return ReapVerdict(
        ReapAction.CANCEL,
        f"the task instance is {ti_state!r} and nothing watches {ledger.external_id} any more",
        ledger,
    )


def settled(stored: dict[str, Any], *, outcome: str, now: datetime) -> dict[str, Any]:
    """
    The stored ledger with the reaper's outcome recorded, so no later sweep acts on it again.

    :param stored: the ledger as stored.
    :param outcome: what happened (``cancelled``, ``already ended``, ...), for people and logs.
    :param now: when (UTC).
    """
    return {**stored, REAPED_FIELD: {"outcome": outcome, "at": now.isoformat()}}
