# Licensed under the Apache License, Version 2.0.
"""
One adapter per cloud for the exactly-once contract suite: how to run the cloud's operator against
its wire-level fake, and how to read what the fake saw and make it misbehave on cue.

The real clients do the talking (DatabricksHook over HTTP, boto3 through the AWS proxy in front of
moto, the Dataproc gRPC client, the fake-job operator's ``requests``); an adapter only knows its
fake's counters and fault names. A new cloud adds one adapter here and gets every scenario.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from attempts import AttemptSpec

from airflow.providers.resumable.operators.emr import ResumableEmrAddStepsOperator
from airflow.providers.resumable.retrying import BackoffPolicy
from airflow.providers.resumable.testing.databricks import (
    FakeDatabricksServer,
    FakeDatabricksService,
    RunScript,
)
from airflow.providers.resumable.testing.dataproc import (
    FakeDataprocServer,
    FakeDataprocService,
    GrpcFault,
    JobScript,
)
from airflow.providers.resumable.testing.emr import FakeEmr, FakeEmrServer, StepScript
from airflow.providers.resumable.testing.fake_jobs import FakeJobServer, FakeJobService, Fault

FAST = {"resume_after": timedelta(seconds=1)}
FAST_BACKOFF = BackoffPolicy(max_attempts=12, max_delay=60, initial_wait=0.1, max_wait=1.0)


def fast_emr_add_steps(**kwargs: Any) -> ResumableEmrAddStepsOperator:
    """The EMR operator with a sub-second backoff, so fault scenarios take seconds, not minutes."""
    operator = ResumableEmrAddStepsOperator(**kwargs)
    operator.cloud_call_backoff = FAST_BACKOFF
    return operator


class ContractCloud(ABC):
    """A cloud's fake, started for one test, as the contract suite sees it."""

    name: str
    ledger_kind: str
    """The ``kind`` the cloud's operator writes into its ledger."""
    job_noun: str
    """What the operator calls its job in log lines (``"run"``, ``"steps"``, ``"job"``)."""
    retry_after_seconds: float | None = None
    """The wait a throttled poll asks for, if the cloud can ask (``Retry-After``, ``RetryInfo``)."""
    deduplicates: bool = True
    """Whether the cloud deduplicates a re-sent key (else the operator finds the job by its key and
    never re-sends: EMR's ``AddJobFlowSteps``)."""

    def __init__(self, workdir: Path, monkeypatch: pytest.MonkeyPatch, stack: ExitStack) -> None:
        self.workdir = workdir
        self.monkeypatch = monkeypatch
        self.stack = stack

    @abstractmethod
    def spec(self) -> AttemptSpec:
        """An attempt of the cloud's operator, polling fast, of a job that runs about 1 s."""

    @abstractmethod
    def run_forever(self) -> None:
        """Jobs submitted from now on run until :meth:`finish_all`."""

    @abstractmethod
    def finish_all(self) -> None:
        """End every job successfully, now."""

    @abstractmethod
    def jobs_created(self) -> int:
        """Jobs the cloud created (a deduplicated re-send creates none)."""

    @abstractmethod
    def submit_requests(self) -> int:
        """Submit requests that reached the cloud, faulted ones included."""

    @abstractmethod
    def polls(self) -> int:
        """Status reads the cloud answered."""

    @abstractmethod
    def cancel_calls(self) -> int:
        """Cancel requests that reached the cloud."""

    @abstractmethod
    def running_jobs(self) -> int:
        """Jobs running now."""

    @abstractmethod
    def hold_next_submit(self) -> threading.Event:
        """Commit the next submit, hold its answer until the event is set, then lose it."""

    @abstractmethod
    def drop_next_submit_response(self) -> None:
        """Commit the next submit and lose its answer."""

    @abstractmethod
    def throttle_polls(self, times: int) -> None:
        """Answer the next ``times`` status reads with the cloud's throttling error."""

    @abstractmethod
    def fail_polls(self, times: int) -> None:
        """Answer the next ``times`` status reads with a server error (5xx, UNAVAILABLE)."""

    @abstractmethod
    def fail_submits(self, times: int) -> None:
        """Answer the next ``times`` submits with a server error (5xx, UNAVAILABLE)."""

    @abstractmethod
    def hang_cancels(self, seconds: float, times: int) -> None:
        """Delay the next ``times`` cancels by ``seconds`` each."""

    def describe_job(self, external_id: str) -> str:
        """How the operator names the job in its log lines."""
        return f"{self.job_noun} {external_id}"


class FakeJobCloud(ContractCloud):
    """The fake job service and :class:`~airflow.providers.resumable.operators.fake_job.FakeJobSubmitOperator`."""

    name = "fake_job"
    ledger_kind = "testing.fake_jobs"
    job_noun = "job"
    retry_after_seconds = 0.5

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.service = FakeJobService()
        self.server = self.stack.enter_context(FakeJobServer(self.service))
        self._job: dict[str, Any] = {"name": "nightly-etl", "run_seconds": 1.0, "output": "42 rows"}

    def spec(self) -> AttemptSpec:
        return AttemptSpec(
            workdir=self.workdir,
            endpoint=self.server.url,
            job=dict(self._job),
            operator_kwargs={"poll_interval": 0.05, **FAST},
        )

    def run_forever(self) -> None:
        self._job["run_seconds"] = None

    def finish_all(self) -> None:
        for job in self.service.jobs():
            self.service.finish(job["job_id"])

    def _requests(self, operation: str) -> int:
        return sum(1 for op, _ in self.service.requests if op == operation)

    def jobs_created(self) -> int:
        return self.service.counters["jobs_created"]

    def submit_requests(self) -> int:
        return self._requests("submit")

    def polls(self) -> int:
        return self.service.counters["gets"]

    def cancel_calls(self) -> int:
        return self._requests("cancel")

    def running_jobs(self) -> int:
        return sum(1 for job in self.service.jobs() if job["state"] == "RUNNING")

    def hold_next_submit(self) -> threading.Event:
        return self.service.inject("submit", Fault.hold_after_commit()).release

    def drop_next_submit_response(self) -> None:
        self.service.inject("submit", Fault.drop_response())

    def throttle_polls(self, times: int) -> None:
        self.service.inject("get", Fault.error(429, retry_after=self.retry_after_seconds), times=times)

    def fail_polls(self, times: int) -> None:
        self.service.inject("get", Fault.error(503), times=times)

    def fail_submits(self, times: int) -> None:
        self.service.inject("submit", Fault.error(503), times=times)

    def hang_cancels(self, seconds: float, times: int) -> None:
        self.service.inject("cancel", Fault.delay(seconds), times=times)


class DatabricksCloud(ContractCloud):
    """The fake Jobs API 2.2 and ``ResumableDatabricksSubmitRunOperator`` through the real ``DatabricksHook``."""

    name = "databricks"
    ledger_kind = "databricks.runs_submit"
    job_noun = "run"
    retry_after_seconds = 0.5
    conn_id = "databricks_contract"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.service = FakeDatabricksService(default_script=RunScript(run_seconds=1.0))
        server = self.stack.enter_context(FakeDatabricksServer(self.service))
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{self.conn_id.upper()}", server.connection_uri())

    def spec(self) -> AttemptSpec:
        return AttemptSpec(
            workdir=self.workdir,
            operator="airflow.providers.resumable.operators.databricks:ResumableDatabricksSubmitRunOperator",
            operator_kwargs={
                "databricks_conn_id": self.conn_id,
                "run_name": "nightly-etl",
                "notebook_task": {"notebook_path": "/Shared/nightly"},
                "new_cluster": {
                    "spark_version": "15.4.x-scala2.12",
                    "node_type_id": "i3.xlarge",
                    "num_workers": 2,
                },
                "polling_period_seconds": 0.05,
                "databricks_retry_delay": 0.05,
                **FAST,
            },
        )

    def run_forever(self) -> None:
        self.service.default_script = RunScript(run_seconds=None)

    def finish_all(self) -> None:
        for run in self.service.runs():
            self.service.finish(run["run_id"], "SUCCESS")

    def _requests(self, *operations: str) -> int:
        return sum(1 for op, _ in self.service.requests if op in operations)

    def jobs_created(self) -> int:
        return self.service.counters["runs_created"]

    def submit_requests(self) -> int:
        return self.service.counters["requests:runs/submit"]

    def polls(self) -> int:
        return self.service.counters["gets"]

    def cancel_calls(self) -> int:
        return self._requests("runs/cancel", "runs/cancel-all")

    def running_jobs(self) -> int:
        return sum(1 for run in self.service.runs() if self.service.state_of(run["run_id"]) == "RUNNING")

    def hold_next_submit(self) -> threading.Event:
        return self.service.inject("runs/submit", Fault.hold_after_commit()).release

    def drop_next_submit_response(self) -> None:
        self.service.inject("runs/submit", Fault.drop_response())

    def throttle_polls(self, times: int) -> None:
        self.service.inject("runs/get", Fault.error(429, retry_after=self.retry_after_seconds), times=times)

    def fail_polls(self, times: int) -> None:
        self.service.inject("runs/get", Fault.error(503), times=times)

    def fail_submits(self, times: int) -> None:
        self.service.inject("runs/submit", Fault.error(503), times=times)

    def hang_cancels(self, seconds: float, times: int) -> None:
        self.service.inject("runs/cancel", Fault.delay(seconds), times=times)


class EmrStepsCloud(ContractCloud):
    """moto behind the AWS fault proxy and ``ResumableEmrAddStepsOperator`` through boto3.

    A job here is the two steps one ``AddJobFlowSteps`` adds; EMR cannot deduplicate, so every
    repeat is closed by the operator's ``find_existing``.
    """

    name = "emr"
    ledger_kind = "emr.add_steps"
    job_noun = "steps"
    deduplicates = False
    conn_id = "aws_contract"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.emr = FakeEmr(default_step=StepScript(run_seconds=1.0))
        self.server = self.stack.enter_context(FakeEmrServer(self.emr))
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{self.conn_id.upper()}", self.server.connection_uri())
        self.cluster = self.emr.create_cluster("nightly-cluster")

    def spec(self) -> AttemptSpec:
        steps = [
            {
                "Name": name,
                "ActionOnFailure": "CONTINUE",
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", f"s3://b/{name}.py"]},
            }
            for name in ("extract", "load")
        ]
        return AttemptSpec(
            workdir=self.workdir,
            operator="contract_clouds:fast_emr_add_steps",
            operator_kwargs={
                "aws_conn_id": self.conn_id,
                "job_flow_id": self.cluster,
                "steps": steps,
                "wait_for_completion": True,
                "waiter_delay": 0.05,
                **FAST,
            },
        )

    def run_forever(self) -> None:
        self.emr.default_step = StepScript(run_seconds=None)

    def finish_all(self) -> None:
        for step in self.emr.steps(self.cluster):
            self.emr.finish_step(step["Id"])

    def jobs_created(self) -> int:
        return self.emr.counters["add_job_flow_steps"]

    def submit_requests(self) -> int:
        return self.emr.counters["requests:AddJobFlowSteps"]

    def polls(self) -> int:
        return self.emr.counters["requests:ListSteps"]

    def cancel_calls(self) -> int:
        return self.emr.counters["requests:CancelSteps"]

    def running_jobs(self) -> int:
        # EMR runs a cluster's steps one at a time: a submission goes on while any of its steps is
        # pending or running, and has ended (e.g. cancelled) only once none is.
        states = {step["State"] for step in self.emr.steps(self.cluster)}
        return 1 if states & {"PENDING", "RUNNING", "CANCEL_PENDING"} else 0

    def hold_next_submit(self) -> threading.Event:
        return self.server.inject("AddJobFlowSteps", Fault.hold_after_commit()).release

    def drop_next_submit_response(self) -> None:
        self.server.inject("AddJobFlowSteps", Fault.drop_response())

    def throttle_polls(self, times: int) -> None:
        self.server.inject("ListSteps", Fault.error(400), times=times)  # ThrottlingException

    def fail_polls(self, times: int) -> None:
        self.server.inject("ListSteps", Fault.error(503), times=times)

    def fail_submits(self, times: int) -> None:
        self.server.inject("AddJobFlowSteps", Fault.error(503), times=times)

    def hang_cancels(self, seconds: float, times: int) -> None:
        self.server.inject("CancelSteps", Fault.delay(seconds), times=times)


class DataprocCloud(ContractCloud):
    """The fake JobController over gRPC and ``ResumableDataprocSubmitJobOperator`` through the real client."""

    name = "dataproc"
    ledger_kind = "dataproc.submit_job"
    job_noun = "job"
    retry_after_seconds = 0.5
    conn_id = "gcp_contract"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.service = FakeDataprocService(default_job_script=JobScript(run_seconds=1.0))
        server = self.stack.enter_context(FakeDataprocServer(self.service))
        self.monkeypatch.setenv(
            f"AIRFLOW_CONN_{self.conn_id.upper()}", server.connection_uri("contract-project")
        )

    def spec(self) -> AttemptSpec:
        return AttemptSpec(
            workdir=self.workdir,
            operator="airflow.providers.resumable.operators.dataproc:ResumableDataprocSubmitJobOperator",
            operator_kwargs={
                "gcp_conn_id": self.conn_id,
                "region": "europe-west1",
                "job": {
                    "placement": {"cluster_name": "nightly"},
                    "pyspark_job": {"main_python_file_uri": "gs://bucket/etl.py"},
                },
                "polling_interval_seconds": 0.05,
                **FAST,
            },
        )

    def run_forever(self) -> None:
        self.service.default_job_script = JobScript(run_seconds=None)

    def finish_all(self) -> None:
        for job in self.service.jobs():
            self.service.finish(job.reference.job_id)

    def jobs_created(self) -> int:
        return self.service.counters["jobs_created"]

    def submit_requests(self) -> int:
        return self.service.counters["requests:SubmitJob"]

    def polls(self) -> int:
        return self.service.counters["gets"]

    def cancel_calls(self) -> int:
        return self.service.counters["requests:CancelJob"]

    def running_jobs(self) -> int:
        return sum(
            1 for job in self.service.jobs() if self.service.job_state(job.reference.job_id) == "RUNNING"
        )

    def hold_next_submit(self) -> threading.Event:
        return self.service.inject("SubmitJob", GrpcFault.hold_after_commit()).release

    def drop_next_submit_response(self) -> None:
        # gRPC has no "connection closed after the work": the client's deadline expires instead.
        self.service.inject("SubmitJob", GrpcFault.error_after_commit())

    def throttle_polls(self, times: int) -> None:
        self.service.inject(
            "GetJob",
            GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=self.retry_after_seconds),
            times=times,
        )

    def fail_polls(self, times: int) -> None:
        self.service.inject("GetJob", GrpcFault.error(grpc.StatusCode.UNAVAILABLE), times=times)

    def fail_submits(self, times: int) -> None:
        self.service.inject("SubmitJob", GrpcFault.error(grpc.StatusCode.UNAVAILABLE), times=times)

    def hang_cancels(self, seconds: float, times: int) -> None:
        self.service.inject("CancelJob", GrpcFault.delay(seconds), times=times)


CLOUDS: dict[str, type[ContractCloud]] = {
    cloud.name: cloud for cloud in (FakeJobCloud, DatabricksCloud, EmrStepsCloud, DataprocCloud)
}
