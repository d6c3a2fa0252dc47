# Licensed under the Apache License, Version 2.0.
"""
``test_resume_race.py``'s late executor event on the production flavour (Celery, Postgres, Redis).

The CeleryExecutor polls each workload's result; the checkpointed attempt's "succeeded" reaches the
scheduler when its Celery task ends, after the slow listener, while the resumed task instance waits
in ``scheduled`` for a slot of its closed pool. And the executor's one report that is not stale
while the resumed task instance is ``queued``: its resumed workload, lost before it started.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

import psutil
import pytest

from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
from airflow.providers.resumable.testing.stack import AirflowStack, poll_until
from airflow.providers.resumable.testing.worker_signals import freeze, thaw
from tests.system.dags.system_resume_race_dags import LOST_BEFORE_START_DAG_ID
from tests.system.test_resume_race import (
    FAILURE_STATES,
    TASK,
    check_a_late_executor_event_does_not_fail_the_resumed_attempt,
    deployed,
    needs_the_core_patch,
)

pytestmark = [pytest.mark.system, needs_the_core_patch]


@pytest.fixture(scope="module")
def celery_race_stack(celery_stack: CeleryAirflowStack) -> Iterator[AirflowStack]:
    yield from deployed(celery_stack)


def test_on_celery_a_late_executor_event_of_the_checkpointed_attempt_does_not_fail_the_resumed_one(
    celery_race_stack: AirflowStack,
) -> None:
    check_a_late_executor_event_does_not_fail_the_resumed_attempt(celery_race_stack)


def _starting_workload(stack: CeleryAirflowStack) -> tuple[psutil.Process, psutil.Process] | None:
    """
    The pool process that has forked a task process, and that task process, on any worker; ``None``
    while no worker runs a workload.

    :param stack: the Celery stack.
    """
    for name in stack.workers:
        if not stack.worker_running(name):
            continue
        with contextlib.suppress(psutil.NoSuchProcess):
            main = psutil.Process(stack.worker_pid(name))
            for pool_process in main.children():
                for task_process in pool_process.children():
                    return pool_process, task_process
    return None


def test_on_celery_a_resumed_workload_lost_before_it_started_is_checkpointed_again_not_left_queued(
    celery_race_stack: AirflowStack,
) -> None:
    """
    The resumed workload's worker loses it before the resumed attempt started (``ti_run``), as a
    pod eviction or an OOM kill does while a workload starts: the executor reports that workload
    failed while the task instance is still ``queued`` for its resume. The task instance declared
    itself resumable on worker loss, so it is checkpointed again and resumes on the same try, rather
    than waiting in ``queued`` for ``[scheduler] task_queued_timeout`` (600 s).

    To hold the workload in that window, the API server is frozen (SIGSTOP) once the checkpointed
    attempt's workload has ended: the resumed one then forks its task process and waits on ``ti_run``.
    """
    stack = celery_race_stack
    assert isinstance(stack, CeleryAirflowStack)
    dag_id = LOST_BEFORE_START_DAG_ID
    stack.wait_for_dag(dag_id)
    run_id = stack.trigger_dag(dag_id)
    with stack.record_ti_states(dag_id, run_id) as recorder:
        stack.wait_for_ti_state(dag_id, run_id, TASK, "checkpointed", timeout=90)
        poll_until(
            lambda: _starting_workload(stack) is None or None,
            timeout=30,
            describe=lambda: "the checkpointed attempt's workload to end",
        )
        api_server = stack.component_processes("api-server")
        freeze(api_server)
        try:
            pool_process, task_process = poll_until(
                lambda: _starting_workload(stack),
                timeout=60,
                describe=lambda: "the resumed workload to fork its task process",
            )
            time.sleep(1)  # well inside ti_run, which cannot return
            assert stack.db.task_instance(dag_id, run_id, TASK).state == "queued"
            for process in (task_process, pool_process):
                process.kill()
            # The scheduler alone acts on the executor's report: the API server stays frozen.
            stack.wait_for_ti_state(dag_id, run_id, TASK, "checkpointed", timeout=60)
        finally:
            thaw(api_server)
        final = stack.wait_for_dag_run(dag_id, run_id, timeout=120)

    states = recorder.states(TASK)
    assert final == "success", (states, stack.diagnostics())
    assert states.count("checkpointed") == 2, states
    assert not FAILURE_STATES & set(states), states
    assert {change.try_number for change in recorder.history(TASK) if change.state is not None} == {1}
    # The task's own diary: the first run and the one after the lost workload, both on try 1.
    assert stack.db.task_state_value(dag_id, run_id, TASK, "runs") == [1, 1]
    events = [
        row["event"]
        for row in stack.db.query(
            "SELECT event FROM log WHERE dag_id = ? AND run_id = ? ORDER BY id", (dag_id, run_id)
        )
    ]
    assert "worker lost" in events, events
    assert "state mismatch" not in events, events
