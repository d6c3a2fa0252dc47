# Licensed under the Apache License, Version 2.0.
"""
The reaper: cancels, through their ledgers, the jobs of task instances a decision ended while no
attempt was running to cancel them (see :mod:`~airflow.providers.resumable.reaping` for which).

**Where it runs.** In the scheduler, as a daemon thread the provider's plugin starts when the
scheduler job starts (:mod:`~airflow.providers.resumable.plugins`): the scheduler is the one
component every deployment runs, it reads the metadata database, and it can reach the connections.
Every ``[resumable] reaper_interval`` seconds it reads the ledgers of task instances in a finished
state, and for each that :func:`~airflow.providers.resumable.reaping.judge_ledger` says to cancel,
it builds the cloud's hook from what the ledger recorded (:data:`JOB_HOOKS`), looks the job up,
cancels it unless it has ended, and records the outcome in the ledger.

**At most once.** Before touching the cloud a sweep claims the ledger with a compare-and-swap on the
stored value (the write succeeds only if nobody changed it since it was read), so two schedulers
never both cancel; a claim whose sweep died is taken over after :data:`CLAIM_TIMEOUT`. A cancel the
cloud refuses is retried on later sweeps, at most :data:`MAX_CANCEL_ATTEMPTS` times, then reported
as an error naming the job.

**A deleted dag run.** Deleting a dag run deletes its ledgers with it (the task state store's
foreign key), and Airflow deletes only a dag run that is not running: a person fails it, then deletes
it. The reaper remembers, from one sweep to the next, the ledgers of task instances waiting to run
again and of finished ones it still leaves to a running attempt (the grace period); one that
vanished with its task instance had its run deleted, and its job is cancelled from that memory.

**What a sweep reads.** The first sweep after the scheduler starts reads the ledgers of every task
instance that finished within ``[resumable] reaper_lookback_hours``. Later sweeps read only task
instances changed since the previous sweep began (``TaskInstance.updated_at``, less
:data:`WATERMARK_SLACK` for late commits and other hosts' clocks), plus the ledgers the reaper still
has business with (in their grace period, claimed by another scheduler, a cancel to retry). So a
settled ledger is read once or twice, not every 5 s for a day.

**Known limitations.** A ledger of a kind this release has no hook for, or written before ledgers
recorded how to reach their job (``hook_params``), is reported, not acted on. A dag run deleted while
no scheduler runs, or within one sweep (5 s) of its task's last change, is not seen: fail the run,
wait for the reaper, then delete it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

from airflow.providers.resumable.ledger import SubmissionLedger
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.reaping import (
    REAPED_FIELD,
    REAPED_STATES,
    ReapAction,
    judge_ledger,
    settled,
)
from airflow.providers.resumable.status import JobState

log = logging.getLogger(__name__)

CLAIM_TIMEOUT = timedelta(minutes=5)
"""A claim older than this belongs to a sweep that died (a scheduler restarted mid-cancel)."""
MAX_CANCEL_ATTEMPTS = 3
"""Sweeps that may try to cancel one job before the reaper reports it for a person to cancel."""
CANCEL_TIMEOUT_SECONDS = 30.0
"""One cancel call's limit: the reaper runs beside the scheduler loop, not in the SIGKILL window."""
WATERMARK_SLACK = timedelta(minutes=5)
"""How far before the previous sweep's start a sweep looks for changed task instances: a state
change whose transaction commits late, or whose writer's clock lags the scheduler's, still counts."""
_REVISIT = frozenset({"wait", "claimed", "failed"})
"""Outcomes that leave the reaper business with a ledger at the next sweep, whatever the watermark."""


class JobHandle(Protocol):
    """What the reaper needs of a cloud's hook for one kind of job."""

    def describe(self, external_id: str) -> JobState: ...

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None: ...


JobHandleFactory = Callable[..., JobHandle]

JOB_HOOKS: dict[str, str] = {
    "databricks.runs_submit": "airflow.providers.resumable.hooks.databricks:ResumableDatabricksHook",
    "databricks.run_now": "airflow.providers.resumable.hooks.databricks:ResumableDatabricksHook",
    "emr.add_steps": "airflow.providers.resumable.hooks.emr:EmrStepsHook",
    "emr_serverless.start_job_run": "airflow.providers.resumable.hooks.emr:EmrServerlessJobRunHook",
    "dataproc.submit_job": "airflow.providers.resumable.hooks.dataproc:DataprocJobHook",
    "dataproc.create_batch": "airflow.providers.resumable.hooks.dataproc:DataprocBatchHook",
    "testing.fake_jobs": "airflow.providers.resumable.hooks.fake_job:FakeJobHook",
}
"""Ledger kind → the hook class (``module:Class``) that reaches that kind's jobs, built with the
ledger's ``hook_params`` as keyword arguments. Imported only when a ledger of the kind needs it, so
a scheduler without a cloud's packages loads nothing of that cloud."""

_REGISTERED: dict[str, JobHandleFactory] = {}


def register_job_handle(kind: str, factory: JobHandleFactory) -> None:
    """
    Let the reaper act on ledgers of ``kind`` (for an operator of your own; see the guide).

    :param kind: the ledger kind (your operator's ``ledger_kind``).
    :param factory: called with the ledger's ``hook_params`` as keyword arguments; returns an object
        with ``describe(external_id)`` and ``cancel(external_id, *, timeout)``.
    """
    _REGISTERED[kind] = factory


def job_handle_factory(kind: str) -> JobHandleFactory | None:
    """The factory for ``kind``: registered, else the bundled hook class; ``None`` if there is none here."""
    if kind in _REGISTERED:
        return _REGISTERED[kind]
    target = JOB_HOOKS.get(kind)
    if target is None:
        return None
    import importlib

    module, _, name = target.partition(":")
    try:
        factory: JobHandleFactory = getattr(importlib.import_module(module), name)
    except ImportError as err:  # that cloud's packages are not installed in this component
        log.error("Reaper: cannot load the hook for %s ledgers (%s)", kind, err)
        return None
    return factory


@dataclass(frozen=True)
class ReaperSettings:
    """
    How the reaper sweeps.

    :param interval: seconds between sweeps.
    :param grace: how long after a task instance finished the reaper leaves its job to a running
        attempt, which cancels its own job on a person's decision within its SIGKILL window.
    :param lookback: only task instances that finished this recently are swept (the first sweep
        after an upgrade does not walk the whole history).
    """

    interval: float = 5.0
    grace: timedelta = timedelta(seconds=15)
    lookback: timedelta = timedelta(days=1)

    @classmethod
    def from_config(cls) -> ReaperSettings:
        """Read ``[resumable] reaper_interval``, ``reaper_grace_period`` and ``reaper_lookback_hours``."""
        from airflow.configuration import conf

        return cls(
            interval=conf.getfloat("resumable", "reaper_interval", fallback=5.0),
            grace=timedelta(seconds=conf.getfloat("resumable", "reaper_grace_period", fallback=15.0)),
            lookback=timedelta(hours=conf.getfloat("resumable", "reaper_lookback_hours", fallback=24.0)),
        )


TIKey = tuple[str, str, str, int]
"""A task instance: dag_id, run_id, task_id, map_index."""


@dataclass(frozen=True)
class _Row:
    store_id: int
    raw: str
    ti_state: str | None
    finished_at: datetime | None
    where: str
    ti_key: TIKey


class JobReaper:
    """
    One sweep at a time over the ledgers of finished task instances.

    :param settings: how often and how far back to sweep.
    :param now: the clock (UTC).
    """

    def __init__(self, settings: ReaperSettings, *, now: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._now = now or (lambda: datetime.now(tz=timezone.utc))
        self._remembered: dict[TIKey, tuple[dict[str, Any], str]] = {}
        self._reported: set[int] = set()
        self._since: datetime | None = None
        self._revisit: set[int] = set()
        self.rows_read = 0
        """How many ledgers of finished task instances the last sweep read (for tests and the bench)."""

    def sweep(self) -> dict[str, int]:
        """Act on every ledger that needs it; how many ledgers ended each way."""
        from airflow.utils.session import create_session

        counts: dict[str, int] = {}
        started = self._now()
        with create_session() as session:
            rows = self._candidates(session)
            waiting = self._waiting(session)
            forgotten = set(self._remembered) - set(waiting)
            vanished = forgotten - self._still_stored(session, forgotten)
        self.rows_read = len(rows)
        revisit = set()
        for row in rows:
            outcome = self._handle(row)
            counts[outcome] = counts.get(outcome, 0) + 1
            if outcome in _REVISIT:
                revisit.add(row.store_id)
            if outcome == ReapAction.WAIT.value and isinstance(stored := _parsed(row.raw), dict):
                # Finished, but left to a running attempt for now: if its run is deleted before the
                # next sweep, the memory is all that is left of its job.
                waiting[row.ti_key] = (stored, row.where)
        for ti_key in vanished:
            outcome = self._reap_vanished(*self._remembered[ti_key])
            counts[outcome] = counts.get(outcome, 0) + 1
        self._remembered = waiting
        # Only once every row was handled: a sweep that raised is read again in full from the old mark.
        self._revisit = revisit
        self._since = started - WATERMARK_SLACK
        return counts

    def _waiting(self, session: Any) -> dict[TIKey, tuple[dict[str, Any], str]]:
        """
        The ledgers of task instances waiting to run again (checkpointed, rescheduled, queued, ...).

        Remembered until the next sweep: if a ledger vanishes with its task instance in between (its
        dag run was deleted), the memory is the only record of the job left to cancel.
        """
        from airflow.models.task_state_store import TaskStateStoreModel as Store
        from airflow.models.taskinstance import TaskInstance as TI
        from sqlalchemy import or_, select

        query = (
            select(Store.value, Store.dag_id, Store.run_id, Store.task_id, Store.map_index)
            .join(TI, _same_task_instance(TI, Store))
            .where(Store.key == LEDGER_KEY, or_(TI.state.is_(None), TI.state.in_(sorted(WAITING_STATES))))
        )
        waiting = {}
        for row in session.execute(query):
            stored = _parsed(row.value)
            if isinstance(stored, dict) and isinstance(stored.get("hook_params"), dict):
                ti_key = (row.dag_id, row.run_id, row.task_id, row.map_index)
                waiting[ti_key] = (stored, _where(*ti_key))
        return waiting

    def _still_stored(self, session: Any, keys: set[TIKey]) -> set[TIKey]:
        from airflow.models.task_state_store import TaskStateStoreModel as Store
        from sqlalchemy import select, tuple_

        if not keys:
            return set()
        query = select(Store.dag_id, Store.run_id, Store.task_id, Store.map_index).where(
            Store.key == LEDGER_KEY,
            tuple_(Store.dag_id, Store.run_id, Store.task_id, Store.map_index).in_(sorted(keys)),
        )
        return {(r.dag_id, r.run_id, r.task_id, r.map_index) for r in session.execute(query)}

    def _reap_vanished(self, stored: dict[str, Any], where: str) -> str:
        """Cancel the job of a waiting task instance whose ledger was deleted with its dag run."""
        try:
            ledger = SubmissionLedger.from_json(stored)
        except Exception:
            return "refused"
        reach = _how_to_reach(ledger, stored)
        if isinstance(reach, str):
            return "refused"
        assert ledger.external_id is not None  # _how_to_reach names nothing otherwise
        try:
            ended = _cancel_unless_ended(
                *reach, ledger.external_id, where=where, why="its dag run was deleted while it waited"
            )
        except Exception:
            log.exception(
                "Reaper: %s: its dag run was deleted while it waited, and its job (%s) could not be "
                "cancelled; cancel it by hand",
                where,
                ledger.external_id,
            )
            return "failed"
        return "settled" if ended else "cancelled"

    def _candidates(self, session: Any) -> list[_Row]:
        from airflow.models.task_state_store import TaskStateStoreModel as Store
        from airflow.models.taskinstance import TaskInstance as TI
        from sqlalchemy import or_, select

        query = (
            select(
                Store.id,
                Store.value,
                TI.state,
                TI.end_date,
                Store.dag_id,
                Store.run_id,
                Store.task_id,
                Store.map_index,
            )
            .join(TI, _same_task_instance(TI, Store))
            .where(Store.key == LEDGER_KEY, TI.state.in_(sorted(REAPED_STATES)))
        )
        if self._since is None:
            horizon = self._now() - self.settings.lookback
            query = query.where(or_(TI.end_date.is_(None), TI.end_date >= horizon, TI.updated_at >= horizon))
        else:
            # A decision on a task instance that waited (checkpointed, then marked failed) keeps its old
            # end_date (set_state does not move it), but every change moves updated_at.
            changed = TI.updated_at >= self._since
            query = query.where(
                or_(changed, Store.id.in_(sorted(self._revisit))) if self._revisit else changed
            )
        return [
            _Row(
                store_id=row.id,
                raw=row.value,
                ti_state=str(getattr(row.state, "value", row.state)),
                finished_at=row.end_date,
                where=_where(row.dag_id, row.run_id, row.task_id, row.map_index),
                ti_key=(row.dag_id, row.run_id, row.task_id, row.map_index),
            )
            for row in session.execute(query)
        ]

    def _handle(self, row: _Row) -> str:
        stored = _parsed(row.raw)
        now = self._now()
        if isinstance(stored, dict) and _claim_is_live(stored.get(REAPED_FIELD), now):
            return "claimed"  # another scheduler is cancelling; looked at again until it settles
        unsettled, tried = _without_stale_claim(stored)
        verdict = judge_ledger(
            unsettled, ti_state=row.ti_state, finished_at=row.finished_at, now=now, grace=self.settings.grace
        )
        if verdict.action is ReapAction.REFUSE:
            if row.store_id not in self._reported:  # once, not every sweep
                self._reported.add(row.store_id)
                log.warning("Reaper: not acting on the ledger of %s: %s", row.where, verdict.reason)
            return "refused"
        if verdict.action is not ReapAction.CANCEL:
            return verdict.action.value
        assert verdict.ledger is not None and isinstance(unsettled, dict)
        return self._reap(row, unsettled, verdict.ledger, verdict.reason, attempts=tried + 1)

    def _reap(
        self, row: _Row, stored: dict[str, Any], ledger: SubmissionLedger, why: str, *, attempts: int
    ) -> str:
        reach = _how_to_reach(ledger, stored)
        if isinstance(reach, str):
            log.error(
                "Reaper: %s, but its ledger (%s, job %s) cannot be acted on: %s. Cancel the job by hand if "
                "it still runs.",
                row.where,
                ledger.kind,
                ledger.external_id or f"with key {ledger.key}",
                reach,
            )
            self._settle(row, stored, f"not cancelled: {reach}")
            return "refused"
        claim = json.dumps(
            {
                **stored,
                REAPED_FIELD: {"outcome": "cancelling", "at": self._now().isoformat(), "attempts": attempts},
            }
        )
        if not self._swap(row, claim):
            return "claimed"  # another sweep (another scheduler) changed it first
        claimed = replace(row, raw=claim)
        assert ledger.external_id is not None  # _how_to_reach names nothing otherwise
        try:
            ended = _cancel_unless_ended(*reach, ledger.external_id, where=row.where, why=why)
        except Exception as err:
            if attempts >= MAX_CANCEL_ATTEMPTS:
                log.exception(
                    "Reaper: %s: could not cancel the job of ledger %s after %d attempts; cancel it by hand",
                    row.where,
                    ledger.external_id,
                    attempts,
                )
                self._settle(claimed, stored, f"cancel failed {attempts} times: {err}")
                return "failed"
            log.warning("Reaper: %s: cancelling failed (attempt %d): %s", row.where, attempts, err)
            self._swap(
                claimed, json.dumps({**stored, REAPED_FIELD: {"outcome": "retry", "attempts": attempts}})
            )
            return "failed"
        if ended is not None:
            self._settle(claimed, stored, f"already ended: {ended.status.value}")
            return "settled"
        self._settle(claimed, stored, f"cancelled {ledger.external_id}")
        return "cancelled"

    def _settle(self, row: _Row, stored: dict[str, Any], outcome: str) -> None:
        plain = {k: v for k, v in stored.items() if k != REAPED_FIELD}
        if not self._swap(row, json.dumps(settled(plain, outcome=outcome, now=self._now()))):
            log.warning("Reaper: %s: the ledger changed while settling it (%s)", row.where, outcome)

    def _swap(self, row: _Row, new: str) -> bool:
        """Replace the stored value only if it is still what this sweep read (compare-and-swap)."""
        from airflow.models.task_state_store import TaskStateStoreModel as Store
        from airflow.utils.session import create_session
        from sqlalchemy import update

        with create_session() as session:
            result = session.execute(
                update(Store)
                .where(Store.id == row.store_id, Store.value == row.raw)
                .values(value=new)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0))


WAITING_STATES = frozenset(
    {"checkpointed", "up_for_reschedule", "up_for_retry", "scheduled", "queued", "deferred"}
)
"""States of a task instance waiting for its next attempt (and no state: cleared, not yet scheduled)."""


def _how_to_reach(
    ledger: SubmissionLedger, stored: dict[str, Any]
) -> tuple[JobHandleFactory, dict[str, Any]] | str:
    """The hook factory and its arguments for the ledger's job, or why it cannot be reached from here."""
    factory = job_handle_factory(ledger.kind)
    params = stored.get("hook_params")
    if factory is None:
        return "no hook for its kind here"
    if not isinstance(params, dict):
        return "it does not record how to reach its job"
    if ledger.external_id is None:
        return f"its job's id was never recorded (look for a job with key {ledger.key})"
    return factory, params


def _cancel_unless_ended(
    factory: JobHandleFactory, params: dict[str, Any], job_id: str, *, where: str, why: str
) -> JobState | None:
    """
    Cancel the job unless the cloud says it has ended (succeeded, failed, or cancelled already).

    :return: the job's state when it had ended (nothing was cancelled), ``None`` when it was cancelled.
    :raises Exception: whatever the cloud answered when the job could not be described or cancelled.
    """
    handle = factory(**params)
    state = handle.describe(job_id)
    if state.status.is_terminal:
        log.info("Reaper: %s: job %s has ended (%s); nothing to cancel", where, job_id, state)
        return state
    log.warning("Reaper: %s: cancelling job %s (%s)", where, job_id, why)
    handle.cancel(job_id, timeout=CANCEL_TIMEOUT_SECONDS)
    _count_cancel()
    log.warning("Reaper: %s: cancelled job %s", where, job_id)
    return None


def _parsed(raw: str) -> Any:
    """The stored JSON value, or the raw text when it is not JSON (the judge refuses it then)."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _same_task_instance(ti: Any, store: Any) -> Any:
    from sqlalchemy import and_

    return and_(
        ti.dag_id == store.dag_id,
        ti.run_id == store.run_id,
        ti.task_id == store.task_id,
        ti.map_index == store.map_index,
    )


def _where(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    return f"{dag_id}.{task_id} (run {run_id}" + (f", map_index {map_index})" if map_index >= 0 else ")")


def _claim_is_live(reaped: Any, now: datetime) -> bool:
    """A sweep is cancelling this job right now (its claim is recent)."""
    if not isinstance(reaped, dict) or reaped.get("outcome") != "cancelling":
        return False
    try:
        at = datetime.fromisoformat(str(reaped.get("at")))
    except ValueError:
        return False
    return now - at < CLAIM_TIMEOUT


def _without_stale_claim(stored: Any) -> tuple[Any, int]:
    """
    The ledger as the judge should see it, and how many cancels were tried already.

    A ledger whose last claim died, or whose cancel is to be retried, is judged as unsettled.
    """
    reaped = stored.get(REAPED_FIELD) if isinstance(stored, dict) else None
    if not isinstance(reaped, dict) or reaped.get("outcome") not in ("cancelling", "retry"):
        return stored, 0
    attempts = reaped.get("attempts")
    unsettled = {k: v for k, v in stored.items() if k != REAPED_FIELD}
    return unsettled, attempts if isinstance(attempts, int) else 0


def _count_cancel() -> None:
    from airflow.sdk.observability.stats import Stats

    Stats.incr("resumable.reaper.cancelled")


class ReaperThread(threading.Thread):
    """Sweeps every ``settings.interval`` seconds until stopped; a failed sweep is logged, never fatal."""

    def __init__(self, reaper: JobReaper) -> None:
        super().__init__(name="resumable-job-reaper", daemon=True)
        self.reaper = reaper
        self._stopped = threading.Event()

    def run(self) -> None:
        log.info(
            "Resumable job reaper started: sweeping every %g s (grace %s)",
            self.reaper.settings.interval,
            self.reaper.settings.grace,
        )
        while not self._stopped.wait(self.reaper.settings.interval):
            started = time.monotonic()
            try:
                counts = self.reaper.sweep()
            except Exception:
                log.exception("Resumable job reaper: the sweep failed; trying again next time")
                continue
            if counts.get("cancelled") or counts.get("failed"):
                log.info("Resumable job reaper: %s in %.1f s", counts, time.monotonic() - started)

    def stop(self) -> None:
        self._stopped.set()
