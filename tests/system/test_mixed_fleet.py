# Licensed under the Apache License, Version 2.0.
"""
A fleet half upgraded: patched scheduler and workers behind an API server that is not patched yet.

An unpatched Execution API takes a ``checkpointed`` report for an unknown state and marks the task
instance **failed** (seen on 3.3.2). So a patched worker checkpoints only when the server that
started the attempt says it accepts it (``accepts_checkpoint`` in the run context); here it does not,
and the task must reschedule instead: same try, no retry, never failed.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow.providers.resumable.testing.stack import AirflowStack

pytestmark = pytest.mark.system

TASK = "checkpointing"
FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}


def test_a_patched_worker_behind_an_unpatched_api_server_reschedules_instead_of_failing(
    mixed_fleet_stack: AirflowStack,
) -> None:
    stack = mixed_fleet_stack
    dag_id = "system_checkpoint_once"
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=90)

    task_states = recorder.states(TASK)
    assert final_state == "success", task_states
    assert "up_for_reschedule" in task_states, task_states
    assert "checkpointed" not in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(dag_id, run_id, TASK)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    runs: list[dict[str, Any]] = stack.db.task_state_value(dag_id, run_id, TASK, "runs")
    assert [run["try_number"] for run in runs] == [1, 1]
    task_log = "\n".join(
        path.read_text() for path in stack.task_logs.glob(f"dag_id={dag_id}/**/*.log") if run_id in str(path)
    )
    assert "the API server does not say it accepts" in task_log
