# Licensed under the Apache License, Version 2.0.
"""
Which ledgers the job reaper acts on: ``judge_ledger`` over task instance states, timing and ledgers.

Only a task instance that a decision finished gives up its job, and only once a running attempt has
had time to cancel the job itself; a settled ledger is left alone, an unreadable one reported.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk import TaskInstanceState

from airflow.providers.resumable.ledger import LedgerOwner, SubmissionLedger
from airflow.providers.resumable.reaping import (
    REAPED_FIELD,
    REAPED_STATES,
    ReapAction,
    judge_ledger,
    settled,
)
from airflow.providers.resumable.termination import DECISION_STATES

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
GRACE = timedelta(seconds=15)
OWNER = LedgerOwner(dag_id="etl", run_id="manual__1", task_id="load")


def _stored(*, submitted: bool = True) -> dict:
    ledger = SubmissionLedger.begin(owner=OWNER, kind="databricks.runs_submit", max_tries=0, now=NOW)
    return (ledger.mark_submitted("run-7", now=NOW) if submitted else ledger).to_json()


def _judge(stored=None, *, state="failed", finished_ago=timedelta(minutes=1)):
    return judge_ledger(
        _stored() if stored is None else stored,
        ti_state=state,
        finished_at=NOW - finished_ago,
        now=NOW,
        grace=GRACE,
    )


@pytest.mark.parametrize("state", sorted(REAPED_STATES))
def test_a_task_instance_a_decision_finished_gives_up_its_job(state):
    verdict = _judge(state=state)

    assert verdict.action is ReapAction.CANCEL
    assert verdict.ledger is not None
    assert verdict.ledger.external_id == "run-7"
    assert "run-7" in verdict.reason


@pytest.mark.parametrize(
    "state", [*sorted({s.value for s in TaskInstanceState} - REAPED_STATES, key=str), None]
)
def test_every_other_state_leaves_the_job_to_the_task_instance(state):
    """Running, waiting to resume, cleared (None: its next attempt cancels and starts over), ..."""
    assert _judge(state=state).action is ReapAction.IGNORE


def test_the_reaped_states_are_the_decisions_an_attempt_cancels_on_except_a_clear():
    # restarting (cleared while running) and a cleared state are the next attempt's to handle.
    assert {"restarting"} == DECISION_STATES - REAPED_STATES
    assert REAPED_STATES <= DECISION_STATES


def test_a_decision_moments_ago_is_left_to_the_running_attempt_for_the_grace_period():
    assert _judge(finished_ago=timedelta(seconds=3)).action is ReapAction.WAIT
    assert _judge(finished_ago=GRACE).action is ReapAction.CANCEL


def test_deferred_is_waiting_not_a_decision_and_a_deferred_task_marked_failed_is_reaped():
    """The trigger never cancels (a trigger also loses on_kill when it merely moves), so a person's
    stop of a deferred task is the reaper's: deferred waits, failed after deferral is a decision."""
    from airflow.providers.resumable.job_reaper import WAITING_STATES

    assert "deferred" in WAITING_STATES, "remembered, so a deferred task's deleted run is still reaped"
    assert _judge(state="deferred").action is ReapAction.IGNORE
    assert _judge(state="failed").action is ReapAction.CANCEL
    assert _judge(state="success").action is ReapAction.CANCEL


def test_a_job_whose_id_was_never_recorded_is_looked_up_by_its_key():
    verdict = _judge(_stored(submitted=False))

    assert verdict.action is ReapAction.CANCEL
    assert verdict.ledger is not None
    assert verdict.ledger.external_id is None
    assert str(verdict.ledger.key) in verdict.reason


def test_a_settled_ledger_is_left_alone():
    stored = settled(_stored(), outcome="cancelled run-7", now=NOW)

    assert stored[REAPED_FIELD] == {"outcome": "cancelled run-7", "at": NOW.isoformat()}
    assert _judge(stored).action is ReapAction.IGNORE


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("not a ledger", id="not-an-object"),
        pytest.param({**_stored(), "v": 99}, id="a-newer-release"),
        pytest.param({**_stored(), "nonce": "short"}, id="corrupted"),
    ],
)
def test_a_ledger_that_cannot_be_read_is_reported_not_acted_on(stored):
    verdict = _judge(stored)

    assert verdict.action is ReapAction.REFUSE
    assert verdict.ledger is None
    assert "cannot be read" in verdict.reason


# ---------------------------------------------------------------- the reaper's own bookkeeping


def test_every_bundled_operator_kind_has_a_hook_the_reaper_can_build():
    from airflow.providers.resumable.job_reaper import JOB_HOOKS, job_handle_factory
    from airflow.providers.resumable.operators.base import ResumableSubmitOperator
    from airflow.providers.resumable.operators.databricks import (
        ResumableDatabricksRunNowOperator,
        ResumableDatabricksSubmitRunOperator,
    )
    from airflow.providers.resumable.operators.dataproc import (
        ResumableDataprocCreateBatchOperator,
        ResumableDataprocSubmitJobOperator,
    )
    from airflow.providers.resumable.operators.emr import (
        ResumableEmrAddStepsOperator,
        ResumableEmrServerlessStartJobOperator,
    )
    from airflow.providers.resumable.operators.fake_job import FakeJobSubmitOperator

    operators: list[type[ResumableSubmitOperator]] = [
        ResumableDatabricksSubmitRunOperator,
        ResumableDatabricksRunNowOperator,
        ResumableDataprocSubmitJobOperator,
        ResumableDataprocCreateBatchOperator,
        ResumableEmrAddStepsOperator,
        ResumableEmrServerlessStartJobOperator,
        FakeJobSubmitOperator,
    ]
    assert {op.ledger_kind for op in operators} == set(JOB_HOOKS)
    for op in operators:
        # A deferred task's trigger and the reaper reach its job through the same hook.
        assert op.trigger_class is not None, op.__name__
        reaper_hook = JOB_HOOKS[op.ledger_kind].split(":")[1]
        assert op.trigger_class.hook_class.__name__ == reaper_hook, op.__name__
    for kind in JOB_HOOKS:
        factory = job_handle_factory(kind)
        assert factory is not None, kind
        assert callable(getattr(factory, "describe", None)), kind
        assert callable(getattr(factory, "cancel", None)), kind


def test_an_unknown_kind_has_no_hook_and_a_registered_one_wins():
    from airflow.providers.resumable.job_reaper import _REGISTERED, job_handle_factory, register_job_handle

    assert job_handle_factory("acme.jobs") is None

    def acme(**params):
        raise AssertionError("not built here")

    register_job_handle("acme.jobs", acme)
    try:
        assert job_handle_factory("acme.jobs") is acme
    finally:
        _REGISTERED.pop("acme.jobs")


@pytest.mark.parametrize(
    ("reaped", "age", "live"),
    [
        pytest.param({"outcome": "cancelling"}, timedelta(seconds=30), True, id="a-recent-claim"),
        pytest.param({"outcome": "cancelling"}, timedelta(minutes=6), False, id="a-claim-whose-sweep-died"),
        pytest.param({"outcome": "cancelled run-7"}, timedelta(seconds=1), False, id="settled-not-claimed"),
        pytest.param(None, timedelta(0), False, id="no-claim"),
    ],
)
def test_a_claim_holds_only_while_its_sweep_can_still_be_cancelling(reaped, age, live):
    from airflow.providers.resumable.job_reaper import _claim_is_live

    if reaped is not None:
        reaped = {**reaped, "at": (NOW - age).isoformat()}
    assert _claim_is_live(reaped, NOW) is live


def test_a_stale_claim_or_a_retry_is_judged_again_counting_the_attempts():
    from airflow.providers.resumable.job_reaper import _without_stale_claim

    stored = {**_stored(), REAPED_FIELD: {"outcome": "retry", "attempts": 2}}
    unsettled, tried = _without_stale_claim(stored)

    assert REAPED_FIELD not in unsettled
    assert tried == 2
    assert _judge(unsettled).action is ReapAction.CANCEL
    final = settled(_stored(), outcome="cancelled run-7", now=NOW)
    assert _without_stale_claim(final) == (final, 0)  # a settled ledger stays settled
