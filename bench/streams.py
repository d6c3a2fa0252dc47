# Licensed under the Apache License, Version 2.0.
"""
The operator pairs the benchmark races, and the fake each pair runs against.

A *stream* is one pair (the upstream operator a DAG author would otherwise use, and ours) on one
fake of its own: the two take turns, one task instance at a time, so every job, API call and
cancellation the fake sees in a task instance's window belongs to that task instance. Streams run
side by side; the EMR pairs share one moto server (moto's backends are process-global) but use
disjoint API operations (steps vs. EMR Serverless job runs), so their windows stay separate.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

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
from airflow.providers.resumable.testing.emr import FakeEmr, FakeEmrServer, JobRunScript, StepScript
from airflow.providers.resumable.testing.fake_jobs import Fault

BENCH_CLUSTER = "bench-cluster"
"""The EMR cluster both EMR step operators find by name."""
BENCH_DATABRICKS_JOB = "bench-job"
"""The Databricks job both run-now operators trigger by name."""
SERVERLESS_APP_VARIABLE = "resumable_bench_serverless_application_id"
"""Airflow Variable holding the fake EMR Serverless application's id (moto makes it up)."""


@dataclass(frozen=True)
class JobSighting:
    """What a fake says about one job right now."""

    job_id: str
    terminal: bool
    succeeded: bool
    cancelled: bool


@dataclass(frozen=True)
class Side:
    """One operator of a pair.

    :param dag_id: the bench DAG running it (one task, ``job``).
    :param operator: its class, for people.
    :param poll_operation: the API operation its status polls use (throttled by ``throttle_storm``).
    """

    dag_id: str
    operator: str
    poll_operation: str


class PairFake(Protocol):
    """The part of a fake a stream needs: jobs, counts and faults for *its* operations only."""

    def sightings(self) -> list[JobSighting]: ...

    def api_calls(self) -> int: ...

    def cancel_requests(self) -> int: ...

    def inject_submit_fault(self, fault: str, *, times: int) -> None: ...

    def throttle(self, operation: str, *, times: int) -> None: ...

    def hold_next_submit(self) -> threading.Event: ...

    def set_run_seconds(self, seconds: float) -> None:
        """How long jobs created from now on run."""
        ...

    def discard_faults(self) -> int:
        """Drop faults an earlier task instance left queued (it failed before meeting them all)."""
        ...


@dataclass
class Stream:
    """One operator pair racing on one fake."""

    name: str
    cloud: str
    upstream: Side | None
    """``None`` when the upstream provider is not installed in this venv (see docs/benchmarks.md)."""
    ours: Side
    fake: PairFake
    skipped_upstream_reason: str = ""

    @property
    def sides(self) -> list[Side]:
        return [side for side in (self.upstream, self.ours) if side is not None]


def _http_submit_fault(fault: str) -> Fault:
    """``server_error``: a 503; ``drop_submit_response``: the job is made, its answer lost."""
    return Fault.error(503) if fault == "server_error" else Fault.drop_response()


def _count(counters: Counter[str], operations: tuple[str, ...]) -> int:
    return sum(counters[f"requests:{op}"] for op in operations)


class DatabricksPairFake:
    """A fake workspace of its own (Jobs API 2.2 over HTTP)."""

    def __init__(self, *, run_seconds: float, submit_operation: str) -> None:
        self.service = FakeDatabricksService(default_script=RunScript(run_seconds=run_seconds))
        self.server = FakeDatabricksServer(self.service)
        self.submit_operation = submit_operation

    def start(self) -> None:
        self.server.start()
        self.service.create_job(BENCH_DATABRICKS_JOB)

    def stop(self) -> None:
        self.server.stop()

    def connection(self, conn_id: str) -> dict[str, Any]:
        return {
            "connection_id": conn_id,
            "conn_type": "databricks",
            "host": "127.0.0.1",
            "port": self.server.port,
            "schema": "http",
            "password": self.service.token,
        }

    def sightings(self) -> list[JobSighting]:
        sightings = []
        for run in self.service.runs():
            state = run["state"]
            result = state.get("result_state", "")
            sightings.append(
                JobSighting(
                    job_id=str(run["run_id"]),
                    terminal=state["life_cycle_state"] in ("TERMINATED", "INTERNAL_ERROR", "SKIPPED"),
                    succeeded=result == "SUCCESS",
                    cancelled=result == "CANCELED",
                )
            )
        return sightings

    def api_calls(self) -> int:
        return sum(n for key, n in self.service.counters.items() if key.startswith("requests:"))

    def cancel_requests(self) -> int:
        return self.service.counters["cancel_requests"] + self.service.counters["cancel_all_requests"]

    def inject_submit_fault(self, fault: str, *, times: int) -> None:
        self.service.inject(self.submit_operation, _http_submit_fault(fault), times=times)

    def throttle(self, operation: str, *, times: int) -> None:
        self.service.inject(operation, Fault.error(429, retry_after=1), times=times)

    def hold_next_submit(self) -> threading.Event:
        return self.service.inject(self.submit_operation, Fault.hold_after_commit()).release

    def set_run_seconds(self, seconds: float) -> None:
        self.service.default_script = RunScript(run_seconds=seconds)

    def discard_faults(self) -> int:
        return self.service.discard_faults()


class SharedEmr:
    """One moto server for every EMR pair, started once."""

    def __init__(self, *, run_seconds: float) -> None:
        self.emr = FakeEmr(
            default_step=StepScript(run_seconds=run_seconds),
            default_job_run=JobRunScript(run_seconds=run_seconds),
        )
        self.server = FakeEmrServer(self.emr)
        self.cluster_id = ""
        self.application_id = ""

    def start(self) -> None:
        self.server.start()
        self.cluster_id = self.emr.create_cluster(BENCH_CLUSTER)
        self.application_id = self.emr.create_application("bench-app")

    def stop(self) -> None:
        self.server.stop()

    def set_run_seconds(self, seconds: float) -> None:
        self.emr.default_step = StepScript(run_seconds=seconds)
        self.emr.default_job_run = JobRunScript(run_seconds=seconds)

    def connection(self, conn_id: str) -> dict[str, Any]:
        return {
            "connection_id": conn_id,
            "conn_type": "aws",
            "login": "fake-access-key",
            "password": "fake-secret-key",
            "extra": json.dumps(self.server.connection_extra()),
        }


class _EmrPairFake:
    """One pair's share of the moto server: its API operations, its cancel counter, its faults."""

    SUBMIT: str
    OPERATIONS: tuple[str, ...]
    CANCEL_COUNTER: str

    def __init__(self, shared: SharedEmr) -> None:
        self.shared = shared

    def api_calls(self) -> int:
        return _count(self.shared.emr.counters, self.OPERATIONS)

    def cancel_requests(self) -> int:
        return self.shared.emr.counters[self.CANCEL_COUNTER]

    def inject_submit_fault(self, fault: str, *, times: int) -> None:
        self.shared.server.inject(self.SUBMIT, _http_submit_fault(fault), times=times)

    def throttle(self, operation: str, *, times: int) -> None:
        self.shared.server.inject(operation, Fault.error(400), times=times)

    def hold_next_submit(self) -> threading.Event:
        return self.shared.server.inject(self.SUBMIT, Fault.hold_after_commit()).release

    def set_run_seconds(self, seconds: float) -> None:
        self.shared.set_run_seconds(seconds)

    def discard_faults(self) -> int:
        assert self.shared.server.proxy is not None
        return self.shared.server.proxy.discard_faults(self.OPERATIONS)


class EmrStepsPairFake(_EmrPairFake):
    """The EMR step operations of the shared moto server."""

    SUBMIT = "AddJobFlowSteps"
    OPERATIONS = ("AddJobFlowSteps", "ListSteps", "DescribeStep", "ListClusters", "CancelSteps")
    CANCEL_COUNTER = "cancel_steps"

    def sightings(self) -> list[JobSighting]:
        sightings = []
        for step in self.shared.emr.steps(self.shared.cluster_id):
            state = self.shared.emr.step_state(self.shared.cluster_id, step["Id"])
            sightings.append(
                JobSighting(
                    job_id=step["Id"],
                    terminal=state in ("COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"),
                    succeeded=state == "COMPLETED",
                    cancelled=state == "CANCELLED",
                )
            )
        return sightings


class EmrServerlessPairFake(_EmrPairFake):
    """The EMR Serverless job-run operations of the shared moto server."""

    SUBMIT = "StartJobRun"
    OPERATIONS = ("StartJobRun", "GetJobRun", "CancelJobRun", "GetApplication", "ListJobRuns")
    CANCEL_COUNTER = "cancel_job_run"

    def sightings(self) -> list[JobSighting]:
        sightings = []
        for run in self.shared.emr.job_runs(self.shared.application_id):
            state = str(run["state"])
            sightings.append(
                JobSighting(
                    job_id=str(run["id"]),
                    terminal=state in ("SUCCESS", "FAILED", "CANCELLED"),
                    succeeded=state == "SUCCESS",
                    cancelled=state == "CANCELLED",
                )
            )
        return sightings


class DataprocPairFake:
    """A fake Dataproc of its own (gRPC JobController)."""

    def __init__(self, *, run_seconds: float) -> None:
        self.service = FakeDataprocService(default_job_script=JobScript(run_seconds=run_seconds))
        self.server = FakeDataprocServer(self.service)

    def start(self) -> None:
        self.server.start()

    def stop(self) -> None:
        self.server.stop()

    def connection(self, conn_id: str) -> dict[str, Any]:
        return {
            "connection_id": conn_id,
            "conn_type": "google_cloud_platform",
            "extra": json.dumps(self.server.connection_extras()),
        }

    def sightings(self) -> list[JobSighting]:
        sightings = []
        for job in self.service.jobs():
            state = job.status.state.name
            sightings.append(
                JobSighting(
                    job_id=job.reference.job_id,
                    terminal=state in ("DONE", "ERROR", "CANCELLED"),
                    succeeded=state == "DONE",
                    cancelled=state == "CANCELLED",
                )
            )
        return sightings

    def api_calls(self) -> int:
        return sum(n for key, n in self.service.counters.items() if key.startswith("requests:"))

    def cancel_requests(self) -> int:
        return self.service.counters["cancel_requests"]

    def inject_submit_fault(self, fault: str, *, times: int) -> None:
        chosen = (
            GrpcFault.error(grpc.StatusCode.UNAVAILABLE)
            if fault == "server_error"
            else GrpcFault.error_after_commit()
        )
        self.service.inject("SubmitJob", chosen, times=times)

    def throttle(self, operation: str, *, times: int) -> None:
        self.service.inject(
            operation, GrpcFault.error(grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=1), times=times
        )

    def hold_next_submit(self) -> threading.Event:
        return self.service.inject("SubmitJob", GrpcFault.hold_after_commit()).release

    def set_run_seconds(self, seconds: float) -> None:
        self.service.default_job_script = JobScript(run_seconds=seconds)

    def discard_faults(self) -> int:
        return self.service.discard_faults()


@dataclass
class JobLife:
    """A job as the watcher saw it: first and terminal sightings (monotonic seconds)."""

    first_seen: float
    first_seen_wall: float
    ended: float | None = None
    ended_wall: float = 0.0
    succeeded: bool = False
    cancelled: bool = False


class JobWatcher:
    """
    Looks at a fake's jobs every ``interval`` seconds and remembers when each appeared and ended.

    Compute time thrown away is measured from these sightings (±``interval``), the way an operator
    of a real cloud would read it off the jobs list.
    """

    def __init__(self, fake: PairFake, *, interval: float = 0.25) -> None:
        self.fake = fake
        self.interval = interval
        self.jobs: dict[str, JobLife] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-job-watcher", daemon=True)

    def start(self) -> JobWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.look()
            self._stop.wait(self.interval)

    def look(self) -> None:
        now, wall = time.monotonic(), time.time()
        for sighting in self.fake.sightings():
            with self._lock:
                life = self.jobs.setdefault(sighting.job_id, JobLife(first_seen=now, first_seen_wall=wall))
                if sighting.terminal and life.ended is None:
                    life.ended, life.ended_wall = now, wall
                    life.succeeded = sighting.succeeded
                    life.cancelled = sighting.cancelled

    def created_between(self, start: float, end: float) -> dict[str, JobLife]:
        with self._lock:
            return {job: life for job, life in self.jobs.items() if start <= life.first_seen <= end}

    def known(self) -> set[str]:
        with self._lock:
            return set(self.jobs)
