# Licensed under the Apache License, Version 2.0.
"""
Deferrable mode on a real stack with triggerers, on every cloud, on a stock and on a patched Airflow.

Each cloud's resumable operator runs with ``deferrable=True`` (the drill's deferrable DAGs) against
that cloud's fake through its real client: the job is submitted in the worker under the ledger, then
a trigger polls it from a real ``airflow triggerer``. The disruptions are the ones upstream's
deferrable operators meet (issue 18): a triggerer SIGKILLed or SIGTERMed mid-poll and replaced, a
triggerer frozen past ``[triggerer] triggerer_health_check_threshold`` whose trigger moves to a
second one before it thaws (the thawed one's ``on_kill`` fires: apache/airflow#73454), the worker
SIGTERMed or SIGKILLed in the submit window, a lost submit response, a throttle storm while
deferred. Expected every time: one job, zero cancels, zero retries, success on try 1. And a person's
mark-failed while deferred: exactly one cancel, from the job reaper.
"""

from __future__ import annotations

import json
import os
import signal
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow.providers.resumable.drill import drill_dags
from airflow.providers.resumable.drill.naming import DRILL_TASK_ID, drill_conn_id, drill_dag_id
from airflow.providers.resumable.drill.runner import FAKE_CLOUDS
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.clouds import FakeCloud
from airflow.providers.resumable.testing.stack import (
    AirflowStack,
    FlavouredStack,
    TIStateRecorder,
    WaitTimeout,
    poll_until,
)

pytestmark = pytest.mark.system

FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}
JOB_SECONDS = 45.0
"""Long enough for a trigger to be handed to another triggerer (15 s threshold) while the job runs,
for a task lost in its submit window to resume and defer, and for the reaper to cancel a job."""
SHORT_JOB_SECONDS = 20.0
"""For scenarios that only need the job still running once the task has deferred."""
_SHORT_JOB_SCENARIOS = {
    "test_a_lost_submit_response_still_defers_with_one_job",
    "test_a_throttle_storm_while_deferred_backs_off_and_succeeds",
}
MOVE_TIMEOUT = 75.0
"""How long a trigger may take to reach another triggerer: the threshold, heartbeats, a loaded host."""
RUNNER_WATCHDOG = "TriggerRunner subprocess event loop appears deadlocked"
"""What Airflow's triggerer logs when its trigger runner has said nothing for
``[triggerer] runner_health_check_threshold`` (30 s); it stops heartbeating until the runner speaks
again. Seen once in CI on a stock 3.3.2 triggerer started under load: its runner went silent before
running any trigger, and no trigger ran on that triggerer in the ten minutes after."""


@pytest.fixture(params=sorted(FAKE_CLOUDS))
def cloud(request: pytest.FixtureRequest, deferrable_flavour: FlavouredStack) -> Iterator[FakeCloud]:
    """The cloud's fake, started, with the drill's connection to it and its DAGs deployed."""
    short = getattr(request.node, "originalname", "") in _SHORT_JOB_SCENARIOS
    fake = FAKE_CLOUDS[str(request.param)](run_seconds=SHORT_JOB_SECONDS if short else JOB_SECONDS)
    fake.start()
    try:
        stack = deferrable_flavour.stack
        connection = fake.connection(drill_conn_id(fake.name))
        stack.put_connection(connection)
        stack.add_dag_file(Path(drill_dags.__file__))
        stack.wait_for_dag(drill_dag_id(fake.name, deferrable=True))
        _one_live_triggerer(stack)
        yield fake
        _settled(stack, drill_dag_id(fake.name, deferrable=True))
    finally:
        fake.stop()


def _settled(stack: AirflowStack, dag_id: str) -> None:
    """
    Wait until the job reaper has settled the ledgers of this test's finished task instances.

    Each test has its own fake, whose job ids start over: a ledger the reaper had not settled yet
    would name a job of the next test's fake, and the reaper would cancel that one.
    """

    def unsettled() -> list[str]:
        rows = stack.db.query(
            "SELECT s.value FROM task_state_store s JOIN task_instance ti ON ti.dag_id = s.dag_id "
            "AND ti.run_id = s.run_id AND ti.task_id = s.task_id AND ti.map_index = s.map_index "
            "WHERE s.dag_id = ? AND s.key = ? AND ti.state IN ('success', 'failed')",
            (dag_id, LEDGER_KEY),
        )
        # Claimed ("cancelling") or to be retried is not settled: the reaper will ask the cloud again.
        outcomes = [(json.loads(row["value"]).get("reaped") or {}).get("outcome") for row in rows]
        return [str(outcome) for outcome in outcomes if outcome in (None, "cancelling", "retry")]

    poll_until(
        lambda: not unsettled() or None, timeout=60, describe=lambda: f"the reaper to settle {unsettled()}"
    )


def _hung_triggerers(stack: AirflowStack) -> list[str]:
    """The live triggerers whose runner Airflow's own watchdog declared hung (see :data:`RUNNER_WATCHDOG`)."""
    return [
        name
        for name in stack.live_triggerers()
        if RUNNER_WATCHDOG in (stack.component_logs / f"{name}.log").read_text(errors="replace")
    ]


def _one_live_triggerer(stack: AirflowStack) -> None:
    """
    Every test starts with one running, healthy triggerer (an earlier test may have killed or added
    some, or left one whose runner hung: that one is replaced, with a warning, so that one test's hung
    triggerer does not fail the tests after it).
    """
    for name in _hung_triggerers(stack):
        warnings.warn(
            f"{name}'s trigger runner hung in an earlier test ({RUNNER_WATCHDOG}); replaced", stacklevel=2
        )
        stack.signal_triggerer(name, signal.SIGKILL, whole_group=True)
        stack.wait_for_triggerer_exit(name)
    live = stack.live_triggerers()
    for name in live[1:]:
        stack.signal_triggerer(name, signal.SIGCONT, whole_group=True)
        stack.signal_triggerer(name, signal.SIGTERM, whole_group=False)
        stack.wait_for_triggerer_exit(name)
    if live:
        stack.signal_triggerer(live[0], signal.SIGCONT, whole_group=True)  # never left frozen
    else:
        stack.start_triggerer()


def _deferred(stack: AirflowStack, cloud: FakeCloud, dag_id: str, run_id: str) -> tuple[str, int]:
    """Wait until the task is deferred with its trigger running and polling; the job and the triggerer."""
    stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, "deferred", timeout=90)

    def assigned() -> int | None:
        trigger = stack.trigger_of(dag_id, run_id, DRILL_TASK_ID)
        return trigger[1] if trigger else None

    triggerer = poll_until(assigned, timeout=60, describe=lambda: "the trigger to reach a triggerer")
    job = _ledger(stack, dag_id, run_id)["external_id"]
    assert cloud.is_running(job), cloud.job_state(job)
    time.sleep(3)  # mid-poll: the trigger has polled (every second) a few times
    return job, triggerer


def _moved_from(stack: AirflowStack, dag_id: str, run_id: str, triggerer: int) -> int:
    def moved() -> int | None:
        trigger = stack.trigger_of(dag_id, run_id, DRILL_TASK_ID)
        return trigger[1] if trigger and trigger[1] not in (None, triggerer) else None

    return poll_until(
        moved, timeout=MOVE_TIMEOUT, describe=lambda: f"the trigger to leave triggerer {triggerer}"
    )


def _trigger_log_says(stack: AirflowStack, dag_id: str, run_id: str, triggerer: int, text: str) -> bool:
    """Whether the task's log of its trigger under ``triggerer`` (Airflow writes one per triggerer) has ``text``."""
    folder = stack.task_logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={DRILL_TASK_ID}"
    return any(
        text in log.read_text(errors="replace") for log in folder.glob(f"*.log.trigger.{triggerer}.log")
    )


def _ledger(stack: AirflowStack, dag_id: str, run_id: str) -> dict:
    return stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY) or {}


def _assert_one_job_no_cancel_success_on_try_1(
    stack: AirflowStack,
    cloud: FakeCloud,
    dag_id: str,
    run_id: str,
    recorder: TIStateRecorder,
    job: str | None,
) -> None:
    try:
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=JOB_SECONDS + 150)
    except WaitTimeout as timeout:
        hung = _hung_triggerers(stack)
        raise WaitTimeout(f"{timeout}; triggerers whose runner hung: {hung or 'none'}") from timeout
    assert final_state == "success"
    counts = cloud.counts()
    assert (counts.submissions, counts.cancellations) == (1, 0), "one job, never cancelled"
    if job is not None:
        assert _ledger(stack, dag_id, run_id)["external_id"] == job, "the job id never changed"
    task_states = recorder.states(DRILL_TASK_ID)
    assert "deferred" in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(dag_id, run_id, DRILL_TASK_ID)
    assert (final_ti.state, final_ti.try_number) == ("success", 1), "no retry consumed"


# -- the triggerer goes away ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signum", "whole_group"),
    [pytest.param(signal.SIGKILL, True, id="sigkill"), pytest.param(signal.SIGTERM, False, id="sigterm")],
)
def test_triggerer_killed_mid_poll_and_replaced_keeps_the_one_job(
    deferrable_flavour: FlavouredStack, cloud: FakeCloud, signum: int, whole_group: bool
) -> None:
    stack = deferrable_flavour.stack
    dag_id = drill_dag_id(cloud.name, deferrable=True)
    run_id = stack.trigger_dag(dag_id)
    with stack.record_ti_states(dag_id, run_id) as recorder:
        job, triggerer = _deferred(stack, cloud, dag_id, run_id)
        [name] = stack.live_triggerers()
        # SIGKILL: the node is lost (the runner subprocess too); SIGTERM: a redeploy stops it cleanly.
        stack.signal_triggerer(name, signum, whole_group=whole_group)
        stack.wait_for_triggerer_exit(name)
        assert cloud.is_running(job), "the job outlives its triggerer"
        stack.start_triggerer()
        _moved_from(stack, dag_id, run_id, triggerer)
        _assert_one_job_no_cancel_success_on_try_1(stack, cloud, dag_id, run_id, recorder, job)


def test_frozen_triggerer_whose_trigger_moves_to_a_second_one_never_cancels(
    deferrable_flavour: FlavouredStack, cloud: FakeCloud
) -> None:
    stack = deferrable_flavour.stack
    dag_id = drill_dag_id(cloud.name, deferrable=True)
    run_id = stack.trigger_dag(dag_id)
    with stack.record_ti_states(dag_id, run_id) as recorder:
        job, triggerer = _deferred(stack, cloud, dag_id, run_id)
        [first] = stack.live_triggerers()
        stack.start_triggerer()
        stack.signal_triggerer(first, signal.SIGSTOP, whole_group=True)  # a frozen pod
        try:
            _moved_from(stack, dag_id, run_id, triggerer)
        finally:
            stack.signal_triggerer(first, signal.SIGCONT, whole_group=True)
        # The thawed triggerer finds its trigger taken and removes it: 3.3.2 calls on_kill then
        # (apache/airflow#73454), which the trigger logs, into the task's log for that triggerer.
        poll_until(
            lambda: _trigger_log_says(stack, dag_id, run_id, triggerer, "leaving the") or None,
            timeout=60,
            describe=lambda: f"the thawed triggerer {triggerer} to call on_kill on its copy of the trigger",
        )
        assert cloud.counts().cancellations == 0, "on_kill of a moved trigger cancelled the job"
        assert cloud.is_running(job)
        _assert_one_job_no_cancel_success_on_try_1(stack, cloud, dag_id, run_id, recorder, job)


# -- the worker goes away in the submit window -------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_worker_lost_in_the_submit_window_then_defers_with_one_job(
    deferrable_flavour: FlavouredStack, cloud: FakeCloud, signum: int
) -> None:
    stack, wait_state = deferrable_flavour.stack, deferrable_flavour.wait_state
    if signum == signal.SIGKILL and wait_state != "checkpointed":
        pytest.skip(
            "without the core patch a lost worker is a failed try: its retry resumes (no 0-retry claim)"
        )
    dag_id = drill_dag_id(cloud.name, deferrable=True)
    released = cloud.hold_next_submit()
    run_id = stack.trigger_dag(dag_id)
    with stack.record_ti_states(dag_id, run_id) as recorder:
        processes = stack.find_task_processes(dag_id, DRILL_TASK_ID, run_id=run_id, timeout=60)
        # The cloud has committed the job; its answer is held. The worker goes now.
        poll_until(lambda: cloud.counts().submissions == 1 or None, timeout=60, describe=lambda: "the job")
        if signum == signal.SIGTERM:
            os.kill(processes.worker_pid, signal.SIGTERM)
            released.set()
        else:
            os.kill(processes.worker_pid, signal.SIGKILL)
            os.kill(processes.task_pid, signal.SIGKILL)
            released.set()
        stack.wait_for_ti_state(dag_id, run_id, DRILL_TASK_ID, wait_state, timeout=120)
        _assert_one_job_no_cancel_success_on_try_1(stack, cloud, dag_id, run_id, recorder, None)
    assert wait_state in recorder.states(DRILL_TASK_ID)


def test_a_lost_submit_response_still_defers_with_one_job(
    deferrable_flavour: FlavouredStack, cloud: FakeCloud
) -> None:
    stack = deferrable_flavour.stack
    dag_id = drill_dag_id(cloud.name, deferrable=True)
    cloud.faults.inject("drop_submit_response", times=1)
    run_id = stack.trigger_dag(dag_id)
    with stack.record_ti_states(dag_id, run_id) as recorder:
        job, _ = _deferred(stack, cloud, dag_id, run_id)
        _assert_one_job_no_cancel_success_on_try_1(stack, cloud, dag_id, run_id, recorder, job)


# -- the cloud misbehaves while deferred ------------------------------------------------------------


def test_a_throttle_storm_while_deferred_backs_off_and_succeeds(
    deferrable_flavour: FlavouredStack, cloud: FakeCloud
) -> None:
    stack = deferrable_flavour.stack
    dag_id = drill_dag_id(cloud.name, deferrable=True)
    run_id = stack.trigger_dag(dag_id)
    with stack.record_ti_states(dag_id, run_id) as recorder:
        job, _ = _deferred(stack, cloud, dag_id, run_id)
        # Four in a row: EMR sends no Retry-After, so its waits double from 1 s (15 s in all).
        cloud.faults.inject("throttle", times=4)
        _assert_one_job_no_cancel_success_on_try_1(stack, cloud, dag_id, run_id, recorder, job)


# -- a person's stop while deferred -----------------------------------------------------------------


def test_a_persons_mark_failed_while_deferred_cancels_exactly_once(
    deferrable_flavour: FlavouredStack, cloud: FakeCloud
) -> None:
    stack = deferrable_flavour.stack
    dag_id = drill_dag_id(cloud.name, deferrable=True)
    run_id = stack.trigger_dag(dag_id)
    job, _ = _deferred(stack, cloud, dag_id, run_id)

    stack.rest.json(
        "PATCH",
        f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{DRILL_TASK_ID}",
        json={"new_state": "failed"},
    )
    marked = time.monotonic()
    # The trigger is removed (its on_kill leaves the job); the reaper cancels after its grace period.
    poll_until(
        lambda: cloud.counts().cancellations >= 1 or None, timeout=60, describe=lambda: "the job's cancel"
    )
    took = time.monotonic() - marked
    time.sleep(12)  # two more sweeps: nothing cancels again

    counts = cloud.counts()
    assert (counts.submissions, counts.cancellations) == (1, 1), "cancelled exactly once"
    assert not cloud.is_running(job), cloud.job_state(job)
    assert stack.db.task_instance(dag_id, run_id, DRILL_TASK_ID).state == "failed"
    assert took < 45, f"the cancel came {took:.0f} s after the mark"
