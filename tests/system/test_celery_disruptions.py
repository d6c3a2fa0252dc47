# Licensed under the Apache License, Version 2.0.
"""
The Celery worker running a resumable task is lost, as a node failure or a pod eviction loses it.

The production flavour of the stack (``celery_stack.py``) runs the drill's Databricks DAG against the
fake workspace, as ``test_celery_stack.py`` does (``retries=1``, so a consumed retry would show). The
worker whose name the task instance carries is disrupted:

- worker host lost: SIGKILL to every process of the worker's tree (the ``celery worker`` main
  process, its pool children, the task's supervisor and its task process, which sits in a process
  group of its own, so killing the worker's group would leave it running). Nothing reports anything:
  the scheduler's task-heartbeat timeout (20 s on the test stack) finds the attempt, the core patch
  checkpoints it and it resumes after the operator's ``resume_after`` on the other worker.
- pod-style termination: SIGTERM to every process of that tree at once (what the kubelet does to a
  pod's processes), SIGKILL to whatever is left after a grace period. The task process turns SIGTERM
  into a checkpoint.
- stale broker message: after a lost host the attempt's message stays unacknowledged in Redis
  (``task_acks_late``). Once it is older than the visibility timeout a surviving worker puts it back
  on the queue and runs the workload again. ``ti_run`` decides what becomes of it: refused while the
  task instance is running (the celery provider raises Celery's ``Ignore``), refused with a failed
  Celery task while it is checkpointed or scheduled (a message the executor no longer watches), and
  accepted while it is queued for the resume: the stale workload is the same try of the same task
  instance, so it runs the attempt and the fresh one is refused. All three were seen; none may start
  a second job or fail the task.

Each: one submission, zero cancellations, no retry (try 1, nothing archived), no job left running,
no process of the lost worker left, the dag run succeeds.

The whole module runs with a 30 s visibility timeout (a module-scoped stack of its own), so a stale
message may be redelivered during the first two tests as well: that is the same promise, and the
third test is the one that waits for it and checks what became of it.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil
import pytest
import redis

from airflow.providers.resumable.drill.naming import DRILL_TASK_ID, drill_dag_id
from airflow.providers.resumable.testing.celery_stack import WORKERS, CeleryAirflowStack
from airflow.providers.resumable.testing.clouds import CloudCounts, FakeDatabricksCloud
from airflow.providers.resumable.testing.stack import poll_until
from airflow.providers.resumable.testing.worker_signals import POD_GRACE_SECONDS, evict_pod, lose_host
from tests.system import test_celery_stack as cold_shutdown
from tests.system.test_celery_stack import (
    FAILURE_STATES,
    JOB_SECONDS,
    _assert_none_left_running,
    _assert_one_run_never_cancelled_success_on_try_1,
    _wait_for_the_running_job,
)

pytestmark = pytest.mark.system

# The same fake workspace and worker restarts as the cold-shutdown tests, on this module's own stack.
databricks = cold_shutdown.databricks
both_workers = cold_shutdown.both_workers

VISIBILITY_TIMEOUT_SECONDS = 30
CELERY_STACK_EXTRA_ENV = {
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": str(VISIBILITY_TIMEOUT_SECONDS),
    # kombu 5.7 sweeps for stale messages every interval x throttle seconds (10 x 10 by default):
    # without these a redelivery could come up to 100 s after the visibility timeout.
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__UNACKED_RESTORE_INTERVAL": "2",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__UNACKED_RESTORE_THROTTLE": "1",
}
HEARTBEAT_TIMEOUT_SECONDS = 20
"""``StackSettings.task_heartbeat_timeout_seconds``: how long a lost attempt goes unnoticed."""
EXECUTING = "Executing workload in Celery"
REFUSED = "Task already running elsewhere, ignoring redelivered message"


@dataclass(frozen=True)
class Disrupted:
    """A run whose worker was disrupted under its task, and what the test saw of it."""

    dag_id: str
    run_id: str
    job: str
    lost_worker: str
    other_worker: str
    celery_task_id: str
    before: CloudCounts
    task_states: list[str | None]
    seconds: dict[str, float]


def _workload_lines(stack: CeleryAirflowStack, worker: str, run_id: str) -> list[tuple[str, str]]:
    """(Celery task id, line) of each workload of ``run_id`` the worker's log says it began to execute."""
    log_path = stack.component_logs / f"{worker}.log"
    if not log_path.exists():
        return []
    started = re.compile(rf"\[([0-9a-f-]{{36}})\] {re.escape(EXECUTING)}")
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        match = started.search(line)
        if match and run_id in line:
            found.append((match.group(1), line))
    return found


def _unacked_celery_task_ids(stack: CeleryAirflowStack) -> set[str]:
    """The Celery task ids of the messages Redis holds as delivered but not acknowledged (kombu's hash)."""
    client = redis.Redis(host="127.0.0.1", port=stack.redis_port, socket_timeout=5)
    try:
        entries = client.hvals("unacked")
    finally:
        client.close()
    return {json.loads(entry)[0]["headers"]["id"] for entry in entries}


def _running_after_checkpoint(states: list[str | None]) -> bool:
    return "checkpointed" in states and "running" in states[states.index("checkpointed") :]


def _lose_host(tree: list[psutil.Process]) -> None:
    lose_host(tree)


def _evict_pod(tree: list[psutil.Process]) -> None:
    commands = {process.pid: " ".join(process.cmdline()[:4]) for process in tree}
    alive = evict_pod(tree, grace_seconds=POD_GRACE_SECONDS)
    sys.stderr.write(
        f"\n[celery pod-style SIGTERM] {len(alive)} of {len(tree)} processes still there after "
        f"{POD_GRACE_SECONDS:.0f}s: {[(pid, commands[pid]) for pid in alive]}\n"
    )


def _disrupt_the_worker_running_the_task(
    stack: CeleryAirflowStack,
    fake: FakeDatabricksCloud,
    disrupt: Callable[[list[psutil.Process]], None],
    *,
    expect_unacked: bool = False,
) -> Disrupted:
    """Trigger the drill DAG, disrupt the worker its task runs on, see it resume and the run succeed."""
    dag_id = drill_dag_id(fake.name)
    before = fake.counts()
    run_id = stack.trigger_dag(dag_id)
    seconds: dict[str, float] = {}

    with stack.record_ti_states(dag_id, run_id) as recorder:
        job, lost_worker = _wait_for_the_running_job(stack, fake, dag_id, run_id)
        [other_worker] = set(WORKERS) - {lost_worker}
        [(celery_task_id, _)] = _workload_lines(stack, lost_worker, run_id)
        tree = stack.worker_processes(lost_worker)
        signalled = time.monotonic()
        disrupt(tree)
        _assert_none_left_running(tree)
        stack.wait_for_worker_exit(lost_worker, timeout=10)
        seconds["tree gone"] = time.monotonic() - signalled
        if expect_unacked:
            # acks_late: the message of a workload that never finished is still Redis's to give back.
            assert celery_task_id in _unacked_celery_task_ids(stack), "the lost attempt's message was acked"
        # From the recorder, not the current state: a SIGTERMed task checkpoints and is running
        # again within seconds, before the lost worker's tree is even gone.
        poll_until(
            lambda: "checkpointed" in recorder.states(DRILL_TASK_ID) or None,
            timeout=HEARTBEAT_TIMEOUT_SECONDS + 60,
            describe=lambda: f"the task to checkpoint (states so far {recorder.states(DRILL_TASK_ID)})",
        )
        seconds["checkpointed seen"] = time.monotonic() - signalled
        assert fake.is_running(job), f"the job was not left going: {fake.job_state(job)}"
        poll_until(
            lambda: _running_after_checkpoint(recorder.states(DRILL_TASK_ID)) or None,
            timeout=120,
            describe=lambda: f"the task to run again (states so far {recorder.states(DRILL_TASK_ID)})",
        )
        seconds["running again seen"] = time.monotonic() - signalled
        stack.wait_for_dag_run(dag_id, run_id, timeout=JOB_SECONDS + 120)
        seconds["run finished"] = time.monotonic() - signalled

    _assert_one_run_never_cancelled_success_on_try_1(stack, fake, before, dag_id, run_id, job)
    running = [run["run_id"] for run in fake.service.runs() if fake.is_running(str(run["run_id"]))]
    assert running == [], f"jobs left running: {running}"
    task_states = recorder.states(DRILL_TASK_ID)
    assert "checkpointed" in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    assert stack.worker_of(dag_id, run_id, DRILL_TASK_ID) == other_worker, "resumed on the other worker"
    return Disrupted(
        dag_id, run_id, job, lost_worker, other_worker, celery_task_id, before, task_states, seconds
    )


def _report(kind: str, disrupted: Disrupted) -> None:
    timings = ", ".join(f"{name} {value:.1f}s" for name, value in disrupted.seconds.items())
    sys.stderr.write(
        f"\n[celery {kind}] {disrupted.lost_worker} -> {disrupted.other_worker}: {timings} "
        f"after the signal; states {disrupted.task_states}\n"
    )


def test_worker_host_lost_the_task_resumes_on_the_other_worker_on_the_same_try(
    both_workers: CeleryAirflowStack, databricks: FakeDatabricksCloud
) -> None:
    disrupted = _disrupt_the_worker_running_the_task(both_workers, databricks, _lose_host)
    _report("host lost", disrupted)


def test_pod_style_sigterm_to_every_process_then_sigkill_resumes_on_the_other_worker_on_the_same_try(
    both_workers: CeleryAirflowStack, databricks: FakeDatabricksCloud
) -> None:
    disrupted = _disrupt_the_worker_running_the_task(both_workers, databricks, _evict_pod)
    _report("pod-style SIGTERM", disrupted)


def test_the_lost_attempts_message_redelivered_after_its_visibility_timeout_runs_no_second_job(
    both_workers: CeleryAirflowStack, databricks: FakeDatabricksCloud
) -> None:
    stack = both_workers
    disrupted = _disrupt_the_worker_running_the_task(stack, databricks, _lose_host, expect_unacked=True)

    def redelivered() -> list[str] | None:
        lines = [
            line
            for celery_id, line in _workload_lines(stack, disrupted.other_worker, disrupted.run_id)
            if celery_id == disrupted.celery_task_id
        ]
        return lines or None

    poll_until(
        redelivered,
        timeout=VISIBILITY_TIMEOUT_SECONDS + 60,
        describe=lambda: f"{disrupted.other_worker} to be given {disrupted.celery_task_id} again",
    )
    poll_until(
        lambda: (disrupted.celery_task_id not in _unacked_celery_task_ids(stack)) or None,
        timeout=60,
        describe=lambda: "the redelivered message to be acknowledged",
    )
    _report("stale message redelivered", disrupted)
    log = (stack.component_logs / f"{disrupted.other_worker}.log").read_text(errors="replace")
    outcome = [line for line in log.splitlines() if disrupted.celery_task_id in line]
    sys.stderr.write("[celery stale message] " + "\n[celery stale message] ".join(outcome) + "\n")
    # The redelivered workload came after its task instance resumed or finished: still one job, no
    # cancellation, no retry, success (checked again now that the stale workload has run).
    _assert_one_run_never_cancelled_success_on_try_1(
        stack, databricks, disrupted.before, disrupted.dag_id, disrupted.run_id, disrupted.job
    )
