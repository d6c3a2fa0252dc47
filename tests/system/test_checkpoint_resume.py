# Licensed under the Apache License, Version 2.0.
"""
A task that checkpoints waits without holding anything and resumes by itself, without using a retry.

DESIGN §4 (fallback, unpatched Airflow 3.3.2): ``checkpoint_exception`` is an
``AirflowRescheduleException``; the task waits in ``up_for_reschedule``. DESIGN §5 (core patch
applied): it is ``AirflowTaskCheckpointed``; the task waits in ``checkpointed``, the public REST API
still answers for it, and its checkpoint data sits in the task state store until success. Both
variants must: keep ``try_number``, consume no retry (``retries=0`` and still success), hold no pool
slot, keep downstream tasks waiting, and resume no sooner than ``resume_after``.

The same promises hold on the production flavour (``executor_flavour``'s ``celery``: patched Airflow
on Postgres with the CeleryExecutor and two workers), where the resumed attempt is a new Celery
workload that either worker may take; ``make test-celery`` runs it.
"""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

import pytest

from airflow.providers.resumable.testing.stack import AirflowStack, FlavouredStack, TIStateRecorder
from tests.system.dags.system_checkpoint_dags import (
    CHECKPOINT_ONCE_RESUME_AFTER,
    CHECKPOINT_THREE_TIMES_RESUME_AFTER,
    SYSTEM_POOL,
    checkpoint_marker,
)

pytestmark = pytest.mark.system

TASK = "checkpointing"
DOWNSTREAM = "downstream"
# States that would mean the checkpoint was treated as a failure, or cost a retry.
FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}


def _entries_into(recorder: TIStateRecorder, task_id: str, state: str) -> int:
    return sum(1 for change in recorder.history(task_id) if change.state == state)


def _as_utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def _assert_waiting_task_holds_nothing(
    stack: AirflowStack, dag_id: str, run_id: str, wait_state: str
) -> None:
    """While the task waits: REST answers for it, no slot of its pool is taken, its run is still running."""
    response = stack.task_instance_via_rest(dag_id, run_id, TASK)
    assert response.status_code == 200, response.text
    assert response.json()["state"] == wait_state

    pool = stack.rest.json("GET", f"/pools/{SYSTEM_POOL}")
    assert (pool["occupied_slots"], pool["running_slots"], pool["queued_slots"]) == (0, 0, 0), pool
    assert pool["open_slots"] == pool["slots"]
    occupancy = stack.db.pool_occupancy(SYSTEM_POOL)
    assert not {"running", "queued"} & occupancy.keys(), occupancy

    # A waiting task is unfinished: the run neither finishes nor deadlocks meanwhile.
    assert stack.db.dag_run_state(dag_id, run_id) == "running"

    # The checks above only mean something if the task was still waiting when they ran.
    assert stack.db.task_instance(dag_id, run_id, TASK).state == wait_state


def _checkpoint_data_values(stack: AirflowStack, dag_id: str, run_id: str) -> list[str]:
    """Values in the task's state store that carry checkpoint data (the task's own diary excluded)."""
    store = stack.db.task_state_store(dag_id, run_id, TASK)
    markers = [checkpoint_marker(run) for run in range(1, 5)]
    return [
        value for key, value in store.items() if key != "runs" and any(marker in value for marker in markers)
    ]


def test_checkpointed_task_waits_then_resumes_same_try_and_downstream_runs_after(
    executor_flavour: FlavouredStack,
) -> None:
    stack, wait_state = executor_flavour.stack, executor_flavour.wait_state
    dag_id = "system_checkpoint_once"
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        stack.wait_for_ti_state(dag_id, run_id, TASK, wait_state, timeout=60)
        _assert_waiting_task_holds_nothing(stack, dag_id, run_id, wait_state)
        if wait_state == "checkpointed":
            # DESIGN §5: the runner keeps the checkpoint data in the task state store while it waits.
            assert _checkpoint_data_values(stack, dag_id, run_id), stack.db.task_state_store(
                dag_id, run_id, TASK
            )
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=90)

    assert final_state == "success"
    assert "failed" not in recorder.dag_run_states()

    # A passed through the wait state exactly once, never through a failure state, on try 1 throughout.
    task_states = recorder.states(TASK)
    assert _entries_into(recorder, TASK, wait_state) == 1, task_states
    assert not FAILURE_STATES & set(task_states), task_states
    assert task_states[-1] == "success"
    # The scheduler creates the row with try_number 0 and sets 1 as it schedules it; nothing after that.
    assert {change.try_number for change in recorder.history(TASK) if change.state is not None} == {1}
    final_ti = stack.db.task_instance(dag_id, run_id, TASK)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)

    # The task's own diary: two runs, both on try 1, the second no sooner than resume_after.
    runs: list[dict[str, Any]] = stack.db.task_state_value(dag_id, run_id, TASK, "runs")
    assert [run["try_number"] for run in runs] == [1, 1]
    resumed_after = runs[1]["started_at"] - runs[0]["checkpointed_at"]
    assert resumed_after >= CHECKPOINT_ONCE_RESUME_AFTER.total_seconds(), resumed_after

    # Airflow's own record of the wait: one reschedule row, honoured by the scheduler.
    reschedules = stack.db.task_reschedules(dag_id, run_id, TASK)
    assert len(reschedules) == 1
    assert _as_utc(runs[1]["started_at"]) >= reschedules[0].reschedule_date

    # B never left "no status" while A waited, and started only after A's second run had begun.
    waiting_samples = [s for s in recorder.samples if s.tasks.get(TASK, (None, 0))[0] == wait_state]
    assert waiting_samples
    assert {s.tasks.get(DOWNSTREAM, (None, 0))[0] for s in waiting_samples} == {None}
    downstream_started_at = stack.db.task_state_value(dag_id, run_id, DOWNSTREAM, "started_at")
    assert downstream_started_at > runs[1]["started_at"]
    assert stack.db.task_instance(dag_id, run_id, DOWNSTREAM).state == "success"

    if wait_state == "checkpointed":
        # DESIGN §5: the resumed run read what the first one left, which is deleted on success.
        assert runs[1]["resumed_with"] == {"marker": checkpoint_marker(1), "run": 1}
        assert _checkpoint_data_values(stack, dag_id, run_id) == []
        # The listener hook (apache/airflow #66410) fired once, for this task, on try 1.
        assert stack.checkpoint_listener_calls(dag_id, run_id) == [
            {
                "dag_id": dag_id,
                "run_id": run_id,
                "task_id": TASK,
                "try_number": 1,
                "previous_state": "running",
            }
        ]
    else:
        assert runs[1]["resumed_with"] is None
        assert stack.checkpoint_listener_calls(dag_id, run_id) == []


def test_task_with_no_retries_checkpoints_three_times_and_succeeds(
    executor_flavour: FlavouredStack,
) -> None:
    stack, wait_state = executor_flavour.stack, executor_flavour.wait_state
    dag_id = "system_checkpoint_three_times"
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=120)

    assert final_state == "success"
    assert "failed" not in recorder.dag_run_states()
    task_states = recorder.states(TASK)
    assert _entries_into(recorder, TASK, wait_state) == 3, task_states
    assert not FAILURE_STATES & set(task_states), task_states

    # Resumes consumed no retry: still try 1 of a task allowed none, and nothing archived as a past try.
    final_ti = stack.db.task_instance(dag_id, run_id, TASK)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    assert stack.db.task_history_try_numbers(dag_id, run_id, TASK) == []

    runs: list[dict[str, Any]] = stack.db.task_state_value(dag_id, run_id, TASK, "runs")
    assert [run["try_number"] for run in runs] == [1, 1, 1, 1]
    minimum_wait = CHECKPOINT_THREE_TIMES_RESUME_AFTER.total_seconds()
    waits = [later["started_at"] - earlier["checkpointed_at"] for earlier, later in itertools.pairwise(runs)]
    assert all(wait >= minimum_wait for wait in waits), waits
    assert len(stack.db.task_reschedules(dag_id, run_id, TASK)) == 3
