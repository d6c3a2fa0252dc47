# Licensed under the Apache License, Version 2.0.
"""
One adapter per fake cloud, so the demo and the drill drive every cloud the same way.

An adapter starts its fake, says which Airflow connection reaches it, counts what the fake saw
(per idempotency key, so concurrent task instances are told apart), and injects the faults the
drill needs: throttling, server errors, a lost submit response, and a submit held open after the
fake committed it (so a worker can be killed at exactly that moment). Each is a
:class:`~airflow.providers.resumable.testing.protocols.DrillCloud`, the interface the drill's real-cloud
adapters (:mod:`airflow.providers.resumable.drill.real_clouds`) implement too; the fault injection
is the fakes' alone.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from airflow.providers.resumable.hooks.emr import emr_submissions
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
from airflow.providers.resumable.testing.fake_jobs import Fault
from airflow.providers.resumable.testing.protocols import DrillCloud, DrilledTask, FaultInjector

REMOTE_JOB_SECONDS = 40.0
"""How long every fake job runs in the demo: long enough to shut a worker down under it and resume."""


@dataclass(frozen=True)
class CloudCounts:
    """What a fake cloud saw: jobs created and cancellations asked for."""

    submissions: int
    cancellations: int


class FakeCloud(DrillCloud, FaultInjector, Protocol):
    """A fake cloud: started, connected to Airflow, counted and disrupted by the demo and the drill."""

    task_id: str
    """The task of ``example_resumable_demo`` that runs on this cloud."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    @property
    def address(self) -> str:
        """Where the running fake listens, for people."""
        ...

    def counts(self) -> CloudCounts: ...

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        """Ids of the jobs created with an idempotency key starting with ``prefix`` (a ledger nonce)."""
        ...

    def job_state(self, external_id: str) -> str:
        """The fake's own state word for a job, for the narration."""
        ...


class _DrillableFake:
    """What every fake adapter answers the drill the same way: from the fake's own records."""

    poll_seconds = 0.05
    run_timeout = 240.0

    @property
    def faults(self) -> FaultInjector:
        return self

    def inject(self, fault: str, *, times: int) -> None:
        raise NotImplementedError

    def hold_next_submit(self) -> threading.Event:
        raise NotImplementedError

    def jobs_run_until_cancelled(self, endless: bool) -> None:
        raise NotImplementedError

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def job_state(self, external_id: str) -> str:
        raise NotImplementedError

    def jobs_of(self, task: DrilledTask) -> list[str]:
        return self.jobs_with_key_prefix(task.nonce)

    def is_running(self, external_id: str) -> bool:
        return self.job_state(external_id) == "RUNNING"


class FakeDatabricksCloud(_DrillableFake):
    """A fake Databricks workspace (Jobs API 2.2 over HTTP).

    :param run_seconds: how long each run goes on before it succeeds.
    """

    name = "databricks"
    task_id = "databricks_etl"

    def __init__(self, *, run_seconds: float = REMOTE_JOB_SECONDS) -> None:
        self._run_seconds = run_seconds
        self.service = FakeDatabricksService(default_script=RunScript(run_seconds=run_seconds))
        self._server = FakeDatabricksServer(self.service)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def address(self) -> str:
        return f"{self._server.url} (Jobs API 2.2)"

    def connection(self, conn_id: str | None = None) -> dict[str, Any]:
        return {
            "connection_id": conn_id or "databricks_default",
            "conn_type": "databricks",
            "host": "127.0.0.1",
            "port": self._server.port,
            "schema": "http",
            "password": self.service.token,
        }

    def counts(self) -> CloudCounts:
        counters = self.service.counters
        return CloudCounts(
            submissions=counters["runs_created"],
            cancellations=counters["cancel_requests"] + counters["cancel_all_requests"],
        )

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        return [
            str(run["run_id"])
            for run in self.service.runs()
            if str(self.service.payload_of(run["run_id"]).get("idempotency_token", "")).startswith(prefix)
        ]

    def cancellations_of(self, external_id: str) -> int:
        return self.service.cancellations_of(external_id)

    def job_state(self, external_id: str) -> str:
        return self.service.state_of(external_id)

    def inject(self, fault: str, *, times: int) -> None:
        if fault == "throttle":
            self.service.inject("runs/get", Fault.error(429, retry_after=1), times=times)
        elif fault == "server_error":
            self.service.inject("runs/submit", Fault.error(503), times=times)
        elif fault == "drop_submit_response":
            self.service.inject("runs/submit", Fault.drop_response(), times=times)
        elif fault == "cancel_refused":
            self.service.inject("runs/cancel", Fault.error(403), times=times)
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def jobs_run_until_cancelled(self, endless: bool) -> None:
        self.service.default_script = RunScript(run_seconds=None if endless else self._run_seconds)

    def hold_next_submit(self) -> threading.Event:
        return self.service.inject("runs/submit", Fault.hold_after_commit()).release


class FakeDataprocCloud(_DrillableFake):
    """A fake Dataproc (JobController and BatchController over gRPC).

    :param run_seconds: how long each job runs before it succeeds.
    """

    name = "dataproc"
    task_id = "dataproc_etl"

    def __init__(self, *, run_seconds: float = REMOTE_JOB_SECONDS) -> None:
        self._run_seconds = run_seconds
        self.service = FakeDataprocService(default_job_script=JobScript(run_seconds=run_seconds))
        self._server = FakeDataprocServer(self.service)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def address(self) -> str:
        return f"{self._server.endpoint} (gRPC, insecure)"

    def connection(self, conn_id: str | None = None) -> dict[str, Any]:
        return {
            "connection_id": conn_id or "google_cloud_default",
            "conn_type": "google_cloud_platform",
            "extra": json.dumps(self._server.connection_extras()),
        }

    def counts(self) -> CloudCounts:
        counters = self.service.counters
        return CloudCounts(submissions=counters["jobs_created"], cancellations=counters["cancel_requests"])

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        return self.service.job_ids_with_request_id_prefix(prefix)

    def cancellations_of(self, external_id: str) -> int:
        return self.service.cancellations_of(external_id)

    def job_state(self, external_id: str) -> str:
        return self.service.job_state(external_id)

    def inject(self, fault: str, *, times: int) -> None:
        import grpc

        if fault == "throttle":
            self.service.inject(
                "GetJob", GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=1), times=times
            )
        elif fault == "server_error":
            self.service.inject("SubmitJob", GrpcFault.error(grpc.StatusCode.UNAVAILABLE), times=times)
        elif fault == "drop_submit_response":
            self.service.inject("SubmitJob", GrpcFault.error_after_commit(), times=times)
        elif fault == "cancel_refused":
            self.service.inject("CancelJob", GrpcFault.error(grpc.StatusCode.PERMISSION_DENIED), times=times)
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def jobs_run_until_cancelled(self, endless: bool) -> None:
        self.service.default_job_script = JobScript(run_seconds=None if endless else self._run_seconds)

    def hold_next_submit(self) -> threading.Event:
        return self.service.inject("SubmitJob", GrpcFault.hold_after_commit()).release


class FakeEmrCloud(_DrillableFake):
    """A fake EMR cluster: moto on 127.0.0.1 with the kit's step lifecycle and the fault proxy.

    A job here is the set of steps one ``AddJobFlowSteps`` added, written as the operator's ledger
    writes it: ``"<cluster id>:<step id>,<step id>"``.

    :param run_seconds: how long each step runs before it completes.
    """

    name = "emr"
    task_id = "emr_steps"
    cluster_name = "resumable-cluster"

    def __init__(self, *, run_seconds: float = REMOTE_JOB_SECONDS) -> None:
        self._run_seconds = run_seconds
        self._server = FakeEmrServer(FakeEmr(default_step=StepScript(run_seconds=run_seconds)))
        self.cluster_id = ""

    @property
    def emr(self) -> FakeEmr:
        return self._server.emr

    def start(self) -> None:
        self._server.start()
        self.cluster_id = self.emr.create_cluster(self.cluster_name)

    def stop(self) -> None:
        self._server.stop()

    @property
    def address(self) -> str:
        return f"{self._server.endpoint_url} (moto, cluster {self.cluster_id} '{self.cluster_name}')"

    def connection(self, conn_id: str | None = None) -> dict[str, Any]:
        return {
            "connection_id": conn_id or "aws_default",
            "conn_type": "aws",
            "login": "fake-access-key",
            "password": "fake-secret-key",
            "extra": json.dumps(self._server.connection_extra()),
        }

    def counts(self) -> CloudCounts:
        return CloudCounts(
            submissions=self.emr.counters["add_job_flow_steps"],
            cancellations=self.emr.counters["cancel_steps"],
        )

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        return emr_submissions(self.cluster_id, self.emr.steps(self.cluster_id), prefix)

    def cancellations_of(self, external_id: str) -> int:
        return sum(self.emr.cancel_requests_by_step[step] for step in _step_ids(external_id))

    def job_state(self, external_id: str) -> str:
        states = {self.emr.step_state(self.cluster_id, step) for step in _step_ids(external_id)}
        if len(states) == 1:
            return states.pop()
        return "RUNNING" if "RUNNING" in states else "/".join(sorted(states))

    def inject(self, fault: str, *, times: int) -> None:
        if fault == "throttle":
            self._server.inject("ListSteps", Fault.error(400), times=times)
        elif fault == "server_error":
            self._server.inject("AddJobFlowSteps", Fault.error(503), times=times)
        elif fault == "drop_submit_response":
            self._server.inject("AddJobFlowSteps", Fault.drop_response(), times=times)
        elif fault == "cancel_refused":
            self._server.inject("CancelSteps", Fault.error(403), times=times)
        else:
            raise ValueError(f"unknown fault {fault!r}")

    def jobs_run_until_cancelled(self, endless: bool) -> None:
        self.emr.default_step = StepScript(run_seconds=None if endless else self._run_seconds)

    def hold_next_submit(self) -> threading.Event:
        return self._server.inject("AddJobFlowSteps", Fault.hold_after_commit()).release


def _step_ids(external_id: str) -> list[str]:
    return external_id.partition(":")[2].split(",")


def demo_clouds() -> list[FakeCloud]:
    """The clouds of ``example_resumable_demo``, one task each."""
    return [FakeDatabricksCloud(), FakeEmrCloud(), FakeDataprocCloud()]
