# Licensed under the Apache License, Version 2.0.
"""
Each cloud's hook describes a job asynchronously (the path a trigger will poll through) and agrees
with its synchronous twin, against the wire-level fakes and the real clients: the Databricks hook's
aiohttp calls, google's asyncio gRPC client, and boto3 in a worker thread for EMR.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from airflow.providers.resumable.hooks.databricks import ResumableDatabricksHook
from airflow.providers.resumable.hooks.dataproc import DataprocBatchHook, DataprocJobHook
from airflow.providers.resumable.hooks.emr import EmrServerlessJobRunHook, EmrStepsHook
from airflow.providers.resumable.hooks.fake_job import FakeJobHook
from airflow.providers.resumable.status import RemoteStatus
from airflow.providers.resumable.testing.databricks import (
    FakeDatabricksServer,
    FakeDatabricksService,
    RunScript,
)
from airflow.providers.resumable.testing.dataproc import (
    BatchScript,
    FakeDataprocServer,
    FakeDataprocService,
    JobScript,
)
from airflow.providers.resumable.testing.emr import FakeEmr, FakeEmrServer, JobRunScript, StepScript
from airflow.providers.resumable.testing.fake_jobs import FakeJobServer, FakeJobService

KEY = "ab" * 16 + "-0"


def _both(hook, external_id):
    """The synchronous and the asynchronous describe of one job, taken back to back."""
    return hook.describe(external_id), asyncio.run(hook.a_describe(external_id))


@pytest.fixture
def dbx(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatabricksService]:
    service = FakeDatabricksService(default_script=RunScript(run_seconds=None))
    with FakeDatabricksServer(service) as server:
        monkeypatch.setenv("AIRFLOW_CONN_DATABRICKS_FAKE", server.connection_uri())
        yield service


def test_databricks_describes_a_run_asynchronously_over_aiohttp(dbx):
    hook = ResumableDatabricksHook("databricks_fake", retry_limit=1)
    run_id = hook.submit_run({"run_name": "n", "notebook_task": {"notebook_path": "/x"}}, KEY)

    running, a_running = _both(hook, run_id)
    dbx.finish(run_id, "FAILED", "boom")
    failed, a_failed = _both(hook, run_id)

    assert running.status is a_running.status is RemoteStatus.RUNNING
    assert failed.status is a_failed.status is RemoteStatus.FAILED
    assert a_failed == failed
    assert "boom" in a_failed.message
    assert dbx.counters["requests:runs/get"] >= 4, "the async path reached the fake"


def test_databricks_async_describe_says_not_found_for_a_404(dbx):
    dbx.missing_run_status = 404
    state = asyncio.run(ResumableDatabricksHook("databricks_fake", retry_limit=1).a_describe("424242"))
    assert state.status is RemoteStatus.NOT_FOUND


@pytest.fixture
def dataproc(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDataprocService]:
    service = FakeDataprocService(
        default_job_script=JobScript(run_seconds=None), default_batch_script=BatchScript(run_seconds=None)
    )
    with FakeDataprocServer(service) as server:
        monkeypatch.setenv("AIRFLOW_CONN_GCP_FAKE", server.connection_uri("proj"))
        yield service


def test_dataproc_describes_jobs_and_batches_over_the_asyncio_grpc_client(dataproc):
    jobs = DataprocJobHook("gcp_fake", region="europe-west1")
    job = {"placement": {"cluster_name": "c"}, "pyspark_job": {"main_python_file_uri": "gs://b/x.py"}}
    job_id = jobs.submit(job, KEY, task_id="t")
    batches = DataprocBatchHook("gcp_fake", region="europe-west1")
    batch_id = batches.create(
        {"pyspark_batch": {"main_python_file_uri": "gs://b/x.py"}}, KEY, batch_id="b-" + KEY
    )

    job_state, a_job_state = _both(jobs, job_id)
    batch_state, a_batch_state = _both(batches, batch_id)
    missing = asyncio.run(jobs.a_describe("no-such-job"))
    missing_batches = [batches.describe("no-such-batch"), asyncio.run(batches.a_describe("no-such-batch"))]

    assert a_job_state == job_state
    assert a_job_state.status in (RemoteStatus.PENDING, RemoteStatus.RUNNING)
    assert a_batch_state == batch_state
    assert missing.status is RemoteStatus.NOT_FOUND
    assert "Dataproc has no job no-such-job" in missing.message
    assert [state.status for state in missing_batches] == [RemoteStatus.NOT_FOUND] * 2
    assert all("Dataproc has no batch no-such-batch" in state.message for state in missing_batches)
    assert dataproc.counters["requests:GetJob"] >= 3


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEmr]:
    emr = FakeEmr(default_step=StepScript(run_seconds=None), default_job_run=JobRunScript(run_seconds=None))
    with FakeEmrServer(emr) as server:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_FAKE", server.connection_uri())
        yield emr


def test_emr_describes_steps_and_job_runs_in_a_thread(aws):
    cluster = aws.create_cluster("c")
    steps = EmrStepsHook(aws_conn_id="aws_fake")
    step = {"Name": "s", "ActionOnFailure": "CONTINUE", "HadoopJarStep": {"Jar": "command-runner.jar"}}
    steps_id = steps.add_steps(cluster, [step], KEY)
    application = aws.create_application()
    runs = EmrServerlessJobRunHook(application_id=application, aws_conn_id="aws_fake")
    run_id = runs.start_job_run(
        {
            "applicationId": application,
            "executionRoleArn": "arn:aws:iam::123456789012:role/emr-serverless-job",
            "jobDriver": {"sparkSubmit": {"entryPoint": "s3://b/x.py"}},
        },
        name="n",
        client_token=KEY,
    )

    steps_state, a_steps_state = _both(steps, steps_id)
    run_state, a_run_state = _both(runs, run_id)

    assert a_steps_state == steps_state
    assert a_steps_state.status is RemoteStatus.RUNNING
    assert a_run_state == run_state
    assert a_run_state.status in (RemoteStatus.PENDING, RemoteStatus.RUNNING)


def test_the_fake_job_hook_describes_asynchronously():
    service = FakeJobService(run_seconds=None)
    with FakeJobServer(service) as server:
        hook = FakeJobHook(server.url)
        job_id = hook.submit({"name": "j"}, KEY)
        state, a_state = _both(hook, job_id)
    assert a_state == state
    assert a_state.status is RemoteStatus.RUNNING


@pytest.mark.parametrize(
    "hook",
    [
        ResumableDatabricksHook("databricks_fake", retry_limit=2, retry_delay=0.5),
        EmrStepsHook(aws_conn_id="aws_fake", region_name="eu-west-1"),
        EmrServerlessJobRunHook(application_id="app", aws_conn_id="aws_fake"),
        DataprocJobHook("gcp_fake", ["a@x.iam", "b@x.iam"], region="r", project_id="p", timeout=5.0),
        DataprocBatchHook("gcp_fake", region="r", project_id="p"),
        FakeJobHook("http://127.0.0.1:1"),
    ],
    ids=lambda hook: type(hook).__name__,
)
def test_a_hook_rebuilds_from_its_serialisable_params(hook):
    # What a component outside any task attempt (a sweeper cancelling a checkpointed task's job)
    # records and rebuilds the hook from.
    params = json.loads(json.dumps(hook.params()))
    rebuilt = type(hook)(**params)
    assert rebuilt.params() == params
