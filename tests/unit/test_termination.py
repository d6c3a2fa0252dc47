# Licensed under the Apache License, Version 2.0.
"""
Who may end a job: ``diagnose_stop`` over every state the server can answer.

Only a state that records a person's (or the API's) decision may cancel the job. A state the
scheduler or the task's own lifecycle set says nothing about what anyone wants: the attempt
checkpoints and the job runs on. So does a state this release does not know.
"""

from __future__ import annotations

import pytest
from airflow.sdk import TaskInstanceState

from airflow.providers.resumable.termination import StopCause, diagnose_stop

RUN, TASK = "manual__1", "load"


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"  # a stable test id, the same in every pytest-xdist worker


MISSING = _Missing()
"""The server's answer has no entry for this task instance: its row is gone."""

TABLE: list[tuple[object, StopCause]] = [
    # a decision: the only answers that may cancel
    ("failed", StopCause.USER_INTENT),
    ("success", StopCause.USER_INTENT),
    ("skipped", StopCause.USER_INTENT),
    ("removed", StopCause.USER_INTENT),
    ("upstream_failed", StopCause.USER_INTENT),
    ("restarting", StopCause.USER_INTENT),  # cleared while running
    (None, StopCause.USER_INTENT),  # cleared: the state is reset
    (MISSING, StopCause.USER_INTENT),  # the row is gone
    # the worker is going away
    ("running", StopCause.WORKER_SHUTDOWN),
    # set by the scheduler or the task's own lifecycle: nobody decided anything
    ("scheduled", StopCause.SCHEDULER),
    ("queued", StopCause.SCHEDULER),
    ("up_for_retry", StopCause.SCHEDULER),
    ("up_for_reschedule", StopCause.SCHEDULER),
    ("deferred", StopCause.SCHEDULER),
    ("awaiting_input", StopCause.SCHEDULER),
    ("checkpointed", StopCause.SCHEDULER),
    # a state newer than this code: never cancel on a guess
    ("paused_by_a_future_airflow", StopCause.UNKNOWN_STATE),
]


class _TaskInstance:
    dag_id, run_id, task_id, map_index = "etl", RUN, TASK, -1

    def __init__(self, state: object) -> None:
        self._state = state

    def get_task_states(self, **kwargs: object) -> dict:
        return {RUN: {} if self._state is MISSING else {TASK: self._state}}


@pytest.mark.parametrize(("state", "cause"), TABLE, ids=[str(s) for s, _ in TABLE])
def test_diagnosis_table(state, cause):
    diagnosis = diagnose_stop(_TaskInstance(state))

    assert diagnosis.cause is cause
    assert diagnosis.evidence


@pytest.mark.parametrize("state", list(TaskInstanceState), ids=lambda s: s.value)
def test_the_enum_member_reads_like_its_value(state):
    """The server may hand back the enum rather than its string; the diagnosis must not differ."""
    expected = dict((s, c) for s, c in TABLE if isinstance(s, str))[state.value]
    assert diagnose_stop(_TaskInstance(state)).cause is expected


def test_the_table_covers_every_task_instance_state_plus_none_missing_and_unknown():
    covered = {state for state, _ in TABLE}
    assert {s.value for s in TaskInstanceState} <= covered
    assert None in covered
    assert MISSING in covered
    assert any(isinstance(s, str) and s not in {v.value for v in TaskInstanceState} for s in covered)


def test_only_a_decision_cancels():
    assert {cause for cause in StopCause if cause.cancels} == {StopCause.USER_INTENT}
    for state, cause in TABLE:
        assert diagnose_stop(_TaskInstance(state)).cancels is cause.cancels


def test_a_server_that_cannot_be_asked_does_not_cancel():
    class Unreachable(_TaskInstance):
        def get_task_states(self, **kwargs: object) -> dict:
            raise ConnectionError("supervisor gone")

    diagnosis = diagnose_stop(Unreachable("failed"))

    assert diagnosis.cause is StopCause.WORKER_SHUTDOWN
    assert not diagnosis.cancels
    assert "supervisor gone" in diagnosis.evidence


# ---------------------------------------------------------------- an attempt another one took over


def _declared(try_number: int = 2, hostname: str = "worker-1", pid: int = 4242) -> dict:
    return {"try_number": try_number, "hostname": hostname, "pid": pid, "resume_after": 30.0}


@pytest.mark.parametrize(
    ("declaration", "successor"),
    [
        pytest.param(_declared(), None, id="this-attempt-declared-last"),
        pytest.param(_declared(pid=5151), "pid 5151 on worker-1", id="a-later-process-same-host"),
        pytest.param(_declared(hostname="worker-2"), "pid 4242 on worker-2", id="same-pid-another-host"),
        pytest.param(_declared(try_number=3, pid=5151), None, id="another-try-is-not-this-try"),
        pytest.param(None, None, id="no-declaration"),
        pytest.param("garbage", None, id="not-a-declaration"),
    ],
)
def test_attempt_that_took_over(declaration, successor):
    from airflow.providers.resumable.termination import attempt_that_took_over

    assert attempt_that_took_over(declaration, try_number=2, hostname="worker-1", pid=4242) == successor


@pytest.mark.parametrize("state", ["failed", "success", None, MISSING], ids=str)
def test_a_decision_about_the_attempt_that_took_over_does_not_cancel_this_one(state):
    diagnosis = diagnose_stop(_TaskInstance(state), taken_over_by=lambda: "pid 5151 on worker-1")

    assert diagnosis.cause is StopCause.SUPERSEDED
    assert not diagnosis.cancels
    assert "pid 5151 on worker-1" in diagnosis.evidence


def test_a_decision_about_this_attempt_still_cancels_it():
    assert diagnose_stop(_TaskInstance("failed"), taken_over_by=lambda: None).cause is StopCause.USER_INTENT


@pytest.mark.parametrize("state", ["running", "checkpointed", "paused_by_a_future_airflow"])
def test_who_took_over_is_asked_only_when_the_answer_would_cancel(state):
    def never() -> str | None:
        raise AssertionError("asked although the stop does not cancel")

    assert not diagnose_stop(_TaskInstance(state), taken_over_by=never).cancels
