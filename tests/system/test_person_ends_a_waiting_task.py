# Licensed under the Apache License, Version 2.0.
"""
A person ends a task instance while it waits to resume: its job is cancelled once, from outside.

No attempt runs while a task instance is ``checkpointed`` (or, on a stock Airflow,
``up_for_reschedule``), so nobody is told when a person marks it failed or success, fails its dag
run, or when ``dagrun_timeout`` fails the run. The provider's job reaper (in the scheduler) cancels
the job through the ledger: within 30 s, exactly once; so it does when the dag run is failed and
deleted at once (its ledger goes with it: the reaper cancels from what it saw in its previous
sweep). A clear is the next
attempt's to handle: it cancels the old job and submits a new one.

All six decisions run side by side, one dag run each, on both flavours.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.databricks import FakeDatabricksService
from airflow.providers.resumable.testing.stack import AirflowStack, FlavouredStack, poll_until
from tests.system.conftest import fake_databricks_behind
from tests.system.dags.system_person_stop_dags import CONN_ID, DAG_ID, DAGRUN_TIMEOUT, TASK_ID, TIMEOUT_DAG_ID

pytestmark = pytest.mark.system

DAG_FILE = Path(__file__).parent / "dags" / "system_person_stop_dags.py"
CANCELLED_WITHIN = 30.0
"""The promise: a person's decision reaches the job within this many seconds."""


@pytest.fixture
def databricks(checkpoint_flavour: FlavouredStack) -> Iterator[FakeDatabricksService]:
    """A fake workspace whose runs go on until the test ends them, and a real connection to it."""
    with fake_databricks_behind(checkpoint_flavour.stack, CONN_ID) as service:
        yield service


def _mark_ti(state: str) -> Callable[[AirflowStack, str], None]:
    def mark(stack: AirflowStack, run_id: str) -> None:
        stack.rest.json(
            "PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}", json={"new_state": state}
        )

    return mark


def _fail_dag_run(stack: AirflowStack, run_id: str) -> None:
    stack.rest.json("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}", json={"state": "failed"})


def _fail_and_delete_dag_run(stack: AirflowStack, run_id: str) -> None:
    # Airflow deletes only a dag run that is not running: a person fails it, then deletes it at once,
    # before the reaper's grace period is over. The ledger goes with the run.
    _fail_dag_run(stack, run_id)
    response = stack.rest.delete(f"/dags/{DAG_ID}/dagRuns/{run_id}")
    assert response.status_code == 204, response.text


def _clear(stack: AirflowStack, run_id: str) -> None:
    stack.rest.json(
        "POST",
        f"/dags/{DAG_ID}/clearTaskInstances",
        json={"dag_run_id": run_id, "task_ids": [TASK_ID], "dry_run": False, "only_failed": False},
    )


DECISIONS: dict[str, tuple[str, Callable[[AirflowStack, str], None] | None, str, str]] = {
    # name: (dag, what the person does, the task instance's state after it, the dag run's)
    "mark_failed": (DAG_ID, _mark_ti("failed"), "failed", "failed"),
    "mark_success": (DAG_ID, _mark_ti("success"), "success", "success"),
    "dag_run_failed": (DAG_ID, _fail_dag_run, "failed", "failed"),
    "dagrun_timeout": (TIMEOUT_DAG_ID, None, "skipped", "failed"),
    "clear": (DAG_ID, _clear, "success", "success"),
    # The dag run, its task instance and its ledger are gone: the reaper cancels from its memory.
    "fail_and_delete_dag_run": (DAG_ID, _fail_and_delete_dag_run, "", ""),
}


def test_a_person_ending_a_waiting_task_cancels_its_job_once_within_30_s(
    checkpoint_flavour: FlavouredStack, databricks: FakeDatabricksService
) -> None:
    stack, wait_state = checkpoint_flavour.stack, checkpoint_flavour.wait_state
    stack.add_dag_file(DAG_FILE)
    for dag_id in (DAG_ID, TIMEOUT_DAG_ID):
        stack.wait_for_dag(dag_id)

    # Every task submits its run, then its worker shuts down: the task instance waits to resume.
    runs: dict[str, str] = {}
    jobs: dict[str, int] = {}
    for name, (dag_id, _, _, _) in DECISIONS.items():
        run_id = stack.trigger_dag(dag_id)
        processes = stack.find_task_processes(dag_id, TASK_ID, run_id=run_id, timeout=60)
        jobs[name] = poll_until(
            lambda d=dag_id, r=run_id: (stack.db.task_state_value(d, r, TASK_ID, LEDGER_KEY) or {}).get(
                "external_id"
            ),
            timeout=60,
            describe=lambda n=name: f"{n}: the run to be recorded",
        )
        time.sleep(1.5)  # polling
        os.kill(processes.worker_pid, signal.SIGTERM)
        stack.wait_for_ti_state(dag_id, run_id, TASK_ID, wait_state, timeout=60)
        runs[name] = run_id
    assert all(databricks.state_of(job) == "RUNNING" for job in jobs.values())
    assert databricks.counters["cancel_requests"] == 0

    # A person decides, while no attempt runs (the timeout decides by itself). Not at the very
    # moment of the checkpoint: the reaper must have seen the task instance once (one 5 s sweep) to
    # know its job when a deletion takes the ledger with it.
    time.sleep(6)
    decided_at = {}
    for name, (_, decide, _, _) in DECISIONS.items():
        if decide is not None:
            decide(stack, runs[name])
            decided_at[name] = time.monotonic()

    # Watch every run at once, so each decision's latency is its own; the timeout decides when the
    # scheduler fails its dag run.
    timeout_by = time.monotonic() + DAGRUN_TIMEOUT.total_seconds() + 60
    cancelled_after: dict[str, float] = {}
    while len(cancelled_after) < len(jobs):
        now = time.monotonic()
        if "dagrun_timeout" not in decided_at:
            if stack.db.dag_run_state(TIMEOUT_DAG_ID, runs["dagrun_timeout"]) == "failed":
                decided_at["dagrun_timeout"] = now
            assert now < timeout_by, "dagrun_timeout never failed the dag run"
        for name, job in jobs.items():
            if name not in cancelled_after and databricks.cancellations_of(job) >= 1:
                assert name in decided_at, f"{name}: cancelled before anyone decided"
                cancelled_after[name] = now - decided_at[name]
        late = [n for n in decided_at if n not in cancelled_after and now > decided_at[n] + CANCELLED_WITHIN]
        assert not late, {n: databricks.state_of(jobs[n]) for n in late}
        time.sleep(0.2)
    assert max(cancelled_after.values()) <= CANCELLED_WITHIN, cancelled_after
    sys.stderr.write(
        "\n[person stop] cancelled after: "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in cancelled_after.items())
        + "\n"
    )

    # The cleared task instance started its next generation: a new run, which the test lets finish.
    new_runs = [run for run in databricks.runs() if str(run["run_id"]) not in {str(j) for j in jobs.values()}]
    assert len(new_runs) == 1, new_runs
    databricks.finish(new_runs[0]["run_id"], "SUCCESS")

    for name, (dag_id, _, ti_state, dag_run_state) in DECISIONS.items():
        if name == "fail_and_delete_dag_run":
            assert stack.db.dag_run_state(dag_id, runs[name]) is None, "the dag run was deleted"
            continue
        assert stack.wait_for_dag_run(dag_id, runs[name], timeout=60) == dag_run_state, name
        assert stack.db.task_instance(dag_id, runs[name], TASK_ID).state == ti_state, name
    time.sleep(12)  # two more sweeps of the reaper, and a grace period: nothing more is cancelled
    assert {name: databricks.cancellations_of(job) for name, job in jobs.items()} == dict.fromkeys(jobs, 1), (
        cancelled_after
    )
    assert databricks.cancellations_of(new_runs[0]["run_id"]) == 0
    assert databricks.counters["runs_created"] == len(jobs) + 1

    # The settled ledgers stay in the store for a day; a sweep reads them only while they are new.
    finished = [n for n in DECISIONS if n != "fail_and_delete_dag_run"]

    def all_settled() -> bool | None:
        ledgers = [stack.db.task_state_value(DECISIONS[n][0], runs[n], TASK_ID, LEDGER_KEY) for n in finished]
        unsettled = [
            (ledger.get("reaped") or {}).get("outcome") in (None, "cancelling", "retry") for ledger in ledgers
        ]
        return None if any(unsettled) else True

    poll_until(all_settled, timeout=60, describe="the scheduler's reaper to settle every ledger")
    sweeps = _three_sweeps_ten_minutes_apart(stack)
    assert sweeps[0]["read"] >= len(finished), sweeps  # the first sweep after a start reads the day
    assert sweeps[2]["read"] == 0, sweeps
    assert all(set(sweep) <= {"read", "ignore"} for sweep in sweeps), "settled ledgers are only read"
    assert databricks.counters["cancel_requests"] == len(jobs), (
        "a re-read settled ledger is not cancelled again"
    )


_SWEEPS = """
import json
from datetime import datetime, timezone
from airflow.providers.resumable.job_reaper import WATERMARK_SLACK, JobReaper, ReaperSettings
clock = [datetime.now(tz=timezone.utc)]
reaper = JobReaper(ReaperSettings(), now=lambda: clock[0])
sweeps = []
for _ in range(3):
    counts = reaper.sweep()
    sweeps.append({"read": reaper.rows_read, **counts})
    clock[0] += 2 * WATERMARK_SLACK
print(json.dumps(sweeps))
"""


def _three_sweeps_ten_minutes_apart(stack: AirflowStack) -> list[dict[str, int]]:
    """What each of three sweeps of a fresh reaper read from the stack's database, and did."""
    done = subprocess.run(
        [sys.executable, "-c", _SWEEPS], env=stack.env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
