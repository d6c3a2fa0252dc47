# Licensed under the Apache License, Version 2.0.
"""
The Databricks operators through the real ``DatabricksHook`` and the wire-level fake Jobs API.

Nothing in the hook is patched: each test defines a real Airflow connection in an
``AIRFLOW_CONN_DATABRICKS_FAKE`` environment variable (``schema=http`` plus the fake's port), which
the environment-variables secrets backend resolves in this process and in the spawned attempt
processes alike. Crash and signal tests run the attempt in a child process (``attempts.py``).
"""

from __future__ import annotations

import asyncio
import importlib
import itertools
import json
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from attempts import (
    AttemptProcess,
    AttemptSpec,
    JsonFileTaskStateStore,
    run_attempt,
    wait_for,
)

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.hooks.databricks import run_state_to_job_state
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)
from airflow.providers.resumable.status import RemoteStatus
from airflow.providers.resumable.testing.databricks import (
    FakeDatabricksServer,
    FakeDatabricksService,
    Fault,
    RunScript,
)
from airflow.providers.resumable.triggers.databricks import ResumableDatabricksRunTrigger

CHECKPOINT_OUTCOME = "checkpointed" if checkpointed_state_available() else "rescheduled"
CONN_ID = "databricks_fake"
SUBMIT_RUN = "airflow.providers.resumable.operators.databricks:ResumableDatabricksSubmitRunOperator"
UPSTREAM_SUBMIT_RUN = "airflow.providers.databricks.operators.databricks:DatabricksSubmitRunOperator"
RUN_NOW = "airflow.providers.resumable.operators.databricks:ResumableDatabricksRunNowOperator"
NOTEBOOK = {"notebook_path": "/Shared/nightly"}
CLUSTER = {"spark_version": "15.4.x-scala2.12", "node_type_id": "i3.xlarge", "num_workers": 2}


@pytest.fixture
def dbx() -> FakeDatabricksService:
    """The workspace: runs last 1 s and succeed unless a test scripts them otherwise."""
    return FakeDatabricksService(default_script=RunScript(run_seconds=1.0))


@pytest.fixture
def dbx_server(dbx: FakeDatabricksService, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatabricksServer]:
    with FakeDatabricksServer(dbx) as running:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", running.connection_uri())
        yield running


@pytest.fixture
def submit_spec(workdir: Path, dbx_server: FakeDatabricksServer) -> AttemptSpec:
    """A fast-polling ResumableDatabricksSubmitRunOperator attempt of a one-notebook run."""
    return AttemptSpec(
        workdir=workdir,
        operator=SUBMIT_RUN,
        operator_kwargs={
            "databricks_conn_id": CONN_ID,
            "run_name": "nightly-etl",
            "notebook_task": NOTEBOOK,
            "new_cluster": CLUSTER,
            "polling_period_seconds": 0.05,
            "databricks_retry_delay": 0.05,
            "resume_after": timedelta(seconds=1),
        },
    )


def _ledger(spec: AttemptSpec) -> dict:
    return JsonFileTaskStateStore(spec.workdir / "state_store.json").get(LEDGER_KEY)


def _with(spec: AttemptSpec, **kwargs: object) -> AttemptSpec:
    return replace(spec, operator_kwargs={**spec.operator_kwargs, **kwargs})


def _cancel_calls(dbx: FakeDatabricksService) -> int:
    return sum(1 for operation, _ in dbx.requests if operation in ("runs/cancel", "runs/cancel-all"))


# -- the happy path and failures ----------------------------------------------------------------


def test_submit_poll_success_pushes_run_id_and_run_page_url(submit_spec, dbx, dbx_server):
    outcome = run_attempt(submit_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    [run] = dbx.runs()
    assert outcome["xcoms"] == {"run_id": run["run_id"], "run_page_url": run["run_page_url"]}
    assert run["run_page_url"].startswith(dbx_server.url)
    assert outcome["result"] is None, "upstream returns nothing; the run travels by XCom"
    ledger = _ledger(submit_spec)
    assert (ledger["phase"], ledger["external_id"]) == ("submitted", str(run["run_id"]))
    sent = dbx.payload_of(run["run_id"])
    assert sent["idempotency_token"] == f"{ledger['nonce']}-0", "the ledger key is the token"
    assert sent["notebook_task"] == NOTEBOOK
    assert sent["run_name"] == "nightly-etl"
    assert dbx.counters["runs_created"] == 1


def test_a_failed_multi_task_run_fails_the_task_with_its_message_task_error_and_page(submit_spec, dbx):
    dbx.script(
        "nightly-etl",
        RunScript(
            run_seconds=0.3,
            result_state="FAILED",
            state_message="Task load failed with message: workload failed",
            failed_tasks=("load",),
            error="AnalysisException: table sales.raw not found",
        ),
    )
    spec = replace(submit_spec, operator_kwargs={**submit_spec.operator_kwargs, "notebook_task": None})
    spec = _with(
        spec,
        tasks=[
            {"task_key": "extract", "notebook_task": NOTEBOOK, "existing_cluster_id": "c-1"},
            {"task_key": "load", "notebook_task": NOTEBOOK, "existing_cluster_id": "c-1"},
        ],
        new_cluster=None,
    )
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "failed"
    error = outcome["error"]
    assert "FAILED (TERMINATED/FAILED)" in error
    assert "Task load failed with message: workload failed" in error
    assert "load (run" in error
    assert "AnalysisException: table sales.raw not found" in error
    assert dbx.runs()[0]["run_page_url"] in error
    assert "extract (run" not in error, "only the failed task is reported"


def test_a_token_given_inside_json_is_sent_as_given(submit_spec, dbx):
    outcome = run_attempt(_with(submit_spec, json={"idempotency_token": "etl-2026-11-23-try1"}))

    assert outcome["outcome"] == "success", outcome["error"]
    assert dbx.payload_of(dbx.runs()[0]["run_id"])["idempotency_token"] == "etl-2026-11-23-try1"


def test_wait_for_termination_false_ends_the_task_once_the_run_is_submitted(submit_spec, dbx):
    dbx.default_script = RunScript(run_seconds=None)
    outcome = run_attempt(_with(submit_spec, wait_for_termination=False))

    assert outcome["outcome"] == "success", outcome["error"]
    [run] = dbx.runs()
    assert run["state"]["life_cycle_state"] == "RUNNING"
    assert outcome["xcoms"]["run_id"] == run["run_id"]


# -- exactly once ---------------------------------------------------------------------------------


# -- termination ----------------------------------------------------------------------------------


# -- API faults -------------------------------------------------------------------------------------


def test_a_429_storm_honours_retry_after_and_completes(submit_spec, dbx):
    # More 429s than the hook's own 3 tries: the hook gives up once and our backoff takes over.
    dbx.inject("runs/get", Fault.error(429, retry_after=0.5), times=5)
    dbx.inject("runs/submit", Fault.error(429, retry_after=0.5), times=2)
    outcome = run_attempt(submit_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert dbx.counters["runs_created"] == 1
    gets = [at for operation, at in dbx.requests if operation == "runs/get"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(gets[:6])]
    # Every 429 was waited out for its Retry-After, by the hook and by our backoff alike
    # (the hook's default would have waited 0.05 s, then 0.1 s).
    assert all(0.45 <= gap < 1.0 for gap in gaps), gaps


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"notebook_task": None}, "gives Databricks nothing to run"),
        ({"existing_cluster_id": "0923-164208-meows279"}, "both 'existing_cluster_id' and 'new_cluster'"),
        (
            {
                "notebook_task": None,
                "new_cluster": None,
                "tasks": [
                    {
                        "task_key": "a",
                        "notebook_task": NOTEBOOK,
                        "new_cluster": CLUSTER,
                        "existing_cluster_id": "x",
                    }
                ],
            },
            "tasks[0] sets both",
        ),
        ({"notebook_task": {"notebook_path": object()}}, "is not a number or a string"),
        ({"idempotency_token": "t" * 65}, "at most 64 characters"),
    ],
    ids=["no-task", "both-clusters", "both-clusters-in-a-task", "bad-type", "long-token"],
)
def test_an_invalid_payload_fails_before_any_http_request(submit_spec, dbx, overrides, message):
    outcome = run_attempt(_with(submit_spec, **overrides))

    assert outcome["outcome"] == "failed_no_retry", outcome
    assert message in outcome["error"]
    assert dbx.requests == [], "no request reached Databricks"
    assert _ledger(submit_spec) is None


@pytest.mark.parametrize(
    ("uri_of", "status"),
    [
        (lambda server: server.connection_uri("dapi-wrong-token"), 403),
        (lambda server: f"databricks://someone:secret@127.0.0.1:{server.port}/http", 401),
    ],
    ids=["wrong-token", "no-bearer-token"],
)
def test_wrong_credentials_give_a_clear_error_naming_the_connection(
    submit_spec, dbx, dbx_server, monkeypatch, uri_of, status
):
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", uri_of(dbx_server))
    outcome = run_attempt(submit_spec)

    assert outcome["outcome"] == "failed"
    assert f"refused the credentials of connection '{CONN_ID}' (HTTP {status})" in outcome["error"]
    assert dbx.counters["auth_failures"] == 1, "not retried: a wrong token stays wrong"
    assert dbx.counters["runs_created"] == 0


# -- the fake's fidelity ---------------------------------------------------------------------------


def test_a_one_time_run_has_a_job_id_as_on_a_real_workspace(dbx, dbx_server):
    """Databricks gives a ``runs/submit`` run a job of its own; upstream's deferrable operators read
    it (``DatabricksHook.get_job_id``) before they defer, so a fake without it fails them."""
    from airflow.providers.databricks.hooks.databricks import DatabricksHook

    hook = DatabricksHook(databricks_conn_id=CONN_ID)
    first = hook.submit_run({"run_name": "one-time", "notebook_task": NOTEBOOK, "existing_cluster_id": "c"})
    second = hook.submit_run({"run_name": "one-time", "notebook_task": NOTEBOOK, "existing_cluster_id": "c"})

    assert isinstance(hook.get_job_id(first), int)
    assert hook.get_job_id(first) != hook.get_job_id(second), "each one-time run has a job of its own"


# -- describe -------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing_status", [400, 404])
def test_an_expired_run_is_not_found(dbx, dbx_server, missing_status):
    dbx.missing_run_status = missing_status
    operator = ResumableDatabricksSubmitRunOperator(
        task_id="t", databricks_conn_id=CONN_ID, notebook_task=NOTEBOOK, existing_cluster_id="c"
    )
    state = operator.describe("424242")

    assert state.status is RemoteStatus.NOT_FOUND
    assert "no run 424242" in state.message


def test_an_expired_run_is_resubmitted_under_a_new_generation(submit_spec, dbx):
    dbx.default_script = RunScript(run_seconds=None)
    first = AttemptProcess(submit_spec).start()
    wait_for(lambda: dbx.counters["gets"] >= 2, what="polling")
    first.signal(signal.SIGTERM)
    assert first.join(timeout=15)["outcome"] == CHECKPOINT_OUTCOME
    dbx.expire(dbx.runs()[0]["run_id"])
    dbx.default_script = RunScript(run_seconds=0.2)

    again = run_attempt(submit_spec)

    assert again["outcome"] == "success", again["error"]
    assert _ledger(submit_spec)["generation"] == 1
    assert dbx.counters["runs_created"] == 2


# -- clearing: never two runs of one task instance at once ------------------------------------------


def _checkpoint_a_running_run(spec: AttemptSpec, dbx: FakeDatabricksService) -> str:
    """Run an attempt until it polls, SIGTERM it (a worker shutdown) and return its run id."""
    dbx.default_script = RunScript(run_seconds=None)
    first = AttemptProcess(spec).start()
    wait_for(lambda: dbx.counters["gets"] >= 2, what="polling")
    first.signal(signal.SIGTERM)
    assert first.join(timeout=15)["outcome"] == CHECKPOINT_OUTCOME
    return _ledger(spec)["external_id"]


def _cleared(spec: AttemptSpec) -> AttemptSpec:
    # Clear: Airflow sets max_tries = try_number + retries, and the next try runs.
    return replace(spec, max_tries=1, try_number=2)


def test_a_clear_whose_cancel_is_refused_fails_naming_the_run_and_keeps_it(submit_spec, dbx):
    old_run = _checkpoint_a_running_run(submit_spec, dbx)
    dbx.inject("runs/cancel", Fault.error(403), times=10)

    cleared = run_attempt(_cleared(submit_spec))

    assert cleared["outcome"] == "failed_no_retry", cleared
    assert f"run {old_run}" in cleared["error"]
    assert "403" in cleared["error"], "the cloud's answer is in the message"
    assert "clear the task again" in cleared["error"], "the message says what to do"
    assert dbx.counters["runs_created"] == 1, "no second run beside the one that could not be stopped"
    assert dbx.state_of(old_run) == "RUNNING"
    ledger = _ledger(submit_spec)
    assert (ledger["external_id"], ledger["generation"], ledger["phase"]) == (old_run, 0, "submitted")


def test_a_clear_waits_for_an_asynchronous_cancel_before_submitting_the_new_run(submit_spec, dbx):
    old_run = _checkpoint_a_running_run(submit_spec, dbx)
    dbx.cancel_seconds = 1.5  # runs/cancel only starts it: TERMINATING, then TERMINATED/CANCELED
    dbx.default_script = RunScript(run_seconds=0.2)

    cleared = run_attempt(_cleared(submit_spec))

    assert cleared["outcome"] == "success", cleared["error"]
    assert dbx.state_of(old_run) == "TERMINATED/CANCELED"
    assert dbx.counters["runs_created"] == 2
    [cancelled_at] = [at for operation, at in dbx.requests if operation == "runs/cancel"]
    submitted_at = [at for operation, at in dbx.requests if operation == "runs/submit"][-1]
    assert submitted_at - cancelled_at >= 1.4, "the new run was submitted while the old one still ran"
    new_run = _ledger(submit_spec)["external_id"]
    assert new_run != old_run
    assert _ledger(submit_spec)["generation"] == 1


def test_a_cancel_that_does_not_take_effect_in_time_fails_the_clear_and_keeps_the_run(submit_spec, dbx):
    old_run = _checkpoint_a_running_run(submit_spec, dbx)
    dbx.cancel_seconds = None  # accepted, but the run stays TERMINATING

    started = time.monotonic()
    cleared = run_attempt(_with(_cleared(submit_spec), previous_job_stop_timeout=timedelta(seconds=1)))

    assert cleared["outcome"] == "failed_no_retry", cleared
    assert time.monotonic() - started < 30
    assert f"run {old_run}" in cleared["error"]
    assert "TERMINATING" in cleared["error"], "the message says what the cloud last reported"
    assert dbx.counters["runs_created"] == 1
    assert _ledger(submit_spec)["external_id"] == old_run


@pytest.mark.parametrize(
    ("life", "result", "tasks", "expected"),
    [
        ("PENDING", None, [], RemoteStatus.PENDING),
        ("QUEUED", None, [], RemoteStatus.PENDING),
        ("BLOCKED", None, [], RemoteStatus.PENDING),
        ("WAITING_FOR_RETRY", None, [], RemoteStatus.PENDING),
        ("RUNNING", None, [], RemoteStatus.RUNNING),
        ("TERMINATING", None, [], RemoteStatus.RUNNING),
        ("TERMINATED", "SUCCESS", [], RemoteStatus.SUCCEEDED),
        ("TERMINATED", "FAILED", [], RemoteStatus.FAILED),
        ("TERMINATED", "TIMEDOUT", [], RemoteStatus.FAILED),
        ("TERMINATED", "CANCELED", [], RemoteStatus.CANCELLED),
        ("SKIPPED", None, [], RemoteStatus.FAILED),
        ("INTERNAL_ERROR", "FAILED", [], RemoteStatus.FAILED),
        ("TERMINATED", None, ["SUCCESS", "SUCCESS"], RemoteStatus.SUCCEEDED),
        ("TERMINATED", None, ["SUCCESS", "FAILED"], RemoteStatus.FAILED),
        ("SOME_NEW_STATE", None, [], RemoteStatus.RUNNING),
    ],
)
def test_run_states_map_to_the_normalised_status(life, result, tasks, expected):
    state = {"life_cycle_state": life, "state_message": "msg"}
    if result:
        state["result_state"] = result
    run = {
        "state": state,
        "tasks": [{"task_key": f"t{i}", "state": {"result_state": r}} for i, r in enumerate(tasks)],
        "run_page_url": "https://example/run/1",
    }
    job_state = run_state_to_job_state(run)

    assert job_state.status is expected
    assert "https://example/run/1" in job_state.message
    assert ("msg" in job_state.message) is expected.is_terminal


# -- run-now --------------------------------------------------------------------------------------


@pytest.fixture
def run_now_spec(workdir: Path, dbx_server: FakeDatabricksServer) -> AttemptSpec:
    return AttemptSpec(
        workdir=workdir,
        operator=RUN_NOW,
        operator_kwargs={
            "databricks_conn_id": CONN_ID,
            "polling_period_seconds": 0.05,
            "databricks_retry_delay": 0.05,
            "resume_after": timedelta(seconds=1),
        },
    )


def test_run_now_finds_the_job_by_name_and_triggers_it_once(run_now_spec, dbx):
    dbx.create_job("other-job")
    job_id = dbx.create_job("nightly-job")
    dbx.inject("jobs/run-now", Fault.drop_response())
    outcome = run_attempt(_with(run_now_spec, job_name="nightly-job", job_parameters={"day": "2026-11-23"}))

    assert outcome["outcome"] == "success", outcome["error"]
    [run] = dbx.runs()
    assert run["job_id"] == job_id
    sent = dbx.payload_of(run["run_id"])
    assert sent["job_id"] == job_id
    assert "job_name" not in sent
    assert sent["job_parameters"] == {"day": "2026-11-23"}
    assert sent["idempotency_token"] == f"{_ledger(run_now_spec)['nonce']}-0"
    assert dbx.counters["requests:jobs/run-now"] == 2
    assert dbx.counters["runs_created"] == 1
    assert outcome["xcoms"]["run_id"] == run["run_id"]


def test_run_now_with_an_unknown_job_name_fails_clearly(run_now_spec, dbx):
    outcome = run_attempt(_with(run_now_spec, job_name="no-such-job"))

    assert outcome["outcome"] == "failed_no_retry"
    assert "No Databricks job is named 'no-such-job'" in outcome["error"]
    assert dbx.counters["runs_created"] == 0


def test_a_user_supplied_token_wins_over_the_ledger_key(run_now_spec, dbx):
    job_id = dbx.create_job("nightly-job")
    outcome = run_attempt(_with(run_now_spec, job_id=str(job_id), idempotency_token="nightly-2026-11-23"))

    assert outcome["outcome"] == "success", outcome["error"]
    assert dbx.payload_of(dbx.runs()[0]["run_id"])["idempotency_token"] == "nightly-2026-11-23"


def test_cancel_previous_runs_never_cancels_the_run_a_crashed_attempt_triggered(run_now_spec, dbx):
    job_id = dbx.create_job("nightly-job")
    dbx.default_script = RunScript(run_seconds=None)
    other_task = replace(
        _with(run_now_spec, job_id=job_id, wait_for_termination=False), workdir=_fresh(run_now_spec)
    )
    older_run = run_attempt(other_task)["xcoms"]["run_id"]
    dbx.default_script = RunScript(run_seconds=2.0)
    spec = _with(run_now_spec, job_id=job_id, cancel_previous_runs=True)
    # The run-now commits, then the worker dies before the run id is persisted.
    hold = dbx.inject("jobs/run-now", Fault.hold_after_commit())
    first = AttemptProcess(spec).start()
    wait_for(lambda: dbx.counters["runs_created"] == 2, what="the run to be created")
    first.signal(signal.SIGKILL)
    first.join()
    hold.release.set()

    second = run_attempt(spec)

    assert second["outcome"] == "success", second["error"]
    assert dbx.counters["cancel_all_requests"] == 1, "only the first send of the key cancels"
    assert dbx.state_of(older_run) == "TERMINATED/CANCELED"
    assert dbx.state_of(second["xcoms"]["run_id"]) == "TERMINATED/SUCCESS"
    assert dbx.counters["runs_created"] == 2


def test_repair_run_repairs_a_failed_run_once_and_succeeds(run_now_spec, dbx):
    job_id = dbx.create_job("nightly-job")
    dbx.script("nightly-job", RunScript(run_seconds=0.2, result_state="FAILED", state_message="spot lost"))
    outcome = run_attempt(_with(run_now_spec, job_id=job_id, repair_run=True))

    assert outcome["outcome"] == "success", outcome["error"]
    assert dbx.counters["repairs"] == 1
    assert dbx.counters["runs_created"] == 1, "repaired in place, not re-triggered"


def _first_event(deferred: dict) -> dict:
    """The first event of the trigger ``deferred`` handed over, rebuilt and run as the triggerer does."""
    assert deferred["outcome"] == "deferred", deferred["error"]
    classpath, kwargs = json.loads(json.dumps(deferred["trigger"]))
    module, _, name = classpath.rpartition(".")
    trigger = getattr(importlib.import_module(module), name)(**kwargs)

    async def first() -> dict:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), 60))


def _failing_job(dbx: FakeDatabricksService) -> int:
    """A job whose runs fail, and whose repaired runs fail again."""
    job_id = dbx.create_job("nightly-job")
    dbx.script("nightly-job", RunScript(run_seconds=0.2, result_state="FAILED", state_message="spot lost"))
    dbx.repair_script = RunScript(run_seconds=0.2, result_state="FAILED", state_message="spot lost again")
    return job_id


def test_deferrable_repair_run_repairs_once_per_try_as_upstream(run_now_spec, dbx):
    """Upstream defers again after its repair with ``repair_run=False`` in the trigger: a repaired run
    that fails again fails the task. The attempt that sees it fail again is a new process here."""
    spec = _with(run_now_spec, job_id=_failing_job(dbx), repair_run=True, deferrable=True)

    failed = _first_event(run_attempt(spec))
    assert failed["remote_status"] == "FAILED", failed
    repaired = run_attempt(replace(spec, resume=("execute_complete", {"event": failed})))
    assert repaired["outcome"] == "deferred", "repaired in place, then deferred again"
    assert dbx.counters["repairs"] == 1
    failed_again = _first_event(repaired)
    concluded = run_attempt(replace(spec, resume=("execute_complete", {"event": failed_again})))

    assert concluded["outcome"] == "failed", concluded
    assert "spot lost again" in concluded["error"]
    assert dbx.counters["repairs"] == 1, "one repair per try"
    assert dbx.counters["runs_created"] == 1


def test_a_repair_sent_by_an_attempt_that_died_is_not_sent_again(run_now_spec, dbx):
    spec = _with(run_now_spec, job_id=_failing_job(dbx), repair_run=True, deferrable=True)
    failed = _first_event(run_attempt(spec))
    run_id = _ledger(spec)["external_id"]
    conclude = replace(spec, resume=("execute_complete", {"event": failed}))
    # Databricks makes the repair; the worker dies before it hears so.
    hold = dbx.inject("runs/repair", Fault.hold_after_commit())
    dying = AttemptProcess(conclude).start()
    wait_for(lambda: dbx.counters["repairs"] == 1, what="the repair to be made")
    dying.signal(signal.SIGKILL)
    dying.join()
    hold.release.set()
    wait_for(lambda: dbx.state_of(run_id) == "TERMINATED/FAILED", what="the repaired run to fail again")

    again = run_attempt(conclude)

    assert again["outcome"] == "failed", again
    assert dbx.counters["repairs"] == 1, "the repair the dead attempt sent counts for its try"
    assert dbx.counters["runs_created"] == 1


def test_a_retry_may_repair_its_own_run_once(run_now_spec, dbx):
    """Once per *try*, as upstream: the retry's new run is repaired once too."""
    spec = replace(_with(run_now_spec, job_id=_failing_job(dbx), repair_run=True), max_tries=1)

    first = run_attempt(spec)
    second = run_attempt(replace(spec, try_number=2))

    assert first["outcome"] == "failed", first
    assert second["outcome"] == "failed", second
    assert dbx.counters["runs_created"] == 2
    assert dbx.counters["repairs"] == 2


def _fresh(spec: AttemptSpec) -> Path:
    other = spec.workdir / "other_task"
    other.mkdir(exist_ok=True)
    (other / "server_state").write_text("running")
    return other


# -- construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "operator", [ResumableDatabricksSubmitRunOperator, ResumableDatabricksRunNowOperator]
)
def test_deferrable_true_defers_to_the_databricks_run_trigger(operator):
    task = operator(task_id="t", deferrable=True, json={"job_id": 1, "run_name": "r"})

    assert task.deferrable is True
    assert task.trigger_class is ResumableDatabricksRunTrigger


def test_durable_none_means_durable_like_upstream():
    assert ResumableDatabricksRunNowOperator(task_id="t", job_id="1").durable is True
    assert ResumableDatabricksRunNowOperator(task_id="t", job_id="1", durable=False).durable is False


# -- a task switched from upstream's durable operator mid-flight ------------------------------------


def _upstream_attempt_killed_after_recording_its_run(spec: AttemptSpec, dbx: FakeDatabricksService) -> int:
    """Run upstream's durable DatabricksSubmitRunOperator until it recorded its run; SIGKILL it."""
    kwargs = {k: v for k, v in spec.operator_kwargs.items() if k != "resume_after"}
    upstream_attempt = AttemptProcess(
        replace(spec, operator=UPSTREAM_SUBMIT_RUN, operator_kwargs=kwargs)
    ).start()
    store = JsonFileTaskStateStore(spec.workdir / "state_store.json")
    wait_for(lambda: store.get("databricks_run_id") is not None, timeout=60, what="upstream's run id")
    upstream_attempt.signal(signal.SIGKILL)
    upstream_attempt.join(timeout=30)
    assert store.get(LEDGER_KEY) is None
    return int(store.get("databricks_run_id"))


def test_a_run_the_upstream_durable_operator_started_is_adopted_after_the_import_swap(submit_spec, dbx):
    dbx.script("nightly-etl", RunScript(run_seconds=3.0))
    run_id = _upstream_attempt_killed_after_recording_its_run(submit_spec, dbx)
    assert dbx.state_of(run_id) == "RUNNING"

    outcome = run_attempt(submit_spec)  # the same task instance, now with our import

    assert outcome["outcome"] == "success", outcome["error"]
    assert dbx.counters["runs_created"] == 1, "reconnected to upstream's run, submitted nothing"
    assert _ledger(submit_spec)["external_id"] == str(run_id)
    assert outcome["xcoms"]["run_id"] == run_id
    assert _cancel_calls(dbx) == 0


def test_a_recorded_upstream_run_of_another_name_is_refused_and_nothing_is_submitted(submit_spec, dbx):
    dbx.script("nightly-etl", RunScript(run_seconds=None))
    run_id = _upstream_attempt_killed_after_recording_its_run(submit_spec, dbx)

    outcome = run_attempt(_with(submit_spec, run_name="weekly-etl"))

    assert outcome["outcome"] == "failed_no_retry"
    assert f"databricks_run_id={run_id}" in outcome["error"]
    assert "'nightly-etl'" in outcome["error"]
    assert "'weekly-etl'" in outcome["error"]
    assert dbx.counters["runs_created"] == 1
    assert _ledger(submit_spec) is None, "nothing adopted"
    assert _cancel_calls(dbx) == 0


def test_an_upstream_run_the_workspace_forgot_is_not_adopted_and_a_new_run_is_submitted(submit_spec, dbx):
    dbx.script("nightly-etl", RunScript(run_seconds=None))
    run_id = _upstream_attempt_killed_after_recording_its_run(submit_spec, dbx)
    dbx.expire(run_id)
    dbx.script("nightly-etl", RunScript(run_seconds=0.3))

    outcome = run_attempt(submit_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert dbx.counters["runs_created"] == 2, "upstream submits afresh in this case too"
    assert _ledger(submit_spec)["external_id"] != str(run_id)


def test_run_now_adopts_upstreams_run_only_when_it_is_a_run_of_its_job(run_now_spec, dbx):
    nightly, weekly = dbx.create_job("nightly-job"), dbx.create_job("weekly-job")
    store = JsonFileTaskStateStore(run_now_spec.workdir / "state_store.json")
    started = dbx.run_now({"job_id": weekly})[1]["run_id"]
    store.set("databricks_run_now_id", started)  # as upstream's DatabricksRunNowOperator records it

    refused = run_attempt(_with(run_now_spec, job_id=nightly))
    assert refused["outcome"] == "failed_no_retry"
    assert f"it is a run of job {weekly}, and this task runs job {nightly}" in refused["error"]

    dbx.finish(started)
    adopted = run_attempt(_with(run_now_spec, job_id=weekly))
    assert adopted["outcome"] == "success", adopted["error"]
    assert dbx.counters["runs_created"] == 1
    assert _ledger(run_now_spec)["external_id"] == str(started)
