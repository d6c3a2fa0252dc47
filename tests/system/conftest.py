# Licensed under the Apache License, Version 2.0.
"""
Fixtures for system tests: one real Airflow stack per test session (see ``stack.py``).

Start-up costs about as much as two tests, so every system test of the session shares one stack;
tests isolate themselves by DAG id. When a test fails, the tails of every component log and of the
newest task logs are attached to its report.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Generator, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
from airflow.providers.resumable.testing.databricks import (
    FakeDatabricksServer,
    FakeDatabricksService,
    RunScript,
)
from airflow.providers.resumable.testing.stack import (
    AirflowStack,
    FlavouredStack,
    StackSettings,
    StackUnavailable,
)
from tests.system.dags.system_checkpoint_dags import SYSTEM_POOL
from upstream_tests.runner import Interpreter, stock_copy

DAGS_SOURCE = Path(__file__).parent / "dags"
PLUGINS_SOURCE = Path(__file__).parent / "plugins"
SYSTEM_DAG_IDS = (
    "system_smoke",
    "system_wait_for_flag",
    "system_checkpoint_once",
    "system_checkpoint_three_times",
)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def _session_stack(
    home: Path,
    *,
    python: Path | None = None,
    component_python: Mapping[str, Path] | None = None,
    settings: StackSettings | None = None,
    stack: AirflowStack | None = None,
) -> Iterator[AirflowStack]:
    """Start a stack for the session and stop everything it started by PID, however it ends."""
    if stack is None:
        stack = AirflowStack(
            home, settings or StackSettings(), python=python, component_python=component_python
        )
    stack.add_plugin_file(PLUGINS_SOURCE / "checkpoint_listener_plugin.py")
    stack.add_plugin_file(PLUGINS_SOURCE / "late_exit_listener_plugin.py")
    # A CI runner stops a job with SIGTERM; make that unwind like Ctrl-C so the stack is still stopped.
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    if previous_sigterm is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    starting_since = time.monotonic()
    try:
        try:
            stack.start()
        except StackUnavailable as unavailable:
            pytest.skip(f"no Airflow stack on this machine: {unavailable}")
        phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stack.startup_phases.items())
        phases += f" (total {time.monotonic() - starting_since:.1f}s)"
        sys.stderr.write(f"\n[airflow_stack] up at {stack.base_url} in {phases} (home {home})\n")
        yield stack
    finally:
        stopping_since = time.monotonic()
        pids = stack.started_pids()
        survivors = stack.stop()
        sys.stderr.write(
            f"\n[airflow_stack] stopped {len(pids)} processes in {time.monotonic() - stopping_since:.1f}s\n"
        )
        if previous_sigterm is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if survivors:
            pytest.fail(f"processes of the Airflow stack survived SIGKILL: {survivors}")


def _deploy_system_dags(stack: AirflowStack) -> AirflowStack:
    stack.add_dag_file(DAGS_SOURCE / "system_checkpoint_dags.py")
    for dag_id in SYSTEM_DAG_IDS:
        stack.wait_for_dag(dag_id)
    stack.ensure_pool(SYSTEM_POOL, slots=1)
    return stack


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """A running scheduler + API server + dag processor (LocalExecutor, sqlite), stopped by PID at the end."""
    with _session_stack(tmp_path_factory.mktemp("airflow-home")) as stack:
        yield stack


@pytest.fixture(scope="session")
def system_dags(airflow_stack: AirflowStack) -> AirflowStack:
    """The stack with ``dags/system_checkpoint_dags.py`` deployed and every DAG in it parsed."""
    return _deploy_system_dags(airflow_stack)


def stock_airflow_python(root: Path) -> Path:
    """
    The interpreter of a copy of this venv with the core patch reverted: a stock Airflow 3.3.2.

    Made by :func:`upstream_tests.runner.stock_copy` (hard links, so it costs no disk and a second or
    two), which also checks that the copy is stock and that this venv is still patched.
    """
    if sys.prefix == sys.base_prefix:
        pytest.skip("the stock-Airflow variant copies the running venv, and this interpreter is not in one")
    return stock_copy(Interpreter.inspect(Path(sys.executable)), root / "venv-stock").python


@pytest.fixture(scope="module")
def celery_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CeleryAirflowStack]:
    """
    The production flavour: Postgres, Redis, the CeleryExecutor and two workers (``celery_stack.py``).

    A test module may set ``CELERY_STACK_EXTRA_ENV`` (a mapping of ``AIRFLOW__*`` settings) for its
    own stack: the stack is module-scoped, so no other module sees them.
    """
    home = tmp_path_factory.mktemp("airflow-home-celery")
    extra_env = dict(getattr(request.module, "CELERY_STACK_EXTRA_ENV", {}))
    try:
        celery = CeleryAirflowStack(home, StackSettings(extra_env=extra_env))
    except StackUnavailable as unavailable:
        pytest.skip(f"no production-flavour stack on this machine: {unavailable}")
    with _session_stack(home, stack=celery) as stack:
        assert isinstance(stack, CeleryAirflowStack)
        yield stack


@pytest.fixture(scope="module")
def mixed_fleet_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """
    The system DAGs on a fleet half upgraded: a stock API server, a patched scheduler and workers.

    The state a rolling upgrade (or a forgotten API server restart) leaves behind for a while.
    """
    if not checkpointed_state_available():
        pytest.skip("a patched worker is needed: run 'make patch-venv'")
    stock = stock_airflow_python(tmp_path_factory.mktemp("stock-api-server"))
    home = tmp_path_factory.mktemp("airflow-home-mixed")
    with _session_stack(home, component_python={"api-server": stock}) as stack:
        yield _deploy_system_dags(stack)


@pytest.fixture(scope="session")
def stock_system_dags(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """The system DAGs on a stock Airflow 3.3.2: a copy of this (patched) venv with the patch reverted."""
    python = stock_airflow_python(tmp_path_factory.mktemp("stock-airflow"))
    with _session_stack(tmp_path_factory.mktemp("airflow-home-stock"), python=python) as stack:
        yield _deploy_system_dags(stack)


@pytest.fixture(scope="session")
def celery_airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryAirflowStack]:
    """
    The production flavour for the whole session (Postgres, Redis, the CeleryExecutor, two workers),
    shared by the tests that run on both flavours, as ``airflow_stack`` is by their LocalExecutor side.

    Module-scoped ``celery_stack`` is for modules that need settings of their own.
    """
    home = tmp_path_factory.mktemp("airflow-home-celery-session")
    try:
        celery = CeleryAirflowStack(home, StackSettings())
    except StackUnavailable as unavailable:
        pytest.skip(f"no production-flavour stack on this machine: {unavailable}")
    with _session_stack(home, stack=celery) as stack:
        assert isinstance(stack, CeleryAirflowStack)
        yield stack


@pytest.fixture(scope="session")
def celery_system_dags(celery_airflow_stack: CeleryAirflowStack) -> AirflowStack:
    """The session's Celery stack with ``dags/system_checkpoint_dags.py`` deployed."""
    return _deploy_system_dags(celery_airflow_stack)


CELERY = "celery"
"""The parameter value (and id) of the Celery flavour: patched Airflow on ``CeleryAirflowStack``.

Its tests run behind ``make test-celery`` (``RESUMABLE_CELERY_SYSTEM_TESTS=1``): each Celery stack costs
a minute of start-up and ``make test`` is over its time budget (tests/conftest.py deselects them)."""
LOCAL_FLAVOURS = [
    pytest.param("up_for_reschedule", id="unpatched"),
    pytest.param("checkpointed", id="patched"),
]


def _flavoured(request: pytest.FixtureRequest, flavour: str) -> FlavouredStack:
    """The session stack of ``flavour`` (a wait state of the LocalExecutor stack, or ``CELERY``).

    :param request: the requesting fixture's request, to get the session stack fixtures from.
    :param flavour: ``up_for_reschedule`` (stock), ``checkpointed`` (patched) or ``CELERY``.
    """
    patched_here = checkpointed_state_available()
    if flavour in ("checkpointed", CELERY) and not patched_here:
        pytest.skip("the core patch is not applied in this interpreter: run 'make patch-venv'")
    if flavour == CELERY:
        return FlavouredStack(request.getfixturevalue("celery_system_dags"), "checkpointed")
    if flavour == "checkpointed" or not patched_here:
        return FlavouredStack(request.getfixturevalue("system_dags"), flavour)
    return FlavouredStack(request.getfixturevalue("stock_system_dags"), flavour)


@pytest.fixture(scope="session", params=LOCAL_FLAVOURS)
def checkpoint_flavour(request: pytest.FixtureRequest) -> FlavouredStack:
    """
    The system DAGs on a stock Airflow 3.3.2 and on a patched one (DESIGN §4 and §5).

    Unpatched, a checkpoint falls back to ``up_for_reschedule``; patched, the task waits in
    ``checkpointed``. ``make test`` patches ``.venv``, so the stock variant runs on a copy of it with
    the patch reverted; run from an unpatched venv, the stock variant uses that venv and the patched
    variant is skipped with the reason, never silently passed.
    """
    return _flavoured(request, str(request.param))


@pytest.fixture(scope="session", params=[*LOCAL_FLAVOURS, pytest.param(CELERY, id=CELERY)])
def executor_flavour(request: pytest.FixtureRequest) -> FlavouredStack:
    """
    ``checkpoint_flavour``'s two LocalExecutor stacks and the production flavour (patched, Celery).

    For the tests whose promise must hold on both executors; the Celery one is only a stock
    Airflow's fallback short of the full matrix (the stock copy of the venv on Celery is not run).
    """
    return _flavoured(request, str(request.param))


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("up_for_reschedule", id="unpatched"),
        pytest.param("checkpointed", id="patched"),
    ],
)
def deferrable_flavour(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlavouredStack]:
    """
    A stack with a triggerer (deferred tasks need one), stock or patched as ``checkpoint_flavour``.

    Its own stack, not the session's: its tests kill, freeze and replace triggerers.
    """
    wait_state = str(request.param)
    patched_here = checkpointed_state_available()
    if wait_state == "checkpointed" and not patched_here:
        pytest.skip("the core patch is not applied in this interpreter: run 'make patch-venv'")
    python = None
    if wait_state == "up_for_reschedule" and patched_here:
        python = stock_airflow_python(tmp_path_factory.mktemp("stock-airflow-deferrable"))
    home = tmp_path_factory.mktemp(f"airflow-home-deferrable-{request.param}")
    # The reaper settles each finished task's ledger soon, so a test's fake can stop without the next
    # test's fake (whose job ids start over) being asked about a finished task's job.
    reaper = {"AIRFLOW__RESUMABLE__REAPER_GRACE_PERIOD": "3", "AIRFLOW__RESUMABLE__REAPER_INTERVAL": "2"}
    with _session_stack(home, python=python, settings=StackSettings(triggerers=1, extra_env=reaper)) as stack:
        yield FlavouredStack(stack, wait_state)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    report = yield
    funcargs = getattr(item, "funcargs", {})
    stack = funcargs.get("airflow_stack") or funcargs.get("system_dags") or funcargs.get("celery_stack")
    stack = stack or funcargs.get("celery_airflow_stack")
    for flavour in ("checkpoint_flavour", "executor_flavour", "deferrable_flavour"):
        if isinstance(funcargs.get(flavour), FlavouredStack):
            stack = funcargs[flavour].stack
    if isinstance(report, pytest.TestReport) and report.failed and isinstance(stack, AirflowStack):
        report.sections.append(("Airflow stack logs", stack.diagnostics()))
    return report


@contextmanager
def fake_databricks_behind(stack: AirflowStack, conn_id: str) -> Iterator[FakeDatabricksService]:
    """A fake workspace whose runs go on until the test ends them, and a connection ``conn_id`` to it."""
    service = FakeDatabricksService(default_script=RunScript(run_seconds=None))
    with FakeDatabricksServer(service) as server:
        connection = {
            "connection_id": conn_id,
            "conn_type": "databricks",
            "host": "127.0.0.1",
            "port": server.port,
            "schema": "http",
            "password": service.token,
        }
        stack.put_connection(connection)
        yield service
