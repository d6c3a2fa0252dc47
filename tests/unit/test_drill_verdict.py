# Licensed under the Apache License, Version 2.0.
"""
How the drill judges one disruption's run: ``DisruptionResult.ok`` against the kind's expectation.

A worker disruption must end in success with its one job, never cancelled, on try 1, nothing left
running; a person's decision must end the run failed with its one job cancelled exactly once (by the
job reaper), on the try the decision implies, nothing left running either.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from airflow.providers.resumable.drill.plan import Disruption, DisruptionKind
from airflow.providers.resumable.drill.runner import DisruptionResult


def _result(kind: DisruptionKind, **changes) -> DisruptionResult:
    expected = kind.expected
    base = DisruptionResult(
        disruption=Disruption(number=1, cloud="databricks", kind=kind, delay=0.0, times=2),
        run_id="manual__1",
        final_state=expected.dag_run_state,
        jobs=("run-1",),
        job_in_ledger="run-1",
        cancellations=1 if expected.job_cancelled else 0,
        try_number=expected.try_number,
        checkpoints=1,
        seconds=12.0,
    )
    return replace(base, **changes)


@pytest.mark.parametrize("kind", list(DisruptionKind))
def test_the_run_every_kind_expects_passes(kind):
    result = _result(kind)

    assert result.ok, result.verdict()
    assert result.verdict() == "ok"


@pytest.mark.parametrize("kind", list(DisruptionKind))
def test_a_job_left_running_after_the_task_ended_fails_every_kind(kind):
    result = _result(kind, orphans=1)

    assert not result.ok
    assert "1 orphaned job(s)" in result.verdict()


@pytest.mark.parametrize(
    ("kind", "changes", "problem"),
    [
        (DisruptionKind.SIGTERM_MID_POLL, {"cancellations": 1}, "1 cancellation(s)"),
        (DisruptionKind.SIGTERM_MID_POLL, {"jobs": ("run-1", "run-2")}, "1 duplicate(s)"),
        (DisruptionKind.SIGTERM_MID_POLL, {"try_number": 2}, "1 retry(ies) used"),
        (DisruptionKind.SIGTERM_MID_POLL, {"final_state": "failed"}, "run lost"),
        (DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED, {"cancellations": 0}, "run lost"),
        (DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED, {"cancellations": 2}, "run lost"),
        (DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED, {"final_state": "success"}, "run lost"),
        (DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED, {"jobs": ("run-1", "run-2")}, "1 duplicate(s)"),
        (DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED, {"try_number": 3}, "1 retry(ies) used"),
    ],
)
def test_what_breaks_the_promise_fails_the_disruption(kind, changes, problem):
    result = _result(kind, **changes)

    assert not result.ok
    assert problem in result.verdict()


def test_a_persons_cancel_is_not_a_shutdown_cancellation():
    assert _result(DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED).shutdown_cancellations == 0
    assert _result(DisruptionKind.SIGTERM_MID_POLL, cancellations=1).shutdown_cancellations == 1


def test_a_deferrable_sigterm_that_lands_after_the_submit_may_end_in_the_deferral_instead_of_a_checkpoint():
    # With deferrable=True the attempt that the SIGTERM reaches just after the submit defers: the job
    # is the triggerer's then, and no worker is needed to resume it.
    deferred = _result(DisruptionKind.SIGTERM_IN_SUBMIT, checkpoints=0, deferred=True)
    neither = _result(DisruptionKind.SIGTERM_IN_SUBMIT, checkpoints=0, deferred=False)

    assert deferred.ok, deferred.verdict()
    assert not neither.ok
    assert "no checkpoint (nor deferral) after the SIGTERM" in neither.verdict()
