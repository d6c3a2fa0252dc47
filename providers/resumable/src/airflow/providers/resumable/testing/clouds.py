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
from collections import Counter
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
from airflow.providers.resumable.testing.faults import Fault, InjectedFault, InjectsFaults
from airflow.providers.resumable.testing.protocols import DrillCloud, DrilledTask, FaultInjector
from airflow.providers.resumable.testing.servers import BackgroundServer

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
    """
    What every fake adapter does the same way: start and stop its server, inject the drill's faults
    into its fault queue, hold a submit, and answer the drill from the fake's own records.

    An adapter says where its faults go (:meth:`_fault_target`), which operation submits, and how each
    drill fault looks on its wire (:meth:`_drill_faults`).
    """

    poll_seconds = 0.05
    run_timeout = 240.0
    submit_operation: str
    """The operation a submit is (``runs/submit``, ``SubmitJob``, ``AddJobFlowSteps``)."""
    fault_type: type[InjectedFault] = Fault
    """The fault class of the fake's wire."""
    submission_counters: tuple[str, ...]
    """The fake's counters whose sum is the jobs it created."""
    cancellation_counters: tuple[str, ...]
    """The fake's counters whose sum is the cancellations it was asked for."""
    _server: BackgroundServer
    _run_seconds: float

    def _counters(self) -> Counter[str]:
        raise NotImplementedError

    def _set_run_seconds(self, run_seconds: float | None) -> None:
        """Make new jobs run ``run_seconds`` (``None``: until cancelled)."""
        raise NotImplementedError

    def counts(self) -> CloudCounts:
        counters = self._counters()
        return CloudCounts(
            submissions=sum(counters[name] for name in self.submission_counters),
            cancellations=sum(counters[name] for name in self.cancellation_counters),
        )

    def jobs_run_until_cancelled(self, endless: bool) -> None:
        self._set_run_seconds(None if endless else self._run_seconds)

    def jobs_run_for(self, seconds: float) -> None:
        self._set_run_seconds(seconds)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    @property
    def faults(self) -> FaultInjector:
        return self

    def _fault_target(self) -> InjectsFaults[Any]:
        raise NotImplementedError

    def _drill_faults(self) -> dict[str, tuple[str, InjectedFault]]:
        """Each drill fault as (operation, the fault on this wire)."""
        raise NotImplementedError

    def inject(self, fault: str, *, times: int) -> None:
        try:
            operation, injected = self._drill_faults()[fault]
        except KeyError:
            raise ValueError(f"unknown fault {fault!r}") from None
        self._fault_target().inject(operation, injected, times=times)

    def faults_pending(self) -> int:
        operations = {operation for operation, _ in self._drill_faults().values()} | {self.submit_operation}
        queue = self._fault_target().fault_queue
        return sum(queue.pending(operation) for operation in operations)

    def hold_next_submit(self) -> threading.Event:
        held = self.fault_type.hold_after_commit()
        return self._fault_target().inject(self.submit_operation, held).release

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        raise NotImplementedError

    def job_state(self, external_id: str) -> str:
        raise NotImplementedError

    def jobs_of(self, task: DrilledTask) -> list[str]:
        return self.jobs_with_key_prefix(task.nonce)

    def is_running(self, external_id: str) -> bool:
        return self.job_state(external_id) == "RUNNING"


class _FakeServiceCloud(_DrillableFake):
    """A fake whose one service object counts, cancels and takes the faults (Databricks, Dataproc)."""

    service: Any
    """The fake's service: its ``counters``, ``cancellations_of()`` and fault queue."""

    def _counters(self) -> Counter[str]:
        counters: Counter[str] = self.service.counters
        return counters

    def cancellations_of(self, external_id: str) -> int:
        return int(self.service.cancellations_of(external_id))

    def _fault_target(self) -> InjectsFaults[Any]:
        target: InjectsFaults[Any] = self.service
        return target


class FakeDatabricksCloud(_FakeServiceCloud):
    """A fake Databricks workspace (Jobs API 2.2 over HTTP).

    :param run_seconds: how long each run goes on before it succeeds.
    """

    name = "databricks"
    task_id = "databricks_etl"
    submit_operation = "runs/submit"
    submission_counters = ("runs_created",)
    cancellation_counters = ("cancel_requests", "cancel_all_requests")

    def __init__(self, *, run_seconds: float = REMOTE_JOB_SECONDS) -> None:
        self._run_seconds = run_seconds
        self.service = FakeDatabricksService(default_script=RunScript(run_seconds=run_seconds))
        self._server: FakeDatabricksServer = FakeDatabricksServer(self.service)

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

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        return [
            str(run["run_id"])
            for run in self.service.runs()
            if str(self.service.payload_of(run["run_id"]).get("idempotency_token", "")).startswith(prefix)
        ]

    def job_state(self, external_id: str) -> str:
        return self.service.state_of(external_id)

    def _drill_faults(self) -> dict[str, tuple[str, InjectedFault]]:
        return {
            "throttle": ("runs/get", Fault.error(429, retry_after=1)),
            "server_error": ("runs/submit", Fault.error(503)),
            "drop_submit_response": ("runs/submit", Fault.drop_response()),
            "cancel_refused": ("runs/cancel", Fault.error(403)),
        }

    def _set_run_seconds(self, run_seconds: float | None) -> None:
        self.service.default_script = RunScript(run_seconds=run_seconds)


class FakeDataprocCloud(_FakeServiceCloud):
    """A fake Dataproc (JobController and BatchController over gRPC).

    :param run_seconds: how long each job runs before it succeeds.
    """

    name = "dataproc"
    task_id = "dataproc_etl"
    submit_operation = "SubmitJob"
    fault_type = GrpcFault
    submission_counters = ("jobs_created",)
    cancellation_counters = ("cancel_requests",)

    def __init__(self, *, run_seconds: float = REMOTE_JOB_SECONDS) -> None:
        self._run_seconds = run_seconds
        self.service = FakeDataprocService(default_job_script=JobScript(run_seconds=run_seconds))
        self._server: FakeDataprocServer = FakeDataprocServer(self.service)

    @property
    def address(self) -> str:
        return f"{self._server.endpoint} (gRPC, insecure)"

    def connection(self, conn_id: str | None = None) -> dict[str, Any]:
        return {
            "connection_id": conn_id or "google_cloud_default",
            "conn_type": "google_cloud_platform",
            "extra": json.dumps(self._server.connection_extras()),
        }

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        return self.service.job_ids_with_request_id_prefix(prefix)

    def job_state(self, external_id: str) -> str:
        return self.service.job_state(external_id)

    def _drill_faults(self) -> dict[str, tuple[str, InjectedFault]]:
        import grpc

        return {
            "throttle": ("GetJob", GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=1)),
            "server_error": ("SubmitJob", GrpcFault.error(grpc.StatusCode.UNAVAILABLE)),
            "drop_submit_response": ("SubmitJob", GrpcFault.error_after_commit()),
            "cancel_refused": ("CancelJob", GrpcFault.error(grpc.StatusCode.PERMISSION_DENIED)),
        }

    def _set_run_seconds(self, run_seconds: float | None) -> None:
        self.service.default_job_script = JobScript(run_seconds=run_seconds)


class FakeEmrCloud(_DrillableFake):
    """A fake EMR cluster: moto on 127.0.0.1 with the kit's step lifecycle and the fault proxy.

    A job here is the set of steps one ``AddJobFlowSteps`` added, written as the operator's ledger
    writes it: ``"<cluster id>:<step id>,<step id>"``.

    :param run_seconds: how long each step runs before it completes.
    :param step_concurrency: the cluster's ``StepConcurrencyLevel`` (steps that run at once).
    """

    name = "emr"
    task_id = "emr_steps"
    submit_operation = "AddJobFlowSteps"
    submission_counters = ("add_job_flow_steps",)
    cancellation_counters = ("cancel_steps",)
    cluster_name = "resumable-cluster"

    def __init__(self, *, run_seconds: float = REMOTE_JOB_SECONDS, step_concurrency: int = 1) -> None:
        self._run_seconds = run_seconds
        self._server: FakeEmrServer = FakeEmrServer(FakeEmr(default_step=StepScript(run_seconds=run_seconds)))
        self.cluster_id = ""
        self.step_concurrency = step_concurrency
        """The cluster's StepConcurrencyLevel: as many as the task instances that run steps at once."""

    @property
    def emr(self) -> FakeEmr:
        return self._server.emr

    def start(self) -> None:
        super().start()
        self.cluster_id = self.emr.create_cluster(self.cluster_name, step_concurrency=self.step_concurrency)

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

    def _counters(self) -> Counter[str]:
        return self.emr.counters

    def jobs_with_key_prefix(self, prefix: str) -> list[str]:
        return emr_submissions(self.cluster_id, self.emr.steps(self.cluster_id), prefix)

    def cancellations_of(self, external_id: str) -> int:
        return sum(self.emr.cancel_requests_by_step[step] for step in _step_ids(external_id))

    def job_state(self, external_id: str) -> str:
        states = {self.emr.step_state(self.cluster_id, step) for step in _step_ids(external_id)}
        if len(states) == 1:
            return states.pop()
        return "RUNNING" if "RUNNING" in states else "/".join(sorted(states))

    def _fault_target(self) -> InjectsFaults[Any]:
        assert self._server.proxy is not None, "start the cloud first"
        return self._server.proxy

    def _drill_faults(self) -> dict[str, tuple[str, InjectedFault]]:
        return {
            "throttle": ("ListSteps", Fault.error(400)),
            "server_error": ("AddJobFlowSteps", Fault.error(503)),
            "drop_submit_response": ("AddJobFlowSteps", Fault.drop_response()),
            "cancel_refused": ("CancelSteps", Fault.error(403)),
        }

    def _set_run_seconds(self, run_seconds: float | None) -> None:
        self.emr.default_step = StepScript(run_seconds=run_seconds)


def _step_ids(external_id: str) -> list[str]:
    return external_id.partition(":")[2].split(",")


def demo_clouds() -> list[FakeCloud]:
    """The clouds of ``example_resumable_demo``, one task each."""
    return [FakeDatabricksCloud(), FakeEmrCloud(), FakeDataprocCloud()]
