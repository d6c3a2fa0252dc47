# Licensed under the Apache License, Version 2.0.
"""
A real Airflow 3.3.2 stack for system tests: scheduler, API server, dag processor, LocalExecutor, sqlite.

What it is for: tests that must see what Airflow really does (state transitions written by the
scheduler and the Execution API, the LocalExecutor's worker processes, the public REST API), not
what a mock says it does.

How it works: ``AirflowStack.start()`` creates a private ``AIRFLOW_HOME`` (config by environment
variables only; nothing of the caller's ``AIRFLOW_*`` environment leaks in), runs
``airflow db migrate`` on a sqlite file there, writes the simple auth manager's password file, and
starts ``airflow api-server``, ``airflow scheduler --skip-serve-logs`` and ``airflow dag-processor``
from the running interpreter's venv, each bound to 127.0.0.1 and in its own process group. It
returns once ``/api/v2/monitor/health`` says the database, scheduler and dag processor are healthy
and a REST token was issued. Tests drop DAG files into ``dags_folder``, trigger runs over REST and
observe state by polling the sqlite database directly (read-only, one short transaction per query,
so the scheduler is never blocked by a reader).

The production flavour (Postgres, Redis, the CeleryExecutor, two workers) is
``celery_stack.CeleryAirflowStack``: it overrides the few hooks ``start()`` and ``stop()`` call
(``_start_services``, ``_start_workers``, ``_stop_services``, ``_flavour_env``) and the database
reader; this module stays sqlite and the LocalExecutor.

Triggerers: ``StackSettings.triggerers`` start with the stack, and ``start_triggerer()`` adds one
later (a second one to take over, a replacement after a kill); ``signal_triggerer()`` stops, kills,
freezes or thaws one, and ``trigger_of()`` says which triggerer runs a deferred task's trigger.

What it does not do: no serve-logs server (task logs are read
from disk), no network beyond 127.0.0.1. Not ``airflow standalone``: on SIGTERM it orphans its
children, and it cannot skip serve-logs, which binds all interfaces.

Known limitation: state is observed by polling (``TIStateRecorder``, 0.1 s), so a state held for less
than a poll interval (``queued`` on an idle machine) can be missed. Assert on states that last (a
reschedule wait) or on durable rows (``task_reschedule``, the task state store) instead.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from cryptography.fernet import Fernet

from airflow.providers.resumable.testing.processes import (
    ManagedProcess,
    identity_arguments,
    start_process,
    stop_processes,
)

T = TypeVar("T")

ADMIN_USER = "admin"
EXECUTORS = ("local", "celery")
"""The stack flavours the demo and the drill start: ``local``, :class:`AirflowStack` (the LocalExecutor
on sqlite); ``celery``, :class:`~airflow.providers.resumable.testing.celery_stack.CeleryAirflowStack`
(Postgres, Redis and Celery workers)."""
FINISHED_DAG_RUN_STATES = frozenset({"success", "failed"})
MIGRATE_TIMEOUT_SECONDS = 180
MIGRATED_DATABASES_ENV = "RESUMABLE_STACK_MIGRATED_DATABASES"
"""A directory where sqlite stacks keep a freshly migrated database per interpreter and copy it
instead of running ``airflow db migrate`` again (about 4 s of a core per stack); ``make test`` sets it
for its session. Unset: every stack migrates its own."""
MIGRATION_SETTINGS = (
    "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT",
    "AIRFLOW__CORE__LOAD_EXAMPLES",
    "AIRFLOW__DATABASE__LOAD_DEFAULT_CONNECTIONS",
)
"""Settings ``db migrate`` writes into the database (the default pool's slots, ...): part of the key."""


class StackUnavailable(RuntimeError):
    """The stack cannot be started on this machine at all (a reason to skip, not a failure)."""


class StackStartError(RuntimeError):
    """The stack was started but did not become healthy; the message carries the component logs."""


class WaitTimeout(AssertionError):
    """A wait for Airflow to reach some state ran out of time (an assertion: the behaviour failed)."""


@dataclass(frozen=True)
class StackSettings:
    """
    Knobs of the stack, chosen to make a 2-core CI machine fast without changing semantics.

    ``extra_env`` is applied last, so a test module can override any ``AIRFLOW__*`` setting.
    """

    parallelism: int = 4
    """LocalExecutor forks this many worker processes up front; each is a full Python interpreter."""
    scheduler_idle_sleep_seconds: float = 0.5
    """The scheduler's idle sleep between loops (Airflow: 1 s): bounds how late a resume is noticed."""
    task_heartbeat_timeout_seconds: int = 20
    """A task whose worker died is failed (or, patched, checkpointed) after this long without a
    heartbeat (Airflow: 300 s)."""
    task_heartbeat_timeout_detection_seconds: float = 2.0
    """How often the scheduler looks for such tasks (Airflow: 10 s)."""
    worker_heartbeat_interval_seconds: int = 2
    """How often a supervisor heartbeats its task instance (Airflow: 5 s); must be well under the
    timeout."""
    dag_bundle_refresh_seconds: int = 1
    """New DAG files are listed every second (Airflow: 300 s) and parsed ahead of everything else."""
    min_file_process_interval_seconds: int = 30
    """An unchanged DAG file is parsed again after this long (Airflow's default too): not sooner, as
    re-parsing costs CPU we would rather give to tasks."""
    startup_timeout_seconds: float = 90.0
    """From the components' start until all report healthy (``db migrate`` has its own, longer limit)."""
    stop_grace_seconds: float = 10.0
    """How long ``stop()`` waits after SIGTERM before it SIGKILLs what is left."""
    triggerers: int = 0
    """Triggerers started with the stack; deferred tasks need at least one (more: ``start_triggerer()``)."""
    triggerer_health_check_threshold_seconds: int = 15
    """A triggerer silent this long has its triggers handed to another (Airflow: 30 s)."""
    triggerer_heartbeat_seconds: int = 2
    """How often a triggerer heartbeats (Airflow: 5 s): well clear of the threshold on a loaded 2-core
    machine."""
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskInstanceRow:
    """A ``task_instance`` row, as the scheduler last wrote it."""

    id: str
    task_id: str
    map_index: int
    state: str | None
    try_number: int
    max_tries: int
    pool: str
    start_date: datetime | None
    end_date: datetime | None


@dataclass(frozen=True)
class TaskRescheduleRow:
    """A ``task_reschedule`` row: one ended attempt that asked to be resumed at ``reschedule_date``."""

    start_date: datetime
    end_date: datetime
    reschedule_date: datetime


@dataclass(frozen=True)
class TaskProcesses:
    """The processes running one task instance: its supervisor and its task process."""

    ti_id: str
    # The supervisor. LocalExecutor: ``airflow worker -- LocalExecutor: <ti id>``, SIGTERM here is a
    # worker shutdown. Celery: the pool process running the workload (it keeps Celery's title).
    worker_pid: int
    # ``airflow worker -- <ti id>``: the task's own process, forked by the supervisor.
    task_pid: int
    # The Celery worker (``worker-a``...) whose pool runs it; None on the LocalExecutor.
    worker_name: str | None = None


def _utc(value: str | datetime) -> datetime:
    """A datetime column as sqlite (ISO text, UTC, offset optional) or Postgres returns it, made aware."""
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _utc_or_none(value: str | datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def leave_home(home: Path, *, keep: bool, say: Callable[[str], None]) -> None:
    """
    Keep a stack's Airflow home (every component's log and every task's) after a failure, and say
    where; remove it otherwise, so that runs made again and again leave nothing behind.

    :param home: the stack's ``AIRFLOW_HOME``, once its processes are stopped.
    :param keep: whether something failed.
    :param say: how to tell the user where the home was kept.
    """
    if keep:
        say(f"kept the stack's Airflow home, with every component's and task's log: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)


def ti_id_forms(ti_id: str) -> set[str]:
    """sqlite stores UUIDs as 32 hex digits; process titles use the dashed form."""
    hex_digits = ti_id.replace("-", "").lower()
    dashed = f"{hex_digits[:8]}-{hex_digits[8:12]}-{hex_digits[12:16]}-{hex_digits[16:20]}-{hex_digits[20:]}"
    return {hex_digits, dashed}


def poll_until(
    probe: Callable[[], T | None], *, timeout: float, interval: float = 0.2, describe: Callable[[], str]
) -> T:
    """Call ``probe`` until it returns something other than None; ``WaitTimeout`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"timed out after {timeout:.0f}s waiting for {describe()}")
        time.sleep(interval)


def tail(path: Path, lines: int = 60) -> str:
    if not path.exists():
        return f"<{path} does not exist>"
    content = path.read_text(errors="replace").splitlines()
    return "\n".join(content[-lines:])


def run_to_log(
    what: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    run_as: tuple[int, int] | None = None,
) -> None:
    """
    Run a start-up command to its end, its output in ``log_path``; a failure shows the log's tail.

    :param what: the command's name in an error ("airflow db migrate").
    :param argv: the command.
    :param log_path: where its output goes.
    :param env: its environment.
    :param cwd: its working directory.
    :param timeout: seconds it may take (``subprocess.TimeoutExpired`` after that).
    :param run_as: (uid, gid) to run it as; this process's identity if ``None``.
    """
    with log_path.open("wb") as log_file:
        result = subprocess.run(
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            check=False,
            **identity_arguments(run_as),
        )
    if result.returncode != 0:
        raise StackStartError(f"{what} exited {result.returncode}:\n{tail(log_path)}")


class StackDatabase:
    """
    Read-only access to the stack's sqlite metadata database, one short transaction per query.

    Queries use ``?`` placeholders and read columns by name, so a subclass for another database
    (``celery_stack.PostgresStackDatabase``) only replaces ``query``.
    """

    # What a poll may hit while Airflow writes and should simply retry at the next poll.
    transient_errors: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)

    def __init__(self, path: Path) -> None:
        self.path = path

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        # mode=ro: a test can never write behind Airflow's back; autocommit: the shared lock is held
        # only for this statement, so the scheduler's writers are never blocked for long.
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def dag_run_state(self, dag_id: str, run_id: str) -> str | None:
        rows = self.query("SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))
        return rows[0]["state"] if rows else None

    def task_instances(self, dag_id: str, run_id: str) -> dict[str, TaskInstanceRow]:
        """Task instances of one run keyed by task_id (unmapped tasks only: map_index -1)."""
        rows = self.query(
            "SELECT id, task_id, map_index, state, try_number, max_tries, pool, start_date, end_date "
            "FROM task_instance WHERE dag_id = ? AND run_id = ? AND map_index = -1",
            (dag_id, run_id),
        )
        return {
            row["task_id"]: TaskInstanceRow(
                id=row["id"],
                task_id=row["task_id"],
                map_index=row["map_index"],
                state=row["state"],
                try_number=row["try_number"],
                max_tries=row["max_tries"],
                pool=row["pool"],
                start_date=_utc_or_none(row["start_date"]),
                end_date=_utc_or_none(row["end_date"]),
            )
            for row in rows
        }

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> TaskInstanceRow:
        tis = self.task_instances(dag_id, run_id)
        if task_id not in tis:
            raise LookupError(f"no task instance {dag_id}/{run_id}/{task_id} (have: {sorted(tis)})")
        return tis[task_id]

    def task_reschedules(self, dag_id: str, run_id: str, task_id: str) -> list[TaskRescheduleRow]:
        rows = self.query(
            "SELECT tr.start_date, tr.end_date, tr.reschedule_date FROM task_reschedule tr "
            "JOIN task_instance ti ON ti.id = tr.ti_id "
            "WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ? AND ti.map_index = -1 ORDER BY tr.id",
            (dag_id, run_id, task_id),
        )
        return [
            TaskRescheduleRow(
                start_date=_utc(row["start_date"]),
                end_date=_utc(row["end_date"]),
                reschedule_date=_utc(row["reschedule_date"]),
            )
            for row in rows
        ]

    def task_history_try_numbers(self, dag_id: str, run_id: str, task_id: str) -> list[int]:
        """try_numbers archived in ``task_instance_history`` (Airflow archives a try when it retries)."""
        rows = self.query(
            "SELECT try_number FROM task_instance_history "
            "WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = -1 ORDER BY try_number",
            (dag_id, run_id, task_id),
        )
        return [row["try_number"] for row in rows]

    def task_state_store(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str]:
        """The raw stored values of a task's AIP-103 task state store, by key."""
        rows = self.query(
            "SELECT key, value FROM task_state_store "
            "WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = -1",
            (dag_id, run_id, task_id),
        )
        return {row["key"]: row["value"] for row in rows}

    def task_state_value(self, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
        """One task state store value, decoded from the JSON Airflow stores."""
        raw = self.task_state_store(dag_id, run_id, task_id).get(key)
        return None if raw is None else json.loads(raw)

    def pool_occupancy(self, pool: str) -> dict[str, int]:
        """Slots held in ``pool`` per task-instance state (only states that hold any)."""
        rows = self.query(
            "SELECT state, SUM(pool_slots) AS slots FROM task_instance "
            "WHERE pool = ? AND state IS NOT NULL GROUP BY state",
            (pool,),
        )
        return {row["state"]: int(row["slots"]) for row in rows}


@dataclass(frozen=True)
class StateSample:
    """One poll of a dag run: when, the run's state, and (state, try_number) per task."""

    monotonic: float
    dag_run_state: str | None
    tasks: Mapping[str, tuple[str | None, int]]


@dataclass(frozen=True)
class StateChange:
    monotonic: float
    state: str | None
    try_number: int


class TIStateRecorder:
    """
    Polls one dag run's task-instance states in a background thread and keeps every sample.

    ``history(task_id)`` collapses the samples to the sequence of observed changes; ``samples`` lets
    a test correlate tasks ("B was never running while A waited").
    """

    def __init__(self, db: StackDatabase, dag_id: str, run_id: str, *, interval: float = 0.1) -> None:
        self._db = db
        self.dag_id = dag_id
        self.run_id = run_id
        self._interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._samples: list[StateSample] = []
        self._errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name=f"ti-state-recorder-{run_id}", daemon=True)

    def start(self) -> TIStateRecorder:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()
        return self

    def __enter__(self) -> TIStateRecorder:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except self._db.transient_errors as error:  # sqlite: "database is locked" past the timeout
                self._errors.append(error)
            self._stop.wait(self._interval)

    def _sample(self) -> None:
        tis = self._db.task_instances(self.dag_id, self.run_id)
        sample = StateSample(
            monotonic=time.monotonic(),
            dag_run_state=self._db.dag_run_state(self.dag_id, self.run_id),
            tasks={task_id: (ti.state, ti.try_number) for task_id, ti in tis.items()},
        )
        with self._lock:
            self._samples.append(sample)

    @property
    def samples(self) -> list[StateSample]:
        with self._lock:
            return list(self._samples)

    def history(self, task_id: str) -> list[StateChange]:
        changes: list[StateChange] = []
        for sample in self.samples:
            if task_id not in sample.tasks:
                continue
            state, try_number = sample.tasks[task_id]
            if not changes or (changes[-1].state, changes[-1].try_number) != (state, try_number):
                changes.append(StateChange(sample.monotonic, state, try_number))
        return changes

    def states(self, task_id: str) -> list[str | None]:
        return [change.state for change in self.history(task_id)]

    def dag_run_states(self) -> list[str | None]:
        observed: list[str | None] = []
        for sample in self.samples:
            if not observed or observed[-1] != sample.dag_run_state:
                observed.append(sample.dag_run_state)
        return observed


class RestClient:
    """The public REST API (``/api/v2``) with a bearer token from ``POST /auth/token``."""

    def __init__(self, base_url: str, token: str) -> None:
        # trust_env=False: never route 127.0.0.1 through a proxy from the environment.
        self.http = httpx.Client(
            base_url=f"{base_url}/api/v2",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
            trust_env=False,
        )

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.post(path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.patch(path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.delete(path, **kwargs)

    def json(self, method: str, path: str, *, retries: int = 0, **kwargs: Any) -> Any:
        """
        Send a request and return its JSON body; raise with the body on any other non-2xx answer.

        :param method: the HTTP method.
        :param path: below ``/api/v2``.
        :param retries: how many times to send it again after a 5xx answer, a second apart, as a
            person clicks again: on sqlite a write that waits out the 5 s busy timeout under load
            (``database is locked``) is answered ``500 Database error`` before the route ran. Only
            for a request that is safe to repeat.
        :param kwargs: passed to ``httpx``.
        """
        for attempt in range(retries + 1):
            response = self.http.request(method, path, **kwargs)
            if response.is_server_error and attempt < retries:
                time.sleep(1.0)
                continue
            if response.is_error:
                raise AssertionError(
                    f"{method} {path} -> HTTP {response.status_code}: {response.text[:2000]}"
                )
            return response.json()
        raise AssertionError("unreachable: the last attempt returns or raises")  # pragma: no cover


class AirflowStack:
    """
    A running scheduler + API server + dag processor in a private ``AIRFLOW_HOME``.

    Use ``start()``/``stop()`` (or the ``airflow_stack`` fixture). Everything it starts is stopped
    by PID in ``stop()``, which is idempotent and also registered to run at interpreter exit.
    """

    COMPONENTS = ("api-server", "scheduler", "dag-processor")
    EXECUTOR = "LocalExecutor"

    def __init__(
        self,
        home: Path,
        settings: StackSettings | None = None,
        *,
        python: Path | None = None,
        component_python: Mapping[str, Path] | None = None,
    ) -> None:
        self.home = home
        self.settings = settings or StackSettings()
        self.dags_folder = home / "dags"
        self.plugins_folder = home / "plugins"
        self.component_logs = home / "component-logs"
        self.task_logs = home / "logs"
        self.db = StackDatabase(home / "airflow.db")
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        # The interpreter of the venv whose Airflow runs the stack (this one unless told otherwise).
        # Run as ``python -m airflow``: a venv's console scripts hard-code the venv they were
        # installed in, which a copied venv (see conftest's stock Airflow) must not inherit.
        self.python = python or Path(sys.executable)
        self.airflow_command = [str(self.python), "-m", "airflow"]
        # Another venv's interpreter for some components (by name, see COMPONENTS): a fleet half
        # upgraded, e.g. a stock API server in front of patched schedulers and workers.
        unknown = set(component_python or {}) - set(self.COMPONENTS)
        if unknown:
            raise ValueError(f"no such components: {sorted(unknown)}; choose from {self.COMPONENTS}")
        self.component_python = dict(component_python or {})
        self._admin_password = secrets.token_urlsafe(16)
        # Fresh per stack and shared by its components (each signs or checks what the others issue).
        self._api_secret_key = secrets.token_urlsafe(32)
        self._jwt_secret = secrets.token_urlsafe(64)  # PyJWT warns below 64 bytes for HS512
        self._fernet_key = Fernet.generate_key().decode()
        self._processes: dict[str, ManagedProcess] = {}
        self._rest: RestClient | None = None
        # Seconds per start-up phase ("db migrate", "components healthy"), for the timing report.
        self.startup_phases: dict[str, float] = {}

    @property
    def login(self) -> tuple[str, str]:
        """The UI's user name and password (the simple auth manager's admin)."""
        return ADMIN_USER, self._admin_password

    # ---------------------------------------------------------------- lifecycle

    @property
    def env(self) -> dict[str, str]:
        """The environment every component runs with."""
        inherited = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW", "_AIRFLOW")) and key.lower() not in {"no_proxy"}
        }
        s = self.settings
        env = {
            **inherited,
            "AIRFLOW_HOME": str(self.home),
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(self.plugins_folder),
            "AIRFLOW__CORE__EXECUTOR": self.EXECUTOR,
            "AIRFLOW__CORE__PARALLELISM": str(s.parallelism),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
            "AIRFLOW__CORE__FERNET_KEY": self._fernet_key,
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self._passwords_file),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.sql_alchemy_conn,
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": self.base_url,
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__API__SECRET_KEY": self._api_secret_key,
            # Every component signs or checks task and REST JWTs with this; it must be shared.
            "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": str(s.scheduler_idle_sleep_seconds),
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(s.task_heartbeat_timeout_seconds),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": str(
                s.task_heartbeat_timeout_detection_seconds
            ),
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": str(s.worker_heartbeat_interval_seconds),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": str(s.dag_bundle_refresh_seconds),
            "AIRFLOW__DAG_PROCESSOR__BUNDLE_REFRESH_CHECK_INTERVAL": str(s.dag_bundle_refresh_seconds),
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": str(s.min_file_process_interval_seconds),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__DAG_PROCESSOR__PRINT_STATS_INTERVAL": "0",
            # The default (<tmp>/airflow) is shared by every Airflow on the machine.
            "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_STORAGE_PATH": str(self.home / "bundles"),
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.task_logs),
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": str(
                s.triggerer_health_check_threshold_seconds
            ),
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": str(s.triggerer_heartbeat_seconds),
        }
        env.update(self._flavour_env())
        env.update(s.extra_env)
        return env

    @property
    def sql_alchemy_conn(self) -> str:
        return f"sqlite:///{self.db.path}"

    def _flavour_env(self) -> dict[str, str]:
        """Settings a flavour of the stack adds or overrides (before ``extra_env``); none here."""
        return {}

    def _start_services(self) -> None:
        """Start what Airflow needs before ``db migrate`` (a database server, a broker); none here."""

    def _start_workers(self) -> None:
        """Start workers that run outside the scheduler, once the components are healthy; none here."""

    def _stop_services(self) -> list[str]:
        """Stop what ``_start_services`` started, after every Airflow process is gone."""
        return []

    @property
    def _passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json"

    def start(self) -> AirflowStack:
        """Migrate the database, start the components, and wait until all are healthy."""
        for python in (self.python, *self.component_python.values()):
            if not python.exists():
                raise StackUnavailable(f"no Python interpreter at {python}")
        if not sys.platform.startswith("linux"):
            raise StackUnavailable("the system-test stack relies on Linux process handling (prctl, /proc)")
        # Outside pytest too (a script, a REPL), leaving the interpreter stops the stack.
        atexit.register(self.stop)
        for directory in (self.dags_folder, self.component_logs, self.task_logs):
            directory.mkdir(parents=True, exist_ok=True)
        # Pre-seeded, so the simple auth manager never generates (and prints) a password of its own.
        self._passwords_file.write_text(json.dumps({ADMIN_USER: self._admin_password}))

        try:
            self._start_services()
            migrate_from = time.monotonic()
            self._migrate_database()
        except BaseException:
            self.stop()
            raise
        self.startup_phases["db migrate"] = time.monotonic() - migrate_from
        components_from = time.monotonic()
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            **{
                self._triggerer_name(n): ["triggerer", "--skip-serve-logs"]
                for n in range(self.settings.triggerers)
            },
        }
        try:
            for name, args in commands.items():
                python = self.component_python.get(name, self.python)
                self._processes[name] = start_process(
                    name,
                    [str(python), "-m", "airflow", *args],
                    env=self.env,
                    cwd=self.home,
                    log_path=self.component_logs / f"{name}.log",
                )
            self._wait_until_healthy()
            self._rest = RestClient(self.base_url, self._issue_token())
            self.startup_phases["components healthy"] = time.monotonic() - components_from
            self._start_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def _migrate_database(self) -> None:
        cache = os.environ.get(MIGRATED_DATABASES_ENV)
        # A sqlite database is one file: copied, it is the database (a server's is not).
        sqlite = self.sql_alchemy_conn.startswith("sqlite:")
        template = Path(cache) / f"{self._migration_key()}.db" if cache and sqlite else None
        if template is not None and template.is_file():
            shutil.copyfile(template, self.db.path)
            return
        run_to_log(
            "airflow db migrate",
            [*self.airflow_command, "db", "migrate"],
            self.component_logs / "db-migrate.log",
            env=self.env,
            cwd=self.home,
            timeout=MIGRATE_TIMEOUT_SECONDS,
        )
        if template is not None:
            # Another stack may be writing the same template now: publish a complete file or none.
            partial = template.with_suffix(f".{os.getpid()}.{threading.get_ident()}.partial")
            shutil.copyfile(self.db.path, partial)
            os.replace(partial, template)

    def _migration_key(self) -> str:
        """What a migrated database depends on: the interpreter (its Airflow) and what migrate writes."""
        env = self.env
        # Not resolved: every venv's python links to the same base interpreter, each venv its own Airflow.
        parts = [str(self.python.absolute()), *(f"{name}={env.get(name)}" for name in MIGRATION_SETTINGS)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def _wait_until_healthy(self) -> None:
        last_health: dict[str, Any] = {}

        def healthy() -> bool | None:
            for name, managed in self._processes.items():
                if not managed.is_running():
                    raise StackStartError(
                        f"{name} exited with {managed.popen.returncode} during start-up\n{self.diagnostics()}"
                    )
            try:
                response = httpx.get(f"{self.base_url}/api/v2/monitor/health", timeout=5, trust_env=False)
            except httpx.TransportError:
                return None  # API server not listening yet
            if response.status_code != 200:
                return None
            last_health.clear()
            last_health.update(response.json())
            components = ("metadatabase", "scheduler", "dag_processor") + (
                ("triggerer",) if self.settings.triggerers else ()
            )
            ok = all((last_health.get(c) or {}).get("status") == "healthy" for c in components)
            return True if ok else None

        try:
            poll_until(
                healthy,
                timeout=self.settings.startup_timeout_seconds,
                interval=0.25,
                describe=lambda: f"a healthy stack (last /monitor/health: {last_health})",
            )
        except WaitTimeout as timeout:
            raise StackStartError(f"{timeout}\n{self.diagnostics()}") from None

    def _issue_token(self) -> str:
        response = httpx.post(
            f"{self.base_url}/auth/token",
            json={"username": ADMIN_USER, "password": self._admin_password},
            timeout=30,
            trust_env=False,
        )
        if response.status_code != 201:
            raise StackStartError(f"POST /auth/token -> HTTP {response.status_code}: {response.text[:500]}")
        return str(response.json()["access_token"])

    def stop(self) -> list[str]:
        """Stop every process this stack started (SIGTERM, SIGKILL after the grace period); idempotent."""
        atexit.unregister(self.stop)
        if self._rest is not None:
            self._rest.close()
            self._rest = None
        survivors = stop_processes(self._processes.values(), grace_seconds=self.settings.stop_grace_seconds)
        # Only now: Airflow's processes would log connection errors, or hang, without their database.
        survivors += self._stop_services()
        return survivors

    # ---------------------------------------------------------------- triggerers

    @staticmethod
    def _triggerer_name(index: int) -> str:
        return "triggerer" if index == 0 else f"triggerer-{index + 1}"

    def triggerer_names(self) -> list[str]:
        """The triggerers this stack started, oldest first (dead ones included)."""
        return [name for name in self._processes if name.startswith("triggerer")]

    def live_triggerers(self) -> list[str]:
        """The triggerers whose main process still runs (frozen ones included), oldest first."""
        return [name for name in self.triggerer_names() if self._processes[name].is_running()]

    def wait_for_triggerer_exit(self, name: str, *, timeout: float = 60) -> None:
        """Wait until a signalled triggerer's main process has exited."""
        poll_until(
            lambda: not self._processes[name].is_running() or None,
            timeout=timeout,
            describe=lambda: f"{name} to exit",
        )

    def start_triggerer(self, *, timeout: float = 90) -> str:
        """Start one more triggerer and wait until it heartbeats; its name (``triggerer-2``, ...)."""
        name = self._triggerer_name(len(self.triggerer_names()))
        running_before = self._running_triggerer_jobs()
        self._processes[name] = start_process(
            name,
            [*self.airflow_command, "triggerer", "--skip-serve-logs"],
            env=self.env,
            cwd=self.home,
            log_path=self.component_logs / f"{name}.log",
        )
        poll_until(
            lambda: (self._running_triggerer_jobs() - running_before) or None,
            timeout=timeout,
            describe=lambda: f"{name} to start heartbeating\n{tail(self.component_logs / f'{name}.log')}",
        )
        return name

    def signal_triggerer(self, name: str, signum: int, *, whole_group: bool) -> None:
        """
        Send ``signum`` to a triggerer: to its main process only (a redeploy's SIGTERM), or to its
        whole process group, trigger runner included (a node lost: SIGKILL; a frozen pod: SIGSTOP).
        """
        managed = self._processes[name]
        managed.refresh_tree()
        if whole_group:
            os.killpg(managed.pid, signum)
        else:
            os.kill(managed.pid, signum)

    def _running_triggerer_jobs(self) -> set[int]:
        rows = self.db.query("SELECT id FROM job WHERE job_type = 'TriggererJob' AND state = 'running'")
        return {int(row["id"]) for row in rows}

    def trigger_of(self, dag_id: str, run_id: str, task_id: str) -> tuple[int, int | None] | None:
        """A deferred task's trigger id and the triggerer job running it (``None`` while unassigned)."""
        rows = self.db.query(
            "SELECT t.id, t.triggerer_id FROM task_instance ti JOIN trigger t ON t.id = ti.trigger_id "
            "WHERE ti.dag_id = ? AND ti.run_id = ? AND ti.task_id = ?",
            (dag_id, run_id, task_id),
        )
        if not rows:
            return None
        triggerer = rows[0]["triggerer_id"]
        return int(rows[0]["id"]), int(triggerer) if triggerer is not None else None

    def component_processes(self, name: str) -> list[psutil.Process]:
        """
        A component's process and its descendants now (to freeze the API server, say).

        :param name: the component, as in :attr:`COMPONENTS` (``"api-server"``, ``"scheduler"``, ...).
        """
        main = psutil.Process(self._processes[name].pid)
        return [main, *main.children(recursive=True)]

    def started_pids(self) -> set[int]:
        """Every PID of every process tree this stack started, as far as it has seen them."""
        for managed in self._processes.values():
            managed.refresh_tree()
        return {pid for managed in self._processes.values() for pid in managed.seen}

    # ---------------------------------------------------------------- REST

    @property
    def rest(self) -> RestClient:
        if self._rest is None:
            raise RuntimeError("the stack is not running")
        return self._rest

    def add_plugin_file(self, source: Path) -> Path:
        """Install a plugin module; call before ``start()``: components load plugins as they start."""
        if self._processes:
            raise RuntimeError("plugins must be installed before the stack starts")
        self.plugins_folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(source, self.plugins_folder / source.name))

    def checkpoint_listener_calls(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """What ``tests/system/plugins/checkpoint_listener_plugin.py`` recorded for one dag run."""
        path = self.home / "checkpoint-listener.jsonl"
        if not path.exists():
            return []
        calls = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [call for call in calls if (call["dag_id"], call["run_id"]) == (dag_id, run_id)]

    def add_dag_file(self, source: Path, *, name: str | None = None) -> Path:
        """Copy a DAG file into ``dags_folder`` atomically (the parser never sees half a file)."""
        target = self.dags_folder / (name or source.name)
        staging = self.home / f".{target.name}.staging"
        shutil.copyfile(source, staging)
        os.replace(staging, target)
        return target

    def wait_for_dag(self, dag_id: str, *, timeout: float = 60) -> dict[str, Any]:
        """Wait until the dag processor has serialized ``dag_id`` and it is active and unpaused."""

        def probe() -> dict[str, Any] | None:
            response = self.rest.get(f"/dags/{dag_id}")
            if response.status_code != 200:
                return None
            dag = response.json()
            return None if dag.get("is_paused") or dag.get("is_stale") else dag

        return poll_until(
            probe, timeout=timeout, describe=lambda: f"DAG {dag_id} to be parsed\n{self.diagnostics()}"
        )

    def ensure_pool(self, name: str, slots: int) -> None:
        response = self.rest.post("/pools", json={"name": name, "slots": slots, "include_deferred": False})
        if response.status_code == 409:
            self.rest.json(
                "PATCH", f"/pools/{name}", json={"name": name, "slots": slots, "include_deferred": False}
            )
        elif response.is_error:
            raise AssertionError(f"POST /pools -> HTTP {response.status_code}: {response.text[:500]}")

    def put_connection(self, connection: Mapping[str, Any]) -> None:
        """
        Create the connection over REST, or replace it when one of its id exists (a fake restarted
        on another port, a test run twice on one stack).

        :param connection: the REST body, ``connection_id`` included.
        """
        response = self.rest.post("/connections", json=connection)
        if response.status_code == 409:
            self.rest.json("PATCH", f"/connections/{connection['connection_id']}", json=connection)
        elif response.is_error:
            raise AssertionError(f"POST /connections -> HTTP {response.status_code}: {response.text[:500]}")

    def trigger_dag(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> str:
        """
        Trigger a manual run over REST; returns its run_id.

        The run id is chosen here, so a request that failed with a 5xx (sqlite answers "database is
        locked" under concurrent writers) can be repeated without risking a second run: a 409 then
        means the first request did create it.
        """
        run_id = f"manual__{datetime.now(tz=timezone.utc).isoformat()}"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": dict(conf or {})}
        for attempt in range(5):
            response = self.rest.post(f"/dags/{dag_id}/dagRuns", json=body)
            if response.status_code == 409 and attempt > 0:
                return run_id
            if response.status_code < 500:
                break
            time.sleep(0.5 * (attempt + 1))
        if response.is_error:
            raise AssertionError(
                f"POST /dags/{dag_id}/dagRuns -> HTTP {response.status_code}: {response.text}"
            )
        return str(response.json()["dag_run_id"])

    def task_instance_via_rest(self, dag_id: str, run_id: str, task_id: str) -> httpx.Response:
        return self.rest.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")

    # ---------------------------------------------------------------- DB polling

    def record_ti_states(self, dag_id: str, run_id: str) -> TIStateRecorder:
        """A started recorder of this run's task-instance states; use as a context manager."""
        return TIStateRecorder(self.db, dag_id, run_id).start()

    def wait_for_dag_run(
        self,
        dag_id: str,
        run_id: str,
        *,
        states: Collection[str] = FINISHED_DAG_RUN_STATES,
        timeout: float = 120,
    ) -> str:
        return poll_until(
            lambda: state if (state := self.db.dag_run_state(dag_id, run_id)) in states else None,
            timeout=timeout,
            describe=lambda: (
                f"dag run {dag_id}/{run_id} to reach {sorted(states)} "
                f"(now {self.db.dag_run_state(dag_id, run_id)}; TIs {self._ti_states(dag_id, run_id)})"
            ),
        )

    def wait_for_ti_state(
        self, dag_id: str, run_id: str, task_id: str, states: str | Collection[str], *, timeout: float = 60
    ) -> TaskInstanceRow:
        wanted = {states} if isinstance(states, str) else set(states)

        def probe() -> TaskInstanceRow | None:
            ti = self.db.task_instances(dag_id, run_id).get(task_id)
            return ti if ti is not None and ti.state in wanted else None

        return poll_until(
            probe,
            timeout=timeout,
            interval=0.1,
            describe=lambda: (
                f"{dag_id}/{run_id}/{task_id} to reach {sorted(wanted)} "
                f"(TIs now {self._ti_states(dag_id, run_id)})"
            ),
        )

    def _ti_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {task_id: ti.state for task_id, ti in self.db.task_instances(dag_id, run_id).items()}

    # ---------------------------------------------------------------- processes

    def find_task_processes(
        self, dag_id: str, task_id: str, *, run_id: str | None = None, timeout: float = 30
    ) -> TaskProcesses:
        """
        The supervisor and task PIDs of a running task instance.

        Waits until the task instance is ``running`` and both processes are found (LocalExecutor:
        both carry its id in their title; a flavour may find them otherwise, see
        ``_task_processes_for``).

        :param dag_id: the task instance's DAG.
        :param task_id: its task.
        :param run_id: its run; any running one of ``dag_id.task_id`` when None.
        :param timeout: seconds to wait for both processes.
        """

        def probe() -> TaskProcesses | None:
            sql = "SELECT id FROM task_instance WHERE dag_id = ? AND task_id = ? AND state = 'running'"
            params: tuple[str, ...] = (dag_id, task_id)
            if run_id is not None:
                sql += " AND run_id = ?"
                params = (*params, run_id)
            rows = self.db.query(sql, params)
            if len(rows) != 1:
                return None
            return self._task_processes_for(rows[0]["id"])

        return poll_until(
            probe,
            timeout=timeout,
            describe=lambda: f"the worker and task processes of {dag_id}.{task_id}",
        )

    def _task_processes_for(self, ti_id: str) -> TaskProcesses | None:
        """The supervisor and task process of ``ti_id`` now, or None while either is missing.

        :param ti_id: the task instance's id, in either of the forms sqlite and process titles use.
        """
        forms = ti_id_forms(ti_id)
        scheduler = self._processes["scheduler"]
        worker_pid = task_pid = None
        try:
            descendants = psutil.Process(scheduler.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return None
        for proc in descendants:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                title = " ".join(proc.cmdline())
                if not any(form in title for form in forms):
                    continue
                if "LocalExecutor" in title:
                    worker_pid = proc.pid
                elif title.startswith("airflow worker --"):
                    task_pid = proc.pid
        if worker_pid is None or task_pid is None:
            return None
        return TaskProcesses(ti_id=ti_id, worker_pid=worker_pid, task_pid=task_pid)

    # ---------------------------------------------------------------- diagnostics

    def diagnostics(self, *, lines: int = 40, dag_id: str | None = None) -> str:
        """Tails of every component log and of the newest task logs, for a failure report."""
        parts = [f"AIRFLOW_HOME={self.home}  API={self.base_url}"]
        for log_path in sorted(self.component_logs.glob("*.log")):
            parts.append(f"----- {log_path.name} (last {lines} lines) -----\n{tail(log_path, lines)}")
        pattern = f"dag_id={dag_id}/**/*.log" if dag_id else "**/*.log"
        task_logs = sorted(self.task_logs.glob(pattern), key=lambda p: p.stat().st_mtime)[-4:]
        for log_path in task_logs:
            relative = log_path.relative_to(self.task_logs)
            parts.append(f"----- task log {relative} (last {lines} lines) -----\n{tail(log_path, lines)}")
        return "\n".join(parts)


@dataclass(frozen=True)
class FlavouredStack:
    """A stack and the state its checkpointed tasks wait in (``checkpointed`` or the fallback)."""

    stack: AirflowStack
    wait_state: str


@contextlib.contextmanager
def running_stack(
    home: Path, settings: StackSettings | None = None, *, python: Path | None = None
) -> Iterator[AirflowStack]:
    """Start a stack, yield it, and stop it however the block exits (including KeyboardInterrupt)."""
    stack = AirflowStack(home, settings, python=python)
    try:
        yield stack.start()
    finally:
        stack.stop()
