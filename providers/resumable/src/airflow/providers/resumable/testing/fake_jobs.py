# Licensed under the Apache License, Version 2.0.
"""
A small fake job service for exercising :class:`ResumableSubmitOperator` without a cloud.

Three parts, each usable alone:

- :class:`FakeJobService`: the service itself, in-process and thread-safe: jobs with a controllable
  lifecycle, per-key deduplication that a test can switch off, counters, and fault injection.
- :class:`FakeJobServer`: serves a service over HTTP on 127.0.0.1, so an operator running in
  another process (a real child process a test can SIGTERM or SIGKILL) reaches the same jobs.
- :class:`FakeJobClient`: the HTTP client the fake-job operator uses (it lives in
  :mod:`airflow.providers.resumable.hooks.fake_job`, below the operator; re-exported here).

Faults are the ones that make duplicates and lost jobs in real clouds: an error status (429 with
``Retry-After``, 5xx), latency, and "the request succeeded but the response was lost", including a
variant that holds the connection open after committing so a test can kill the client at exactly
that moment.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlparse

from airflow.providers.resumable.hooks.fake_job import FakeJobApiError, FakeJobClient
from airflow.providers.resumable.testing.faults import Fault, FaultQueue, InjectsFaults
from airflow.providers.resumable.testing.lifecycle import JobClock
from airflow.providers.resumable.testing.servers import (
    FaultingHttpHandler,
    ServiceHttpServer,
    ThreadedHttpServer,
)

__all__ = [
    "TERMINAL_OUTCOMES",
    "FakeJob",
    "FakeJobApiError",
    "FakeJobClient",
    "FakeJobServer",
    "FakeJobService",
    "Fault",
    "FaultingJsonHandler",
]


TERMINAL_OUTCOMES = ("SUCCEEDED", "FAILED", "CANCELLED")
_CANCELLED = ("CANCELLED", "cancelled through the API")


@dataclass
class FakeJob:
    """A job and its lifecycle: PENDING, then RUNNING, then its outcome at a given time."""

    job_id: str
    key: str
    payload: dict[str, Any]
    clock: JobClock[tuple[str, str]]
    """States are (state, message); ``None`` run time runs until :meth:`FakeJobService.finish`."""

    def state(self, now: float) -> str:
        return self.clock.state(now)[0]

    def as_json(self, now: float) -> dict[str, Any]:
        state, message = self.clock.state(now)
        return {
            "job_id": self.job_id,
            "key": self.key,
            "name": self.payload.get("name"),
            "state": state,
            "message": message if state in TERMINAL_OUTCOMES else "",
            "output": self.payload.get("output") if state == "SUCCEEDED" else None,
        }


class FakeJobService(InjectsFaults[Fault]):
    """
    An in-process job service with a controllable lifecycle, deduplication and fault injection.

    A submitted payload may carry ``pending_seconds``, ``run_seconds`` (``null``: run until
    :meth:`finish`) and ``outcome`` (``SUCCEEDED``/``FAILED``/``CANCELLED``) to script its job;
    otherwise the service defaults apply.

    :param dedupe: whether a submit with a key seen before returns the existing job (as Databricks'
        ``idempotency_token`` does) instead of creating another (as EMR's AddJobFlowSteps does).
    :param pending_seconds: default time a new job stays PENDING.
    :param run_seconds: default time a job then stays RUNNING.
    :param outcome: default outcome once the run time is over.
    """

    def __init__(
        self,
        *,
        dedupe: bool = True,
        pending_seconds: float = 0.0,
        run_seconds: float | None = 1.0,
        outcome: str = "SUCCEEDED",
    ) -> None:
        self.dedupe = dedupe
        self.pending_seconds = pending_seconds
        self.run_seconds = run_seconds
        self.outcome = outcome
        self.counters: Counter[str] = Counter()
        self.fault_queue: FaultQueue[Fault] = FaultQueue()
        self._jobs: dict[str, FakeJob] = {}
        self._by_key: dict[str, list[str]] = {}
        self._refused_keys: dict[str, int] = {}
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()

    # -- fault injection ------------------------------------------------------------------

    def refuse_key(self, key: str, status: int = 409) -> None:
        """
        Answer every submit carrying ``key`` with ``status`` from now on, creating nothing.

        A key the service will not take whatever is sent with it, as a cloud refuses an idempotency
        token reused with other parameters or a client-chosen id it holds for someone else.
        """
        with self._lock:
            self._refused_keys[key] = status

    def refusal_of(self, key: str) -> int | None:
        """The status a submit with ``key`` is refused with, or ``None``."""
        with self._lock:
            return self._refused_keys.get(key)

    def next_fault(self, operation: str) -> Fault | None:
        """Record a request of ``operation`` and take the next fault queued for it, if any."""
        return self.fault_queue.take(operation)

    # -- the API ----------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any], key: str) -> str:
        """Create a job (or, with dedupe, return the one already created under ``key``)."""
        with self._lock:
            self.counters["submit_requests"] += 1
            if self.dedupe and self._by_key.get(key):
                return self._by_key[key][0]
            job_id = str(next(self._ids))
            run_seconds = payload.get("run_seconds", self.run_seconds)
            clock = JobClock(
                phases=[
                    (("PENDING", ""), float(payload.get("pending_seconds", self.pending_seconds))),
                    (("RUNNING", ""), None if run_seconds is None else float(run_seconds)),
                ],
                final=(str(payload.get("outcome", self.outcome)), str(payload.get("message", ""))),
                cancelling=_CANCELLED,
                cancelled=_CANCELLED,
            )
            self._jobs[job_id] = FakeJob(job_id=job_id, key=key, payload=dict(payload), clock=clock)
            self._by_key.setdefault(key, []).append(job_id)
            self.counters["jobs_created"] += 1
            return job_id

    def get(self, job_id: str) -> dict[str, Any] | None:
        """The job as JSON, or ``None`` if there is no such job."""
        with self._lock:
            self.counters["gets"] += 1
            job = self._jobs.get(job_id)
            return job.as_json(time.monotonic()) if job else None

    def cancel(self, job_id: str) -> bool:
        """Cancel an active job (a finished one stays as it is). ``False``: no such job."""
        with self._lock:
            self.counters["cancel_requests"] += 1
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.state(time.monotonic()) not in TERMINAL_OUTCOMES:
                job.clock.finish(_CANCELLED)
                self.counters["jobs_cancelled"] += 1
            return True

    def find(self, key: str) -> list[str]:
        """Ids of the jobs submitted under ``key``, oldest first."""
        with self._lock:
            self.counters["finds"] += 1
            return list(self._by_key.get(key, []))

    # -- test controls ----------------------------------------------------------------------

    def finish(self, job_id: str, outcome: str = "SUCCEEDED", message: str = "") -> None:
        """End a job now with ``outcome``."""
        with self._lock:
            self._jobs[job_id].clock.finish((outcome, message))

    def expire(self, job_id: str) -> None:
        """Forget a job, as a cloud forgets old runs: it is NOT_FOUND from now on."""
        with self._lock:
            job = self._jobs.pop(job_id)
            self._by_key[job.key].remove(job_id)

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the service knows, oldest first."""
        with self._lock:
            now = time.monotonic()
            return [job.as_json(now) for job in self._jobs.values()]

    def state_of(self, job_id: str) -> str:
        """A job's state right now."""
        with self._lock:
            return self._jobs[job_id].state(time.monotonic())


class FaultingJsonHandler(FaultingHttpHandler):
    """
    A JSON-over-HTTP request handler that applies one injected :class:`Fault` around a request's work.

    Shared by the HTTP fakes: each routes a request to its handler and says how an injected error
    looks in its API; the fault semantics live in
    :class:`~airflow.providers.resumable.testing.servers.FaultingHttpHandler`.
    """

    def _serve_with_fault(
        self,
        fault: Fault | None,
        handle: Callable[[], tuple[int, dict[str, Any]]],
        error_body: Callable[[Fault], dict[str, Any]],
    ) -> None:
        """Do ``handle``'s work under ``fault`` and answer (or, for a lost response, don't)."""
        self._serve_under(
            fault,
            handle,
            lambda answer: self._reply(*answer),
            lambda refusal: self._reply(refusal.status, error_body(refusal), refusal.headers()),
        )

    def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Handler(FaultingJsonHandler):
    server: ServiceHttpServer[FakeJobService]

    def do_GET(self) -> None:
        url = urlparse(self.path)
        parts = [p for p in url.path.split("/") if p]
        if parts == ["jobs"]:
            key = parse_qs(url.query).get("key", [""])[0]
            self._serve("find", lambda: (HTTPStatus.OK, {"job_ids": self.server.service.find(key)}))
        elif len(parts) == 2 and parts[0] == "jobs":
            self._serve("get", lambda: self._job_or_404(parts[1]))
        elif parts == ["counters"]:
            self._reply(HTTPStatus.OK, dict(self.server.service.counters))
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {url.path}"})

    def do_POST(self) -> None:
        parts = [p for p in urlparse(self.path).path.split("/") if p]
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._reply(HTTPStatus.BAD_REQUEST, {"error": "body is not JSON"})
            return
        if parts == ["jobs"]:
            self._serve("submit", lambda: self._submit(body))
        elif len(parts) == 3 and parts[0] == "jobs" and parts[2] == "cancel":
            self._serve("cancel", lambda: self._cancel(parts[1]))
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no route {self.path}"})

    def _submit(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        payload, key = body.get("payload"), body.get("key")
        if not isinstance(payload, dict) or not isinstance(key, str) or not key:
            return HTTPStatus.BAD_REQUEST, {"error": "submit needs a 'payload' object and a 'key' string"}
        if (refused := self.server.service.refusal_of(key)) is not None:
            return HTTPStatus(refused), {"error": f"key {key} is refused"}
        return HTTPStatus.OK, {"job_id": self.server.service.submit(payload, key)}

    def _cancel(self, job_id: str) -> tuple[HTTPStatus, dict[str, Any]]:
        if not self.server.service.cancel(job_id):
            return HTTPStatus.NOT_FOUND, {"error": f"no job {job_id}"}
        return HTTPStatus.OK, {}

    def _job_or_404(self, job_id: str) -> tuple[HTTPStatus, dict[str, Any]]:
        job = self.server.service.get(job_id)
        if job is None:
            return HTTPStatus.NOT_FOUND, {"error": f"no job {job_id}"}
        return HTTPStatus.OK, job

    def _serve(self, operation: str, handle: Callable[[], tuple[int, dict[str, Any]]]) -> None:
        self._serve_with_fault(
            self.server.service.next_fault(operation),
            handle,
            lambda fault: {"error": f"injected {fault.status}"},
        )


class FakeJobServer(ThreadedHttpServer[FakeJobService]):
    """
    Serves a :class:`FakeJobService` over HTTP on 127.0.0.1 (a random free port) in a thread.

    Use as a context manager; :attr:`url` is what :class:`FakeJobClient` (and the test operator's
    ``endpoint``) needs.

    :param service: the service to serve.
    """

    def __init__(self, service: FakeJobService) -> None:
        super().__init__(_Handler, service, name="fake-job-server")
        self.service = service
