# Licensed under the Apache License, Version 2.0.
"""
The patched pieces of Airflow, exercised in-process.

These run only when the running interpreter's Airflow carries the patch (``make patch-venv`` or
``airflow-resumable patch apply``); otherwise they are skipped with that reason.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import signal
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available

pytestmark = pytest.mark.skipif(
    not checkpointed_state_available(),
    reason="this interpreter's Airflow is not patched; run 'airflow-resumable patch apply' (make patch-venv)",
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)


class _Store:
    """A task state store stand-in that records what the runner does to it."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.deleted: list[str] = []

    def set(self, key: str, value: Any) -> None:
        self.values[key] = value

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        self.values.pop(key, None)


# ---------------------------------------------------------------- states and scheduling sets


def test_checkpointed_is_unfinished_schedulable_and_holds_no_slot():
    from airflow.ti_deps.dependencies_states import ACTIVE_STATES, EXECUTION_STATES, SCHEDULEABLE_STATES
    from airflow.ti_deps.deps.ready_to_reschedule import ReadyToRescheduleDep
    from airflow.utils.state import IntermediateTIState, State, TaskInstanceState

    checkpointed = TaskInstanceState.CHECKPOINTED
    assert checkpointed.value == IntermediateTIState.CHECKPOINTED.value == "checkpointed"
    assert checkpointed in State.unfinished
    assert checkpointed not in State.finished | State.failed_states | State.success_states
    assert checkpointed not in State.adoptable_states  # no orphan adoption, no zombie detection
    assert checkpointed not in EXECUTION_STATES | ACTIVE_STATES  # no pool or worker slot
    assert checkpointed in SCHEDULEABLE_STATES
    assert checkpointed in ReadyToRescheduleDep.RESCHEDULEABLE_STATES
    assert State.color(checkpointed) != "white"


def test_ui_and_rest_models_know_the_state():
    from airflow.api.common import mark_tasks
    from airflow.api_fastapi.common.parameters import state_priority
    from airflow.api_fastapi.core_api.datamodels.ui.dashboard import TaskInstanceStateCount
    from airflow.utils.log.file_task_handler import _STATES_WITH_COMPLETED_ATTEMPT
    from airflow.utils.state import TaskInstanceState

    assert TaskInstanceState.CHECKPOINTED in state_priority
    assert "checkpointed" in TaskInstanceStateCount.model_fields
    assert TaskInstanceState.CHECKPOINTED in _STATES_WITH_COMPLETED_ATTEMPT
    # Marking a dag run success/failed treats a checkpointed task as running, not pending (skipped).
    # 3.3.0 predates the shared helper (3.3.1): there the patch is in set_dag_run_state_to_failed.
    marks_terminal = getattr(mark_tasks, "_set_dag_run_terminal_state", None)
    marks_terminal = inspect.unwrap(marks_terminal or mark_tasks.set_dag_run_state_to_failed)
    assert "CHECKPOINTED" in marks_terminal.__code__.co_names


def test_sdk_generated_models_match_the_server_enum():
    from airflow.sdk.api.datamodels import _generated as sdk
    from airflow.utils.state import IntermediateTIState, TaskInstanceState

    assert {s.value for s in sdk.TaskInstanceState} == {s.value for s in TaskInstanceState}
    assert {s.value for s in sdk.IntermediateTIState} == {s.value for s in IntermediateTIState}


def test_listener_hook_is_in_both_spec_copies():
    from airflow._shared.listeners.spec import taskinstance as core_spec
    from airflow.sdk._shared.listeners.spec import taskinstance as sdk_spec

    for spec in (core_spec, sdk_spec):
        assert callable(spec.on_task_instance_checkpointed)


# ---------------------------------------------------------------- task runner


def test_exception_keeps_its_data_and_is_an_airflow_exception():
    from airflow.sdk.exceptions import AirflowException, AirflowTaskCheckpointed

    err = AirflowTaskCheckpointed(checkpoint_data={"run_id": 7}, resume_after=timedelta(minutes=2))

    assert isinstance(err, AirflowException)
    _, _, kwargs = err.serialize()
    assert kwargs == {"checkpoint_data": {"run_id": 7}, "resume_after": timedelta(minutes=2)}
    assert AirflowTaskCheckpointed().checkpoint_data is None


def _run_outcome(raised: BaseException, store: _Store) -> tuple[Any, Any, Any]:
    """Run the runner's outcome mapping for a task whose execute() raises ``raised``."""
    from airflow.sdk.execution_time import task_runner

    # stats_tags: 3.3.0's run() counts ti.start itself, with tags it requires.
    ti = mock.MagicMock(
        _ti_context_from_server=None, rendered_map_index=None, stats_tags={"dag_id": "d", "task_id": "t"}
    )
    context: Any = {"task_state_store": store}
    with (
        mock.patch.object(task_runner, "_prepare", return_value=None),
        mock.patch.object(task_runner, "_execute_task", side_effect=raised),
        mock.patch.object(task_runner, "_render_map_index", return_value=None),
        mock.patch.object(task_runner, "_handle_current_task_failed") as failed,
        mock.patch("signal.signal"),
    ):
        failed.return_value = ("failed-msg", "failed-state")
        # 3.3.0's run() is what 3.3.1 split out as _run_task_and_map_outcome(); same result.
        run_and_map = getattr(task_runner, "_run_task_and_map_outcome", None) or task_runner.run
        return run_and_map(ti, context, mock.MagicMock())


def test_runner_maps_the_exception_to_a_checkpoint_message_not_a_failure():
    from airflow.sdk.exceptions import AirflowTaskCheckpointed
    from airflow.sdk.execution_time.comms import CheckpointTask
    from airflow.utils.state import TaskInstanceState

    store = _Store()
    state, msg, error = _run_outcome(
        AirflowTaskCheckpointed(checkpoint_data={"job": "j-1"}, resume_after=timedelta(seconds=42)), store
    )

    assert state == TaskInstanceState.CHECKPOINTED
    assert isinstance(msg, CheckpointTask)
    assert msg.resume_after == timedelta(seconds=42)
    assert error is None
    assert store.values == {AirflowTaskCheckpointed.CHECKPOINT_DATA_KEY: {"job": "j-1"}}


def test_runner_leaves_the_store_alone_without_checkpoint_data():
    from airflow.sdk.exceptions import AirflowTaskCheckpointed

    store = _Store()
    _, msg, _ = _run_outcome(AirflowTaskCheckpointed(), store)

    assert msg.resume_after is None
    assert store.values == {}


def test_a_resumed_attempt_that_succeeds_deletes_the_checkpoint_data():
    from airflow.sdk.exceptions import AirflowTaskCheckpointed
    from airflow.sdk.execution_time import task_runner

    store = _Store()
    store.values[AirflowTaskCheckpointed.CHECKPOINT_DATA_KEY] = {"job": "j-1"}
    for reschedules, expected in ((0, []), (1, [AirflowTaskCheckpointed.CHECKPOINT_DATA_KEY])):
        store.deleted.clear()
        ti = mock.MagicMock(
            _ti_context_from_server=SimpleNamespace(task_reschedule_count=reschedules),
            rendered_map_index=None,
        )
        ti.task.outlets = []
        with mock.patch.object(task_runner, "_serialize_outlet_events", return_value=[]):
            context: Any = {"task_state_store": store, "outlet_events": {}}
            task_runner._handle_current_task_success(context, ti)
        assert store.deleted == expected


def test_finalize_calls_the_listener_and_no_success_or_failure_callbacks():
    from airflow.sdk.execution_time import task_runner
    from airflow.utils.state import TaskInstanceState

    ti = mock.MagicMock(start_date=None)
    ti.task.operator_extra_links = []
    ti.task.overwrite_rtif_after_execution = False
    with (
        mock.patch.object(task_runner, "get_listener_manager") as manager,
        mock.patch.object(task_runner, "_run_task_state_change_callbacks") as callbacks,
    ):
        task_runner.finalize(ti, TaskInstanceState.CHECKPOINTED, mock.MagicMock(), mock.MagicMock())

    manager.return_value.hook.on_task_instance_checkpointed.assert_called_once_with(
        previous_state=TaskInstanceState.RUNNING, task_instance=ti
    )
    callbacks.assert_not_called()


# ---------------------------------------------------------------- supervisor and client


def _supervisor() -> Any:
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    supervisor = object.__new__(ActivitySubprocess)
    supervisor.client = mock.MagicMock()
    supervisor.id = uuid.uuid4()
    supervisor._pending_terminal_state_msg = None
    supervisor._terminal_state = None
    supervisor._sigterm_handler_before_start = None  # what start() sets: it did not run here
    return supervisor


def test_supervisor_sends_checkpoint_directly_and_replays_it_after_a_failure():
    from airflow.sdk.execution_time.comms import CheckpointTask
    from airflow.sdk.execution_time.supervisor import STATES_SENT_DIRECTLY
    from airflow.utils.state import TaskInstanceState

    assert TaskInstanceState.CHECKPOINTED in STATES_SENT_DIRECTLY  # never sent through finish()
    supervisor = _supervisor()
    msg = CheckpointTask(end_date=NOW, resume_after=timedelta(seconds=30))
    supervisor.client.task_instances.checkpoint.side_effect = [ConnectionError("blip"), None]

    with pytest.raises(ConnectionError):
        supervisor._send_terminal_state_msg(msg)
    assert supervisor._pending_terminal_state_msg is msg
    supervisor._replay_pending_terminal_state_msg()

    assert supervisor.client.task_instances.checkpoint.call_count == 2
    assert supervisor._pending_terminal_state_msg is None
    assert supervisor._terminal_state == TaskInstanceState.CHECKPOINTED


def test_client_body_is_accepted_by_the_execution_api_as_a_checkpoint_payload():
    import json

    import httpx
    from airflow.api_fastapi.execution_api.datamodels.taskinstance import (
        TICheckpointStatePayload,
        ti_state_discriminator,
    )
    from airflow.sdk.api.client import Client
    from airflow.sdk.execution_time.comms import CheckpointTask

    requests: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    client = Client(base_url="http://api/execution/", token="t", transport=httpx.MockTransport(record))
    ti_id = uuid.uuid4()
    client.task_instances.checkpoint(ti_id, CheckpointTask(end_date=NOW, resume_after=timedelta(seconds=90)))

    (request,) = requests
    assert (request.method, request.url.path) == ("PATCH", f"/execution/task-instances/{ti_id}/state")
    assert ti_state_discriminator(json.loads(request.content)) == "checkpointed"
    payload = TICheckpointStatePayload.model_validate_json(request.content)
    assert payload.resume_after == timedelta(seconds=90)


# ---------------------------------------------------------------- Execution API state update branch


def _update_state(resume_after: timedelta | None) -> tuple[Any, Any]:
    from airflow.api_fastapi.execution_api.datamodels.taskinstance import TICheckpointStatePayload
    from airflow.api_fastapi.execution_api.routes import task_instances as routes
    from airflow.models.taskreschedule import TaskReschedule

    session = mock.MagicMock(bind=None)
    from airflow.utils.state import IntermediateTIState

    payload = TICheckpointStatePayload(
        state=IntermediateTIState.CHECKPOINTED, end_date=NOW, resume_after=resume_after
    )
    with mock.patch.object(routes.timezone, "utcnow", return_value=NOW):
        # 3.3.0 answers (query, state); 3.3.1 added the asset callbacks.
        _, state, *callbacks = routes._create_ti_state_update_query_and_update_state(
            ti_patch_payload=payload,
            task_instance_id=uuid.uuid4(),
            query=mock.MagicMock(),
            session=session,
            dag_bag=mock.MagicMock(),
            dag_id="d",
        )
    assert callbacks in ([], [()])
    (added,) = [c.args[0] for c in session.add.call_args_list]
    assert isinstance(added, TaskReschedule)
    return state, added


def test_execution_api_records_a_reschedule_row_and_sets_checkpointed():
    from airflow.utils.state import TaskInstanceState

    state, reschedule = _update_state(timedelta(minutes=5))

    assert state == TaskInstanceState.CHECKPOINTED
    assert reschedule.reschedule_date == NOW + timedelta(minutes=5)
    assert reschedule.end_date == NOW


def test_execution_api_uses_the_configured_default_delay(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER", "120")

    _, reschedule = _update_state(None)

    assert reschedule.reschedule_date == NOW + timedelta(seconds=120)


def test_execution_api_raises_a_tiny_delay_to_the_safe_minimum():
    from airflow.models.taskreschedule import MIN_CHECKPOINT_RESUME_AFTER

    _, reschedule = _update_state(timedelta(0))

    # One scheduler loop: the executor-event race no longer needs the 10 s it once did.
    assert timedelta(seconds=1) == MIN_CHECKPOINT_RESUME_AFTER
    assert reschedule.reschedule_date == NOW + MIN_CHECKPOINT_RESUME_AFTER


def test_execution_api_keeps_a_short_delay_above_the_minimum():
    _, reschedule = _update_state(timedelta(seconds=2))

    assert reschedule.reschedule_date == NOW + timedelta(seconds=2)


def test_execution_api_route_validates_a_checkpoint_body_against_the_checkpoint_payload():
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from fastapi.testclient import TestClient

    client = TestClient(InProcessExecutionAPI().app, raise_server_exceptions=False)
    url = f"/task-instances/{uuid.uuid4()}/state"
    body = {"state": "checkpointed", "end_date": "2026-01-01T00:00:00Z"}

    bad = client.patch(url, json={**body, "resume_after": "soon"})
    good = client.patch(url, json={**body, "resume_after": 30})

    assert bad.status_code == 422
    checkpoint_errors = [e["loc"][2:] for e in bad.json()["detail"] if e["loc"][1] == "checkpointed"]
    assert checkpoint_errors == [["resume_after"]]  # the state itself is accepted by that payload
    assert good.status_code != 422  # past validation (404 or a database error without a metadata DB)


# ---------------------------------------------------------------- worker loss: the declaration


def test_the_worker_loss_key_is_the_same_in_core_and_the_task_sdk():
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY, WORKER_LOSS_COUNT_KEY
    from airflow.sdk.exceptions import AirflowTaskCheckpointed

    assert RESUME_ON_WORKER_LOSS_KEY == AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY
    assert RESUME_ON_WORKER_LOSS_KEY == "airflow.resume_on_worker_loss"
    assert RESUME_ON_WORKER_LOSS_KEY != AirflowTaskCheckpointed.CHECKPOINT_DATA_KEY
    # The scheduler and the supervisor count a try's forgiven losses under one key.
    assert WORKER_LOSS_COUNT_KEY == AirflowTaskCheckpointed.WORKER_LOSS_COUNT_KEY
    assert (
        len({RESUME_ON_WORKER_LOSS_KEY, WORKER_LOSS_COUNT_KEY, AirflowTaskCheckpointed.CHECKPOINT_DATA_KEY})
        == 3
    )


def test_checkpoint_resume_after_uses_the_configured_default_and_the_minimum(
    monkeypatch: pytest.MonkeyPatch,
):
    from airflow.models.taskreschedule import MIN_CHECKPOINT_RESUME_AFTER, checkpoint_resume_after

    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER", "45")
    assert checkpoint_resume_after(None) == timedelta(seconds=45)
    assert checkpoint_resume_after(timedelta(minutes=3)) == timedelta(minutes=3)
    assert checkpoint_resume_after(timedelta(seconds=2)) == timedelta(seconds=2)
    assert checkpoint_resume_after(timedelta(seconds=0.5)) == MIN_CHECKPOINT_RESUME_AFTER
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER", "0")
    assert checkpoint_resume_after(None) == MIN_CHECKPOINT_RESUME_AFTER


class _Backend:
    """A task state store backend stand-in: stored JSON strings per key, and the scopes asked for."""

    def __init__(self, stored: dict[str, str] | None = None, error: Exception | None = None) -> None:
        self.stored = stored or {}
        self.error = error
        self.asked: list[tuple[Any, str]] = []

    def get(self, scope: Any, key: str, *, session: Any = None) -> str | None:
        self.asked.append((scope, key))
        if self.error is not None:
            raise self.error
        return self.stored.get(key)

    def set(self, scope: Any, key: str, value: str, *, expires_at: Any = None, session: Any = None) -> None:
        self.stored[key] = value


HOST, PID = "worker-7", 4242
"""The host and task pid the server recorded for the running attempt (``_running_ti``)."""


def _declared(try_number: int = 1, *, pid: int = PID, resume_after: float | None = None) -> str:
    """A stored declaration, as the task writes it."""
    from airflow.sdk.exceptions import worker_loss_declaration

    return json.dumps(
        worker_loss_declaration(try_number=try_number, hostname=HOST, pid=pid, resume_after=resume_after)
    )


def _running_ti(try_number: int = 1, state: str = "running") -> Any:
    """A real, unsaved TaskInstance row object (no metadata DB needed), as the scheduler holds it."""
    from airflow.models.taskinstance import TaskInstance
    from sqlalchemy.orm import configure_mappers

    # Instrumented attributes exist only once the mappers are configured; in a process where no
    # earlier test (or query) did it, setting one would fail.
    configure_mappers()
    ti = TaskInstance.__mapper__.class_manager.new_instance()
    ti.id = uuid.uuid4()
    ti.dag_id, ti.task_id, ti.run_id, ti.map_index = "d", "t", "r", -1
    ti.try_number, ti.max_tries = try_number, 0
    ti.hostname, ti.pid = HOST, PID
    ti.state = state
    ti.start_date = NOW - timedelta(minutes=7)
    ti.end_date = None
    ti.next_method, ti.next_kwargs = "resume_here", {"a": 1}
    return ti


def _checkpoint_on_worker_loss(ti: Any, backend: _Backend, *, resumes: int = 0) -> tuple[bool, Any, Any]:
    """
    Run TaskInstance.checkpoint_on_worker_loss; return (result, session mock, listener hook mock).

    :param resumes: the try's reschedule rows (how often it was resumed), as the session counts them.
    """
    from airflow.models import taskinstance

    session = mock.MagicMock()
    session.scalar.return_value = resumes
    with (
        mock.patch("airflow.state.get_state_backend", return_value=backend),
        mock.patch.object(taskinstance.timezone, "utcnow", return_value=NOW),
        mock.patch.object(taskinstance, "get_listener_manager") as manager,
    ):
        result = ti.checkpoint_on_worker_loss(session=session)
    return result, session, manager.return_value.hook


def test_a_declared_running_ti_is_checkpointed_on_worker_loss(monkeypatch: pytest.MonkeyPatch):
    from airflow.models.log import Log
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY, WORKER_LOSS_COUNT_KEY
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.state import TaskScope
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER", "30")
    ti = _running_ti(try_number=2)
    backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: _declared(2)})

    checkpointed, session, hook = _checkpoint_on_worker_loss(ti, backend)

    assert checkpointed is True
    scope = TaskScope(dag_id="d", run_id="r", task_id="t", map_index=-1)
    assert backend.asked == [(scope, RESUME_ON_WORKER_LOSS_KEY), (scope, WORKER_LOSS_COUNT_KEY)]
    assert json.loads(backend.stored[WORKER_LOSS_COUNT_KEY]) == {"try_number": 2, "count": 1}
    assert (ti.state, ti.try_number, ti.end_date) == (TaskInstanceState.CHECKPOINTED, 2, NOW)
    assert ti.duration == timedelta(minutes=7).total_seconds()
    assert (ti.next_method, ti.next_kwargs) == (None, None)
    added = [c.args[0] for c in session.add.call_args_list]
    (reschedule,) = [row for row in added if isinstance(row, TaskReschedule)]
    assert (reschedule.ti_id, reschedule.start_date, reschedule.end_date) == (ti.id, ti.start_date, NOW)
    # No resume_after in the declaration: the configured default.
    assert reschedule.reschedule_date == NOW + timedelta(seconds=30)
    (audit,) = [row for row in added if isinstance(row, Log)]
    assert audit.event == "worker lost"
    hook.on_task_instance_checkpointed.assert_called_once_with(
        previous_state=TaskInstanceState.RUNNING, task_instance=ti
    )
    hook.on_task_instance_failed.assert_not_called()


@pytest.mark.parametrize(
    "declared",
    [
        pytest.param(15.0, id="the-operators-15s"),
        pytest.param(2.0, id="a-short-delay-once-raised-to-10s"),
    ],
)
def test_a_worker_loss_checkpoint_resumes_after_the_declared_delay(
    declared: float, monkeypatch: pytest.MonkeyPatch
):
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY
    from airflow.models.taskreschedule import TaskReschedule

    # The operator said 15 s; the 60 s default must not apply (measured before: 74.7 s to resume).
    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER", "60")
    backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: _declared(resume_after=declared)})

    _, session, _ = _checkpoint_on_worker_loss(_running_ti(), backend)

    (reschedule,) = [c.args[0] for c in session.add.call_args_list if isinstance(c.args[0], TaskReschedule)]
    assert reschedule.reschedule_date == NOW + timedelta(seconds=declared)


def test_a_worker_loss_checkpoint_waits_at_least_the_safe_minimum(monkeypatch: pytest.MonkeyPatch):
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY
    from airflow.models.taskreschedule import MIN_CHECKPOINT_RESUME_AFTER, TaskReschedule

    monkeypatch.setenv("AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER", "1")
    for declared in (_declared(), _declared(resume_after=0.5)):
        backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: declared})
        _, session, _ = _checkpoint_on_worker_loss(_running_ti(), backend)

        (reschedule,) = [
            c.args[0] for c in session.add.call_args_list if isinstance(c.args[0], TaskReschedule)
        ]
        assert reschedule.reschedule_date == NOW + MIN_CHECKPOINT_RESUME_AFTER


@pytest.mark.parametrize(
    ("stored", "try_number", "why"),
    [
        pytest.param(None, 1, "never declared", id="undeclared"),
        pytest.param(
            {"try_number": 1},
            2,
            "declared by an earlier try: this retry has not reached its work",
            id="old-try",
        ),
        pytest.param("1", 1, "the old bare try number names no attempt", id="bare-try-number"),
        pytest.param("true", 1, "a bare true would match try 1 (True == 1)", id="bare-true"),
        pytest.param({"try_number": True}, 1, "True is not try 1", id="true-as-try"),
    ],
)
def test_an_undeclared_ti_is_left_to_the_usual_failure_handling(
    stored: str | dict[str, Any] | None, try_number: int, why: str
):
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY
    from airflow.utils.state import TaskInstanceState

    if isinstance(stored, dict):
        # A declaration of this attempt, with the given fields changed.
        stored = json.dumps({**json.loads(_declared(1)), **stored})
    ti = _running_ti(try_number=try_number)
    backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: stored} if stored is not None else {})

    checkpointed, session, hook = _checkpoint_on_worker_loss(ti, backend)

    assert checkpointed is False, why
    assert ti.state == TaskInstanceState.RUNNING
    session.add.assert_not_called()
    hook.on_task_instance_checkpointed.assert_not_called()


@pytest.mark.parametrize(
    "earlier",
    [
        pytest.param({"pid": PID + 1}, id="another-process"),
        pytest.param({"hostname": "another-host"}, id="another-host"),
    ],
)
def test_a_resumed_attempt_lost_before_it_declared_again_is_forgiven_for_the_earlier_declaration(
    earlier: dict[str, Any],
):
    """
    An earlier attempt of this try declared (its job exists), then the try was resumed, and the
    resumed attempt's worker went before that attempt declared again (it was still loading its DAG).
    Continuing the work is as safe as it was for the declaring attempt: a checkpoint, counted, with
    the delay that attempt declared, not a failure that costs a retry.
    """
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY, WORKER_LOSS_COUNT_KEY
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.state import TaskInstanceState

    stored = json.dumps({**json.loads(_declared(1, resume_after=15.0)), **earlier})
    ti = _running_ti(try_number=1)
    backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: stored})

    checkpointed, session, hook = _checkpoint_on_worker_loss(ti, backend)

    assert checkpointed is True
    assert ti.state == TaskInstanceState.CHECKPOINTED
    assert json.loads(backend.stored[WORKER_LOSS_COUNT_KEY]) == {"try_number": 1, "count": 1}
    (reschedule,) = [c.args[0] for c in session.add.call_args_list if isinstance(c.args[0], TaskReschedule)]
    assert reschedule.reschedule_date == NOW + timedelta(seconds=15)
    hook.on_task_instance_failed.assert_not_called()


def test_worker_losses_are_forgiven_at_most_max_worker_loss_checkpoints_times_per_try(
    monkeypatch: pytest.MonkeyPatch,
):
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY, WORKER_LOSS_COUNT_KEY
    from airflow.utils.state import TaskInstanceState

    monkeypatch.setenv("AIRFLOW__CORE__MAX_WORKER_LOSS_CHECKPOINTS", "2")
    backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: _declared(3)})

    outcomes = []
    for _ in range(3):  # a task that OOM-kills its worker every time
        ti = _running_ti(try_number=3)
        outcomes.append(_checkpoint_on_worker_loss(ti, backend)[0])

    assert outcomes == [True, True, False]
    assert ti.state == TaskInstanceState.RUNNING  # the third loss is left to the usual failure
    assert json.loads(backend.stored[WORKER_LOSS_COUNT_KEY]) == {"try_number": 3, "count": 2}

    # A new try starts counting again.
    backend.stored[RESUME_ON_WORKER_LOSS_KEY] = _declared(4)
    assert _checkpoint_on_worker_loss(_running_ti(try_number=4), backend)[0] is True
    assert json.loads(backend.stored[WORKER_LOSS_COUNT_KEY]) == {"try_number": 4, "count": 1}


def test_max_worker_loss_checkpoints_zero_never_forgives(monkeypatch: pytest.MonkeyPatch):
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY

    monkeypatch.setenv("AIRFLOW__CORE__MAX_WORKER_LOSS_CHECKPOINTS", "0")
    backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: _declared()})
    assert _checkpoint_on_worker_loss(_running_ti(), backend)[0] is False


def test_only_a_running_ti_is_checkpointed_and_a_store_error_means_the_usual_failure():
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY

    declared = {RESUME_ON_WORKER_LOSS_KEY: _declared()}
    # RESTARTING: a person cleared the running task and expects a new try, not a resume. QUEUED
    # without a resume in this try: its first workload is on its way, nothing to resume.
    for state, resumes in (("restarting", 1), ("queued", 0), ("scheduled", 1)):
        backend = _Backend(declared)
        assert _checkpoint_on_worker_loss(_running_ti(state=state), backend, resumes=resumes)[0] is False
        assert backend.asked == []

    checkpointed, session, _ = _checkpoint_on_worker_loss(
        _running_ti(), _Backend(declared, error=RuntimeError("backend down"))
    )
    assert checkpointed is False
    session.add.assert_not_called()


def test_a_resumed_ti_whose_workload_was_lost_before_it_started_is_checkpointed_again():
    """
    Queued for its resume, its workload lost before ``ti_run`` (the worker drained or lost while it
    was starting): checkpointed again, counted, with the declared delay, instead of left queued.
    """
    from airflow.models.taskinstance import RESUME_ON_WORKER_LOSS_KEY, WORKER_LOSS_COUNT_KEY
    from airflow.models.taskreschedule import TaskReschedule
    from airflow.utils.state import TaskInstanceState

    ti = _running_ti(state="queued")
    backend = _Backend({RESUME_ON_WORKER_LOSS_KEY: _declared(resume_after=15.0)})

    checkpointed, session, hook = _checkpoint_on_worker_loss(ti, backend, resumes=1)

    assert checkpointed is True
    assert ti.state == TaskInstanceState.CHECKPOINTED
    assert json.loads(backend.stored[WORKER_LOSS_COUNT_KEY]) == {"try_number": 1, "count": 1}
    (reschedule,) = [c.args[0] for c in session.add.call_args_list if isinstance(c.args[0], TaskReschedule)]
    assert reschedule.reschedule_date == NOW + timedelta(seconds=15)
    hook.on_task_instance_checkpointed.assert_called_once_with(
        previous_state=TaskInstanceState.QUEUED, task_instance=ti
    )


# ---------------------------------------------------------------- worker loss: the scheduler's two paths


def _scheduler_runner(executor: Any) -> Any:
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner

    runner = object.__new__(SchedulerJobRunner)
    runner._multi_team = False
    runner._task_instance_heartbeat_timeout_secs = 20
    runner.executor = executor
    runner._try_to_load_executor = mock.MagicMock(return_value=executor)  # type: ignore[method-assign]
    return runner


def test_heartbeat_timeout_of_a_declared_ti_checkpoints_it_without_a_failure_callback():
    from airflow.utils.state import TaskInstanceState

    executor = mock.MagicMock()
    ti = mock.MagicMock(dag_id="d")
    ti.checkpoint_on_worker_loss.return_value = True
    session = mock.MagicMock()

    _scheduler_runner(executor)._purge_task_instances_without_heartbeats([ti], session=session)

    ti.checkpoint_on_worker_loss.assert_called_once_with(session=session)
    executor.send_callback.assert_not_called()  # no on_failure/on_retry callback, no email
    session.add.assert_not_called()  # no "heartbeat timeout" audit row; the model wrote its own
    # The executor stops counting the task as running; the event it queues finds it checkpointed.
    executor.change_state.assert_called_once_with(ti.key, TaskInstanceState.FAILED, remove_running=True)


def _process_one_executor_event(ti: Any, event_state: str) -> tuple[Any, Any]:
    from airflow.jobs import scheduler_job_runner
    from airflow.jobs.scheduler_job_runner import SchedulerJobRunner
    from airflow.models.taskinstancekey import TaskInstanceKey

    key = TaskInstanceKey("d", "t", "r", 1, -1)
    ti.key, ti.try_number, ti.queued_by_job_id = key, 1, 7
    executor = mock.MagicMock()
    executor.get_event_buffer.return_value = {key: (event_state, None)}
    executor.has_task.return_value = False
    session = mock.MagicMock()
    session.scalars.return_value = iter([ti])
    dag_bag = mock.MagicMock()
    task = dag_bag.get_dag_for_run.return_value.get_task.return_value
    task.has_on_retry_callback = task.has_on_failure_callback = False
    task.email = None
    with mock.patch.object(scheduler_job_runner, "with_row_locks", side_effect=lambda q, **_: q):
        SchedulerJobRunner.process_executor_events(
            executor=executor, job_id=7, scheduler_dag_bag=dag_bag, session=session
        )
    return executor, session


def test_executor_reporting_a_declared_running_ti_finished_checkpoints_it():
    from airflow.utils.state import TaskInstanceState

    ti = mock.MagicMock(state=TaskInstanceState.RUNNING)
    ti.awaits_its_resumed_attempt.return_value = False
    ti.runs_a_live_resumed_attempt.return_value = False
    ti.checkpoint_on_worker_loss.return_value = True

    executor, session = _process_one_executor_event(ti, TaskInstanceState.FAILED)

    ti.checkpoint_on_worker_loss.assert_called_once_with(session=session)
    _assert_not_failed(ti, executor, session)


@pytest.mark.parametrize(
    "ti_state",
    [
        pytest.param("running", id="undeclared-running"),
        pytest.param("queued", id="queued-never-resumed"),
    ],
)
def test_executor_reporting_an_undeclared_or_never_resumed_ti_finished_still_fails_it(ti_state: str):
    from airflow.utils.state import TaskInstanceState

    ti = mock.MagicMock(state=ti_state)
    ti.awaits_its_resumed_attempt.return_value = False
    ti.runs_a_live_resumed_attempt.return_value = False
    ti.checkpoint_on_worker_loss.return_value = False

    _, session = _process_one_executor_event(ti, TaskInstanceState.FAILED)

    ti.handle_failure.assert_called_once()
    assert [c.args[0].event for c in session.add.call_args_list] == ["state mismatch"]


def test_executor_reporting_an_earlier_attempt_finished_leaves_the_live_resumed_attempt_alone():
    from airflow.utils.state import TaskInstanceState

    ti = mock.MagicMock(state=TaskInstanceState.RUNNING)
    ti.awaits_its_resumed_attempt.return_value = False
    ti.runs_a_live_resumed_attempt.return_value = True

    executor, session = _process_one_executor_event(ti, TaskInstanceState.FAILED)

    ti.runs_a_live_resumed_attempt.assert_called_once_with(session=session)
    _assert_left_alone(ti, executor, session)


@pytest.mark.parametrize("checkpointed", [True, False])
def test_executor_reporting_a_failed_workload_of_a_queued_resumed_ti_checkpoints_it_again(checkpointed: bool):
    """
    A workload of the key failed while the resumed task instance is queued: on an executor that
    reports only the newest workload of a key (Celery) that is the resumed one, lost before it
    started. Checkpointed again if the try allows (counted), it resumes instead of waiting in queued
    until ``[scheduler] task_queued_timeout``; if not, it is left alone as before, never failed here.
    """
    from airflow.utils.state import TaskInstanceState

    ti = mock.MagicMock(state=TaskInstanceState.QUEUED, next_method=None)
    ti.awaits_its_resumed_attempt.return_value = True
    ti.checkpoint_on_worker_loss.return_value = checkpointed

    executor, session = _process_one_executor_event(ti, TaskInstanceState.FAILED)

    ti.checkpoint_on_worker_loss.assert_called_once_with(session=session)
    _assert_not_failed(ti, executor, session)


def _assert_not_failed(ti: Any, executor: Any, session: Any) -> None:
    """The scheduler neither failed nor re-stated the task instance for the event."""
    ti.handle_failure.assert_not_called()
    ti.set_state.assert_not_called()
    executor.send_callback.assert_not_called()
    session.add.assert_not_called()  # no "state mismatch" audit row


def _assert_left_alone(ti: Any, executor: Any, session: Any) -> None:
    """The scheduler neither failed, checkpointed nor re-stated the task instance for the event."""
    ti.checkpoint_on_worker_loss.assert_not_called()
    _assert_not_failed(ti, executor, session)


@pytest.mark.parametrize(
    ("ti_state", "event_state"),
    [
        pytest.param("scheduled", "success", id="success-scheduled"),
        pytest.param("scheduled", "failed", id="failed-scheduled"),
        pytest.param("queued", "success", id="success-queued"),
    ],
)
def test_executor_reporting_the_attempt_before_a_resume_finished_leaves_the_resumed_ti_alone(
    ti_state: str, event_state: str
):
    # The checkpointed attempt's workload reports its end only after its worker is done with it,
    # which can be after the task was resumed (same key): it must not fail the resumed attempt.
    ti = mock.MagicMock(state=ti_state, next_method=None)  # not resuming from a deferral
    ti.awaits_its_resumed_attempt.return_value = True

    executor, session = _process_one_executor_event(ti, event_state)

    ti.awaits_its_resumed_attempt.assert_called_once_with(session=session)
    _assert_left_alone(ti, executor, session)


@pytest.mark.parametrize(
    ("state", "reschedule_rows", "awaits"),
    [
        pytest.param("scheduled", 1, True, id="scheduled-after-a-resume"),
        pytest.param("queued", 2, True, id="queued-after-a-resume"),
        pytest.param("queued", 0, False, id="queued-never-resumed"),
        pytest.param("scheduled", 0, False, id="scheduled-never-resumed"),
        pytest.param("running", 1, False, id="running-its-own-attempt"),
        pytest.param("checkpointed", 1, False, id="not-resumed-yet"),
    ],
)
def test_a_ti_awaits_its_resumed_attempt_when_resumed_in_this_try_and_not_started(
    state: str, reschedule_rows: int, awaits: bool
):
    ti = _running_ti(state=state)
    session = mock.MagicMock()
    session.scalar.return_value = reschedule_rows

    assert ti.awaits_its_resumed_attempt(session=session) is awaits


@pytest.mark.parametrize(
    ("state", "heartbeat_age", "reschedule_rows", "live"),
    [
        pytest.param("running", timedelta(seconds=3), 1, True, id="resumed-and-heartbeating"),
        pytest.param("running", timedelta(seconds=3), 0, False, id="never-resumed"),
        pytest.param("running", timedelta(minutes=10), 1, False, id="heartbeat-stale"),
        pytest.param("queued", timedelta(seconds=3), 1, False, id="not-running"),
    ],
)
def test_a_live_resumed_attempt_is_one_that_runs_heartbeats_and_was_resumed_in_this_try(
    state: str, heartbeat_age: timedelta, reschedule_rows: int, live: bool, monkeypatch: pytest.MonkeyPatch
):
    from airflow.models import taskinstance

    monkeypatch.setenv("AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT", "300")
    ti = _running_ti(state=state)
    ti.last_heartbeat_at = NOW - heartbeat_age
    session = mock.MagicMock()
    session.scalar.return_value = reschedule_rows

    with mock.patch.object(taskinstance.timezone, "utcnow", return_value=NOW):
        assert ti.runs_a_live_resumed_attempt(session=session) is live


# ---------------------------------------------------------------- attempt fencing


@pytest.mark.parametrize(
    ("attempt", "hostname", "pid"),
    [
        pytest.param("4242@worker-1", "worker-1", 4242, id="the-attempt-the-row-records"),
        pytest.param(None, "worker-1", 4242, id="a-client-that-predates-the-header"),
        pytest.param("4242@worker-1", None, None, id="a-row-without-an-attempt"),
    ],
)
def test_a_state_change_from_the_recorded_attempt_passes_the_fence(
    attempt: str | None, hostname: str | None, pid: int | None
):
    from airflow.api_fastapi.execution_api.routes.task_instances import _fence_stale_attempt

    _fence_stale_attempt(attempt, hostname=hostname, pid=pid)  # does not raise


@pytest.mark.parametrize(
    "attempt",
    [
        pytest.param("1111@worker-1", id="another-pid-same-host"),
        pytest.param("4242@worker-2", id="same-pid-another-host"),
        pytest.param("garbage", id="unparseable"),
    ],
)
def test_a_state_change_from_a_stale_attempt_is_refused_naming_the_live_one(attempt: str):
    from airflow.api_fastapi.execution_api.routes.task_instances import _fence_stale_attempt
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as refused:
        _fence_stale_attempt(attempt, hostname="worker-1", pid=4242)

    assert refused.value.status_code == 409
    assert refused.value.detail == {
        "reason": "attempt_fenced",
        "message": "Another attempt of this task instance runs now; this attempt must not change its state",
        "current_hostname": "worker-1",
        "current_pid": 4242,
    }


def _patch_state_as(attempt: str | None) -> Any:
    """PATCH a failure through the Execution API app onto a row that ``4242@worker-1`` runs."""
    from airflow.api_fastapi.common.db.common import _get_session
    from airflow.api_fastapi.execution_api.app import InProcessExecutionAPI
    from fastapi.testclient import TestClient

    app = InProcessExecutionAPI().app
    session = mock.MagicMock()
    # ti_update_state's row: state, try_number, max_tries, dag_id, task_id, run_id, map_index,
    # hostname, pid, logical_date, owners.
    session.execute.return_value.one.return_value = (
        "running",
        1,
        0,
        "d",
        "t",
        "r",
        -1,
        "worker-1",
        4242,
        None,
        "o",
    )

    def one_session() -> Any:
        yield session

    app.dependency_overrides[_get_session] = one_session
    client = TestClient(app, raise_server_exceptions=False)
    headers = {} if attempt is None else {"Airflow-Task-Attempt": attempt}
    return client.patch(
        f"/task-instances/{uuid.uuid4()}/state",
        json={"state": "failed", "end_date": "2026-01-01T00:00:00Z"},
        headers=headers,
    )


def test_the_state_route_fences_on_the_header_the_supervisor_sends():
    from airflow.api_fastapi.execution_api.routes import task_instances as routes
    from airflow.sdk.api.client import ATTEMPT_HEADER

    assert routes.ATTEMPT_HEADER == ATTEMPT_HEADER == "Airflow-Task-Attempt"  # two packages, one name

    stale, live, unnamed = (
        _patch_state_as("1111@worker-1"),
        _patch_state_as("4242@worker-1"),
        _patch_state_as(None),
    )

    assert stale.status_code == 409
    assert stale.json()["detail"]["reason"] == "attempt_fenced"
    assert live.status_code == 204
    assert unnamed.status_code == 204


# ---------------------------------------------------------------- worker loss: the supervisor


def _killed_supervisor(
    declared: Any,
    *,
    counted: Any = None,
    exit_code: int = -9,
    terminal_state: Any = None,
    try_number: int = 3,
    shutdown_signal: bool = False,
) -> Any:
    """A supervisor whose task process ended with ``exit_code``; the store answers as given."""
    from airflow.sdk.api.datamodels._generated import TaskStateStoreResponse
    from airflow.sdk.exceptions import AirflowTaskCheckpointed, ErrorType
    from airflow.sdk.execution_time.comms import ErrorResponse

    supervisor = _supervisor()
    supervisor._exit_code = exit_code
    supervisor._terminal_state = terminal_state
    supervisor._should_retry = False
    supervisor._rendered_map_index = None
    supervisor.pid = PID
    supervisor.ti = SimpleNamespace(try_number=try_number)
    supervisor.process_log = mock.MagicMock()
    supervisor._shutdown_signal_received = shutdown_signal
    if isinstance(declared, Exception):
        supervisor.client.task_state_store.get.side_effect = declared
        return supervisor

    def answer(value: Any) -> Any:
        if value is None:
            return ErrorResponse(error=ErrorType.TASK_STORE_NOT_FOUND, detail={})
        return TaskStateStoreResponse(value=value)

    answers = {
        AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY: answer(declared),
        AirflowTaskCheckpointed.WORKER_LOSS_COUNT_KEY: answer(counted),
    }
    supervisor.client.task_state_store.get.side_effect = lambda ti_id, key: answers[key]
    return supervisor


def _declaration_here(try_number: int = 3, **changes: Any) -> dict[str, Any]:
    """A declaration by the attempt ``_killed_supervisor`` watches (this host, pid ``PID``)."""
    from airflow.sdk.api.client import get_hostname
    from airflow.sdk.exceptions import worker_loss_declaration

    declared = worker_loss_declaration(
        try_number=try_number, hostname=get_hostname(), pid=PID, resume_after=None
    )
    return {**declared, **changes}


def test_supervisor_reports_a_checkpoint_when_sigkill_took_a_declared_task():
    from airflow.sdk.exceptions import AirflowTaskCheckpointed
    from airflow.sdk.execution_time.comms import CheckpointTask
    from airflow.utils.state import TaskInstanceState

    supervisor = _killed_supervisor(
        _declaration_here(resume_after=15.0), counted={"try_number": 3, "count": 1}
    )

    supervisor.update_task_state_if_needed()

    asked = [c.args for c in supervisor.client.task_state_store.get.call_args_list]
    assert asked == [
        (supervisor.id, AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY),
        (supervisor.id, AirflowTaskCheckpointed.WORKER_LOSS_COUNT_KEY),
    ]
    supervisor.client.task_state_store.set.assert_called_once_with(
        supervisor.id, AirflowTaskCheckpointed.WORKER_LOSS_COUNT_KEY, {"try_number": 3, "count": 2}, None
    )
    ((ti_id, msg), _) = supervisor.client.task_instances.checkpoint.call_args
    assert ti_id == supervisor.id
    assert isinstance(msg, CheckpointTask)
    assert msg.resume_after == timedelta(seconds=15)  # the operator's, raised server-side to the minimum
    supervisor.client.task_instances.finish.assert_not_called()
    assert supervisor._terminal_state == TaskInstanceState.CHECKPOINTED
    assert "checkpointing instead of failing" in supervisor.process_log.warning.call_args.args[0]


@pytest.mark.parametrize(
    ("declared", "counted", "exit_code", "why"),
    [
        pytest.param(None, None, -9, "never declared", id="undeclared"),
        pytest.param("try-2", None, -9, "declared by an earlier try", id="old-try"),
        pytest.param(3, None, -9, "the old bare try number names no attempt", id="bare-try-number"),
        pytest.param("here", {"try_number": 3, "count": 10}, -9, "the default cap is spent", id="cap"),
        pytest.param("here", None, 1, "the task process exited by itself: not a kill", id="exit-1"),
        pytest.param("here", None, -11, "a segfault is a crash, not a lost worker", id="segfault"),
        pytest.param(RuntimeError("API down"), None, -9, "the declaration cannot be read", id="api-down"),
    ],
)
def test_supervisor_reports_failed_as_usual_otherwise(declared: Any, counted: Any, exit_code: int, why: str):
    from airflow.utils.state import TaskInstanceState

    declared = (
        {
            "here": _declaration_here(),
            "try-2": _declaration_here(try_number=2),
            "other-pid": _declaration_here(pid=PID + 1),
        }.get(declared, declared)
        if isinstance(declared, str)
        else declared
    )
    supervisor = _killed_supervisor(declared, counted=counted, exit_code=exit_code)

    supervisor.update_task_state_if_needed()

    supervisor.client.task_instances.checkpoint.assert_not_called()
    supervisor.client.task_state_store.set.assert_not_called()
    assert supervisor.client.task_instances.finish.call_args.kwargs["state"] == TaskInstanceState.FAILED, why


def test_supervisor_checkpoints_a_resumed_attempt_sigkilled_before_it_declared_again():
    from airflow.sdk.execution_time.comms import CheckpointTask

    # The attempt before the resume declared; this one was killed before it declared again.
    supervisor = _killed_supervisor(_declaration_here(pid=PID + 1, resume_after=15.0))

    supervisor.update_task_state_if_needed()

    ((_, msg), _) = supervisor.client.task_instances.checkpoint.call_args
    assert isinstance(msg, CheckpointTask)
    assert msg.resume_after == timedelta(seconds=15)
    supervisor.client.task_instances.finish.assert_not_called()
    assert "an earlier attempt of this try declared" in supervisor.process_log.warning.call_args.args[0]


def test_supervisor_fails_the_task_when_the_loss_cannot_be_counted():
    supervisor = _killed_supervisor(_declaration_here())
    supervisor.client.task_state_store.set.side_effect = RuntimeError("API down")

    supervisor.update_task_state_if_needed()

    # Forgiving without counting would make the cap meaningless.
    supervisor.client.task_instances.checkpoint.assert_not_called()
    supervisor.client.task_instances.finish.assert_called_once()


def test_supervisor_does_not_checkpoint_a_task_the_server_terminated():
    from airflow.sdk.execution_time.supervisor import SERVER_TERMINATED

    # The supervisor SIGKILLs the task itself when the server says it must stop (e.g. marked failed).
    supervisor = _killed_supervisor(_declaration_here(), terminal_state=SERVER_TERMINATED)

    supervisor.update_task_state_if_needed()

    supervisor.client.task_state_store.get.assert_not_called()
    supervisor.client.task_instances.checkpoint.assert_not_called()


# ---------------------------------------------------------------- a worker shutdown during start-up


def test_supervisor_checkpoints_a_task_its_shutdown_stopped_during_start_up():
    from airflow.sdk.exceptions import AirflowTaskCheckpointed
    from airflow.sdk.execution_time.comms import CheckpointTask
    from airflow.utils.state import TaskInstanceState

    # Died of the SIGTERM this supervisor forwarded, before reporting anything: still loading its DAG.
    supervisor = _killed_supervisor(None, exit_code=-signal.SIGTERM, shutdown_signal=True)

    supervisor.update_task_state_if_needed()

    supervisor.client.task_state_store.set.assert_called_once_with(
        supervisor.id, AirflowTaskCheckpointed.WORKER_LOSS_COUNT_KEY, {"try_number": 3, "count": 1}, None
    )
    ((_, msg), _) = supervisor.client.task_instances.checkpoint.call_args
    assert isinstance(msg, CheckpointTask)
    assert msg.resume_after is None  # nothing said otherwise: the server's default
    supervisor.client.task_instances.finish.assert_not_called()
    assert supervisor._terminal_state == TaskInstanceState.CHECKPOINTED
    assert "before the task began" in supervisor.process_log.warning.call_args.args[0]


def test_a_start_up_checkpoint_uses_the_delay_an_earlier_attempt_of_the_try_declared():
    earlier = _declaration_here(pid=PID + 1, resume_after=15.0)  # the attempt before this one
    supervisor = _killed_supervisor(earlier, exit_code=-signal.SIGTERM, shutdown_signal=True)

    supervisor.update_task_state_if_needed()

    ((_, msg), _) = supervisor.client.task_instances.checkpoint.call_args
    assert msg.resume_after == timedelta(seconds=15)


@pytest.mark.parametrize(
    ("exit_code", "shutdown_signal", "counted", "why"),
    [
        pytest.param(
            -signal.SIGTERM, False, None, "a SIGTERM from elsewhere, not a worker shutdown", id="stray"
        ),
        pytest.param(
            -signal.SIGTERM, True, {"try_number": 3, "count": 10}, "the try's losses are spent", id="cap"
        ),
        pytest.param(1, True, None, "the task failed by itself while the worker shut down", id="exit-1"),
    ],
)
def test_a_task_not_stopped_during_start_up_by_a_worker_shutdown_fails_as_usual(
    exit_code: int, shutdown_signal: bool, counted: Any, why: str
):
    from airflow.utils.state import TaskInstanceState

    supervisor = _killed_supervisor(
        None, counted=counted, exit_code=exit_code, shutdown_signal=shutdown_signal
    )

    supervisor.update_task_state_if_needed()

    supervisor.client.task_instances.checkpoint.assert_not_called()
    assert supervisor.client.task_instances.finish.call_args.kwargs["state"] == TaskInstanceState.FAILED, why


def test_a_task_that_reported_its_state_before_dying_of_the_shutdown_is_left_alone():
    from airflow.utils.state import TaskInstanceState

    supervisor = _killed_supervisor(
        None,
        exit_code=-signal.SIGTERM,
        shutdown_signal=True,
        terminal_state=TaskInstanceState.UP_FOR_RESCHEDULE,
    )

    supervisor.update_task_state_if_needed()

    supervisor.client.task_state_store.get.assert_not_called()
    supervisor.client.task_instances.checkpoint.assert_not_called()


def _sleep_in_the_task_process() -> None:
    import time

    time.sleep(30)


@pytest.mark.parametrize("worker_has_a_handler", [True, False], ids=["worker-handler", "sig-dfl"])
def test_a_shutdown_sigterm_while_the_supervisor_starts_the_task_reaches_the_task(
    monkeypatch: pytest.MonkeyPatch, worker_has_a_handler: bool
):
    """
    The real start() then wait(): a SIGTERM that lands while the supervisor tells the server the
    attempt started (before wait() takes SIGTERM over) still stops the task and is remembered.

    A LocalExecutor worker inherits the scheduler's SIGTERM handler, which does nothing outside the
    scheduler itself: a SIGTERM landing there was lost, and the task ran on as if none was sent.
    """
    from airflow.sdk.execution_time.supervisor import ActivitySubprocess

    ignored: list[int] = []
    # The scheduler's handler, in a LocalExecutor worker; or none at all (SIG_DFL, which is falsy).
    worker_handler: Any = (
        (lambda signum, frame: ignored.append(signum)) if worker_has_a_handler else signal.SIG_DFL
    )
    previous = signal.signal(signal.SIGTERM, worker_handler)
    client = mock.MagicMock()
    # The worker is told to shut down while the server records the attempt as started.
    client.task_instances.start.side_effect = lambda *a, **k: (
        os.kill(os.getpid(), signal.SIGTERM),
        mock.MagicMock(start_date=NOW, should_retry=False),
    )[1]
    proc = None
    try:
        proc = ActivitySubprocess.start(
            what=mock.MagicMock(id=uuid.uuid4()),
            dag_rel_path="dag.py",
            bundle_info=mock.MagicMock(),
            client=client,
            target=_sleep_in_the_task_process,
            logger=mock.MagicMock(),
        )
        assert ignored == []  # the worker's handler never saw it
        assert proc._shutdown_signal_received is True

        def monitor(self: Any) -> None:
            _, status = os.waitpid(self.pid, 0)  # the stub sleeps 30 s unless the SIGTERM reached it
            self._exit_code = os.waitstatus_to_exitcode(status)

        cls = type(proc)
        monkeypatch.setattr(cls, "_monitor_subprocess", monitor)
        monkeypatch.setattr(cls, "update_task_state_if_needed", lambda self: None)
        monkeypatch.setattr(cls, "_upload_logs", lambda self: None)

        assert proc.wait() == -signal.SIGTERM
        # Afterwards the worker's own handler is back, for its next task.
        assert signal.getsignal(signal.SIGTERM) is worker_handler
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc is not None and proc._exit_code is None:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(proc.pid, signal.SIGKILL)
                os.waitpid(proc.pid, 0)


def test_the_supervisor_remembers_forwarding_a_shutdown_sigterm(monkeypatch: pytest.MonkeyPatch):
    """The real wait(): its handler forwards the worker's SIGTERM to the task and notes the shutdown."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        supervisor = _supervisor()
        supervisor.pid = child.pid
        supervisor._exit_code = None
        supervisor._shutdown_signal_received = False
        supervisor.selector = mock.MagicMock()

        def monitor(self: Any) -> None:
            # The worker is told to shut down while it supervises the task.
            os.kill(os.getpid(), signal.SIGTERM)
            self._exit_code = child.wait(timeout=10)

        cls = type(supervisor)  # a slotted attrs class: patch the methods on the class
        monkeypatch.setattr(cls, "_monitor_subprocess", monitor)
        monkeypatch.setattr(cls, "update_task_state_if_needed", lambda self: None)
        monkeypatch.setattr(cls, "_upload_logs", lambda self: None)

        assert supervisor.wait() == -signal.SIGTERM
        assert supervisor._shutdown_signal_received is True
    finally:
        child.kill()
        child.wait()
