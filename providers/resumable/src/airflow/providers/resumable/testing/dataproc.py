# Licensed under the Apache License, Version 2.0.
"""
A wire-level fake of Dataproc's JobController and BatchController, for the real gRPC clients.

Two parts:

- :class:`FakeDataprocService`: the service, in-process and thread-safe: jobs and batches with a
  controllable lifecycle, ``request_id`` / ``job_id`` / ``batch_id`` semantics, counters and
  fault injection.
- :class:`FakeDataprocServer`: serves it with ``grpc.server`` on ``127.0.0.1`` (a random free
  port) through generic handlers that (de)serialise with the ``google-cloud-dataproc`` proto-plus
  classes themselves, so the real ``JobControllerClient`` and ``BatchControllerClient`` reach it
  over an insecure channel, in this process or another. :meth:`FakeDataprocServer.connection_uri`
  is an Airflow connection (``api_endpoint`` + ``insecure`` extras) that
  :class:`~airflow.providers.resumable.hooks.dataproc.ResumableDataprocHook` turns into such a channel.

Methods served (``operation`` names for :meth:`FakeDataprocService.inject` and the counters):

==========================================================  =========================================
``google.cloud.dataproc.v1.JobController/SubmitJob``        create a job (``SubmitJob``)
``.../JobController/GetJob``                                the job with its status and history
``.../JobController/CancelJob``                             cancel an active job
``.../JobController/ListJobs``                              jobs, filtered by state and labels
``google.cloud.dataproc.v1.BatchController/CreateBatch``    create a batch; answers a long-running op
``.../BatchController/GetBatch``                            the batch
``.../BatchController/DeleteBatch``                         delete a finished batch
``google.longrunning.Operations/GetOperation``              a batch's creation operation
``google.longrunning.Operations/CancelOperation``           cancel the batch (the API's batch cancel)
==========================================================  =========================================

Semantics kept from the real service, because the operators' correctness rests on them:

- **request_id.** A second ``SubmitJob`` (``CreateBatch``) with a ``request_id`` seen before in the
  same project and region returns the job (operation) created for the first, and creates nothing
  (``counters["deduplicated"]``). :meth:`FakeDataprocService.forget_request_ids` drops that
  memory, as the real service eventually does.
- **Ids.** A ``job_id`` / ``batch_id`` already taken answers ``ALREADY_EXISTS``
  (``counters["already_exists"]``). Ids are checked against the API's patterns: ``request_id``
  at most 40 of ``[A-Za-z0-9_-]``, ``job_id`` at most 100 of the same, ``batch_id`` 4-63 lowercase
  letters, digits and hyphens starting with a letter; labels as Google Cloud labels. A bad one is
  ``INVALID_ARGUMENT``.
- **Lifecycle.** A job is ``PENDING`` for ``pending_seconds``, ``SETUP_DONE`` for
  ``setup_seconds``, ``RUNNING`` for ``run_seconds`` (``None``: until :meth:`finish`), then its
  scripted final state (``DONE`` or ``ERROR`` with ``details``). A cancelled job is
  ``CANCEL_PENDING`` for ``cancel_seconds``, then ``CANCELLED``; cancelling a finished job is
  ``FAILED_PRECONDITION``. Batches go ``PENDING``, ``RUNNING``, then ``SUCCEEDED``/``FAILED``, and
  ``CANCELLING``/``CANCELLED`` when their operation is cancelled. Every job carries a
  ``driver_output_resource_uri``, every batch a ``runtime_info.output_uri``.

Faults (:class:`GrpcFault`, queued per operation): an error status (with a ``RetryInfo`` delay, as
Google APIs send with ``RESOURCE_EXHAUSTED``), latency, "commit, then answer an error"
(``DEADLINE_EXCEEDED`` after the job was created: the classic duplicate maker), and "commit, then
hold the call until released" so a test can kill the client at exactly that moment.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NoReturn
from urllib.parse import quote

import grpc
from google.cloud import dataproc_v1
from google.longrunning import operations_pb2
from google.protobuf import any_pb2, duration_pb2, empty_pb2
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

# Dataproc's own rules for ids and job types; the hook checks them before it sends, the fake on receipt.
from airflow.providers.resumable.hooks.dataproc import (
    BATCH_ID_PATTERN,
    BATCH_TYPES,
    JOB_ID_PATTERN,
    JOB_TYPES,
    REQUEST_ID_PATTERN,
)
from airflow.providers.resumable.testing.faults import FaultKind, FaultQueue, InjectedFault, InjectsFaults
from airflow.providers.resumable.testing.lifecycle import JobClock
from airflow.providers.resumable.testing.servers import BackgroundServer

__all__ = ["BatchScript", "FakeDataprocServer", "FakeDataprocService", "GrpcFault", "JobScript"]

DEFAULT_PROJECT = "fake-project"
STAGING_BUCKET = "fake-dataproc-staging"
LABEL_KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_PATTERN = re.compile(r"^[a-z0-9_-]{0,63}$")
MAX_LABELS = 32

JobState = dataproc_v1.JobStatus.State
BatchState = dataproc_v1.Batch.State
_ACTIVE_JOB_STATES = (
    JobState.PENDING,
    JobState.SETUP_DONE,
    JobState.RUNNING,
    JobState.CANCEL_PENDING,
    JobState.CANCEL_STARTED,
)
_ACTIVE_BATCH_STATES = (BatchState.PENDING, BatchState.RUNNING, BatchState.CANCELLING)


@dataclass
class GrpcFault(InjectedFault):
    """
    One injected fault on the gRPC wire, consumed by the next call of the operation it was queued for.

    The kinds are the fakes' own (:class:`~airflow.providers.resumable.testing.faults.FaultKind`); on
    this wire an ``error`` answers ``code`` without doing anything, a ``drop_response`` does the work
    then answers ``code`` instead of the result, and a ``hold_after_commit`` does the work, blocks until
    ``release`` is set, then answers ``code``.

    :param code: the gRPC status to answer with.
    """

    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE

    @property
    def retry_delay(self) -> float | None:
        """Seconds put in a ``google.rpc.RetryInfo`` detail of the error, if any."""
        return self.retry_after

    @classmethod
    def error(cls, code: grpc.StatusCode, *, retry_delay: float | None = None) -> GrpcFault:
        """Answer ``code`` (with a ``RetryInfo`` of ``retry_delay`` seconds, if given); nothing happens."""
        return cls(FaultKind.ERROR, retry_after=retry_delay, code=code)

    @classmethod
    def error_after_commit(cls, code: grpc.StatusCode = grpc.StatusCode.DEADLINE_EXCEEDED) -> GrpcFault:
        """Do the work, then answer ``code``: the client cannot know it succeeded."""
        return cls(FaultKind.DROP_RESPONSE, code=code)


@dataclass(frozen=True)
class JobScript:
    """
    How a new job behaves.

    :param pending_seconds: time in ``PENDING``.
    :param setup_seconds: then time in ``SETUP_DONE``.
    :param run_seconds: then time in ``RUNNING``; ``None`` runs until the test calls ``finish``.
    :param final_state: ``"DONE"`` or ``"ERROR"``.
    :param details: the status ``details`` of a job that ends in ``ERROR``.
    :param cancel_seconds: time a cancelled job spends in ``CANCEL_PENDING``.
    """

    pending_seconds: float = 0.0
    setup_seconds: float = 0.0
    run_seconds: float | None = 1.0
    final_state: str = "DONE"
    details: str = ""
    cancel_seconds: float = 0.0


@dataclass(frozen=True)
class BatchScript:
    """
    How a new batch behaves.

    :param pending_seconds: time in ``PENDING``.
    :param run_seconds: then time in ``RUNNING``; ``None`` runs until the test calls ``finish_batch``.
    :param final_state: ``"SUCCEEDED"`` or ``"FAILED"``.
    :param state_message: the ``state_message`` of a batch that ends in ``FAILED``.
    :param cancel_seconds: time a cancelled batch spends in ``CANCELLING``.
    """

    pending_seconds: float = 0.0
    run_seconds: float | None = 1.0
    final_state: str = "SUCCEEDED"
    state_message: str = ""
    cancel_seconds: float = 0.0


@dataclass
class _Lifecycle(JobClock[tuple[Any, str]]):
    """A job's or batch's clock, its states ``(state enum, message)``, and its wall-clock birth."""

    created_wall: datetime = field(default_factory=lambda: datetime.now(tz=timezone.utc))

    def status(self, now: float) -> tuple[Any, str, float]:
        """(state, message, monotonic time it started)."""
        (state, message), since = self.at(now)
        return state, message, since

    def past(self, now: float) -> list[tuple[Any, float]]:
        """Earlier (state, start) pairs, oldest first, as far as the scripted phases went."""
        return [(state, at) for (state, _), at in self.history(now)]

    @classmethod
    def scripted(
        cls,
        states: Any,
        phases: list[tuple[str, float | None]],
        final: tuple[str, str],
        cancel: tuple[str, str, float],
        now: float,
    ) -> _Lifecycle:
        """A clock in ``states`` (an enum) from state names: ``cancel`` is (cancelling, cancelled, seconds)."""
        cancelling, cancelled, cancel_seconds = cancel
        return cls(
            phases=[((getattr(states, name), ""), seconds) for name, seconds in phases],
            final=(getattr(states, final[0]), final[1]),
            cancelling=(getattr(states, cancelling), ""),
            cancelled=(getattr(states, cancelled), ""),
            cancel_seconds=cancel_seconds,
            started_at=now,
        )

    def wall(self, monotonic: float) -> datetime:
        return datetime.fromtimestamp(
            self.created_wall.timestamp() + (monotonic - self.started_at), tz=timezone.utc
        )


@dataclass
class _Job:
    project: str
    region: str
    job: dataproc_v1.Job
    request_id: str
    uuid: str
    life: _Lifecycle


@dataclass
class _Batch:
    name: str
    batch: dataproc_v1.Batch
    request_id: str
    operation: str
    life: _Lifecycle


class _RpcError(Exception):
    """Abort the current call with ``code``; raised inside the service, answered by the server."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class FakeDataprocService(InjectsFaults[GrpcFault]):
    """
    An in-process Dataproc with the JobController and BatchController semantics the operators rely on.

    Every new job follows :attr:`default_job_script` unless :meth:`script_job` named a job id
    prefix first (likewise batches).

    :param default_job_script: how jobs behave unless scripted otherwise.
    :param default_batch_script: how batches behave unless scripted otherwise.
    """

    def __init__(
        self,
        *,
        default_job_script: JobScript | None = None,
        default_batch_script: BatchScript | None = None,
    ) -> None:
        self.default_job_script = default_job_script or JobScript()
        self.default_batch_script = default_batch_script or BatchScript()
        self.counters: Counter[str] = Counter()
        """``requests:<Operation>`` for every call received (faulted ones included), and
        ``jobs_created``, ``batches_created``, ``deduplicated``, ``already_exists``,
        ``cancel_requests`` / ``jobs_cancelled`` (CancelJob), ``batch_cancel_requests`` /
        ``batches_cancelled`` (CancelOperation), ``batches_deleted``, ``gets`` (GetJob + GetBatch)."""
        self.fault_queue: FaultQueue[GrpcFault] = FaultQueue(self.counters)
        self._jobs: dict[tuple[str, str, str], _Job] = {}
        self._job_requests: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        self._batches: dict[str, _Batch] = {}
        self._batch_requests: dict[tuple[str, str], str] = {}
        self._operations: dict[str, str] = {}
        self._job_scripts: dict[str, JobScript] = {}
        self._batch_scripts: dict[str, BatchScript] = {}
        self._cancel_requests_by_job: Counter[str] = Counter()
        self._lock = threading.RLock()

    # -- test controls ----------------------------------------------------------------------

    def script_job(self, job_id_prefix: str, script: JobScript) -> None:
        """Make every new job whose id starts with ``job_id_prefix`` follow ``script``."""
        with self._lock:
            self._job_scripts[job_id_prefix] = script

    def script_batch(self, batch_id_prefix: str, script: BatchScript) -> None:
        """Make every new batch whose id starts with ``batch_id_prefix`` follow ``script``."""
        with self._lock:
            self._batch_scripts[batch_id_prefix] = script

    def forget_request_ids(self) -> None:
        """Forget every ``request_id`` seen, as the real service does after a while."""
        with self._lock:
            self._job_requests.clear()
            self._batch_requests.clear()

    def finish(self, job_id: str, state: str = "DONE", details: str = "") -> None:
        """End a job now in ``state`` (``DONE``, ``ERROR``, ...) with ``details``."""
        with self._lock:
            self._job(job_id).life.finish((getattr(JobState, state), details))

    def finish_batch(self, batch_id: str, state: str = "SUCCEEDED", state_message: str = "") -> None:
        """End a batch now in ``state`` (``SUCCEEDED``, ``FAILED``, ...) with ``state_message``."""
        with self._lock:
            self._batch_by_id(batch_id).life.finish((getattr(BatchState, state), state_message))

    def jobs(self) -> list[dataproc_v1.Job]:
        """Every job, oldest first, as ``GetJob`` shows it now."""
        with self._lock:
            now = time.monotonic()
            return [self._render_job(job, now) for job in self._jobs.values()]

    def batches(self) -> list[dataproc_v1.Batch]:
        """Every batch, oldest first, as ``GetBatch`` shows it now."""
        with self._lock:
            now = time.monotonic()
            return [self._render_batch(batch, now) for batch in self._batches.values()]

    def job_state(self, job_id: str) -> str:
        """A job's state name now (``"RUNNING"``, ``"DONE"``, ...)."""
        with self._lock:
            return JobState(self._job(job_id).life.status(time.monotonic())[0]).name

    def batch_state(self, batch_id: str) -> str:
        """A batch's state name now (``"RUNNING"``, ``"SUCCEEDED"``, ...)."""
        with self._lock:
            return BatchState(self._batch_by_id(batch_id).life.status(time.monotonic())[0]).name

    def cancellations_of(self, job_id: str) -> int:
        """How many ``CancelJob`` calls named this job."""
        with self._lock:
            return self._cancel_requests_by_job[job_id]

    def job_ids_with_request_id_prefix(self, prefix: str) -> list[str]:
        """Ids of the jobs created by a ``SubmitJob`` whose ``request_id`` starts with ``prefix``."""
        with self._lock:
            return [job_id for (_, _, job_id), job in self._jobs.items() if job.request_id.startswith(prefix)]

    def submitted(self, job_id: str) -> tuple[dataproc_v1.Job, str]:
        """The job as it was submitted (labels, reference, driver...) and the ``request_id`` it came with."""
        with self._lock:
            job = self._job(job_id)
            return dataproc_v1.Job(job.job), job.request_id

    def created(self, batch_id: str) -> tuple[dataproc_v1.Batch, str]:
        """The batch as it was created and the ``request_id`` it came with."""
        with self._lock:
            batch = self._batch_by_id(batch_id)
            return dataproc_v1.Batch(batch.batch), batch.request_id

    # -- the server's side --------------------------------------------------------------------

    def submit_job(self, request: dataproc_v1.SubmitJobRequest) -> dataproc_v1.Job:
        project, region = _require(request.project_id, "project_id"), _require(request.region, "region")
        job = dataproc_v1.Job(request.job)
        request_id = _checked_request_id(request.request_id)
        _require_one_of(job, JOB_TYPES, "Job must specify a job type")
        if not job.placement.cluster_name and not job.placement.cluster_labels:
            raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, "Job placement must name a cluster")
        _check_labels(job.labels)
        job_id = job.reference.job_id or uuid.uuid4().hex
        if not JOB_ID_PATTERN.match(job_id):
            raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid job_id {job_id!r}")
        with self._lock:
            now = time.monotonic()
            if request_id and (seen := self._job_requests.get((project, region, request_id))):
                self.counters["deduplicated"] += 1
                return self._render_job(self._jobs[seen], now)
            key = (project, region, job_id)
            if key in self._jobs:
                self.counters["already_exists"] += 1
                raise _RpcError(
                    grpc.StatusCode.ALREADY_EXISTS,
                    f"Already exists: Failed to submit job: Job projects/{project}/regions/{region}/jobs/{job_id}",
                )
            job.reference.project_id = project
            job.reference.job_id = job_id
            script = self._script_for(self._job_scripts, job_id, self.default_job_script)
            phases = [
                ("PENDING", script.pending_seconds),
                ("SETUP_DONE", script.setup_seconds),
                ("RUNNING", script.run_seconds),
            ]
            cancel = ("CANCEL_PENDING", "CANCELLED", script.cancel_seconds)
            life = _Lifecycle.scripted(JobState, phases, (script.final_state, script.details), cancel, now)
            self._jobs[key] = _Job(project, region, job, request_id, str(uuid.uuid4()), life)
            if request_id:
                self._job_requests[(project, region, request_id)] = key
            self.counters["jobs_created"] += 1
            return self._render_job(self._jobs[key], now)

    def get_job(self, request: dataproc_v1.GetJobRequest) -> dataproc_v1.Job:
        with self._lock:
            self.counters["gets"] += 1
            return self._render_job(
                self._job_at(request.project_id, request.region, request.job_id), time.monotonic()
            )

    def cancel_job(self, request: dataproc_v1.CancelJobRequest) -> dataproc_v1.Job:
        with self._lock:
            self.counters["cancel_requests"] += 1
            self._cancel_requests_by_job[request.job_id] += 1
            job = self._job_at(request.project_id, request.region, request.job_id)
            now = time.monotonic()
            state = job.life.status(now)[0]
            if state not in _ACTIVE_JOB_STATES:
                raise _RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Cannot cancel jobId '{request.job_id}' in projects/{job.project}/regions/{job.region} "
                    f"in state: '{JobState(state).name}'",
                )
            if job.life.cancel(now):
                self.counters["jobs_cancelled"] += 1
            return self._render_job(job, now)

    def list_jobs(self, request: dataproc_v1.ListJobsRequest) -> dataproc_v1.ListJobsResponse:
        with self._lock:
            now = time.monotonic()
            wanted = _parse_filter(request.filter)
            jobs = []
            for job in reversed(self._jobs.values()):  # newest first
                if (job.project, job.region) != (request.project_id, request.region):
                    continue
                if request.cluster_name and job.job.placement.cluster_name != request.cluster_name:
                    continue
                rendered = self._render_job(job, now)
                active = rendered.status.state in _ACTIVE_JOB_STATES
                matcher = request.job_state_matcher
                if matcher == dataproc_v1.ListJobsRequest.JobStateMatcher.ACTIVE and not active:
                    continue
                if matcher == dataproc_v1.ListJobsRequest.JobStateMatcher.NON_ACTIVE and active:
                    continue
                if not _matches(wanted, rendered, active):
                    continue
                jobs.append(rendered)
            start = int(request.page_token or 0)
            size = request.page_size or 100
            page = jobs[start : start + size]
            token = str(start + size) if start + size < len(jobs) else ""
            return dataproc_v1.ListJobsResponse(jobs=page, next_page_token=token)

    def create_batch(self, request: dataproc_v1.CreateBatchRequest) -> operations_pb2.Operation:
        parent = _location(request.parent)
        batch = dataproc_v1.Batch(request.batch)
        request_id = _checked_request_id(request.request_id)
        _require_one_of(batch, BATCH_TYPES, "Batch must specify a workload")
        _check_labels(batch.labels)
        batch_id = request.batch_id or f"b{uuid.uuid4().hex}"
        if not BATCH_ID_PATTERN.match(batch_id):
            raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid batch_id {batch_id!r}")
        with self._lock:
            now = time.monotonic()
            if request_id and (seen := self._batch_requests.get((parent, request_id))):
                self.counters["deduplicated"] += 1
                return self._operation(self._batches[seen], now)
            name = f"{parent}/batches/{batch_id}"
            if name in self._batches:
                self.counters["already_exists"] += 1
                raise _RpcError(grpc.StatusCode.ALREADY_EXISTS, f"Already exists: Batch {name}")
            script = self._script_for(self._batch_scripts, batch_id, self.default_batch_script)
            operation = f"{parent.replace('/locations/', '/regions/')}/operations/{uuid.uuid4()}"
            batch.name = name
            batch.uuid = str(uuid.uuid4())
            batch.operation = operation
            batch.creator = "fake-user@example.com"
            phases = [("PENDING", script.pending_seconds), ("RUNNING", script.run_seconds)]
            final = (script.final_state, script.state_message)
            cancel = ("CANCELLING", "CANCELLED", script.cancel_seconds)
            life = _Lifecycle.scripted(BatchState, phases, final, cancel, now)
            self._batches[name] = _Batch(name, batch, request_id, operation, life)
            self._operations[operation] = name
            if request_id:
                self._batch_requests[(parent, request_id)] = name
            self.counters["batches_created"] += 1
            return self._operation(self._batches[name], now)

    def get_batch(self, request: dataproc_v1.GetBatchRequest) -> dataproc_v1.Batch:
        with self._lock:
            self.counters["gets"] += 1
            return self._render_batch(self._batch_named(request.name), time.monotonic())

    def delete_batch(self, request: dataproc_v1.DeleteBatchRequest) -> empty_pb2.Empty:
        with self._lock:
            batch = self._batch_named(request.name)
            if batch.life.status(time.monotonic())[0] in _ACTIVE_BATCH_STATES:
                raise _RpcError(grpc.StatusCode.FAILED_PRECONDITION, f"Batch {batch.name} is still running")
            del self._batches[batch.name]
            self.counters["batches_deleted"] += 1
            return empty_pb2.Empty()

    def get_operation(self, request: operations_pb2.GetOperationRequest) -> operations_pb2.Operation:
        with self._lock:
            return self._operation(self._batch_of_operation(request.name), time.monotonic())

    def cancel_operation(self, request: operations_pb2.CancelOperationRequest) -> empty_pb2.Empty:
        with self._lock:
            self.counters["batch_cancel_requests"] += 1
            batch = self._batch_of_operation(request.name)
            now = time.monotonic()
            if batch.life.status(now)[0] not in _ACTIVE_BATCH_STATES:
                raise _RpcError(
                    grpc.StatusCode.FAILED_PRECONDITION, f"Operation {request.name} has already finished"
                )
            if batch.life.cancel(now):
                self.counters["batches_cancelled"] += 1
            return empty_pb2.Empty()

    # -- internals ------------------------------------------------------------------------------

    @staticmethod
    def _script_for(scripts: dict[str, Any], resource_id: str, default: Any) -> Any:
        for prefix, script in scripts.items():
            if resource_id.startswith(prefix):
                return script
        return default

    def _job(self, job_id: str) -> _Job:
        for (_, _, known), job in self._jobs.items():
            if known == job_id:
                return job
        raise KeyError(job_id)

    def _job_at(self, project: str, region: str, job_id: str) -> _Job:
        job = self._jobs.get((project, region, job_id))
        if job is None:
            raise _RpcError(
                grpc.StatusCode.NOT_FOUND, f"Not found: Job projects/{project}/regions/{region}/jobs/{job_id}"
            )
        return job

    def _batch_by_id(self, batch_id: str) -> _Batch:
        for name, batch in self._batches.items():
            if name.endswith(f"/batches/{batch_id}"):
                return batch
        raise KeyError(batch_id)

    def _batch_named(self, name: str) -> _Batch:
        parent, _, batch_id = name.rpartition("/batches/")
        batch = self._batches.get(f"{_location(parent)}/batches/{batch_id}")
        if batch is None:
            raise _RpcError(grpc.StatusCode.NOT_FOUND, f"Not found: Batch {name}")
        return batch

    def _batch_of_operation(self, name: str) -> _Batch:
        batch_name = self._operations.get(name)
        if batch_name is None or batch_name not in self._batches:
            raise _RpcError(grpc.StatusCode.NOT_FOUND, f"Not found: Operation {name}")
        return self._batches[batch_name]

    def _render_job(self, job: _Job, now: float) -> dataproc_v1.Job:
        state, message, since = job.life.status(now)
        rendered = dataproc_v1.Job(job.job)
        rendered.job_uuid = job.uuid
        rendered.status = dataproc_v1.JobStatus(
            state=state, details=message, state_start_time=_timestamp(job.life.wall(since))
        )
        rendered.status_history = [
            dataproc_v1.JobStatus(state=old, state_start_time=_timestamp(job.life.wall(at)))
            for old, at in job.life.past(now)
        ]
        rendered.driver_output_resource_uri = (
            f"gs://{STAGING_BUCKET}/google-cloud-dataproc-metainfo/{job.uuid}/jobs/"
            f"{job.job.reference.job_id}/driveroutput"
        )
        rendered.done = state not in _ACTIVE_JOB_STATES
        return rendered

    def _render_batch(self, batch: _Batch, now: float) -> dataproc_v1.Batch:
        state, message, since = batch.life.status(now)
        rendered = dataproc_v1.Batch(batch.batch)
        rendered.create_time = _timestamp(batch.life.created_wall)
        rendered.state = state
        rendered.state_message = message
        rendered.state_time = _timestamp(batch.life.wall(since))
        rendered.state_history = [
            dataproc_v1.Batch.StateHistory(state=old, state_start_time=_timestamp(batch.life.wall(at)))
            for old, at in batch.life.past(now)
        ]
        rendered.runtime_info = dataproc_v1.RuntimeInfo(
            output_uri=f"gs://{STAGING_BUCKET}/google-cloud-dataproc-metainfo/{batch.batch.uuid}/driveroutput"
        )
        return rendered

    def _operation(self, batch: _Batch, now: float) -> operations_pb2.Operation:
        rendered = self._render_batch(batch, now)
        metadata = dataproc_v1.BatchOperationMetadata(
            batch=batch.name,
            batch_uuid=batch.batch.uuid,
            create_time=_timestamp(batch.life.created_wall),
            operation_type=dataproc_v1.BatchOperationMetadata.BatchOperationType.BATCH,
            description=f"Batch {batch.name}",
        )
        packed_metadata = any_pb2.Any()
        packed_metadata.Pack(dataproc_v1.BatchOperationMetadata.pb(metadata))
        operation = operations_pb2.Operation(name=batch.operation, metadata=packed_metadata)
        if rendered.state not in _ACTIVE_BATCH_STATES:
            operation.done = True
            if rendered.state == BatchState.SUCCEEDED:
                operation.response.Pack(dataproc_v1.Batch.pb(rendered))
            else:
                operation.error.CopyFrom(
                    status_pb2.Status(code=grpc.StatusCode.ABORTED.value[0], message=rendered.state_message)
                )
        return operation


def _require(value: str, name: str) -> str:
    if not value:
        raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"{name} is required")
    return value


def _checked_request_id(request_id: str) -> str:
    if request_id and not REQUEST_ID_PATTERN.match(request_id):
        raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid request_id {request_id!r}")
    return request_id


def _require_one_of(message: Any, kinds: tuple[str, ...], refusal: str) -> None:
    if not any(message._pb.HasField(kind) for kind in kinds):
        raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, refusal)


def _location(parent: str) -> str:
    """``projects/p/regions/r`` or ``projects/p/locations/r`` -> ``projects/p/locations/r``."""
    match = re.fullmatch(r"projects/([^/]+)/(?:regions|locations)/([^/]+)", parent)
    if match is None:
        raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid parent {parent!r}")
    return f"projects/{match[1]}/locations/{match[2]}"


def _check_labels(labels: Any) -> None:
    if len(labels) > MAX_LABELS:
        raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"At most {MAX_LABELS} labels, got {len(labels)}")
    for key, value in labels.items():
        if not LABEL_KEY_PATTERN.match(key) or not LABEL_VALUE_PATTERN.match(value):
            raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid label {key!r}={value!r}")


def _parse_filter(text: str) -> list[tuple[str, str]]:
    """``status.state = ACTIVE AND labels.env = staging`` -> [(field, value), ...] (what ListJobs takes)."""
    clauses = []
    for clause in re.split(r"\s+AND\s+", text.strip(), flags=re.IGNORECASE) if text.strip() else []:
        name, _, value = clause.partition("=")
        clauses.append((name.strip(), value.strip().strip('"')))
    return clauses


def _matches(clauses: list[tuple[str, str]], job: dataproc_v1.Job, active: bool) -> bool:
    for name, value in clauses:
        if name == "status.state":
            if (value.upper() == "ACTIVE") != active:
                return False
        elif name.startswith("labels."):
            if job.labels.get(name.removeprefix("labels.")) != value:
                return False
        else:
            raise _RpcError(grpc.StatusCode.INVALID_ARGUMENT, f"Unsupported filter field {name!r}")
    return True


def _timestamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


# -- the gRPC server --------------------------------------------------------------------------


def _abort(
    context: grpc.ServicerContext, code: grpc.StatusCode, message: str, retry_delay: float | None
) -> NoReturn:
    """End the call with ``code``; a ``retry_delay`` travels as a ``google.rpc.RetryInfo`` detail."""
    status = status_pb2.Status(code=code.value[0], message=message)
    if retry_delay is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(int(retry_delay * 1e9))
        status.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    context.abort_with_status(rpc_status.to_status(status))
    raise AssertionError("unreachable: abort_with_status raises")


class FakeDataprocServer(BackgroundServer):
    """
    Serves a :class:`FakeDataprocService` over gRPC on 127.0.0.1 (a random free port) in threads.

    Use as a context manager. Point the operators at it with :meth:`connection_uri` (for an
    ``AIRFLOW_CONN_<ID>`` environment variable) or the same extras on a connection created any
    other way.

    :param service: the Dataproc to serve.
    """

    def __init__(self, service: FakeDataprocService) -> None:
        self.service = service
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="fake-dataproc")
        )
        jobs, batches, operations = dataproc_v1, dataproc_v1, operations_pb2  # short names for the table
        handlers = {
            "google.cloud.dataproc.v1.JobController": {
                "SubmitJob": self._unary(
                    service.submit_job, jobs.SubmitJobRequest.deserialize, jobs.Job.serialize
                ),
                "GetJob": self._unary(service.get_job, jobs.GetJobRequest.deserialize, jobs.Job.serialize),
                "CancelJob": self._unary(
                    service.cancel_job, jobs.CancelJobRequest.deserialize, jobs.Job.serialize
                ),
                "ListJobs": self._unary(
                    service.list_jobs, jobs.ListJobsRequest.deserialize, jobs.ListJobsResponse.serialize
                ),
            },
            "google.cloud.dataproc.v1.BatchController": {
                "CreateBatch": self._unary(
                    service.create_batch, batches.CreateBatchRequest.deserialize, _serialize_pb
                ),
                "GetBatch": self._unary(
                    service.get_batch, batches.GetBatchRequest.deserialize, batches.Batch.serialize
                ),
                "DeleteBatch": self._unary(
                    service.delete_batch, batches.DeleteBatchRequest.deserialize, _serialize_pb
                ),
            },
            "google.longrunning.Operations": {
                "GetOperation": self._unary(
                    service.get_operation, operations.GetOperationRequest.FromString, _serialize_pb
                ),
                "CancelOperation": self._unary(
                    service.cancel_operation, operations.CancelOperationRequest.FromString, _serialize_pb
                ),
            },
        }
        for service_name, methods in handlers.items():
            self._server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service_name, methods),)
            )
        self._port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def port(self) -> int:
        return self._port

    def _unary(
        self,
        method: Callable[[Any], Any],
        deserialize: Callable[[bytes], Any],
        serialize: Callable[[Any], bytes],
    ) -> grpc.RpcMethodHandler:
        operation = "".join(part.capitalize() for part in method.__name__.split("_"))

        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            fault = self.service.record(operation)
            if fault is not None and not fault.commits:
                _abort(context, fault.code, f"injected {fault.code.name}", fault.retry_delay)
            if fault is not None:
                fault.before_work()
            try:
                response = method(request)
            except _RpcError as err:
                _abort(context, err.code, err.message, None)
            if fault is not None:
                fault.after_work()
                if fault.loses_response:
                    _abort(context, fault.code, f"injected {fault.code.name} after the change was made", None)
            return response

        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=deserialize, response_serializer=serialize
        )

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT``: the ``api_endpoint`` to call."""
        return f"127.0.0.1:{self.port}"

    def connection_uri(self, project: str = DEFAULT_PROJECT) -> str:
        """
        An Airflow connection URI for this server (conn type ``google_cloud_platform``).

        ``api_endpoint`` is this server, ``insecure=true`` makes the hook use a plain-text channel
        with no credentials, and ``project`` is the default project.

        :param project: the connection's default project.
        """
        return (
            f"google-cloud-platform://?project={quote(project, safe='')}"
            f"&api_endpoint={quote(self.endpoint, safe='')}&insecure=true"
        )

    def connection_extras(self, project: str = DEFAULT_PROJECT) -> dict[str, str]:
        """The same connection as :meth:`connection_uri`, as the extras of a REST-created connection."""
        return {"project": project, "api_endpoint": self.endpoint, "insecure": "true"}

    def _start(self) -> None:
        self._server.start()

    def _stop(self) -> None:
        # Release held calls first, or stop() would wait for them.
        self.service.fault_queue.release_all()
        self._server.stop(grace=None).wait(timeout=5)


def _serialize_pb(message: Any) -> bytes:
    """Serialise a raw protobuf message (longrunning, Empty) or a proto-plus one."""
    pb = getattr(type(message), "pb", None)
    if pb is not None and not hasattr(message, "SerializeToString"):
        return bytes(pb(message).SerializeToString())
    return bytes(message.SerializeToString())
