# Licensed under the Apache License, Version 2.0.
"""
The ledger lives as long as its job: written through Airflow's real task state store accessor.

An attempt runs in this process through Airflow's own execute path with the very accessor a task
gets as ``context["task_state_store"]``. Only the far end of the task's comms channel is stood in
for (:class:`RecordingSupervisor`): it answers the accessor's messages from a dict and keeps each
one, exactly as the supervisor would forward it to the API server, whose ``expires_at`` becomes the
row's. A row with ``expires_at`` set is deleted by ``airflow state-store clean`` once that time
passes, whether or not the task, and its job, are still running.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.sdk.exceptions import ErrorType
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import (
    DeleteTaskStateStore,
    ErrorResponse,
    GetTaskStateStore,
    OKResponse,
    SetTaskStateStore,
    TaskStateStoreResult,
)
from airflow.sdk.execution_time.context import TaskStateStoreAccessor
from attempts import DAG_ID, RUN_ID, TASK_ID, StandaloneTaskInstance

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.ledger_store import LEDGER_KEY

WORKER_LOSS_KEY = "airflow.resume_on_worker_loss"


class RecordingSupervisor:
    """The supervisor's end of the comms channel, for the task state store messages only."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.sent: list[Any] = []

    def send(self, msg: Any) -> Any:
        self.sent.append(msg)
        if isinstance(msg, GetTaskStateStore):
            if msg.key in self.values:
                return TaskStateStoreResult(value=self.values[msg.key])
            return ErrorResponse(error=ErrorType.TASK_STORE_NOT_FOUND)
        if isinstance(msg, SetTaskStateStore):
            self.values[msg.key] = msg.value
            return OKResponse(ok=True)
        if isinstance(msg, DeleteTaskStateStore):
            self.values.pop(msg.key, None)
            return OKResponse(ok=True)
        raise AssertionError(f"the attempt sent an unexpected message: {msg!r}")

    def writes(self, key: str) -> list[SetTaskStateStore]:
        return [m for m in self.sent if isinstance(m, SetTaskStateStore) and m.key == key]


@pytest.fixture
def supervisor(monkeypatch: pytest.MonkeyPatch) -> RecordingSupervisor:
    recording = RecordingSupervisor()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", recording, raising=False)
    return recording


@pytest.fixture
def accessor() -> TaskStateStoreAccessor:
    from airflow.sdk._shared.state import TaskScope

    scope = TaskScope(dag_id=DAG_ID, run_id=RUN_ID, task_id=TASK_ID, map_index=-1)
    return TaskStateStoreAccessor(ti_id=uuid.uuid4(), scope=scope)


def _run_through_the_accessor(spec, accessor: TaskStateStoreAccessor) -> Any:
    from airflow.sdk.execution_time.task_runner import _run_execute_callable

    operator = spec.build_operator()
    context = {"ti": StandaloneTaskInstance(spec.workdir), "task_state_store": accessor}
    return _run_execute_callable(context, operator.execute, operator)  # type: ignore[arg-type]


def test_the_default_retention_would_expire_a_key_in_30_days(supervisor, accessor):
    """The control: in this configuration an ordinary key written without a retention expires."""
    before = datetime.now(tz=timezone.utc)
    accessor.set("some.other.key", 1)

    [write] = supervisor.writes("some.other.key")
    assert write.expires_at is not None
    assert before + timedelta(days=29) < write.expires_at < before + timedelta(days=31)


def test_every_ledger_write_of_a_run_never_expires(spec, service, supervisor, accessor):
    result = _run_through_the_accessor(spec, accessor)

    assert result["job_id"] == service.jobs()[0]["job_id"]
    ledger_writes = supervisor.writes(LEDGER_KEY)
    assert [w.value["phase"] for w in ledger_writes] == ["submitting", "submitted"]  # type: ignore[index]
    assert [w.expires_at for w in ledger_writes] == [None, None], "no write gives the ledger an expiry"


@pytest.mark.skipif(
    not checkpointed_state_available(), reason="a stock Airflow has no worker-loss declaration"
)
def test_the_worker_loss_declaration_never_expires_either(spec, service, supervisor, accessor):
    _run_through_the_accessor(spec, accessor)

    [declaration] = supervisor.writes(WORKER_LOSS_KEY)
    # This attempt's declaration (its try, host, pid and resume delay), with no expiry.
    assert declaration.value["try_number"] == 1
    assert set(declaration.value) == {"try_number", "hostname", "pid", "resume_after"}
    assert declaration.expires_at is None
