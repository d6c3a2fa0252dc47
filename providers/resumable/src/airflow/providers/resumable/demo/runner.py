# Licensed under the Apache License, Version 2.0.
"""
The demo, start to finish: stack up, DAG triggered, workers shut down mid-run, the story told live.

Everything runs on this machine: a real Airflow stack (scheduler, API server, dag processor,
LocalExecutor, sqlite; all on 127.0.0.1) from this interpreter's venv, and one fake cloud per
resumable task. With ``executor="celery"`` the stack is the production flavour (Postgres, a Redis
broker, two Celery workers, the drain-aware configuration line): the tasks start on ``worker-a``,
which is then drained (SIGTERM, a warm shutdown), and they resume on ``worker-b``. Every process the demo starts is stopped by PID when it ends, Ctrl-C included.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TextIO

import airflow.providers.resumable.example_dags as example_dags
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
from airflow.providers.resumable.testing.clouds import CloudCounts, FakeCloud, demo_clouds
from airflow.providers.resumable.testing.stack import (
    EXECUTORS,
    AirflowStack,
    StackSettings,
    TaskInstanceRow,
    leave_home,
)

DRAINED_WORKER, OTHER_WORKER = "worker-a", "worker-b"

DAG_ID = "example_resumable_demo"
DAG_FILE = Path(example_dags.__path__[0]) / f"{DAG_ID}.py"
QUIET_SECONDS = 5.0
"""Say something at least this often, so the demo never looks hung."""


class Narrator:
    """Timestamped lines, and a reminder of what is being waited for whenever it goes quiet."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        self._last_said = self.started
        self._waiting_for: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="demo-narrator", daemon=True)
        self._ticker.start()

    def say(self, topic: str, message: str) -> None:
        with self._lock:
            now = time.monotonic()
            self.out.write(f"[{now - self.started:6.1f}s] {topic:<11} {message}\n")
            self.out.flush()
            self._last_said = now

    def waiting_for(self, what: str | None) -> None:
        """What the next silence is about (``None``: nothing worth a reminder)."""
        self._waiting_for = what

    def close(self) -> None:
        self._stop.set()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self._waiting_for and time.monotonic() - self._last_said >= QUIET_SECONDS:
                self.say("...", f"still waiting for {self._waiting_for}")


@dataclass
class TaskStory:
    """What the demo observed about one cloud's task."""

    cloud: FakeCloud
    states: list[str] = field(default_factory=list)
    job_before: str | None = None
    job_after: str | None = None
    worker_pid: int | None = None
    try_number: int = 0
    decisions_seen: int = 0
    job_state: str | None = None


def run_demo(
    *, keep_running: bool = False, out: TextIO = sys.stdout, deferrable: bool = False, executor: str = "local"
) -> int:
    """
    Run the demo and print its story; return 0 when every cloud shows the exactly-once outcome.

    The stack's Airflow home is removed at the end, unless the demo did not go as designed or stopped
    on an error: then it is kept, with every component's and task's log, and its path printed.

    :param keep_running: leave the stack and the fakes up after the summary until Ctrl-C.
    :param out: where the story goes.
    :param deferrable: run the tasks deferrable (``[operators] default_deferrable``, as a deployment
        would set it; the DAG is unchanged) with a triggerer, and restart the triggerer (a redeploy)
        instead of shutting workers down while the jobs run.
    :param executor: ``"local"`` (LocalExecutor, sqlite) or ``"celery"`` (CeleryExecutor, Postgres,
        Redis; not with ``deferrable``).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if executor == "celery" and deferrable:
        raise ValueError("--deferrable runs on the LocalExecutor only")
    narrator = Narrator(out)
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    home = Path(tempfile.mkdtemp(prefix="airflow-resumable-demo-"))
    verdict: bool | None = None  # the summary's, once there is one
    interrupted = False
    try:
        with ExitStack() as cleanup:
            cleanup.callback(narrator.say, "demo", "stopped every process it started")
            # The stack first: its components are forked from this process, and a fork while the
            # Dataproc fake's gRPC threads run can abort the child (seen: the dag processor died
            # with SIGABRT, "epoll_wait error: Bad file descriptor").
            stack = _start_stack(narrator, cleanup, home, deferrable=deferrable, executor=executor)
            stories = _start_clouds(narrator, cleanup)
            _connect_and_deploy(narrator, stack, stories)
            if isinstance(stack, CeleryAirflowStack):
                # One worker takes the tasks, so draining it moves all of them to the other.
                stack.stop_worker(OTHER_WORKER)
                narrator.say(
                    "worker",
                    f"{OTHER_WORKER} stopped until the jobs run: every task starts on {DRAINED_WORKER}",
                )
            run_id = stack.trigger_dag(DAG_ID)
            narrator.say("dag", f"triggered {DAG_ID}, run {run_id}")
            final_state = _watch(narrator, stack, run_id, stories, deferrable=deferrable)
            verdict = _summarise(narrator, stories, final_state, deferrable=deferrable)
            if keep_running:
                narrator.waiting_for(None)
                narrator.say(
                    "demo", f"--keep-running: the stack stays up at {stack.base_url}; Ctrl-C to stop"
                )
                while True:
                    time.sleep(3600)
        return 0 if verdict else 1
    except KeyboardInterrupt:
        interrupted = True
        narrator.say("demo", "interrupted")
        return 130
    finally:
        # Kept after a failed summary or an error: its logs are what there is to read then. Removed
        # otherwise, so that demos run again and again leave nothing behind.
        leave_home(
            home,
            keep=not (verdict or (interrupted and verdict is None)),
            say=lambda message: narrator.say("demo", message),
        )
        narrator.close()
        signal.signal(signal.SIGTERM, previous_sigterm)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _start_clouds(narrator: Narrator, cleanup: ExitStack) -> list[TaskStory]:
    stories = []
    for cloud in demo_clouds():
        cloud.start()
        cleanup.callback(cloud.stop)
        narrator.say(cloud.name, f"fake started on {cloud.address}")
        stories.append(TaskStory(cloud))
    return stories


def _start_stack(
    narrator: Narrator, cleanup: ExitStack, home: Path, *, deferrable: bool, executor: str
) -> AirflowStack:
    components = "scheduler, API server, dag processor" + (", triggerer" if deferrable else "")
    flavour = (
        f"CeleryExecutor with {' and '.join((DRAINED_WORKER, OTHER_WORKER))}, Postgres, Redis"
        if executor == "celery"
        else "LocalExecutor, sqlite"
    )
    narrator.say("stack", f"starting Airflow ({components}; {flavour}) in {home}")
    narrator.waiting_for("Airflow to start (database migration, then its components)")
    # Deferrable the way a deployment makes it: [operators] default_deferrable, the DAG unchanged.
    settings = (
        StackSettings(triggerers=1, extra_env={"AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True"})
        if deferrable
        else StackSettings()
    )
    stack = (
        # Every task on one worker at once (the default is 2 slots per worker), so one drain moves them all.
        CeleryAirflowStack(home, settings, worker_concurrency=len(demo_clouds()))
        if executor == "celery"
        else AirflowStack(home, settings, python=Path(sys.executable))
    )
    cleanup.callback(stack.stop)
    stack.start()
    phases = ", ".join(f"{name} {seconds:.0f}s" for name, seconds in stack.startup_phases.items())
    narrator.say("stack", f"up in {phases}")
    user, password = stack.login
    narrator.say("stack", f"UI: {stack.base_url}  login: {user} / {password}")
    return stack


def _connect_and_deploy(narrator: Narrator, stack: AirflowStack, stories: list[TaskStory]) -> None:
    for story in stories:
        connection = story.cloud.connection()
        response = stack.rest.post("/connections", json=connection)
        response.raise_for_status()
        narrator.say(story.cloud.name, f"connection {connection['connection_id']!r} points at the fake")
    narrator.waiting_for(f"the dag processor to parse {DAG_ID}")
    stack.add_dag_file(DAG_FILE)
    stack.wait_for_dag(DAG_ID)
    narrator.say("dag", f"{DAG_ID} parsed: " + ", ".join(s.cloud.task_id for s in stories))


def _watch(
    narrator: Narrator, stack: AirflowStack, run_id: str, stories: list[TaskStory], *, deferrable: bool
) -> str:
    """Follow the run to its end; shut down the workers (or restart the triggerer) once every job runs."""
    counts: dict[str, CloudCounts] = {}
    disrupted = False
    deadline = time.monotonic() + 300
    narrator.waiting_for("the tasks to start and submit their jobs")
    while time.monotonic() < deadline:
        # The run's state before its tasks': a run ends after its tasks, so once it has ended the rows
        # read below are final. Read after them, the run could end on a pass that still saw a task
        # running, and that task's story would miss its end.
        state = stack.db.dag_run_state(DAG_ID, run_id)
        rows = stack.db.task_instances(DAG_ID, run_id)
        for story in stories:
            name, row = story.cloud.name, rows.get(story.cloud.task_id)
            if row is not None and row.state and (not story.states or story.states[-1] != row.state):
                story.states.append(row.state)
                story.try_number = row.try_number
                narrator.say(name, f"task {story.cloud.task_id}: {row.state} (try {row.try_number})")
            now = story.cloud.counts()
            if now != counts.get(name) and (name in counts or now.submissions or now.cancellations):
                counts[name] = now
                narrator.say(
                    name, f"fake saw {now.submissions} submission(s), {now.cancellations} cancellation(s)"
                )
            ledger = stack.db.task_state_value(DAG_ID, run_id, story.cloud.task_id, LEDGER_KEY)
            job = (ledger or {}).get("external_id")
            if job and story.job_before is None:
                story.job_before = job
                narrator.say(
                    name, f"job {job} recorded in the ledger (key {ledger['nonce']}-{ledger['generation']})"
                )
            story.job_after = job or story.job_after
            if job and (job_state := story.cloud.job_state(job)) != story.job_state:
                story.job_state = job_state
                narrator.say(name, f"job {job} is {job_state} in the fake cloud")
            for decision in _new_decisions(stack, run_id, story):
                narrator.say(name, f"operator log: {decision}")
        if not disrupted and all(_polling_its_job(s, rows, deferrable=deferrable) for s in stories):
            if deferrable:
                _restart_triggerer(narrator, stack, stories)
                narrator.waiting_for("the new triggerer to take the triggers over and the jobs to finish")
            elif isinstance(stack, CeleryAirflowStack):
                _drain_celery_worker(narrator, stack, stories)
                narrator.waiting_for(
                    "the checkpointed tasks to resume on the other worker (resume_after: 10 s)"
                )
            else:
                _shut_down_workers(narrator, stack, run_id, stories)
                narrator.waiting_for("the checkpointed tasks to resume (resume_after: 10 s)")
            disrupted = True
        elif disrupted and all(s.states[-1:] == ["running"] and "running" in s.states[:-1] for s in stories):
            narrator.waiting_for("the remote jobs to finish; the resumed tasks are polling them")
        if state in ("success", "failed"):
            narrator.waiting_for(None)
            narrator.say("dag", f"run {run_id} ended: {state}")
            return state
        time.sleep(0.3)
    narrator.say("dag", "the run did not finish within 300 s")
    return "timed out"


def _polling_its_job(story: TaskStory, rows: dict[str, TaskInstanceRow], *, deferrable: bool) -> bool:
    row = rows.get(story.cloud.task_id)
    return (
        row is not None
        and row.state == ("deferred" if deferrable else "running")
        and story.job_before is not None
        and story.cloud.job_state(story.job_before) == "RUNNING"
    )


def _shut_down_workers(
    narrator: Narrator, stack: AirflowStack, run_id: str, stories: list[TaskStory]
) -> None:
    for story in stories:
        processes = stack.find_task_processes(DAG_ID, story.cloud.task_id, run_id=run_id)
        story.worker_pid = processes.worker_pid
        narrator.say(
            "worker",
            f"SIGTERM to the LocalExecutor worker of {story.cloud.task_id} (pid {processes.worker_pid}): "
            f"a worker shutdown while job {story.job_before} runs",
        )
        # What Kubernetes does on eviction or a deploy: SIGTERM to the worker process.
        os.kill(processes.worker_pid, signal.SIGTERM)


def _drain_celery_worker(narrator: Narrator, stack: CeleryAirflowStack, stories: list[TaskStory]) -> None:
    """What a deploy does to a Celery worker: start its replacement, then SIGTERM it (a warm shutdown)."""
    stack.start_worker(OTHER_WORKER)
    narrator.say("worker", f"{OTHER_WORKER} started")
    jobs = ", ".join(str(story.job_before) for story in stories)
    narrator.say(
        "worker",
        f"SIGTERM to {DRAINED_WORKER} (pid {stack.worker_pid(DRAINED_WORKER)}): a drain while jobs {jobs} run",
    )
    signalled = time.monotonic()
    os.kill(stack.worker_pid(DRAINED_WORKER), signal.SIGTERM)
    narrator.waiting_for(f"{DRAINED_WORKER} to drain")
    stack.wait_for_worker_exit(DRAINED_WORKER, timeout=300)
    narrator.say(
        "worker",
        f"{DRAINED_WORKER} exited {time.monotonic() - signalled:.1f}s after SIGTERM: its resumable tasks "
        "checkpointed instead of holding the drain",
    )


def _restart_triggerer(narrator: Narrator, stack: AirflowStack, stories: list[TaskStory]) -> None:
    """A redeploy of the triggerer while every job runs: SIGTERM it, then start a new one."""
    jobs = ", ".join(str(story.job_before) for story in stories)
    for name in stack.live_triggerers():
        narrator.say("triggerer", f"SIGTERM to the triggerer ({name}): a redeploy while jobs {jobs} run")
        stack.signal_triggerer(name, signal.SIGTERM, whole_group=False)
        stack.wait_for_triggerer_exit(name)
    narrator.waiting_for("a new triggerer to start")
    name = stack.start_triggerer()
    narrator.say("triggerer", f"{name} started; it picks the triggers up from the database and polls on")


def _new_decisions(stack: AirflowStack, run_id: str, story: TaskStory) -> list[str]:
    """Lines the operator logged about its decisions and checkpoints, not yet narrated."""
    pattern = f"dag_id={DAG_ID}/run_id={run_id}/task_id={story.cloud.task_id}/attempt=*.log"
    lines: list[str] = []
    for log_file in sorted(stack.task_logs.glob(pattern)):
        for raw in log_file.read_text(errors="replace").splitlines():
            try:
                event = str(json.loads(raw).get("event", ""))
            except (json.JSONDecodeError, AttributeError):
                continue
            if event.startswith(
                ("Decision ", "Worker shutdown", "Cancelled", "Checkpointing task", "Deferring")
            ):
                lines.append(event)
    fresh = lines[story.decisions_seen :]
    story.decisions_seen = len(lines)
    return fresh


def _summarise(narrator: Narrator, stories: list[TaskStory], final_state: str, *, deferrable: bool) -> bool:
    header = (
        "cloud",
        "submissions",
        "cancellations",
        "run id before",
        "run id after",
        "retries used",
        "states",
    )
    rows = []
    ok = final_state == "success"
    for story in stories:
        counts = story.cloud.counts()
        retries = max(0, story.try_number - 1)
        # Deferred while the triggerer was restarted, or checkpointed when the worker was shut down.
        paused = ("deferred",) if deferrable else ("checkpointed", "up_for_reschedule")
        checkpointed = any(s in paused for s in story.states)
        ok &= (
            counts.submissions == 1
            and counts.cancellations == 0
            and story.job_before == story.job_after
            and retries == 0
            and checkpointed
            and story.states[-1:] == ["success"]
        )
        rows.append(
            (
                story.cloud.name,
                str(counts.submissions),
                str(counts.cancellations),
                str(story.job_before),
                str(story.job_after),
                str(retries),
                " -> ".join(story.states),
            )
        )
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in (header, *rows)
    ]
    narrator.say("summary", "")
    for line in (lines[0], "  ".join("-" * w for w in widths), *lines[1:]):
        narrator.out.write(f"    {line.rstrip()}\n")
    verdict = (
        "every job was submitted once, never cancelled, kept its id across the "
        + ("triggerer restart" if deferrable else "shutdown")
        + ", and no retry was used"
        if ok
        else "something did not go as designed: see the lines above"
    )
    narrator.say("summary", verdict)
    return ok
