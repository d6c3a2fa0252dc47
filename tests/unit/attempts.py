# Licensed under the Apache License, Version 2.0.
"""
Run one attempt of a resumable operator in a real child process, as Airflow's task runner would.

The child calls Airflow's own ``_run_execute_callable`` (the runner's execute + execution_timeout
path) and installs the runner's SIGTERM behaviour (call ``on_kill()`` and return), so a test can
SIGTERM or SIGKILL a real process at a real moment. Two small stand-ins replace what only a full
Airflow stack provides (the system tests run that): a task state store kept in a JSON file, so it
survives the process like the real one survives the attempt, and a task instance whose "what does
the server say my state is" answer the test controls through a file.

Attempts start from a fork server that has imported Airflow's task runner and the operators once,
as Airflow's own supervisor forks a task from a process that has imported them: a fresh interpreter
per attempt spent about 3 s of a core on imports alone, and the suite starts hundreds. The fork
server is a clean interpreter of its own, so the fakes' threads in the test process are never
forked. What a forked child would otherwise inherit from the fork server instead of the test, its
environment and its standard streams, is set per attempt: the test's environment at ``start()``,
and the output kept in the attempt's directory and replayed to the test's stderr when it is joined
(where ``capfd`` sees it).
"""

from __future__ import annotations

import functools
import importlib
import json
import multiprocessing
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

DAG_ID = "resumable_unit"
RUN_ID = "manual__2026-11-23T00:00:00+00:00"
TASK_ID = "long_job"


class JsonFileTaskStateStore:
    """A task state store (get/set/delete) kept in one JSON file, written atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, Any]:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self._read().get(key, default)

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None:
        # Nothing here expires; test_ledger_retention checks what the real accessor is told.
        data = self._read()
        data[key] = value
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)

    def delete(self, key: str) -> None:
        data = self._read()
        data.pop(key, None)
        self.path.write_text(json.dumps(data))


@dataclass
class StandaloneTaskInstance:
    """The task-instance facts the operator reads, and the server's view of its state from a file."""

    workdir: Path
    max_tries: int = 0
    try_number: int = 1
    dag_id: str = DAG_ID
    run_id: str = RUN_ID
    task_id: str = TASK_ID
    map_index: int = -1
    xcoms: dict[str, Any] = field(default_factory=dict)
    stats_tags: dict[str, str] = field(default_factory=dict)  # read by upstream's ResumableJobMixin

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def get_task_states(self, *, dag_id: str, task_ids: list[str], run_ids: list[str], map_index: int | None):
        slow = self.workdir / "server_delay"
        if slow.exists():  # a loaded API server, slow to say why the task was stopped
            time.sleep(float(slow.read_text()))
        state = (self.workdir / "server_state").read_text().strip()
        return {self.run_id: {self.task_id: None if state == "none" else state}}


DEFAULT_OPERATOR = "airflow.providers.resumable.operators.fake_job:FakeJobSubmitOperator"


@dataclass
class AttemptSpec:
    """
    What one attempt runs: the operator and its arguments, and the task instance's facts.

    ``operator`` is an importable ``"module:callable"`` (a class or a factory) called with
    ``task_id`` and ``operator_kwargs``; the default, the fake job operator, also gets ``endpoint``
    and ``job``. A path, not a callable, because the spec crosses into a spawned process.
    """

    workdir: Path
    endpoint: str = ""
    job: dict[str, Any] = field(default_factory=dict)
    operator_kwargs: dict[str, Any] = field(default_factory=dict)
    max_tries: int = 0
    try_number: int = 1
    operator: str = DEFAULT_OPERATOR
    resume: tuple[str, dict[str, Any]] | None = None
    """Resume a deferred task instead of executing it: Airflow's ``next_method`` and ``next_kwargs``
    (``("execute_complete", {"event": payload})``, or ``("__fail__", {...})`` for a crashed trigger)."""

    def build_operator(self) -> Any:
        module_name, _, attribute = self.operator.partition(":")
        factory = getattr(importlib.import_module(module_name), attribute)
        if self.operator == DEFAULT_OPERATOR:
            return factory(task_id=TASK_ID, endpoint=self.endpoint, job=self.job, **self.operator_kwargs)
        return factory(task_id=TASK_ID, **self.operator_kwargs)


def _outcome_of(error: BaseException | None) -> str:
    if error is None:
        return "success"
    name = type(error).__name__
    return {
        "AirflowTaskCheckpointed": "checkpointed",
        "AirflowRescheduleException": "rescheduled",
        "AirflowFailException": "failed_no_retry",
        "AirflowTaskTimeout": "timed_out",
        "TaskDeferred": "deferred",
    }.get(name, "failed")


def run_attempt(spec: AttemptSpec) -> dict[str, Any]:
    """Run one attempt in this process and return (and record) how it ended."""
    from airflow.sdk.execution_time.task_runner import _run_execute_callable

    ti = StandaloneTaskInstance(spec.workdir, max_tries=spec.max_tries, try_number=spec.try_number)
    operator = spec.build_operator()
    context: dict[str, Any] = {
        "ti": ti,
        "task_state_store": JsonFileTaskStateStore(spec.workdir / "state_store.json"),
    }

    # Airflow's task runner: SIGTERM calls on_kill() and returns; the task keeps running.
    signal.signal(signal.SIGTERM, lambda signum, frame: operator.on_kill())
    (spec.workdir / "pid").write_text(str(os.getpid()))
    error: BaseException | None = None
    result: Any = None
    execute = operator.execute
    if spec.resume is not None:
        # As the task runner resumes a deferred task: resume_execution with the stored method.
        execute = functools.partial(
            operator.resume_execution, next_method=spec.resume[0], next_kwargs=spec.resume[1]
        )
    try:
        result = _run_execute_callable(context, execute, operator)  # type: ignore[arg-type]
    except BaseException as err:
        error = err
    outcome = {
        "outcome": _outcome_of(error),
        "error": f"{type(error).__name__}: {error}" if error else None,
        "result": result,
        "xcoms": ti.xcoms,
        # CLOCK_MONOTONIC is system-wide, so the test compares it with its own: what counts against
        # the SIGKILL window is the attempt's report, not the interpreter's teardown after it.
        "reported_at": time.monotonic(),
        # A deferral: the trigger as the task runner sends it to the server (class path, kwargs).
        "trigger": list(error.trigger.serialize()) if hasattr(error, "trigger") else None,
        "defer_timeout": getattr(error, "timeout", None) if hasattr(error, "trigger") else None,
        "defer_kwargs": getattr(error, "kwargs", None) if hasattr(error, "trigger") else None,
    }
    (spec.workdir / "outcome.json").write_text(json.dumps(outcome, default=str))
    return outcome


_PRELOADED = (
    "airflow.sdk.execution_time.task_runner",
    "airflow.providers.resumable.operators.databricks",
    "airflow.providers.resumable.operators.dataproc",
    "airflow.providers.resumable.operators.emr",
    "airflow.providers.resumable.operators.fake_job",
)
"""What the fork server imports once (a module that fails to import is skipped, as multiprocessing does)."""


@functools.cache
def _attempt_context() -> Any:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(_PRELOADED))
    return context


def _child_main(spec: AttemptSpec, environ: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environ)
    output = os.open(spec.workdir / "attempt.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(output, 1)
    os.dup2(output, 2)
    run_attempt(spec)


class AttemptProcess:
    """One attempt in a child process forked from the attempt fork server."""

    def __init__(self, spec: AttemptSpec) -> None:
        self.spec = spec
        for stale in ("outcome.json", "pid", "attempt.log"):
            (spec.workdir / stale).unlink(missing_ok=True)
        self._process: Any = None
        self._replayed = False

    def start(self) -> AttemptProcess:
        self._process = _attempt_context().Process(target=_child_main, args=(self.spec, dict(os.environ)))
        self._process.start()
        return self

    def _replay_output(self) -> None:
        """The attempt's output on this process's stderr, once (as a spawned child's would have been)."""
        path = self.spec.workdir / "attempt.log"
        if self._replayed or not path.exists():
            return
        self._replayed = True
        os.write(2, path.read_bytes())

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def wait_until_started(self, timeout: float = 60) -> None:
        """Wait until the child has imported Airflow and entered the operator."""
        deadline = time.monotonic() + timeout
        while not (self.spec.workdir / "pid").exists():
            if time.monotonic() > deadline or not self._process.is_alive():
                raise AssertionError("the attempt process did not start")
            time.sleep(0.05)

    def signal(self, signum: int) -> None:
        os.kill(self.pid, signum)

    def join(self, timeout: float = 60) -> dict[str, Any] | None:
        """Wait for the child to exit; its outcome, or ``None`` if it died without recording one."""
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            raise AssertionError(f"the attempt did not finish within {timeout}s")
        self._replay_output()
        path = self.spec.workdir / "outcome.json"
        return json.loads(path.read_text()) if path.exists() else None

    @property
    def exitcode(self) -> int | None:
        return self._process.exitcode


def wait_for(predicate: Any, *, timeout: float = 30, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


SIGKILL_WINDOW = 5.0
"""The supervisor SIGKILLs the task 5 s after the SIGTERM it sends on a person's decision."""


def stop_by_a_person(attempt: AttemptProcess, spec: AttemptSpec, *, timeout: float = 60) -> tuple[Any, float]:
    """
    Mark the task failed (as the server would then say), SIGTERM the attempt; its outcome and how
    long after the SIGTERM the attempt reported it.

    The report is what must beat the SIGKILL: Airflow's task runner sends the final state to the
    supervisor before the interpreter tears down (gRPC channels, threads), and a SIGKILL during the
    teardown loses nothing. On a loaded 2-core machine that teardown alone can take 2 s.
    """
    (spec.workdir / "server_state").write_text("failed")
    signalled = time.monotonic()
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=timeout)
    if outcome is None:
        return None, time.monotonic() - signalled
    return outcome, outcome["reported_at"] - signalled


def assert_gave_up_cancelling_in_time(outcome: Any, took: float, capfd: Any, *, job: str) -> None:
    """
    The attempt ended inside the SIGKILL window, said ``job`` could not be cancelled, and logged an
    ERROR line naming it (a person has to cancel it by hand).

    :param job: the job as the operator names it, e.g. ``"run 42"`` or ``"steps s-1,s-2"``.
    """
    assert outcome is not None
    assert took < SIGKILL_WINDOW, f"the attempt outlived the supervisor's 5 s SIGKILL window: {took:.1f}s"
    assert outcome["outcome"] == "failed"
    assert f"{job} could not be cancelled" in outcome["error"]
    log = capfd.readouterr()
    assert any(
        "[error" in line and f"cancel {job}".lower() in line.lower()
        for line in (log.out + log.err).splitlines()
    ), f"an ERROR line names {job}"
