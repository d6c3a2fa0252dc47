# Licensed under the Apache License, Version 2.0.
"""
The executor's report that a checkpointed attempt ended, arriving after the task was resumed.

A resumed task keeps its try number, so the executor knows the attempt that checkpointed and the
resumed one by the same key. Stock 3.3.2's scheduler takes a "workload finished" report for a task
instance that is ``scheduled``/``queued`` with that try number for a task killed externally, and
fails it. The core patch used to keep every resume at least 10 s away from the checkpoint so the
report came first; it now recognises the report as the earlier attempt's. Here the report is made
late on purpose (the checkpoint listener of ``late_exit_listener_plugin.py`` sleeps) while the
resumed task waits in ``scheduled`` for a slot of its closed pool: what a full pool does in
production.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.testing.stack import AirflowStack, poll_until
from tests.system.dags.system_resume_race_dags import LATE_EVENT_DAG_ID, RACE_POOL
from tests.system.plugins.late_exit_listener_plugin import RECORD_NAME

needs_the_core_patch = pytest.mark.skipif(
    not checkpointed_state_available(),
    reason="the checkpointed state needs the core patch: run 'make patch-venv'",
)
pytestmark = [pytest.mark.system, needs_the_core_patch]

DAGS = Path(__file__).parent / "dags"
TASK = "checkpointing"
FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}


def deployed(stack: AirflowStack) -> Iterator[AirflowStack]:
    """The stack with the race DAG parsed and its pool open; the pool is reopened afterwards."""
    stack.add_dag_file(DAGS / "system_resume_race_dags.py")
    stack.wait_for_dag(LATE_EVENT_DAG_ID)
    stack.ensure_pool(RACE_POOL, slots=1)
    yield stack
    stack.ensure_pool(RACE_POOL, slots=1)


@pytest.fixture(scope="module")
def race_stack(airflow_stack: AirflowStack) -> Iterator[AirflowStack]:
    yield from deployed(airflow_stack)


def _lingering_ended_at(stack: AirflowStack, run_id: str) -> float | None:
    records = stack.home / RECORD_NAME
    if not records.exists():
        return None
    for line in records.read_text().splitlines():
        record = json.loads(line)
        if record["run_id"] == run_id:
            return float(record["ended_at"])
    return None


def test_a_late_executor_event_of_the_checkpointed_attempt_does_not_fail_the_resumed_one(
    race_stack: AirflowStack,
) -> None:
    check_a_late_executor_event_does_not_fail_the_resumed_attempt(race_stack)


def check_a_late_executor_event_does_not_fail_the_resumed_attempt(stack: AirflowStack) -> None:
    """The scenario, on any flavour of the stack (``test_resume_race_celery.py`` runs it on Celery)."""
    run_id = stack.trigger_dag(LATE_EVENT_DAG_ID)
    with stack.record_ti_states(LATE_EVENT_DAG_ID, run_id) as recorder:
        stack.wait_for_ti_state(LATE_EVENT_DAG_ID, run_id, TASK, "checkpointed", timeout=90)
        # No slot: the resumed task instance (due 1 s after its checkpoint) waits in scheduled.
        stack.ensure_pool(RACE_POOL, slots=0)
        stack.wait_for_ti_state(LATE_EVENT_DAG_ID, run_id, TASK, "scheduled", timeout=30)
        ended_at = poll_until(
            lambda: _lingering_ended_at(stack, run_id),
            timeout=30,
            describe=lambda: "the checkpointed attempt's listener to finish",
        )
        # The workload ends after its listener; give the executor and two scheduler loops to report
        # it and act on it. Stock behaviour fails the task instance here.
        time.sleep(4)
        during = stack.db.task_instance(LATE_EVENT_DAG_ID, run_id, TASK)
        stack.ensure_pool(RACE_POOL, slots=1)
        final = stack.wait_for_dag_run(LATE_EVENT_DAG_ID, run_id, timeout=90)

    history = recorder.history(TASK)
    states = [change.state for change in history]
    scheduled_at = next(
        change.monotonic
        for previous, change in itertools.pairwise(history)
        if change.state == "scheduled" and previous.state == "checkpointed"
    )
    # The race really happened: the attempt that checkpointed was still running its listener after
    # the resumed task instance was scheduled again, so its end was reported afterwards.
    assert ended_at > scheduled_at, (ended_at, scheduled_at, history)
    assert (during.state, during.try_number) == ("scheduled", 1), during
    assert final == "success", (states, stack.diagnostics())
    assert not FAILURE_STATES & set(states), states
    assert states.count("checkpointed") == 1, states
    assert {change.try_number for change in history if change.state is not None} == {1}, history
    mismatches = stack.db.query(
        "SELECT extra FROM log WHERE event = 'state mismatch' AND dag_id = ? AND run_id = ?",
        (LATE_EVENT_DAG_ID, run_id),
    )
    assert [row["extra"] for row in mismatches] == []
    assert stack.db.task_state_value(LATE_EVENT_DAG_ID, run_id, TASK, "runs") == [1, 1]
