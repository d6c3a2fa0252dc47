# Licensed under the Apache License, Version 2.0.
"""
A task that declared itself resumable survives losing its worker; one that did not fails as in 3.3.2.

The worker is lost as a node loss would lose it: its LocalExecutor worker (the supervisor) and its
task process are both SIGKILLed, so nothing reports anything and only the scheduler's task-heartbeat
timeout (20 s on the test stack) notices. With the core patch, the declared task instance goes to
``checkpointed`` instead of failing, keeps its try number, consumes no retry (``retries=0``) and
resumes after the delay it declared (not ``[core] default_checkpoint_resume_after``, 60 s). A resumed
attempt lost before it declared again is forgiven too: the declaration covers its try. Only the
patched stack has this path, so the tests run there only.

Every test runs on both flavours of the stack (``stack``'s parameter): the LocalExecutor on sqlite,
and the production flavour (``make test-celery``: Postgres, Redis, the CeleryExecutor, two workers).
On Celery the supervisor is the pool process running the workload, and a worker is lost as a host
is: SIGKILL to the ``celery worker`` process and its whole tree (the task process sits in a process
group of its own, so a group kill would miss it); the task then resumes on the other worker. A
worker shutdown that reaches a task while it starts is Celery's cold shutdown (SIGQUIT: the pool is
terminated, each supervisor gets SIGTERM); a warm one waits for a plain task, as Celery does.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.testing.celery_disruptions import lose_host
from airflow.providers.resumable.testing.celery_stack import WORKERS, CeleryAirflowStack
from airflow.providers.resumable.testing.stack import AirflowStack, TaskProcesses, poll_until, ti_id_forms
from tests.system.conftest import CELERY
from tests.system.dags.system_slow_start_dags import LOADING_MARKER, SLOW_START_DAG_ID
from tests.system.dags.system_slow_start_dags import TASK_ID as SLOW_START_TASK_ID
from tests.system.dags.system_worker_loss_dags import (
    CONTROL_DAG_ID,
    DECLARED_RESUME_AFTER,
    READY_KEY,
    RESUMABLE_DAG_ID,
    STALE_DAG_ID,
    STALL_DAG_ID,
    TASK_ID,
    release_marker,
)

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        not checkpointed_state_available(),
        reason="worker-loss checkpoints need the core patch: run 'airflow-resumable patch apply' (make patch-venv)",
    ),
]

DAG_FILE = Path(__file__).parent / "dags" / "system_worker_loss_dags.py"
SLOW_START_DAG_FILE = Path(__file__).parent / "dags" / "system_slow_start_dags.py"
WORKER_LOSS_KEY = "airflow.resume_on_worker_loss"
FAILURE_STATES = {"failed", "up_for_retry", "upstream_failed"}


@pytest.fixture(scope="module", params=["local", CELERY])
def deployed(request: pytest.FixtureRequest) -> AirflowStack:
    """The session's stack of the flavour (LocalExecutor or Celery) with this module's DAGs on it."""
    flavoured = request.getfixturevalue(
        "celery_airflow_stack" if request.param == CELERY else "airflow_stack"
    )
    flavoured.add_dag_file(DAG_FILE)
    for dag_id in (RESUMABLE_DAG_ID, CONTROL_DAG_ID, STALE_DAG_ID, STALL_DAG_ID):
        flavoured.wait_for_dag(dag_id)
    return flavoured


@pytest.fixture
def stack(deployed: AirflowStack) -> Iterator[AirflowStack]:
    """The deployed stack; on Celery, a worker a test lost or shut down is started again afterwards."""
    yield deployed
    if isinstance(deployed, CeleryAirflowStack):
        for name in WORKERS:
            if not deployed.worker_running(name):
                deployed.start_worker(name)


@contextlib.contextmanager
def _processes_killed_on_exit(processes: TaskProcesses) -> Iterator[None]:
    """
    Whatever the test does, leave no orphaned task process behind (the stack cannot see it).

    A LocalExecutor worker is killed only while it still runs this task instance (its title names
    it). Once done it waits for the next workload in its queue's ``get()``, holding the queue's read
    lock: SIGKILLed there, it takes the lock with it and every other worker of the executor waits
    forever (found when a loaded CI run made the cleanup come after the worker had gone idle).
    """
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(processes.task_pid, signal.SIGKILL)
        if _may_kill_worker(processes):
            with contextlib.suppress(ProcessLookupError):
                os.kill(processes.worker_pid, signal.SIGKILL)


def _may_kill_worker(processes: TaskProcesses) -> bool:
    """Whether the attempt's worker can be killed without wedging its executor (see above)."""
    try:
        title = " ".join(psutil.Process(processes.worker_pid).cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True
    if "LocalExecutor" not in title:
        return True  # a Celery pool process: Celery replaces it
    return any(form in title for form in ti_id_forms(processes.ti_id))


def _ready_task(stack: AirflowStack, dag_id: str, run_id: str, *, run: int = 1) -> TaskProcesses:
    """The task's processes, once its ``run``-th run says it may be killed."""
    poll_until(
        lambda: (stack.db.task_state_value(dag_id, run_id, TASK_ID, READY_KEY) == run) or None,
        timeout=60 + DECLARED_RESUME_AFTER.total_seconds(),
        describe=lambda: f"{dag_id}.{TASK_ID} (run {run}) to be ready to lose its worker",
    )
    return stack.find_task_processes(dag_id, TASK_ID, run_id=run_id, timeout=60)


def _running_attempt(stack: AirflowStack, dag_id: str, run_id: str) -> tuple[str, int]:
    """The host and task pid the server recorded when the running attempt started."""
    (row,) = stack.db.query(
        "SELECT hostname, pid FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
        (dag_id, run_id, TASK_ID),
    )
    return row["hostname"], row["pid"]


def _lose_the_worker(stack: AirflowStack, processes: TaskProcesses) -> None:
    """
    Lose the worker running the task as a lost node would: nothing of it is left to report.

    LocalExecutor: SIGKILL the worker (supervisor), see that its task outlives it, then SIGKILL the
    task too. Celery: SIGKILL every process of the worker's tree at once (a lost host).

    :param stack: the stack the task runs on.
    :param processes: the task's supervisor and task process.
    """
    if isinstance(stack, CeleryAirflowStack):
        assert processes.worker_name is not None
        tree = stack.worker_processes(processes.worker_name)
        lose_host(stack, processes.worker_name, tree)
        _, alive = psutil.wait_procs(tree, timeout=15)
        assert not alive, f"processes of the lost worker still running: {[p.pid for p in alive]}"
        return
    os.kill(processes.worker_pid, signal.SIGKILL)
    poll_until(
        lambda: (
            not psutil.pid_exists(processes.worker_pid)
            or psutil.Process(processes.worker_pid).status() == psutil.STATUS_ZOMBIE
        ),
        timeout=10,
        describe=lambda: "the worker to die",
    )
    # A SIGKILLed supervisor takes nothing with it: its task process runs on, orphaned, until it
    # next talks to the dead supervisor. A lost node takes both, so the test kills the task as well.
    assert psutil.Process(processes.task_pid).is_running()
    os.kill(processes.task_pid, signal.SIGKILL)


def _audit_events(stack: AirflowStack, dag_id: str, run_id: str) -> list[str]:
    rows = stack.db.query(
        "SELECT event FROM log WHERE dag_id = ? AND run_id = ? AND task_id = ? ORDER BY id",
        (dag_id, run_id, TASK_ID),
    )
    return [row["event"] for row in rows]


def test_a_declared_task_whose_worker_is_lost_is_checkpointed_and_resumes_on_the_same_try(
    stack: AirflowStack,
) -> None:
    dag_id = RESUMABLE_DAG_ID
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        processes = _ready_task(stack, dag_id, run_id)
        # The declaration names this very attempt as the server recorded it: its task process.
        hostname, pid = _running_attempt(stack, dag_id, run_id)
        assert pid == processes.task_pid
        assert stack.db.task_state_value(dag_id, run_id, TASK_ID, WORKER_LOSS_KEY) == {
            "try_number": 1,
            "hostname": hostname,
            "pid": processes.task_pid,
            "resume_after": DECLARED_RESUME_AFTER.total_seconds(),
        }
        with _processes_killed_on_exit(processes):
            _lose_the_worker(stack, processes)
            killed_at = time.time()
            # The 20 s heartbeat timeout, its 2 s detection interval, and slack for a loaded machine.
            stack.wait_for_ti_state(dag_id, run_id, TASK_ID, "checkpointed", timeout=60)
        checkpointed_after = time.time() - killed_at
        final_state = stack.wait_for_dag_run(
            dag_id, run_id, timeout=DECLARED_RESUME_AFTER.total_seconds() + 60
        )

    assert final_state == "success"
    assert checkpointed_after >= 15, "checkpointed before the heartbeat timeout could have passed"
    task_states = recorder.states(TASK_ID)
    assert "checkpointed" in task_states
    assert not FAILURE_STATES & set(task_states), task_states
    assert "failed" not in recorder.dag_run_states()
    # One try throughout, of a task allowed no retries, and nothing archived as a past try.
    assert {change.try_number for change in recorder.history(TASK_ID) if change.state is not None} == {1}
    final_ti = stack.db.task_instance(dag_id, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    assert stack.db.task_history_try_numbers(dag_id, run_id, TASK_ID) == []

    # The task's own diary: a second run on the same try, no sooner than the delay it declared.
    runs = stack.db.task_state_value(dag_id, run_id, TASK_ID, "runs")
    assert [run["try_number"] for run in runs] == [1, 1]
    (reschedule,) = stack.db.task_reschedules(dag_id, run_id, TASK_ID)
    assert reschedule.reschedule_date - reschedule.end_date == DECLARED_RESUME_AFTER
    assert runs[1]["started_at"] >= reschedule.reschedule_date.timestamp()

    # Airflow's own record: a "worker lost" entry, and none of the heartbeat-timeout failure path.
    events = _audit_events(stack, dag_id, run_id)
    assert "worker lost" in events, events
    assert not {"heartbeat timeout", "state mismatch", "failed"} & set(events), events
    # The scheduler told listeners, as a task's own checkpoint does.
    assert stack.checkpoint_listener_calls(dag_id, run_id) == [
        {"dag_id": dag_id, "run_id": run_id, "task_id": TASK_ID, "try_number": 1, "previous_state": "running"}
    ]
    if isinstance(stack, CeleryAirflowStack):
        # The lost worker is gone until the test ends: the resumed attempt ran on the other one.
        assert hostname == processes.worker_name
        [other] = set(WORKERS) - {hostname}
        assert stack.worker_of(dag_id, run_id, TASK_ID) == other


def test_a_declared_task_whose_process_alone_is_sigkilled_is_checkpointed_by_its_supervisor(
    stack: AirflowStack,
) -> None:
    """The OOM killer's usual choice: the task process dies, its supervisor lives and reports."""
    dag_id = RESUMABLE_DAG_ID
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        processes = _ready_task(stack, dag_id, run_id)
        with _processes_killed_on_exit(processes):
            os.kill(processes.task_pid, signal.SIGKILL)
            killed_at = time.time()
            # No heartbeat timeout to wait for: the supervisor reports at once.
            stack.wait_for_ti_state(dag_id, run_id, TASK_ID, "checkpointed", timeout=15)
            checkpointed_after = time.time() - killed_at
            assert psutil.Process(processes.worker_pid).is_running(), "the supervisor survived"
        final_state = stack.wait_for_dag_run(
            dag_id, run_id, timeout=DECLARED_RESUME_AFTER.total_seconds() + 60
        )

    assert final_state == "success"
    assert checkpointed_after < 10, checkpointed_after
    task_states = recorder.states(TASK_ID)
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(dag_id, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    runs = stack.db.task_state_value(dag_id, run_id, TASK_ID, "runs")
    assert [run["try_number"] for run in runs] == [1, 1]
    # Reported through the Execution API's checkpoint branch, with the delay the task declared.
    (reschedule,) = stack.db.task_reschedules(dag_id, run_id, TASK_ID)
    assert reschedule.reschedule_date - reschedule.start_date == DECLARED_RESUME_AFTER
    events = _audit_events(stack, dag_id, run_id)
    assert not {"heartbeat timeout", "state mismatch", "failed", "worker lost"} & set(events), events
    task_log = "\n".join(
        path.read_text() for path in stack.task_logs.glob(f"dag_id={dag_id}/**/*.log") if run_id in str(path)
    )
    assert (
        "the running attempt declared itself resumable (worker loss 1 of at most 10 in this try): "
        "checkpointing instead of failing"
    ) in task_log


def test_an_undeclared_task_whose_worker_is_lost_fails_as_in_stock_airflow(stack: AirflowStack) -> None:
    dag_id = CONTROL_DAG_ID
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        processes = _ready_task(stack, dag_id, run_id)
        assert stack.db.task_state_value(dag_id, run_id, TASK_ID, WORKER_LOSS_KEY) is None
        with _processes_killed_on_exit(processes):
            _lose_the_worker(stack, processes)
            final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=90)

    assert final_state == "failed"
    assert "checkpointed" not in recorder.states(TASK_ID)
    final_ti = stack.db.task_instance(dag_id, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number) == ("failed", 1)
    assert stack.db.task_reschedules(dag_id, run_id, TASK_ID) == []
    assert len(stack.db.task_state_value(dag_id, run_id, TASK_ID, "runs")) == 1
    events = _audit_events(stack, dag_id, run_id)
    assert "heartbeat timeout" in events, events
    assert "worker lost" not in events, events
    assert stack.checkpoint_listener_calls(dag_id, run_id) == []


@pytest.mark.parametrize("second_loss", ["task-process-killed", "worker-lost"])
def test_a_resumed_attempt_lost_before_it_declared_again_is_checkpointed_again_on_the_same_try(
    stack: AirflowStack, second_loss: str
) -> None:
    """
    The first attempt's declaration covers its try: its job exists. The attempt resumed after it,
    lost before it declared again (a drain or a lost host while it still loads its DAG), is
    checkpointed again, not failed: no retry is used (``retries=0``), the try stays 1.

    The second loss is the task process alone (its supervisor reports the checkpoint) or the whole
    worker (the scheduler's heartbeat timeout notices; on Celery the task then resumes on the other
    worker).
    """
    dag_id = STALE_DAG_ID
    run_id = stack.trigger_dag(dag_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        first = _ready_task(stack, dag_id, run_id, run=1)
        with _processes_killed_on_exit(first):
            os.kill(first.task_pid, signal.SIGKILL)
            stack.wait_for_ti_state(dag_id, run_id, TASK_ID, "checkpointed", timeout=15)
        resumed = _ready_task(stack, dag_id, run_id, run=2)
        assert resumed.task_pid != first.task_pid
        # The resumed attempt has not declared: the stored declaration still names the first one.
        assert stack.db.task_state_value(dag_id, run_id, TASK_ID, WORKER_LOSS_KEY)["pid"] == first.task_pid
        with _processes_killed_on_exit(resumed):
            if second_loss == "worker-lost":
                _lose_the_worker(stack, resumed)
            else:
                os.kill(resumed.task_pid, signal.SIGKILL)
            stack.wait_for_ti_state(dag_id, run_id, TASK_ID, "checkpointed", timeout=60)
        final_state = stack.wait_for_dag_run(
            dag_id, run_id, timeout=DECLARED_RESUME_AFTER.total_seconds() + 60
        )

    assert final_state == "success"
    assert recorder.states(TASK_ID).count("checkpointed") == 2
    assert not FAILURE_STATES & set(recorder.states(TASK_ID)), recorder.states(TASK_ID)
    final_ti = stack.db.task_instance(dag_id, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    runs = stack.db.task_state_value(dag_id, run_id, TASK_ID, "runs")
    assert [run["try_number"] for run in runs] == [1, 1, 1]
    # Both resumes waited for the delay the first attempt declared, not the 60 s default (a
    # supervisor's checkpoint stamps its end a few milliseconds before the server adds the delay).
    delays = [r.reschedule_date - r.end_date for r in stack.db.task_reschedules(dag_id, run_id, TASK_ID)]
    assert len(delays) == 2, delays
    assert all(abs(delay - DECLARED_RESUME_AFTER) < timedelta(seconds=1) for delay in delays), delays


def _busy_with(stack: AirflowStack, attempt: TaskProcesses, celery_task_id: str | None) -> bool:
    """
    Whether the attempt's worker still runs (or is frozen in) it.

    LocalExecutor: the worker's title names the task instance while it runs it. Celery: the pool
    process keeps Celery's title, so the attempt's Celery task is running until its worker logs
    that it ended (``... execute_workload[<id>] succeeded in`` or ``raised``).

    :param stack: the stack the attempt ran on.
    :param attempt: the attempt's supervisor and task process.
    :param celery_task_id: the attempt's Celery task id (Celery only).
    """
    if isinstance(stack, CeleryAirflowStack):
        assert attempt.worker_name is not None
        assert celery_task_id is not None
        log = (stack.component_logs / f"{attempt.worker_name}.log").read_text(errors="replace")
        ended = re.compile(rf"\[{re.escape(celery_task_id)}\] (succeeded in|raised|ignored)")
        return not ended.search(log)
    try:
        title = " ".join(psutil.Process(attempt.worker_pid).cmdline())
    except psutil.NoSuchProcess:
        return False
    return attempt.ti_id in title or attempt.ti_id.replace("-", "") in title


def _celery_task_id(stack: AirflowStack, dag_id: str, run_id: str) -> str | None:
    """The Celery task id of the running attempt (None on the LocalExecutor, which has none).

    :param stack: the stack the attempt runs on.
    :param dag_id: the attempt's DAG.
    :param run_id: its run.
    """
    if not isinstance(stack, CeleryAirflowStack):
        return None
    (row,) = stack.db.query(
        "SELECT external_executor_id FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ?",
        (dag_id, run_id, TASK_ID),
    )
    return str(row["external_executor_id"])


def _task_log_text(stack: AirflowStack, dag_id: str) -> str:
    return "\n".join(
        path.read_text(errors="replace")
        for path in (stack.home / "logs").rglob("*.log")
        if f"dag_id={dag_id}" in str(path)
    )


def test_a_frozen_attempt_that_thaws_after_its_task_resumed_elsewhere_changes_nothing(
    stack: AirflowStack,
) -> None:
    """
    Worker and task frozen (SIGSTOP: a paused VM, a cgroup freeze) past the heartbeat timeout.

    The scheduler checkpoints the declared task instance, it resumes in another worker (same task
    instance id, same try), and only then does the frozen attempt thaw. It must change nothing: its
    success report is refused as a stale attempt's, and its executor's "finished" event concerns an
    attempt that is no longer the task instance's.
    """
    dag_id = STALL_DAG_ID
    run_id = stack.trigger_dag(dag_id)
    release = release_marker(stack.home, run_id)

    with stack.record_ti_states(dag_id, run_id) as recorder:
        frozen = _ready_task(stack, dag_id, run_id, run=1)
        frozen_celery_task = _celery_task_id(stack, dag_id, run_id)
        with _processes_killed_on_exit(frozen):
            for pid in (frozen.task_pid, frozen.worker_pid):
                os.kill(pid, signal.SIGSTOP)
            try:
                # The 20 s heartbeat timeout, the declared 12 s resume, and slack for a loaded machine.
                stack.wait_for_ti_state(dag_id, run_id, TASK_ID, "checkpointed", timeout=60)
                poll_until(
                    lambda: (stack.db.task_state_value(dag_id, run_id, TASK_ID, READY_KEY) == 2) or None,
                    timeout=60 + DECLARED_RESUME_AFTER.total_seconds(),
                    describe=lambda: "the resumed attempt to run",
                )
                _, live_pid = _running_attempt(stack, dag_id, run_id)
                assert live_pid != frozen.task_pid
            finally:
                # The task first: it reports its success while its supervisor is still frozen, so
                # the supervisor forwards that report before its own heartbeat could learn that
                # another attempt runs (as when a thawed poll finds the job done at once).
                with contextlib.suppress(ProcessLookupError):
                    os.kill(frozen.task_pid, signal.SIGCONT)
                time.sleep(3)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(frozen.worker_pid, signal.SIGCONT)
            # The thawed attempt reports success, is refused, and its worker moves on.
            poll_until(
                lambda: (not _busy_with(stack, frozen, frozen_celery_task)) or None,
                timeout=60,
                describe=lambda: "the thawed worker to finish with its stale attempt",
            )
            # Its executor event has reached the scheduler by now; give it a few loops.
            time.sleep(5)
            during = stack.db.task_instance(dag_id, run_id, TASK_ID)
            assert (during.state, _running_attempt(stack, dag_id, run_id)[1]) == ("running", live_pid)
        release.touch()
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=60)

    assert final_state == "success"
    task_states = recorder.states(TASK_ID)
    assert task_states.count("checkpointed") == 1, task_states
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(dag_id, run_id, TASK_ID)
    assert (final_ti.state, final_ti.try_number) == ("success", 1)
    # Checkpointed once (the worker loss), not again for the thawed attempt's report or its event.
    assert len(stack.db.task_reschedules(dag_id, run_id, TASK_ID)) == 1
    runs = stack.db.task_state_value(dag_id, run_id, TASK_ID, "runs")
    assert [run["pid"] for run in runs] == [frozen.task_pid, live_pid]
    events = _audit_events(stack, dag_id, run_id)
    assert events.count("worker lost") == 1, events
    assert not {"state mismatch", "heartbeat timeout", "failed"} & set(events), events
    # The frozen attempt did report its success, and its supervisor stood down when it was refused.
    log_text = _task_log_text(stack, dag_id)
    assert "its success must not reach the task instance" in log_text
    assert "this attempt stands down without reporting a state" in log_text


def _shut_the_worker_down(stack: AirflowStack, processes: TaskProcesses) -> None:
    """
    A deploy tells the task's worker to shut down, in the way that reaches a task that is starting.

    LocalExecutor: SIGTERM to its worker (the supervisor). Celery: a cold shutdown (SIGQUIT to the
    ``celery worker`` process), which terminates the pool, so the supervisor gets SIGTERM; a warm
    shutdown would wait for a plain task, as Celery does (test_celery_stack.py).

    :param stack: the stack the task runs on.
    :param processes: the task's supervisor and task process.
    """
    if isinstance(stack, CeleryAirflowStack):
        assert processes.worker_name is not None
        os.kill(stack.worker_pid(processes.worker_name), signal.SIGQUIT)
    else:
        os.kill(processes.worker_pid, signal.SIGTERM)


def test_a_task_the_worker_shutdown_stops_while_it_starts_is_checkpointed_not_failed(
    stack: AirflowStack,
) -> None:
    """Any task: before the task runner takes SIGTERM over, nothing of the task has run."""
    stack.add_dag_file(SLOW_START_DAG_FILE)
    stack.wait_for_dag(SLOW_START_DAG_ID)
    marker = stack.home / LOADING_MARKER
    marker.unlink(missing_ok=True)
    run_id = stack.trigger_dag(SLOW_START_DAG_ID)

    with stack.record_ti_states(SLOW_START_DAG_ID, run_id) as recorder:
        poll_until(
            lambda: marker.exists() or None, timeout=60, describe=lambda: "the task process to load its DAG"
        )
        processes = stack.find_task_processes(
            SLOW_START_DAG_ID, SLOW_START_TASK_ID, run_id=run_id, timeout=30
        )
        assert int(marker.read_text()) == processes.task_pid, "the loading process is the task process"
        with _processes_killed_on_exit(processes):
            _shut_the_worker_down(stack, processes)
            stack.wait_for_ti_state(SLOW_START_DAG_ID, run_id, SLOW_START_TASK_ID, "checkpointed", timeout=20)
        final_state = stack.wait_for_dag_run(SLOW_START_DAG_ID, run_id, timeout=120)

    assert final_state == "success"
    task_states = recorder.states(SLOW_START_TASK_ID)
    assert not FAILURE_STATES & set(task_states), task_states
    final_ti = stack.db.task_instance(SLOW_START_DAG_ID, run_id, SLOW_START_TASK_ID)
    assert (final_ti.state, final_ti.try_number, final_ti.max_tries) == ("success", 1, 0)
    assert stack.db.task_history_try_numbers(SLOW_START_DAG_ID, run_id, SLOW_START_TASK_ID) == []
    # Counted against the try's worker losses, so repeated shutdowns cannot postpone it forever.
    counted = stack.db.task_state_value(
        SLOW_START_DAG_ID, run_id, SLOW_START_TASK_ID, "airflow.worker_loss_checkpoints"
    )
    assert counted == {"try_number": 1, "count": 1}
    # A plain task declares no delay: the server's [core] default_checkpoint_resume_after (60 s).
    (reschedule,) = stack.db.task_reschedules(SLOW_START_DAG_ID, run_id, SLOW_START_TASK_ID)
    assert reschedule.reschedule_date - reschedule.start_date == timedelta(seconds=60)
