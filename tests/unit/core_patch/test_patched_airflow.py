# Licensed under the Apache License, Version 2.0.
"""
The patched pieces of Airflow, exercised in-process.

These run only when the running interpreter's Airflow carries the patch (``make patch-venv`` or
``airflow-resumable patch apply``); otherwise they are skipped with that reason.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available

pytestmark = pytest.mark.skipif(
    not checkpointed_state_available(),
    reason="this interpreter's Airflow is not patched; run 'airflow-resumable patch apply' (make patch-venv)",
)

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


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
    assert "CHECKPOINTED" in mark_tasks._set_dag_run_terminal_state.__code__.co_names


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

    ti = mock.MagicMock(_ti_context_from_server=None, rendered_map_index=None)
    context: Any = {"task_state_store": store}
    with (
        mock.patch.object(task_runner, "_prepare", return_value=None),
        mock.patch.object(task_runner, "_execute_task", side_effect=raised),
        mock.patch.object(task_runner, "_render_map_index", return_value=None),
        mock.patch.object(task_runner, "_handle_current_task_failed") as failed,
        mock.patch("signal.signal"),
    ):
        failed.return_value = ("failed-msg", "failed-state")
        return task_runner._run_task_and_map_outcome(ti, context, mock.MagicMock())


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
        _, state, callbacks = routes._create_ti_state_update_query_and_update_state(
            ti_patch_payload=payload,
            task_instance_id=uuid.uuid4(),
            query=mock.MagicMock(),
            session=session,
            dag_bag=mock.MagicMock(),
            dag_id="d",
        )
    assert callbacks == ()
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

    assert timedelta(seconds=5) <= MIN_CHECKPOINT_RESUME_AFTER
    assert reschedule.reschedule_date == NOW + MIN_CHECKPOINT_RESUME_AFTER


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
