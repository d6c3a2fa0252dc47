# Licensed under the Apache License, Version 2.0.
"""The small pieces the base operator is made of: poll schedule, stop request, stop diagnosis, checkpoint."""

from __future__ import annotations

import copy
import itertools
import os
import signal
import time
from datetime import datetime, timedelta, timezone

import pytest

from airflow.providers.resumable.checkpoint import (
    checkpoint_exception,
    checkpointed_state_available,
    server_accepts_checkpoints,
)
from airflow.providers.resumable.polling import PollSchedule
from airflow.providers.resumable.stop_request import StopRequest
from airflow.providers.resumable.termination import StopCause, diagnose_stop


def test_poll_schedule_grows_by_the_factor_up_to_the_maximum():
    intervals = list(itertools.islice(PollSchedule(10, 30, factor=1.5).intervals(), 5))
    assert intervals == [10, 15, 22.5, 30, 30]


def test_poll_schedule_refuses_a_maximum_below_the_initial_interval():
    with pytest.raises(ValueError, match="at least poll_interval"):
        PollSchedule(10, 5)


def test_a_stop_requested_before_arming_is_remembered_and_wakes_the_first_wait():
    stop = StopRequest()
    stop.request()
    stop.arm()
    started = time.monotonic()
    assert stop.wait(30) is True
    assert time.monotonic() - started < 1
    stop.close()


def test_a_stop_request_remembers_when_the_first_request_came():
    stop = StopRequest()
    assert stop.requested_at is None
    before = time.monotonic()
    stop.request()
    first = stop.requested_at
    assert first is not None
    assert before <= first <= time.monotonic()
    time.sleep(0.01)
    stop.request()  # the supervisor's second SIGTERM does not move the SIGKILL window
    assert stop.requested_at == first
    assert copy.deepcopy(stop).requested_at is None


def test_a_wait_without_a_request_sleeps_its_timeout_and_says_so():
    stop = StopRequest()
    stop.arm()
    assert stop.wait(0.05) is False
    stop.close()


def test_a_signal_handler_request_wakes_a_wait_at_once():
    stop = StopRequest()
    stop.arm()
    previous = signal.signal(signal.SIGUSR1, lambda *_: stop.request())
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGUSR1))
        started = time.monotonic()
        assert stop.wait(30) is True
        assert time.monotonic() - started < 5
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        stop.close()


class _TaskInstance:
    dag_id, run_id, task_id = "etl", "manual__1", "load"

    def __init__(self, *, map_index: int = -1, states=None, error: Exception | None = None) -> None:
        self.map_index = map_index
        self._states = states
        self._error = error
        self.asked: dict | None = None

    def get_task_states(self, **kwargs):
        self.asked = kwargs
        if self._error:
            raise self._error
        return self._states


def test_the_server_still_saying_running_means_a_worker_shutdown():
    ti = _TaskInstance(states={"manual__1": {"load": "running"}})
    assert diagnose_stop(ti).cause is StopCause.WORKER_SHUTDOWN
    assert ti.asked == {"dag_id": "etl", "task_ids": ["load"], "run_ids": ["manual__1"], "map_index": None}


@pytest.mark.parametrize("state", ["failed", "success", "restarting", None])
def test_any_other_server_state_means_user_intent(state):
    diagnosis = diagnose_stop(_TaskInstance(states={"manual__1": {"load": state}}))
    assert diagnosis.cause is StopCause.USER_INTENT
    assert repr(state) in diagnosis.evidence


def test_a_mapped_task_is_looked_up_under_its_indexed_key():
    ti = _TaskInstance(map_index=3, states={"manual__1": {"load_3": "running", "load_4": "failed"}})
    assert diagnose_stop(ti).cause is StopCause.WORKER_SHUTDOWN
    assert ti.asked["map_index"] == 3


def test_when_the_server_cannot_be_asked_the_job_is_not_cancelled_on_a_guess():
    diagnosis = diagnose_stop(_TaskInstance(error=ConnectionError("supervisor gone")))
    assert diagnosis.cause is StopCause.WORKER_SHUTDOWN
    assert "supervisor gone" in diagnosis.evidence


def test_without_the_core_patch_a_checkpoint_is_a_reschedule_after_resume_after(monkeypatch):
    from airflow.sdk.exceptions import AirflowRescheduleException

    from airflow.providers.resumable import checkpoint

    # Whichever Airflow runs this test, answer as a stock 3.3.2 would.
    monkeypatch.setattr(checkpoint, "checkpointed_state_available", lambda: False)
    before = datetime.now(tz=timezone.utc)
    error = checkpoint_exception(resume_after=timedelta(seconds=30), checkpoint_data={"external_id": "7"})
    assert isinstance(error, AirflowRescheduleException)
    assert (
        before + timedelta(seconds=30)
        <= error.reschedule_date
        <= datetime.now(tz=timezone.utc) + timedelta(seconds=30)
    )


@pytest.mark.skipif(
    not checkpointed_state_available(), reason="needs the core patch (airflow-resumable patch apply)"
)
def test_with_the_core_patch_a_checkpoint_is_airflow_task_checkpointed():
    from airflow.sdk import exceptions

    error = checkpoint_exception(resume_after=timedelta(seconds=30), checkpoint_data={"external_id": "7"})
    assert isinstance(error, exceptions.AirflowTaskCheckpointed)  # type: ignore[attr-defined]
    assert error.resume_after == timedelta(seconds=30)
    assert error.checkpoint_data == {"external_id": "7"}


def test_the_fallback_never_resumes_sooner_than_the_safe_minimum(monkeypatch):
    """A 1 s reschedule on a stock 3.3.2 races the old worker's executor event and fails the task."""
    from airflow.providers.resumable import checkpoint

    monkeypatch.setattr(checkpoint, "checkpointed_state_available", lambda: False)
    before = datetime.now(tz=timezone.utc)
    error = checkpoint_exception(resume_after=timedelta(seconds=1), checkpoint_data={})
    assert error.reschedule_date >= before + checkpoint.MIN_SAFE_RESUME_AFTER


def _run_context(**server_fields):
    """A run context as the task SDK parses it from an Execution API ``ti_run`` answer."""
    from airflow.sdk.api.datamodels._generated import TIRunContext

    now = "2026-01-01T00:00:00Z"
    dag_run = {
        **dict(dag_id="d", run_id="r", logical_date=now, data_interval_start=now, data_interval_end=now),
        **dict(run_after=now, start_date=now, end_date=None, run_type="manual", state="running"),
        **dict(consumed_asset_events=[], partition_key=None),
    }
    return TIRunContext.model_validate({"dag_run": dag_run, "max_tries": 0, **server_fields})


class _Attempt:
    """A running task instance, as far as the checkpoint decision looks at it."""

    def __init__(self, run_context):
        self._ti_context_from_server = run_context


@pytest.mark.skipif(not checkpointed_state_available(), reason="needs the core patch (make patch-venv)")
@pytest.mark.parametrize(
    ("server_fields", "expected"),
    [
        pytest.param({"accepts_checkpoint": True}, "AirflowTaskCheckpointed", id="patched-server"),
        # An unpatched (or not yet restarted) API server says nothing, and would mark the task failed.
        pytest.param({}, "AirflowRescheduleException", id="unpatched-server"),
    ],
)
def test_a_patched_worker_checkpoints_only_when_the_api_server_accepts_it(server_fields, expected):
    ti = _Attempt(_run_context(**server_fields))

    raised = checkpoint_exception(resume_after=timedelta(seconds=30), checkpoint_data=None, ti=ti)

    assert type(raised).__name__ == expected
    assert server_accepts_checkpoints(ti) is bool(server_fields)


def test_without_a_server_run_context_only_this_workers_airflow_decides():
    # Not started through the Execution API (a unit test, a local run): nobody to ask.
    assert server_accepts_checkpoints(object()) is None
    raised = checkpoint_exception(resume_after=timedelta(seconds=30), checkpoint_data=None, ti=object())
    expected = "AirflowTaskCheckpointed" if checkpointed_state_available() else "AirflowRescheduleException"
    assert type(raised).__name__ == expected
