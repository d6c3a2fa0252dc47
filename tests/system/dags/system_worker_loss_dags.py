# Licensed under the Apache License, Version 2.0.
"""
DAGs for the worker-loss system tests: tasks that declare themselves resumable, and one that does not.

Each keeps a diary in its task state store (key ``runs``: the try number and start time of each
run), says ``ready`` (the number of its run) once it has reached the point where the test may kill
its worker, and then sleeps. The declaration uses the core patch's generic opt-in directly, as any
task could, not this provider's helper.

- ``system_worker_loss_resumable``: the first run declares and sleeps; a resume finishes at once.
- ``system_worker_loss_control``: never declares.
- ``system_worker_loss_stale_declaration``: the first run declares and sleeps; the resumed run does
  *not* declare again and sleeps too, like an attempt lost while still loading its DAG.
- ``system_worker_loss_stall``: the first run declares and sleeps in short steps; frozen and thawed
  (a step that took far longer), it succeeds, which a stale attempt must not be able to report. The
  resumed run declares again and waits for the test's release file (``stall.release.<run_id>``
  under ``AIRFLOW_HOME``), so it is still running when the frozen one thaws.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

START_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)
RESUMABLE_DAG_ID = "system_worker_loss_resumable"
CONTROL_DAG_ID = "system_worker_loss_control"
STALE_DAG_ID = "system_worker_loss_stale_declaration"
STALL_DAG_ID = "system_worker_loss_stall"
RELEASE_MARKER = "stall.release"
TASK_ID = "sleeper"
READY_KEY = "ready"
DECLARED_RESUME_AFTER = timedelta(seconds=12)
"""What the tasks ask for; ``[core] default_checkpoint_resume_after`` (60 s) must not apply."""


def _declare(task_state_store: Any, ti: Any) -> None:
    from airflow.sdk.api.client import get_hostname
    from airflow.sdk.exceptions import (  # type: ignore[attr-defined,unused-ignore]
        AirflowTaskCheckpointed,
        worker_loss_declaration,
    )

    task_state_store.set(
        AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY,  # type: ignore[attr-defined,unused-ignore]
        worker_loss_declaration(
            try_number=ti.try_number,
            hostname=get_hostname(),
            pid=os.getpid(),
            resume_after=DECLARED_RESUME_AFTER.total_seconds(),
        ),
    )


def _run_or_sleep(
    *, declare: bool, sleep_on_resume: bool = False, task_state_store: Any, ti: Any
) -> dict[str, int]:
    runs: list[dict[str, Any]] = task_state_store.get("runs", default=[]) or []
    runs.append({"try_number": ti.try_number, "started_at": time.time()})
    task_state_store.set("runs", runs)
    # With sleep_on_resume the first resumed run waits, undeclared, to lose its worker too.
    if len(runs) > (2 if sleep_on_resume else 1):
        return {"runs": len(runs)}
    if declare and len(runs) == 1:
        _declare(task_state_store, ti)
    task_state_store.set(READY_KEY, len(runs))
    time.sleep(300)  # until the test kills the worker
    raise RuntimeError("the test never killed this task's worker")


@dag(dag_id=RESUMABLE_DAG_ID, schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_worker_loss_resumable() -> None:
    @task(task_id=TASK_ID, retries=0)
    def sleeper(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        return _run_or_sleep(declare=True, task_state_store=task_state_store, ti=ti)

    sleeper()


@dag(dag_id=CONTROL_DAG_ID, schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_worker_loss_control() -> None:
    @task(task_id=TASK_ID, retries=0)
    def sleeper(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        return _run_or_sleep(declare=False, task_state_store=task_state_store, ti=ti)

    sleeper()


@dag(dag_id=STALE_DAG_ID, schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_worker_loss_stale_declaration() -> None:
    @task(task_id=TASK_ID, retries=0)
    def sleeper(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        return _run_or_sleep(declare=True, sleep_on_resume=True, task_state_store=task_state_store, ti=ti)

    sleeper()


def release_marker(airflow_home: str | os.PathLike[str], run_id: str) -> Path:
    """The file whose existence lets the stall DAG's resumed run finish."""
    return Path(airflow_home) / f"{RELEASE_MARKER}.{run_id.replace(':', '_').replace('+', '_')}"


def _sleep_until_thawed(seconds: float) -> None:
    """Sleep in short steps until one takes far longer: this process was frozen, then thawed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        before = time.monotonic()
        time.sleep(0.5)
        if time.monotonic() - before > 5:
            # Reported straight to the server (a success is sent at once, not when the process
            # exits), so only the server's fence can keep it off the live attempt's row.
            print("this attempt was frozen and has just thawed; its success must not reach the task instance")
            return
    raise RuntimeError("the test never froze this task's worker")


@dag(dag_id=STALL_DAG_ID, schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_worker_loss_stall() -> None:
    @task(task_id=TASK_ID, retries=0)
    def sleeper(task_state_store: Any = None, ti: Any = None, run_id: str | None = None) -> dict[str, int]:
        runs: list[dict[str, Any]] = task_state_store.get("runs", default=[]) or []
        runs.append({"try_number": ti.try_number, "started_at": time.time(), "pid": os.getpid()})
        task_state_store.set("runs", runs)
        _declare(task_state_store, ti)
        task_state_store.set(READY_KEY, len(runs))
        if len(runs) == 1:
            _sleep_until_thawed(300)
            return {"runs": len(runs)}
        release = release_marker(os.environ["AIRFLOW_HOME"], str(run_id))
        deadline = time.monotonic() + 180
        while not release.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"the test never released this run ({release})")
            time.sleep(0.5)
        return {"runs": len(runs)}

    sleeper()


system_worker_loss_resumable()
system_worker_loss_control()
system_worker_loss_stale_declaration()
system_worker_loss_stall()
