# Licensed under the Apache License, Version 2.0.
"""
The EMR operators through the amazon provider's hooks, real boto3 and moto (issue 5).

Most tests run an attempt the way the Databricks ones do: a real Airflow connection in an
``AIRFLOW_CONN_AWS_FAKE`` environment variable whose ``endpoint_url`` points at
:class:`~airflow.providers.resumable.testing.emr.FakeEmrServer` (moto's ``ThreadedMotoServer`` behind
the kit's fault-injecting proxy, with the lifecycle driver moving steps and job runs), so an attempt in
a spawned child process reaches the same backend a test inspects. Tests that need no second process use
moto in-process (``mock_aws``) with the same kit. Nothing in boto3, the hooks or Airflow is mocked.
"""

from __future__ import annotations

import itertools
import signal
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from attempts import (
    AttemptProcess,
    AttemptSpec,
    JsonFileTaskStateStore,
    run_attempt,
    wait_for,
)

from airflow.providers.resumable.checkpoint import (
    checkpointed_state_available,
    worker_loss_checkpoints_available,
)
from airflow.providers.resumable.hooks.emr import job_run_to_job_state, steps_to_job_state, tag_step_name
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrServerlessStartJobOperator,
)
from airflow.providers.resumable.retrying import BackoffPolicy
from airflow.providers.resumable.status import RemoteStatus
from airflow.providers.resumable.testing.emr import (
    FakeEmr,
    FakeEmrServer,
    Fault,
    JobRunScript,
    StepScript,
    in_process_fake_emr,
)
from airflow.providers.resumable.triggers.emr import (
    ResumableEmrServerlessJobRunTrigger,
    ResumableEmrStepsTrigger,
)

CHECKPOINT_OUTCOME = "checkpointed" if checkpointed_state_available() else "rescheduled"
CONN_ID = "aws_fake"
WORKER_LOSS_KEY = "airflow.resume_on_worker_loss"
ADD_STEPS = "test_emr_operators:fast_add_steps"
START_JOB = "test_emr_operators:fast_start_job"
ROLE = "arn:aws:iam::123456789012:role/emr-serverless-job"
SPARK = {"sparkSubmit": {"entryPoint": "s3://bucket/etl.py", "entryPointArguments": ["2026-11-23"]}}
FAST_BACKOFF = BackoffPolicy(max_attempts=12, max_delay=60, initial_wait=0.1, max_wait=1.0)


def _step(name: str, action: str = "CONTINUE") -> dict[str, Any]:
    return {
        "Name": name,
        "ActionOnFailure": action,
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", f"s3://bucket/{name}.py"]},
    }


def fast_add_steps(**kwargs: Any) -> ResumableEmrAddStepsOperator:
    """The operator with a sub-second backoff, so fault tests take seconds, not minutes."""
    operator = ResumableEmrAddStepsOperator(**kwargs)
    operator.cloud_call_backoff = FAST_BACKOFF
    return operator


def fast_start_job(**kwargs: Any) -> ResumableEmrServerlessStartJobOperator:
    operator = ResumableEmrServerlessStartJobOperator(**kwargs)
    operator.cloud_call_backoff = FAST_BACKOFF
    return operator


@pytest.fixture
def emr() -> FakeEmr:
    """Steps and job runs last 1 s and succeed unless a test scripts them otherwise."""
    return FakeEmr(default_step=StepScript(run_seconds=1.0), default_job_run=JobRunScript(run_seconds=1.0))


@pytest.fixture
def aws(emr: FakeEmr, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEmrServer]:
    with FakeEmrServer(emr) as server:
        monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", server.connection_uri())
        yield server


@pytest.fixture
def cluster(emr: FakeEmr, aws: FakeEmrServer) -> str:
    return emr.create_cluster("nightly-cluster")


@pytest.fixture
def steps_spec(workdir: Path, cluster: str) -> AttemptSpec:
    """A fast-polling attempt that adds two steps to ``cluster`` and waits for them."""
    return AttemptSpec(
        workdir=workdir,
        operator=ADD_STEPS,
        operator_kwargs={
            "aws_conn_id": CONN_ID,
            "job_flow_id": cluster,
            "steps": [_step("extract"), _step("load")],
            "wait_for_completion": True,
            "waiter_delay": 0.05,
            "resume_after": timedelta(seconds=1),
        },
    )


def _ledger(spec: AttemptSpec) -> dict:
    return JsonFileTaskStateStore(spec.workdir / "state_store.json").get(LEDGER_KEY)


def _with(spec: AttemptSpec, **kwargs: object) -> AttemptSpec:
    return replace(spec, operator_kwargs={**spec.operator_kwargs, **kwargs})


# -- steps: the happy path and failures ----------------------------------------------------------


def test_steps_are_added_polled_and_succeed_with_the_step_ids_pushed(steps_spec, emr, cluster):
    outcome = run_attempt(steps_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    steps = emr.steps(cluster)
    assert outcome["result"] == [s["Id"] for s in steps], "the step ids, in order, are the return value"
    assert [s["State"] for s in steps] == ["COMPLETED", "COMPLETED"]
    ledger = _ledger(steps_spec)
    key = f"{ledger['nonce']}-0"
    assert [s["Name"] for s in steps] == [
        tag_step_name("extract", key, 1, 2),
        tag_step_name("load", key, 2, 2),
    ], "every step carries the ledger key in its Name"
    assert ledger["external_id"] == f"{cluster}:{steps[0]['Id']},{steps[1]['Id']}"
    assert outcome["xcoms"]["job_flow_id"] == cluster
    assert outcome["xcoms"]["emr_cluster"]["job_flow_id"] == cluster, "the EMR Cluster link is persisted"
    assert emr.counters["steps_added"] == 2


def test_a_failed_step_fails_the_task_with_its_failure_reason_and_log_file(steps_spec, emr, cluster):
    emr.script_step(
        r"^extract ",
        StepScript(
            run_seconds=0.2,
            outcome="FAILED",
            failure_reason="Unknown Error.",
            failure_message="Exception in thread main: java.io.FileNotFoundException: s3://bucket/in",
            log_file="s3://logs/j-1/steps/s-1/stderr.gz",
        ),
    )
    spec = _with(steps_spec, steps=[_step("extract", "CANCEL_AND_WAIT"), _step("load")])
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "failed"
    error = outcome["error"]
    assert "FAILED" in error
    assert "reason: Unknown Error." in error
    assert "java.io.FileNotFoundException" in error
    assert "log file: s3://logs/j-1/steps/s-1/stderr.gz" in error
    assert [s["State"] for s in emr.steps(cluster)] == ["FAILED", "CANCELLED"], "CANCEL_AND_WAIT honoured"


def test_a_step_failed_with_continue_lets_the_later_steps_finish_before_the_task_fails(
    steps_spec, emr, cluster
):
    emr.script_step(r"^extract ", StepScript(run_seconds=0.1, outcome="FAILED"))
    outcome = run_attempt(steps_spec)

    assert outcome["outcome"] == "failed"
    assert [s["State"] for s in emr.steps(cluster)] == ["FAILED", "COMPLETED"], (
        "the task waited for the step after the failed one instead of leaving it running"
    )


def test_wait_for_completion_false_returns_the_step_ids_once_added(steps_spec, emr, cluster):
    emr.default_step = StepScript(run_seconds=None)
    outcome = run_attempt(_with(steps_spec, wait_for_completion=False))

    assert outcome["outcome"] == "success", outcome["error"]
    steps = emr.steps(cluster)
    assert outcome["result"] == [s["Id"] for s in steps]
    assert steps[0]["State"] in ("PENDING", "RUNNING")


def test_job_flow_name_finds_the_one_cluster_in_the_given_states(steps_spec, emr, aws):
    emr.create_cluster("reporting", state="TERMINATED")
    wanted = emr.create_cluster("reporting", state="WAITING")
    spec = _with(
        steps_spec, job_flow_id=None, job_flow_name="reporting", cluster_states=["WAITING", "RUNNING"]
    )
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert outcome["xcoms"]["job_flow_id"] == wanted
    assert len(emr.steps(wanted)) == 2


# -- steps: exactly once ------------------------------------------------------------------------------


@pytest.mark.parametrize("ahead", [timedelta(minutes=10), timedelta(minutes=15)])
def test_a_worker_clock_ahead_of_emrs_still_finds_its_own_steps_after_a_lost_response(
    steps_spec, emr, aws, cluster, monkeypatch, ahead
):
    # The worker's clock runs ahead of EMR's, by up to the 15 minutes SigV4 itself tolerates: the
    # ledger's intent time is later than the creation time EMR stamps on the steps it adds.
    from airflow.providers.resumable.operators import base

    worker_clock = base._utcnow
    monkeypatch.setattr(base, "_utcnow", lambda: worker_clock() + ahead)
    aws.inject("AddJobFlowSteps", Fault.drop_response())

    outcome = run_attempt(steps_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert emr.counters["steps_added"] == 2, "exactly one step set: the retry found the tagged steps"
    assert emr.counters["requests:AddJobFlowSteps"] == 1
    assert outcome["result"] == [s["Id"] for s in emr.steps(cluster)]


@pytest.mark.skipif(
    not worker_loss_checkpoints_available(), reason="attempts declare themselves only with the core patch"
)
def test_an_attempt_another_took_over_while_it_was_about_to_add_steps_adds_none(
    steps_spec, emr, aws, cluster
):
    """
    Frozen past the heartbeat timeout on its way to AddJobFlowSteps, then thawed: meanwhile the task
    resumed in another attempt, which re-sent the ledger's key and added the steps. EMR cannot tell
    the second AddJobFlowSteps from a new one, so the thawed attempt must not send it.
    """
    aws.inject("DescribeCluster", Fault.delay(3.0))  # the last call before AddJobFlowSteps
    attempt = AttemptProcess(steps_spec).start()
    attempt.wait_until_started()
    store = JsonFileTaskStateStore(steps_spec.workdir / "state_store.json")
    wait_for(
        lambda: (
            (store.get(WORKER_LOSS_KEY) or {}).get("pid") == attempt.pid and aws.requests("DescribeCluster")
        ),
        what="the attempt to declare itself and ask about the cluster",
    )
    declaration = store.get(WORKER_LOSS_KEY)
    store.set(WORKER_LOSS_KEY, {**declaration, "pid": declaration["pid"] + 1})  # a later attempt's

    outcome = attempt.join(timeout=30)

    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME, outcome
    assert emr.counters["requests:AddJobFlowSteps"] == 0, "the superseded attempt added steps"
    assert emr.steps(cluster) == []
    assert _ledger(steps_spec)["phase"] == "submitting", "the key is left to the attempt that took over"


def test_find_existing_stops_listing_at_steps_older_than_the_intent(emr, aws, cluster):
    # moto's backend takes its own snake_case step fields.
    old = [
        {"name": f"old-{i}", "action_on_failure": "CONTINUE", "hadoop_jar_step": {"Jar": "j"}}
        for i in range(120)
    ]
    old_ids = [s.id for s in emr.emr.add_job_flow_steps(cluster, old)]
    for step in emr.emr.clusters[cluster].steps:
        step.creation_date_time -= timedelta(days=1)  # yesterday's steps: three pages of ListSteps
    emr.tick()
    operator = ResumableEmrAddStepsOperator(task_id="t", aws_conn_id=CONN_ID, job_flow_id=cluster, steps=[])
    key = "ab" * 16 + "-0"
    intent_at = datetime.now(tz=timezone.utc)
    tagged = {**_step("x"), "Name": tag_step_name("x", key, 1, 1)}
    [tagged_id] = operator.hook.client.add_job_flow_steps(JobFlowId=cluster, Steps=[tagged])["StepIds"]
    before = emr.counters["requests:ListSteps"]

    found = operator.find_existing(key, intent_at=intent_at)

    assert found == f"{cluster}:{tagged_id}"
    assert tagged_id not in old_ids
    assert emr.counters["requests:ListSteps"] - before == 1, "stopped at the first page of older steps"
    assert operator.find_existing("cd" * 16 + "-0", intent_at=intent_at) is None


# -- steps: termination -------------------------------------------------------------------------------


# -- steps: API faults --------------------------------------------------------------------------------


def test_a_throttling_storm_backs_off_and_completes(steps_spec, emr, aws):
    for operation in ("DescribeCluster", "AddJobFlowSteps", "ListSteps"):
        aws.inject(operation, Fault.error(400), times=3)  # ThrottlingException
    outcome = run_attempt(steps_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert emr.counters["steps_added"] == 2
    assert emr.counters["add_job_flow_steps"] == 1, "throttled sends never reached EMR; one did"
    sends = aws.requests("AddJobFlowSteps")
    assert len(sends) == 4
    gaps = [later - earlier for earlier, later in itertools.pairwise(aws.requests("DescribeCluster")[:4])]
    assert all(gap >= FAST_BACKOFF.initial_wait * 0.9 for gap in gaps), f"no back-off between tries: {gaps}"


def test_5xx_errors_are_retried(steps_spec, emr, aws):
    aws.inject("ListSteps", Fault.error(503), times=2)
    outcome = run_attempt(steps_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert emr.counters["steps_added"] == 2


# -- steps: bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"job_flow_id": "j-NOSUCHCLUSTER"}, "EMR has no cluster j-NOSUCHCLUSTER"),
        ({"job_flow_id": "terminated"}, "is TERMINATED and takes no more steps"),
        ({"job_flow_id": None, "job_flow_name": "nobody"}, "No cluster found for name: nobody"),
        ({"job_flow_id": None, "job_flow_name": "twin"}, "More than one cluster found for name twin"),
        ({"steps": []}, "steps must be a non-empty list"),
        ({"steps": "[{'Name': 'x'"}, "neither a Python literal nor JSON"),
        ({"steps": [{"Name": "x"}]}, "needs a HadoopJarStep with a non-empty string Jar"),
        ({"steps": [{**_step("x"), "ActionOnFailure": "PANIC"}]}, "ActionOnFailure='PANIC'"),
        ({"steps": [{**_step("x"), "Nmae": "typo"}]}, "unknown keys ['Nmae']"),
        ({"steps": [_step("x" * 250)]}, "Name is too long"),
        (
            {"steps": [{**_step("x"), "HadoopJarStep": {"Jar": "j", "Args": [1]}}]},
            "Args must be a list of strings",
        ),
    ],
    ids=[
        "unknown-cluster",
        "terminated-cluster",
        "name-matches-none",
        "name-matches-two",
        "no-steps",
        "unparsable-string",
        "no-jar",
        "bad-action-on-failure",
        "unknown-key",
        "name-too-long",
        "non-string-args",
    ],
)
def test_bad_input_fails_clearly_before_any_step_is_added(steps_spec, emr, overrides, message):
    emr.create_cluster("twin")
    emr.create_cluster("twin")
    if overrides.get("job_flow_id") == "terminated":
        overrides = {**overrides, "job_flow_id": emr.create_cluster("old", state="TERMINATED")}
    outcome = run_attempt(_with(steps_spec, **overrides))

    assert outcome["outcome"] == "failed_no_retry", outcome
    assert message in outcome["error"]
    assert emr.counters["requests:AddJobFlowSteps"] == 0, "nothing was added"


def test_both_or_neither_of_job_flow_id_and_name_is_refused_at_parse_time():
    with pytest.raises(Exception, match="Exactly one of job_flow_id or job_flow_name"):
        ResumableEmrAddStepsOperator(task_id="t", job_flow_id="j-1", job_flow_name="x", steps=[_step("a")])
    with pytest.raises(Exception, match="Exactly one of job_flow_id or job_flow_name"):
        ResumableEmrAddStepsOperator(task_id="t", steps=[_step("a")])


def test_deferrable_true_defers_to_the_emr_triggers():
    steps = ResumableEmrAddStepsOperator(task_id="t", job_flow_id="j-1", steps=[_step("a")], deferrable=True)
    runs = ResumableEmrServerlessStartJobOperator(
        task_id="t", application_id="a", execution_role_arn=ROLE, job_driver=SPARK, deferrable=True
    )

    assert steps.deferrable is runs.deferrable is True
    assert steps.trigger_class is ResumableEmrStepsTrigger
    assert runs.trigger_class is ResumableEmrServerlessJobRunTrigger


# -- steps: describe (in-process moto) ---------------------------------------------------------------


def test_describe_in_process_follows_the_lifecycle_and_reports_missing_steps(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_INPROC", "aws://testing:testing@/?region_name=us-east-1")
    with in_process_fake_emr(default_step=StepScript(pending_seconds=0.5, run_seconds=0.5)) as emr:
        cluster_id = emr.create_cluster("etl")
        operator = ResumableEmrAddStepsOperator(
            task_id="t", aws_conn_id="aws_inproc", job_flow_id=cluster_id, steps=[_step("a")]
        )
        external_id = operator.submit(operator.build_submission({}), "ef" * 16 + "-0", resend=False)  # type: ignore[arg-type]

        seen = [operator.describe(external_id).status]
        deadline = time.monotonic() + 10
        while seen[-1] is not RemoteStatus.SUCCEEDED:
            assert time.monotonic() < deadline, seen
            time.sleep(0.02)
            if (status := operator.describe(external_id).status) is not seen[-1]:
                seen.append(status)
        assert seen == [RemoteStatus.PENDING, RemoteStatus.RUNNING, RemoteStatus.SUCCEEDED]
        gone = operator.describe(f"{cluster_id}:s-NOTASTEP")
        assert gone.status is RemoteStatus.NOT_FOUND


def _summary(state: str, action: str = "CONTINUE", **details: str) -> dict[str, Any]:
    status: dict[str, Any] = {"State": state}
    if details:
        status["FailureDetails"] = details
    return {"Id": f"s-{state}", "Name": state.lower(), "ActionOnFailure": action, "Status": status}


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([_summary("PENDING"), _summary("PENDING")], RemoteStatus.PENDING),
        ([_summary("RUNNING"), _summary("PENDING")], RemoteStatus.RUNNING),
        ([_summary("COMPLETED"), _summary("RUNNING")], RemoteStatus.RUNNING),
        ([_summary("COMPLETED"), _summary("COMPLETED")], RemoteStatus.SUCCEEDED),
        ([_summary("FAILED", "CONTINUE"), _summary("RUNNING")], RemoteStatus.RUNNING),
        ([_summary("FAILED", "CONTINUE"), _summary("COMPLETED")], RemoteStatus.FAILED),
        ([_summary("FAILED", "CANCEL_AND_WAIT"), _summary("PENDING")], RemoteStatus.FAILED),
        ([_summary("FAILED", "TERMINATE_CLUSTER"), _summary("PENDING")], RemoteStatus.FAILED),
        ([_summary("INTERRUPTED", "TERMINATE_JOB_FLOW"), _summary("PENDING")], RemoteStatus.FAILED),
        ([_summary("COMPLETED"), _summary("CANCELLED")], RemoteStatus.CANCELLED),
        ([_summary("CANCEL_PENDING"), _summary("PENDING")], RemoteStatus.RUNNING),
        ([_summary("FAILED"), _summary("CANCELLED")], RemoteStatus.FAILED),
    ],
)
def test_step_states_aggregate_honouring_action_on_failure(steps, expected):
    assert steps_to_job_state(steps).status is expected


def test_the_aggregate_message_names_the_failed_step_with_reason_message_and_log_file():
    state = steps_to_job_state(
        [_summary("FAILED", "CONTINUE", Reason="Oops", Message="OOM", LogFile="s3://l/stderr.gz")]
    )

    assert state.message == (
        "step s-FAILED (failed) FAILED [ActionOnFailure=CONTINUE]: reason: Oops, message: OOM, "
        "log file: s3://l/stderr.gz"
    )


# -- EMR Serverless -----------------------------------------------------------------------------------


@pytest.fixture
def application(emr: FakeEmr, aws: FakeEmrServer) -> str:
    return emr.create_application()


@pytest.fixture
def job_spec(workdir: Path, application: str) -> AttemptSpec:
    return AttemptSpec(
        workdir=workdir,
        operator=START_JOB,
        operator_kwargs={
            "aws_conn_id": CONN_ID,
            "application_id": application,
            "execution_role_arn": ROLE,
            "job_driver": SPARK,
            "name": "nightly-spark",
            "waiter_delay": 0.05,
            "waiter_max_attempts": 10_000,
            "resume_after": timedelta(seconds=1),
        },
    )


def test_a_job_run_starts_polls_and_succeeds_returning_its_id(job_spec, emr, application):
    outcome = run_attempt(job_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    [run] = emr.job_runs(application)
    assert outcome["result"] == run["id"]
    assert run["state"] == "SUCCESS"
    assert run["clientToken"] == f"{_ledger(job_spec)['nonce']}-0", "the ledger key is the clientToken"


def test_a_failed_job_run_fails_the_task_with_its_state_details(job_spec, emr):
    emr.script_job_run(
        "nightly-spark", JobRunScript(run_seconds=0.2, outcome="FAILED", state_details="OOM in stage 3")
    )
    outcome = run_attempt(job_spec)

    assert outcome["outcome"] == "failed"
    assert "FAILED" in outcome["error"]
    assert "OOM in stage 3" in outcome["error"]


def test_start_job_run_crash_window_leaves_exactly_one_job_run(job_spec, emr, aws, application):
    hold = aws.inject("StartJobRun", Fault.hold_after_commit())
    first = AttemptProcess(job_spec).start()
    wait_for(lambda: emr.counters["job_runs_created"] == 1, what="the job run to be created")
    first.signal(signal.SIGKILL)
    assert first.join() is None
    hold.release.set()

    second = run_attempt(job_spec)

    assert second["outcome"] == "success", second["error"]
    assert emr.counters["job_runs_created"] == 1
    assert emr.counters["deduplicated"] == 1, "the second attempt re-sent the same clientToken"
    assert second["result"] == emr.job_runs(application)[0]["id"]


def test_a_dropped_start_job_run_response_yields_one_job_run(job_spec, emr, aws):
    aws.inject("StartJobRun", Fault.drop_response())
    outcome = run_attempt(job_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert emr.counters["requests:StartJobRun"] == 2
    assert emr.counters["job_runs_created"] == 1
    assert emr.counters["deduplicated"] == 1


def test_sigterm_mid_poll_leaves_the_job_run_running_with_zero_cancel_job_run(
    job_spec, emr, aws, application
):
    emr.default_job_run = JobRunScript(run_seconds=None)
    first = AttemptProcess(job_spec).start()
    wait_for(lambda: emr.counters["requests:GetJobRun"] >= 3, what="polling to start")

    first.signal(signal.SIGTERM)
    outcome = first.join(timeout=15)

    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME, outcome
    assert emr.counters["requests:CancelJobRun"] == 0
    [run] = emr.job_runs(application)
    assert run["state"] == "RUNNING"

    emr.finish_job_run(run["id"])
    resumed = run_attempt(job_spec)
    assert resumed["outcome"] == "success", resumed["error"]
    assert resumed["result"] == run["id"]
    assert emr.counters["job_runs_created"] == 1
    assert emr.counters["requests:CancelJobRun"] == 0


def test_user_intent_cancels_the_job_run_exactly_once(job_spec, emr, aws, application):
    emr.default_job_run = JobRunScript(run_seconds=None)
    attempt = AttemptProcess(job_spec).start()
    wait_for(lambda: emr.counters["requests:GetJobRun"] >= 3, what="polling to start")
    (job_spec.workdir / "server_state").write_text("failed")
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=15)

    assert outcome is not None
    assert outcome["outcome"] == "failed"
    assert emr.counters["requests:CancelJobRun"] == 1
    assert emr.job_runs(application)[0]["state"] == "CANCELLED"


def test_a_throttled_start_job_run_backs_off_and_starts_one_job_run(job_spec, emr, aws):
    aws.inject("StartJobRun", Fault.error(429), times=3)
    aws.inject("GetJobRun", Fault.error(400), times=3)
    outcome = run_attempt(job_spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert emr.counters["job_runs_created"] == 1
    assert emr.counters["requests:StartJobRun"] == 4


def test_waiter_max_attempts_gives_up_and_cancels_the_job_run_as_upstream(job_spec, emr, application):
    emr.default_job_run = JobRunScript(run_seconds=None)
    outcome = run_attempt(_with(job_spec, waiter_max_attempts=3))

    assert outcome["outcome"] == "failed"
    assert "Waiter error: max attempts reached" in outcome["error"]
    assert emr.job_runs(application)[0]["state"] == "CANCELLED"


def test_a_user_client_request_token_wins_over_the_ledger_key(job_spec, emr, application):
    outcome = run_attempt(_with(job_spec, client_request_token="nightly-2026-11-23"))

    assert outcome["outcome"] == "success", outcome["error"]
    assert emr.job_runs(application)[0]["clientToken"] == "nightly-2026-11-23"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"execution_role_arn": "emr-role"}, "execution_role_arn must be an IAM role ARN"),
        ({"job_driver": {}}, "job_driver must be a non-empty dict"),
        ({"client_request_token": "t" * 65}, "at most 64 characters"),
    ],
    ids=["role-not-arn", "empty-driver", "long-token"],
)
def test_an_invalid_job_run_fails_before_any_request(job_spec, emr, overrides, message):
    outcome = run_attempt(_with(job_spec, **overrides))

    assert outcome["outcome"] == "failed_no_retry", outcome
    assert message in outcome["error"]
    assert emr.counters["requests:StartJobRun"] == 0


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("SUBMITTED", RemoteStatus.PENDING),
        ("PENDING", RemoteStatus.PENDING),
        ("SCHEDULED", RemoteStatus.PENDING),
        ("QUEUED", RemoteStatus.PENDING),
        ("RUNNING", RemoteStatus.RUNNING),
        ("CANCELLING", RemoteStatus.RUNNING),
        ("SUCCESS", RemoteStatus.SUCCEEDED),
        ("FAILED", RemoteStatus.FAILED),
        ("CANCELLED", RemoteStatus.CANCELLED),
        ("SOMETHING_NEW", RemoteStatus.RUNNING),
    ],
)
def test_job_run_states_map_to_the_normalised_status(state, expected):
    assert job_run_to_job_state({"state": state, "stateDetails": "details"}).status is expected
