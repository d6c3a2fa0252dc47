# Licensed under the Apache License, Version 2.0.
"""
DAGs the system tests copy into the stack's dags folder.

Each checkpointing task keeps a diary in its own task state store (key ``runs``): one entry per
run with the ``try_number`` it saw, when it started and, if it checkpointed, when. The diary is how
the task knows which run it is in (the store survives reschedules), and it is what the tests read
back from the database to check resume timing and try numbers from the task's own point of view.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.sdk import dag, task

from airflow.providers.resumable.checkpoint import checkpoint_exception

START_DATE = datetime(2025, 1, 1, tzinfo=timezone.utc)
# A dedicated pool, so a test can see exactly which slots a waiting task holds.
SYSTEM_POOL = "resumable_system"
CHECKPOINT_ONCE_RESUME_AFTER = timedelta(seconds=5)
CHECKPOINT_THREE_TIMES_RESUME_AFTER = timedelta(seconds=1)


def checkpoint_marker(run_number: int) -> str:
    """A string each checkpoint puts in its checkpoint data, findable wherever Airflow stores it."""
    return f"resumable-system-checkpoint-{run_number}"


def _stored_checkpoint_data(task_state_store: Any) -> Any:
    from airflow.sdk import exceptions

    checkpointed = getattr(exceptions, "AirflowTaskCheckpointed", None)
    key = getattr(checkpointed, "CHECKPOINT_DATA_KEY", None)
    return task_state_store.get(key) if key else None


def _checkpoint_then_finish(
    *, checkpoints: int, resume_after: timedelta, task_state_store: Any, ti: Any
) -> dict[str, int]:
    runs: list[dict[str, Any]] = task_state_store.get("runs", default=[]) or []
    runs.append(
        {
            "try_number": ti.try_number,
            "started_at": time.time(),
            # What the previous run left for this one (the core patch only; None on a stock Airflow).
            "resumed_with": _stored_checkpoint_data(task_state_store),
        }
    )
    task_state_store.set("runs", runs)
    if len(runs) <= checkpoints:
        runs[-1]["checkpointed_at"] = time.time()
        task_state_store.set("runs", runs)
        raise checkpoint_exception(
            resume_after=resume_after,
            checkpoint_data={"marker": checkpoint_marker(len(runs)), "run": len(runs)},
        )
    return {"runs": len(runs)}


@dag(dag_id="system_smoke", schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_smoke() -> None:
    @task
    def produce() -> int:
        return 20

    @task
    def consume(value: int) -> int:
        return value + 22

    consume(produce())  # type: ignore[arg-type]  # TaskFlow passes an XComArg, resolved at run time


@dag(
    dag_id="system_checkpoint_once",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    tags=["system-test"],
)
def system_checkpoint_once() -> None:
    @task(retries=0, pool=SYSTEM_POOL)
    def checkpointing(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        return _checkpoint_then_finish(
            checkpoints=1,
            resume_after=CHECKPOINT_ONCE_RESUME_AFTER,
            task_state_store=task_state_store,
            ti=ti,
        )

    @task(retries=0)
    def downstream(task_state_store: Any = None) -> None:
        task_state_store.set("started_at", time.time())

    checkpointing() >> downstream()


@dag(
    dag_id="system_checkpoint_three_times",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    tags=["system-test"],
)
def system_checkpoint_three_times() -> None:
    @task(retries=0, pool=SYSTEM_POOL)
    def checkpointing(task_state_store: Any = None, ti: Any = None) -> dict[str, int]:
        return _checkpoint_then_finish(
            checkpoints=3,
            resume_after=CHECKPOINT_THREE_TIMES_RESUME_AFTER,
            task_state_store=task_state_store,
            ti=ti,
        )

    checkpointing()


@dag(dag_id="system_wait_for_flag", schedule=None, start_date=START_DATE, catchup=False, tags=["system-test"])
def system_wait_for_flag() -> None:
    @task(retries=0)
    def wait_for_flag(dag_run: Any = None) -> None:
        """Keeps a worker busy until the test creates the file named in the run's conf."""
        flag = Path(dag_run.conf["flag"])
        deadline = time.monotonic() + 120
        while not flag.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{flag} never appeared")
            time.sleep(0.2)

    wait_for_flag()


system_smoke()
system_wait_for_flag()
system_checkpoint_once()
system_checkpoint_three_times()
