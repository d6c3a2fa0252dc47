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
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType

import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from tests.system.dags.system_checkpoint_dags import SYSTEM_POOL
from tests.system.stack import AirflowStack, StackSettings, StackUnavailable

DAGS_SOURCE = Path(__file__).parent / "dags"
SYSTEM_DAG_IDS = (
    "system_smoke",
    "system_wait_for_flag",
    "system_checkpoint_once",
    "system_checkpoint_three_times",
)


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowStack]:
    """A running scheduler + API server + dag processor (LocalExecutor, sqlite), stopped by PID at the end."""
    home = tmp_path_factory.mktemp("airflow-home")
    stack = AirflowStack(home, StackSettings())
    # A CI runner stops a job with SIGTERM; make that unwind like Ctrl-C so the stack is still stopped.
    previous_sigterm = signal.getsignal(signal.SIGTERM)
    if previous_sigterm is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        try:
            stack.start()
        except StackUnavailable as unavailable:
            pytest.skip(f"no Airflow stack on this machine: {unavailable}")
        phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in stack.startup_phases.items())
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


@pytest.fixture(scope="session")
def system_dags(airflow_stack: AirflowStack) -> AirflowStack:
    """The stack with ``dags/system_checkpoint_dags.py`` deployed and every DAG in it parsed."""
    airflow_stack.add_dag_file(DAGS_SOURCE / "system_checkpoint_dags.py")
    for dag_id in SYSTEM_DAG_IDS:
        airflow_stack.wait_for_dag(dag_id)
    airflow_stack.ensure_pool(SYSTEM_POOL, slots=1)
    return airflow_stack


@pytest.fixture(
    params=[
        pytest.param("up_for_reschedule", id="unpatched"),
        pytest.param("checkpointed", id="patched"),
    ]
)
def wait_state(request: pytest.FixtureRequest) -> str:
    """
    The state a checkpointed task waits in, one variant per Airflow flavour (DESIGN §4 and §5).

    Unpatched 3.3.2 falls back to ``up_for_reschedule``; with the core patch applied the task waits in
    ``checkpointed``. The stack runs from this interpreter's venv, so whether this interpreter sees
    the patch decides which variant runs; the other is skipped, never silently passed.
    """
    patched = checkpointed_state_available()
    if (request.param == "checkpointed") != patched:
        flavour = "applied" if patched else "not applied"
        pytest.skip(
            f"the core patch is {flavour} in this interpreter, so tasks never wait in {request.param}"
        )
    return str(request.param)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, object, object]:
    report = yield
    stack = getattr(item, "funcargs", {}).get("airflow_stack")
    if isinstance(report, pytest.TestReport) and report.failed and isinstance(stack, AirflowStack):
        report.sections.append(("Airflow stack logs", stack.diagnostics()))
    return report
