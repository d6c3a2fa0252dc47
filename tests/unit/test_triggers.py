# Licensed under the Apache License, Version 2.0.
"""
The two triggers the contract suite does not run through an operator (EMR Serverless job runs and
Dataproc batches): each polls its job through the hook's async call against the wire-level fake to
its end, cancelled mid-poll never cancels the job, and each survives a serialisation round trip.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from airflow.providers.resumable.hooks.dataproc import DataprocBatchHook
from airflow.providers.resumable.hooks.emr import EmrServerlessJobRunHook
from airflow.providers.resumable.testing.dataproc import (
    BatchScript,
    FakeDataprocServer,
    FakeDataprocService,
)
from airflow.providers.resumable.testing.emr import FakeEmr, FakeEmrServer, JobRunScript
from airflow.providers.resumable.triggers.base import ResumableJobTrigger
from airflow.providers.resumable.triggers.dataproc import ResumableDataprocBatchTrigger
from airflow.providers.resumable.triggers.emr import ResumableEmrServerlessJobRunTrigger

KEY = "cd" * 16 + "-0"
FAST = {"max_attempts": 5, "max_delay": 30.0, "initial_wait": 0.01, "max_wait": 0.5}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeEmr]:
    emr = FakeEmr(default_job_run=JobRunScript(run_seconds=None))
    with FakeEmrServer(emr) as server:
        monkeypatch.setenv("AIRFLOW_CONN_AWS_TRIGGER", server.connection_uri())
        yield emr


@pytest.fixture
def dataproc(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDataprocService]:
    service = FakeDataprocService(default_batch_script=BatchScript(run_seconds=None))
    with FakeDataprocServer(service) as server:
        monkeypatch.setenv("AIRFLOW_CONN_GCP_TRIGGER", server.connection_uri("proj"))
        yield service


def _rebuilt(trigger: ResumableJobTrigger) -> ResumableJobTrigger:
    """The trigger as the triggerer rebuilds it: its serialisation, through JSON."""
    classpath, kwargs = trigger.serialize()
    assert classpath == f"{type(trigger).__module__}.{type(trigger).__name__}"
    return type(trigger)(**json.loads(json.dumps(kwargs)))


async def _cancel_mid_poll(trigger: ResumableJobTrigger, polled) -> None:
    task = asyncio.ensure_future(trigger.run().__anext__())
    while not polled():
        await asyncio.sleep(0.02)
    task.cancel("user-action")
    with pytest.raises(asyncio.CancelledError):
        await task
    await trigger.on_kill()
    await trigger.cleanup()


async def _first(trigger: ResumableJobTrigger) -> dict:
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("no event")


def test_emr_serverless_job_run_trigger_polls_to_the_end_and_never_cancels(aws):
    application = aws.create_application()
    hook = EmrServerlessJobRunHook(application_id=application, aws_conn_id="aws_trigger")
    run_id = hook.start_job_run(
        {
            "applicationId": application,
            "executionRoleArn": "arn:aws:iam::123456789012:role/emr-serverless-job",
            "jobDriver": {"sparkSubmit": {"entryPoint": "s3://b/x.py"}},
        },
        name="n",
        client_token=KEY,
    )
    trigger = _rebuilt(
        ResumableEmrServerlessJobRunTrigger(
            external_id=run_id,
            hook_params=hook.params(),
            poll_interval=0.05,
            backoff=FAST,
            job_noun="job run",
        )
    )
    gets_before = aws.counters["requests:GetJobRun"]

    asyncio.run(
        asyncio.wait_for(
            _cancel_mid_poll(trigger, lambda: aws.counters["requests:GetJobRun"] >= gets_before + 3), 30
        )
    )
    assert aws.counters["cancel_job_run"] == 0
    assert hook.describe(run_id).status.is_active

    aws.finish_job_run(run_id)
    event = asyncio.run(asyncio.wait_for(_first(_rebuilt(trigger)), 30))
    assert event == {
        "status": "terminal",
        "job_id": run_id,
        "remote_status": "SUCCEEDED",
        "raw_state": event["raw_state"],
        "message": event["message"],
    }
    assert aws.counters["cancel_job_run"] == 0


def test_dataproc_batch_trigger_polls_to_the_end_and_never_cancels(dataproc):
    hook = DataprocBatchHook("gcp_trigger", region="europe-west1")
    batch_id = hook.create(
        {"pyspark_batch": {"main_python_file_uri": "gs://b/x.py"}}, KEY, batch_id="b-" + KEY
    )
    trigger = _rebuilt(
        ResumableDataprocBatchTrigger(
            external_id=batch_id,
            hook_params=hook.params(),
            poll_interval=0.05,
            backoff=FAST,
            job_noun="batch",
        )
    )
    gets_before = dataproc.counters["requests:GetBatch"]

    asyncio.run(
        asyncio.wait_for(
            _cancel_mid_poll(trigger, lambda: dataproc.counters["requests:GetBatch"] >= gets_before + 3), 30
        )
    )
    assert dataproc.counters["requests:CancelJob"] == 0
    assert dataproc.counters["cancel_requests"] == 0
    assert hook.describe(batch_id).status.is_active

    dataproc.finish_batch(batch_id, "FAILED", "driver exited 1")
    event = asyncio.run(asyncio.wait_for(_first(_rebuilt(trigger)), 30))
    assert event["status"] == "terminal"
    assert event["job_id"] == batch_id
    assert event["remote_status"] == "FAILED"
    assert "driver exited 1" in event["message"]
    assert dataproc.counters["cancel_requests"] == 0


def test_a_poll_budget_ends_the_trigger_with_a_budget_spent_event(aws):
    application = aws.create_application()
    hook = EmrServerlessJobRunHook(application_id=application, aws_conn_id="aws_trigger")
    run_id = hook.start_job_run(
        {
            "applicationId": application,
            "executionRoleArn": "arn:aws:iam::123456789012:role/emr-serverless-job",
            "jobDriver": {"sparkSubmit": {"entryPoint": "s3://b/x.py"}},
        },
        name="n",
        client_token=KEY,
    )
    trigger = ResumableEmrServerlessJobRunTrigger(
        external_id=run_id, hook_params=hook.params(), poll_interval=0.02, max_polls=3, backoff=FAST
    )

    event = asyncio.run(asyncio.wait_for(_first(trigger), 30))

    assert event["status"] == "budget_spent"
    assert event["spent"] == "3 polls"
    assert aws.counters["cancel_job_run"] == 0
