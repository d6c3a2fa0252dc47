# Licensed under the Apache License, Version 2.0.
"""
Fake EMR and EMR Serverless for the real boto3 client: moto, plus what moto leaves out.

moto answers the EMR and EMR Serverless APIs faithfully enough for boto3, but it never moves a step
or a job run through its lifecycle (a step stays ``RUNNING``/``PENDING`` forever, a job run is born
``SUCCESS``), does not deduplicate ``clientToken``, does not implement ``CancelSteps``, and cannot
inject faults. This kit adds exactly that, *alongside* moto, without forking it:

- :class:`FakeEmr`: installed on moto's backends in this process (the ones ``mock_aws`` and an
  in-process ``ThreadedMotoServer`` share). It wraps three backend methods on the backend
  *instances* (``add_job_flow_steps``, ``start_job_run``, ``cancel_job_run``) to count them, to give
  each new step or job run a :class:`StepScript` / :class:`JobRunScript`, and to return the existing
  job run for a ``clientToken`` seen before. A clock-driven **lifecycle driver** (a daemon thread
  calling :meth:`FakeEmr.tick` every 20 ms) moves steps ``PENDING -> RUNNING -> COMPLETED|FAILED``
  one at a time per cluster, as EMR does with step concurrency 1, honouring ``ActionOnFailure``
  (``CONTINUE`` runs the next step; ``CANCEL_AND_WAIT`` cancels the pending ones;
  ``TERMINATE_CLUSTER``/``TERMINATE_JOB_FLOW`` cancels them and terminates the cluster), and job runs
  ``SUBMITTED -> SCHEDULED -> RUNNING -> SUCCESS|FAILED``. A failed step reports ``FailureDetails``
  (reason, message, log file), which moto's step model lacks, by giving the step a subclass of
  moto's own ``Step`` model.
- :class:`FakeAwsProxy`: a small HTTP proxy on 127.0.0.1 in front of a ``ThreadedMotoServer``. It
  names every request's operation (``AddJobFlowSteps``, ``StartJobRun``, ...), counts it, injects
  :class:`~airflow.providers.resumable.testing.fake_jobs.Fault` s (``ThrottlingException``, 5xx,
  latency, "commit then drop the response", "commit then hold the connection"), and answers
  ``CancelSteps`` from :meth:`FakeEmr.cancel_steps`. Everything else is forwarded to moto verbatim.
- :class:`FakeEmrServer`: the two together plus the moto server, as one context manager, with
  :meth:`FakeEmrServer.connection_uri`: an Airflow AWS connection (``endpoint_url`` in its extras)
  that the real ``AwsBaseHook`` resolves in this process or in any child process.

In-process unit tests can use :class:`FakeEmr` under ``moto.mock_aws`` (lifecycle, scripts,
deduplication and backend counters work there); faults, per-request counters and ``CancelSteps``
live on the wire and need :class:`FakeEmrServer`.

Counters (:attr:`FakeEmr.counters`): ``add_job_flow_steps`` (calls that reached the backend),
``steps_added``, ``steps_cancelled``, ``start_job_run`` (calls that reached the backend),
``job_runs_created``, ``deduplicated``, ``cancel_job_run``, ``cancel_steps``, plus
``requests:<Operation>`` for every request the proxy received (faulted ones included).
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlparse

from moto.emr.models import Step, emr_backends
from moto.emrserverless.models import emrserverless_backends

from airflow.providers.resumable.testing.faults import Fault, FaultQueue, InjectsFaults
from airflow.providers.resumable.testing.lifecycle import JobClock
from airflow.providers.resumable.testing.servers import (
    BackgroundServer,
    FaultingHttpHandler,
    ServiceHttpServer,
    ThreadedHttpServer,
)

__all__ = ["FakeAwsProxy", "FakeEmr", "FakeEmrServer", "Fault", "JobRunScript", "StepScript"]

ACCOUNT_ID = "123456789012"
"""moto's default account: an EMR Serverless execution role must live in it."""
DEFAULT_REGION = "us-east-1"
RELEASE_LABEL = "emr-7.5.0"
"""The EMR release of every fake cluster and application."""
ACTIVE_STEP_STATES = frozenset({"PENDING", "RUNNING", "CANCEL_PENDING"})
_STOPS_LATER_STEPS = frozenset({"CANCEL_AND_WAIT", "TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"})
_TERMINATES_CLUSTER = frozenset({"TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW"})


@dataclass(frozen=True)
class StepScript:
    """
    How a new EMR step behaves once it is its turn on the cluster.

    :param pending_seconds: time in ``PENDING`` before it may start (after the steps before it).
    :param run_seconds: time in ``RUNNING``; ``None`` runs until :meth:`FakeEmr.finish_step`.
    :param outcome: ``COMPLETED``, ``FAILED`` or ``INTERRUPTED``.
    :param failure_reason: ``FailureDetails.Reason`` of a failed step.
    :param failure_message: ``FailureDetails.Message`` of a failed step.
    :param log_file: ``FailureDetails.LogFile`` of a failed step.
    """

    pending_seconds: float = 0.0
    run_seconds: float | None = 0.5
    outcome: str = "COMPLETED"
    failure_reason: str = "Unknown Error."
    failure_message: str = "Step failed"
    log_file: str = "s3://fake-emr-logs/steps/stderr.gz"


@dataclass(frozen=True)
class JobRunScript:
    """
    How a new EMR Serverless job run behaves.

    :param pending_seconds: time in ``SUBMITTED``/``SCHEDULED`` before ``RUNNING``.
    :param run_seconds: time in ``RUNNING``; ``None`` runs until :meth:`FakeEmr.finish_job_run`.
    :param outcome: ``SUCCESS`` or ``FAILED``.
    :param state_details: the job run's ``stateDetails`` once it ends.
    """

    pending_seconds: float = 0.0
    run_seconds: float | None = 0.5
    outcome: str = "SUCCESS"
    state_details: str = ""


@dataclass
class _Tracked:
    """
    A step or job run the lifecycle driver moves: its script and its clock, whose states are
    ``(state, details)``. A forced end (``finish_*``) is applied at the next tick.
    """

    script: StepScript | JobRunScript
    clock: JobClock[tuple[str, str]]

    @classmethod
    def of(cls, script: StepScript | JobRunScript, waiting: str, now: float) -> _Tracked:
        final = (script.outcome, script.state_details if isinstance(script, JobRunScript) else "")
        phases = [((waiting, ""), script.pending_seconds), (("RUNNING", ""), script.run_seconds)]
        return cls(script, JobClock(phases, final, ("CANCELLED", ""), ("CANCELLED", ""), started_at=now))


class _StepWithFailureDetails(Step):
    """moto's step, plus the ``FailureDetails`` a failed EMR step reports (moto's model has none)."""

    failure_details: dict[str, str] | None = None

    @property
    def status(self) -> dict[str, Any]:
        status = dict(super().status)
        if self.failure_details and self.state == "FAILED":
            status["FailureDetails"] = dict(self.failure_details)
        return status


_CLUSTER_DEFAULTS: dict[str, Any] = {
    "log_uri": "s3://fake-emr-logs/",
    "job_flow_role": "EMR_EC2_DefaultRole",
    "service_role": "EMR_DefaultRole",
    "release_label": RELEASE_LABEL,
    "instance_attrs": {
        "master_instance_type": "m5.xlarge",
        "slave_instance_type": "m5.xlarge",
        "instance_count": 1,
        "keep_job_flow_alive_when_no_steps": True,
        "ec2_subnet_id": None,
        "emr_managed_master_security_group": None,
        "emr_managed_slave_security_group": None,
        "service_access_security_group": None,
    },
}
"""What moto's ``run_job_flow`` requires of a fake cluster: one long-lived node that keeps running with
no steps, as the clusters the operators add steps to do."""

_APPLICATION_DEFAULTS: dict[str, Any] = dict.fromkeys(
    (
        "initial_capacity",
        "maximum_capacity",
        "tags",
        "auto_start_configuration",
        "auto_stop_configuration",
        "network_configuration",
    )
)
"""What moto's ``create_application`` requires and a fake application leaves unset (as the API does
when a request omits them)."""


class FakeEmr:
    """
    Lifecycle, ``clientToken`` deduplication, ``CancelSteps`` and counters on moto's backends.

    Use as a context manager *inside* ``mock_aws`` (or with a ``ThreadedMotoServer`` started in this
    process): moto resets its backends when a mock starts, which would drop the wrappers.

    :param default_step: the script of steps no :meth:`script_step` name matches.
    :param default_job_run: the script of job runs no :meth:`script_job_run` name matches.
    :param region: the region whose backends are driven.
    :param tick_seconds: how often the lifecycle driver looks at the backends.
    """

    def __init__(
        self,
        *,
        default_step: StepScript | None = None,
        default_job_run: JobRunScript | None = None,
        region: str = DEFAULT_REGION,
        tick_seconds: float = 0.02,
    ) -> None:
        self.default_step = default_step or StepScript()
        self.default_job_run = default_job_run or JobRunScript()
        self.region = region
        self.tick_seconds = tick_seconds
        self.counters: Counter[str] = Counter()
        self.cancel_requests_by_step: Counter[str] = Counter()
        """How many ``CancelSteps`` requests named each step."""
        self._step_scripts: list[tuple[re.Pattern[str], StepScript]] = []
        self._job_run_scripts: dict[str, JobRunScript] = {}
        self._steps: dict[str, _Tracked] = {}
        # EMR's StepConcurrencyLevel per cluster id (1 unless a cluster was created with more).
        self._step_concurrency: dict[str, int] = {}
        self._job_runs: dict[str, _Tracked] = {}
        self._lock = threading.RLock()
        self._stopped = threading.Event()
        self._driver: threading.Thread | None = None

    # -- backends -----------------------------------------------------------------------------

    @property
    def emr(self) -> Any:
        """moto's EMR backend for this region (shared by every client of this process's moto)."""
        return emr_backends[ACCOUNT_ID][self.region]

    @property
    def serverless(self) -> Any:
        """moto's EMR Serverless backend for this region."""
        return emrserverless_backends[ACCOUNT_ID][self.region]

    def install(self) -> FakeEmr:
        """Wrap the backend methods and start the lifecycle driver."""
        emr, serverless = self.emr, self.serverless
        add_steps, start_run, cancel_run = (
            emr.add_job_flow_steps,
            serverless.start_job_run,
            serverless.cancel_job_run,
        )

        def add_job_flow_steps(job_flow_id: str, steps: list[dict[str, Any]]) -> list[Step]:
            with self._lock:
                added = add_steps(job_flow_id, steps)
                self.counters["add_job_flow_steps"] += 1
                self.counters["steps_added"] += len(added)
                now = time.monotonic()
                for step in added:
                    # moto starts the first step of a cluster at once; EMR queues it behind the others
                    # and the driver starts it in turn, so every new step begins PENDING.
                    step.__class__ = _StepWithFailureDetails
                    step.state = "PENDING"
                    self._steps[step.id] = _Tracked.of(self._script_for_step(step.name), "PENDING", now)
                return added

        def start_job_run(*, application_id: str, client_token: str, **kwargs: Any) -> Any:
            with self._lock:
                self.counters["start_job_run"] += 1
                for run in serverless.job_runs.get(application_id, ()):
                    if client_token and run.client_token == client_token:
                        self.counters["deduplicated"] += 1
                        return run
                run = start_run(application_id=application_id, client_token=client_token, **kwargs)
                run.state = "SUBMITTED"
                self.counters["job_runs_created"] += 1
                script = self._job_run_scripts.get(run.name or "", self.default_job_run)
                self._job_runs[run.id] = _Tracked.of(script, "SCHEDULED", time.monotonic())
                return run

        def cancel_job_run(application_id: str, job_run_id: str) -> tuple[str, str]:
            with self._lock:
                self.counters["cancel_job_run"] += 1
                run = serverless.get_job_run(application_id, job_run_id)
                if run.state in ("SUCCESS", "FAILED", "CANCELLED"):
                    return application_id, job_run_id
                result = cancel_run(application_id, job_run_id)
                run.state_details = "Job run cancelled through the API."
                return result

        emr.add_job_flow_steps = add_job_flow_steps
        serverless.start_job_run = start_job_run
        serverless.cancel_job_run = cancel_job_run
        self._stopped.clear()
        self._driver = threading.Thread(target=self._drive, name="fake-emr-lifecycle", daemon=True)
        self._driver.start()
        return self

    def uninstall(self) -> None:
        """Stop the lifecycle driver and remove the wrappers."""
        self._stopped.set()
        if self._driver is not None:
            self._driver.join(timeout=5)
        for backend, names in (
            (self.emr, ("add_job_flow_steps",)),
            (self.serverless, ("start_job_run", "cancel_job_run")),
        ):
            for name in names:
                backend.__dict__.pop(name, None)

    def __enter__(self) -> FakeEmr:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.uninstall()

    # -- test controls -----------------------------------------------------------------------------

    def script_step(self, name_pattern: str, script: StepScript) -> None:
        """Steps whose Name matches the regular expression ``name_pattern`` follow ``script``."""
        with self._lock:
            self._step_scripts.append((re.compile(name_pattern), script))

    def script_job_run(self, name: str, script: JobRunScript) -> None:
        """Job runs named ``name`` follow ``script``."""
        with self._lock:
            self._job_run_scripts[name] = script

    def create_cluster(self, name: str, *, state: str = "WAITING", step_concurrency: int = 1) -> str:
        """
        A cluster named ``name`` in ``state`` (``WAITING``, ``TERMINATED``, ...); returns its id.

        :param name: the cluster's name.
        :param state: its state.
        :param step_concurrency: EMR's ``StepConcurrencyLevel``: how many steps run at once (1 to 256;
            a drill with several task instances in flight needs as many, or their steps queue).
        """
        if not 1 <= step_concurrency <= 256:
            raise ValueError(f"StepConcurrencyLevel is 1 to 256, got {step_concurrency}")
        with self._lock:
            cluster = self.emr.run_job_flow(name=name, steps=[], **_CLUSTER_DEFAULTS)
            cluster.state = state
            self._step_concurrency[str(cluster.id)] = step_concurrency
            return str(cluster.id)

    def create_application(self, name: str = "fake-spark-app") -> str:
        """An EMR Serverless Spark application in ``STARTED``; returns its id."""
        with self._lock:
            app = self.serverless.create_application(
                name=name,
                release_label=RELEASE_LABEL,
                application_type="SPARK",
                client_token="",
                **_APPLICATION_DEFAULTS,
            )
            return str(app.id)

    def steps(self, cluster_id: str) -> list[dict[str, Any]]:
        """The cluster's steps, oldest first: ``{"Id", "Name", "State", "ActionOnFailure"}``."""
        with self._lock:
            return [
                {"Id": s.id, "Name": s.name, "State": s.state, "ActionOnFailure": s.action_on_failure}
                for s in self.emr.clusters[cluster_id].steps
            ]

    def step_state(self, cluster_id: str, step_id: str) -> str:
        with self._lock:
            return str(self.emr.describe_step(cluster_id, step_id).state)

    def cluster_state(self, cluster_id: str) -> str:
        with self._lock:
            return str(self.emr.clusters[cluster_id].state)

    def job_runs(self, application_id: str) -> list[dict[str, Any]]:
        """The application's job runs, oldest first: ``{"id", "name", "state", "clientToken"}``."""
        with self._lock:
            return [
                {"id": r.id, "name": r.name, "state": r.state, "clientToken": r.client_token}
                for r in self.serverless.job_runs.get(application_id, ())
            ]

    def finish_step(self, step_id: str, outcome: str = "COMPLETED") -> None:
        """End a step at the next tick (it must be running or pending) with ``outcome``."""
        with self._lock:
            self._steps[step_id].clock.finish((outcome, ""))

    def finish_job_run(self, job_run_id: str, outcome: str = "SUCCESS", details: str = "") -> None:
        """End a job run at the next tick with ``outcome``."""
        with self._lock:
            self._job_runs[job_run_id].clock.finish((outcome, details))

    # -- what moto does not implement --------------------------------------------------------------

    def cancel_steps(self, cluster_id: str, step_ids: list[str]) -> list[dict[str, str]]:
        """
        ``CancelSteps``: pending and running steps become ``CANCELLED``; others are reported as not cancelled.

        :return: the ``CancelStepsInfoList`` EMR answers with.
        """
        with self._lock:
            self.counters["cancel_steps"] += 1
            self.cancel_requests_by_step.update(step_ids)
            cluster = self.emr.clusters.get(cluster_id)
            if cluster is None:
                raise KeyError(cluster_id)
            by_id = {step.id: step for step in cluster.steps}
            infos = []
            for step_id in step_ids:
                step = by_id.get(step_id)
                if step is None or step.state not in ACTIVE_STEP_STATES:
                    state = step.state if step is not None else "unknown"
                    infos.append({"StepId": step_id, "Status": "FAILED", "Reason": f"Step is {state}."})
                    continue
                self._end_step(step, "CANCELLED", "Cancelled through the API.")
                self.counters["steps_cancelled"] += 1
                infos.append({"StepId": step_id, "Status": "SUBMITTED", "Reason": ""})
            self._settle_cluster(cluster)
            return infos

    # -- the lifecycle driver ---------------------------------------------------------------------

    def _drive(self) -> None:
        while not self._stopped.wait(self.tick_seconds):
            try:
                self.tick()
            except Exception:  # a test's half-built backend must not kill the driver
                continue

    def tick(self, now: float | None = None) -> None:
        """Move every scripted step and job run as far as the clock says."""
        now = time.monotonic() if now is None else now
        with self._lock:
            for cluster in list(self.emr.clusters.values()):
                self._tick_cluster(cluster, now)
            for runs in list(self.serverless.job_runs.values()):
                for run in runs:
                    self._tick_job_run(run, now)

    def _tick_cluster(self, cluster: Any, now: float) -> None:
        # Step concurrency N (1 by default): only the N oldest unfinished steps move.
        level = self._step_concurrency.get(str(cluster.id), 1)
        active = [s for s in cluster.steps if s.state in ACTIVE_STEP_STATES][:level]
        for current in active:
            if current.state not in ACTIVE_STEP_STATES:
                continue  # cancelled by a failed step before it, this tick
            self._tick_step(cluster, current, now)
        self._settle_cluster(cluster)

    def _tick_step(self, cluster: Any, current: Any, now: float) -> None:
        tracked = self._steps.get(current.id)
        if tracked is None:
            return
        clock = tracked.clock
        if clock.forced is not None:
            self._end_step(current, clock.state(now)[0], "")
        elif current.state == "PENDING":
            # Its pending time counts from when it was added; its run time from when its turn came.
            if clock.state(now)[0] != "PENDING":
                current.state = "RUNNING"
                current.start()
                clock.restart(now, phases=clock.phases[1:])
        elif clock.is_over(now):
            self._end_step(current, clock.state(now)[0], "")
        if current.state == "FAILED" and current.action_on_failure in _STOPS_LATER_STEPS:
            for later in cluster.steps:
                if later.state in ACTIVE_STEP_STATES:
                    self._end_step(later, "CANCELLED", f"Cancelled after step {current.id} failed.")
            if current.action_on_failure in _TERMINATES_CLUSTER:
                cluster.terminate()

    def _end_step(self, step: Any, state: str, reason: str) -> None:
        tracked = self._steps.get(step.id)
        step.state = state
        step.end_date_time = datetime.now(tz=timezone.utc).replace(tzinfo=None)
        if reason:
            step.last_state_change_reason = reason
        script = tracked.script if tracked else self.default_step
        if state == "FAILED" and isinstance(script, StepScript):
            step.failure_details = {
                "Reason": script.failure_reason,
                "Message": script.failure_message,
                "LogFile": script.log_file,
            }

    @staticmethod
    def _settle_cluster(cluster: Any) -> None:
        # EMR's cluster is RUNNING while it has steps to run and WAITING otherwise (moto keeps RUNNING).
        if cluster.state in ("RUNNING", "WAITING"):
            busy = any(s.state in ACTIVE_STEP_STATES for s in cluster.steps)
            cluster.state = "RUNNING" if busy else "WAITING"

    def _tick_job_run(self, run: Any, now: float) -> None:
        tracked = self._job_runs.get(run.id)
        if tracked is None or run.state in ("SUCCESS", "FAILED", "CANCELLED"):
            return
        state, details = tracked.clock.state(now)
        run.state = state
        if tracked.clock.is_over(now):
            run.state_details = details

    def _script_for_step(self, name: str) -> StepScript:
        for pattern, script in self._step_scripts:
            if pattern.search(name):
                return script
        return self.default_step


# -- the wire: a proxy in front of moto's server ----------------------------------------------------

_SERVERLESS_ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("POST", re.compile(r"^/applications/[^/]+/jobruns$"), "StartJobRun"),
    ("GET", re.compile(r"^/applications/[^/]+/jobruns/[^/]+$"), "GetJobRun"),
    ("DELETE", re.compile(r"^/applications/[^/]+/jobruns/[^/]+$"), "CancelJobRun"),
    ("GET", re.compile(r"^/applications/[^/]+/jobruns$"), "ListJobRuns"),
    ("POST", re.compile(r"^/applications/[^/]+/start$"), "StartApplication"),
    ("GET", re.compile(r"^/applications/[^/]+$"), "GetApplication"),
)


def operation_of(method: str, path: str, headers: Any) -> str:
    """The AWS operation a request calls: from ``X-Amz-Target`` (EMR) or the REST route (Serverless)."""
    target = headers.get("X-Amz-Target") or ""
    if target:
        return target.rpartition(".")[2]
    route = urlparse(path).path
    for verb, pattern, name in _SERVERLESS_ROUTES:
        if verb == method and pattern.match(route):
            return name
    return f"{method} {route}"


class _ProxyHandler(FaultingHttpHandler):
    server: ServiceHttpServer[FakeAwsProxy]

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        operation = operation_of(self.command, self.path, self.headers)
        work = (
            (lambda: self._cancel_steps(body))
            if operation == "CancelSteps"
            else (lambda: self._forward(body))
        )
        self._serve_under(
            self.server.service.record(operation),
            work,
            lambda answer: self._reply(*answer),
            self._reply_error,
        )

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        host, port = self.server.service.upstream
        connection = http.client.HTTPConnection(host, port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            kept = [
                (k, v)
                for k, v in response.getheaders()
                if k.lower() not in ("connection", "transfer-encoding", "content-length", "keep-alive")
            ]
            return response.status, kept, payload
        finally:
            connection.close()

    def _cancel_steps(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        request = json.loads(body or b"{}")
        json_type = [("Content-Type", "application/x-amz-json-1.1")]
        try:
            infos = self.server.service.emr.cancel_steps(
                request["ClusterId"], list(request.get("StepIds") or [])
            )
        except KeyError:
            error = {"__type": "InvalidRequestException", "Message": "Cluster id is not valid."}
            return 400, json_type, json.dumps(error).encode()
        return 200, json_type, json.dumps({"CancelStepsInfoList": infos}).encode()

    def _reply_error(self, fault: Fault) -> None:
        # 400/429 are AWS throttling; 403 a refusal (the IAM policy denies the action); 5xx a service
        # error. Shapes botocore parses for either protocol.
        code, message = {
            400: ("ThrottlingException", "Rate exceeded"),
            429: ("ThrottlingException", "Rate exceeded"),
            403: ("AccessDeniedException", "User is not authorized to perform this action"),
        }.get(fault.status, ("InternalServerError", "injected service error"))
        payload = json.dumps({"__type": code, "message": message, "Message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
        headers.extend(fault.headers().items())
        self._reply(fault.status, headers, payload)

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class FakeAwsProxy(ThreadedHttpServer["FakeAwsProxy"], InjectsFaults[Fault]):
    """
    An HTTP proxy on 127.0.0.1 in front of a moto server: counts, faults and ``CancelSteps``.

    :param emr: the kit whose counters this proxy adds to and which answers ``CancelSteps``.
    :param upstream: ``(host, port)`` of the moto server.
    """

    def __init__(self, emr: FakeEmr, upstream: tuple[str, int]) -> None:
        self.emr = emr
        self.upstream = upstream
        self.fault_queue: FaultQueue[Fault] = FaultQueue(emr.counters)
        super().__init__(_ProxyHandler, self, name="fake-aws-proxy")


class FakeEmrServer(BackgroundServer):
    """
    moto's ``ThreadedMotoServer`` on 127.0.0.1, the :class:`FakeEmr` kit on its backends, and the
    :class:`FakeAwsProxy` in front: what an operator in another process talks to.

    :param emr: the kit (lifecycle scripts, counters); a default one if not given.
    """

    def __init__(self, emr: FakeEmr | None = None) -> None:
        self.emr = emr or FakeEmr()
        self._moto: Any = None
        self.proxy: FakeAwsProxy | None = None

    @property
    def port(self) -> int:
        assert self.proxy is not None, "start the server first"
        return self.proxy.port

    def _start(self) -> None:
        from moto.server import ThreadedMotoServer

        # moto's server logs every request through werkzeug; the counters tell the story instead.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._moto.start()
        host, port = self._moto.get_host_and_port()
        # moto's backends are process-global and outlive a server: start from empty ones, as mock_aws does.
        self.emr.emr.reset()
        self.emr.serverless.reset()
        self.emr.install()
        self.proxy = FakeAwsProxy(self.emr, (host, port)).start()

    def _stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        self.emr.uninstall()
        if self._moto is not None:
            self._moto.stop()

    @property
    def endpoint_url(self) -> str:
        """Where boto3 should send every EMR and EMR Serverless request."""
        return self.url

    def inject(self, operation: str, fault: Fault, *, times: int = 1) -> Fault:
        """Queue a fault on the proxy (see :meth:`FakeAwsProxy.inject`)."""
        assert self.proxy is not None, "start the server first"
        return self.proxy.inject(operation, fault, times=times)

    def requests(self, operation: str) -> list[float]:
        """When each request of ``operation`` arrived (monotonic seconds)."""
        assert self.proxy is not None, "start the server first"
        return [at for op, at in self.proxy.requests if op == operation]

    def connection_extra(self, region: str | None = None) -> dict[str, str]:
        """The extras of an AWS connection to this server: ``endpoint_url`` and ``region_name``."""
        return {"endpoint_url": self.endpoint_url, "region_name": region or self.emr.region}

    def connection_uri(self, region: str | None = None) -> str:
        """
        An Airflow AWS connection URI for this server, for an ``AIRFLOW_CONN_<ID>`` environment variable.

        Fake keys as login/password (moto checks none), ``region_name`` and ``endpoint_url`` as extras:
        the amazon provider's ``AwsBaseHook`` sends every client it builds to the endpoint.
        """
        extra = self.connection_extra(region)
        query = "&".join(f"{k}={quote(v, safe='')}" for k, v in extra.items())
        return f"aws://fake-access-key:fake-secret-key@/?{query}"


@contextmanager
def in_process_fake_emr(**kwargs: Any) -> Iterator[FakeEmr]:
    """``moto.mock_aws`` plus a :class:`FakeEmr` on its backends, for in-process tests."""
    from moto import mock_aws

    with mock_aws(), FakeEmr(**kwargs) as emr:
        yield emr


def wait_until(predicate: Callable[[], bool], *, timeout: float = 30, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true (the lifecycle runs on its own thread)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
