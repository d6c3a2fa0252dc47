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
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from airflow.providers.resumable.hooks.fake_job import FakeJobApiError, FakeJobClient

__all__ = [
    "TERMINAL_OUTCOMES",
    "FakeJob",
    "FakeJobApiError",
    "FakeJobClient",
    "FakeJobServer",
    "FakeJobService",
    "Fault",
    "FaultingJsonHandler",
    "discard_queued_faults",
]


TERMINAL_OUTCOMES = ("SUCCEEDED", "FAILED", "CANCELLED")


@dataclass
class Fault:
    """
    One injected fault, consumed by the next matching request.

    :param kind: ``"error"`` (answer ``status``), ``"delay"`` (sleep ``seconds`` then serve),
        ``"drop_response"`` (serve, commit, then close the connection without answering), or
        ``"hold_after_commit"`` (commit, then keep the connection open until ``release`` is set,
        then close it without answering).
    :param status: HTTP status for ``"error"``.
    :param retry_after: ``Retry-After`` seconds sent with an ``"error"``.
    :param seconds: latency for ``"delay"``.
    :param release: the event that ends a ``"hold_after_commit"``.
    """

    kind: str
    status: int = 503
    retry_after: float | None = None
    seconds: float = 0.0
    release: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def error(cls, status: int = 503, *, retry_after: float | None = None) -> Fault:
        """Answer the request with ``status`` (and ``Retry-After`` if given)."""
        return cls("error", status=status, retry_after=retry_after)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Serve the request ``seconds`` late."""
        return cls("delay", seconds=seconds)

    @classmethod
    def drop_response(cls) -> Fault:
        """Do the work, then lose the answer: the classic duplicate maker."""
        return cls("drop_response")

    @classmethod
    def hold_after_commit(cls) -> Fault:
        """Do the work, then hang until ``fault.release`` is set; the client never gets an answer."""
        return cls("hold_after_commit")


def discard_queued_faults(queues: dict[str, deque[Any]], operations: Iterable[str] | None) -> int:
    """
    Drop the faults still queued for ``operations`` (all when ``None``) and release any held ones;
    how many were dropped. The caller holds the lock that guards ``queues``.
    """
    names = list(queues) if operations is None else [op for op in operations if op in queues]
    dropped = [fault for name in names for fault in queues.pop(name)]
    for fault in dropped:
        fault.release.set()
    return len(dropped)


@dataclass
class FakeJob:
    """A job and its lifecycle: PENDING, then RUNNING, then its outcome at a given time."""

    job_id: str
    key: str
    payload: dict[str, Any]
    created_at: float
    pending_seconds: float
    run_seconds: float | None
    """``None``: runs until :meth:`FakeJobService.finish` says otherwise."""
    outcome: str
    message: str = ""
    forced_state: str | None = None

    def state(self, now: float) -> str:
        if self.forced_state is not None:
            return self.forced_state
        age = now - self.created_at
        if age < self.pending_seconds:
            return "PENDING"
        if self.run_seconds is None or age < self.pending_seconds + self.run_seconds:
            return "RUNNING"
        return self.outcome

    def as_json(self, now: float) -> dict[str, Any]:
        state = self.state(now)
        return {
            "job_id": self.job_id,
            "key": self.key,
            "name": self.payload.get("name"),
            "state": state,
            "message": self.message if state in TERMINAL_OUTCOMES else "",
            "output": self.payload.get("output") if state == "SUCCEEDED" else None,
        }


class FakeJobService:
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
        self.requests: list[tuple[str, float]] = []
        """Every request that reached the server, faulted ones included: (operation, monotonic time)."""
        self._jobs: dict[str, FakeJob] = {}
        self._by_key: dict[str, list[str]] = {}
        self._refused_keys: dict[str, int] = {}
        self._faults: dict[str, deque[Fault]] = {}
        self._ids = itertools.count(1001)
        self._lock = threading.Lock()

    # -- fault injection ------------------------------------------------------------------

    def inject(self, operation: str, fault: Fault, *, times: int = 1) -> Fault:
        """Queue ``fault`` for the next ``times`` requests of ``operation`` (submit, get, cancel, find)."""
        with self._lock:
            queue = self._faults.setdefault(operation, deque())
            queue.extend([fault] * times)
        return fault

    def discard_faults(self, operations: Iterable[str] | None = None) -> int:
        """Drop the faults still queued for ``operations`` (all by default); how many were dropped."""
        with self._lock:
            return discard_queued_faults(self._faults, operations)

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
        with self._lock:
            self.requests.append((operation, time.monotonic()))
            queue = self._faults.get(operation)
            return queue.popleft() if queue else None

    # -- the API ----------------------------------------------------------------------------

    def submit(self, payload: dict[str, Any], key: str) -> str:
        """Create a job (or, with dedupe, return the one already created under ``key``)."""
        with self._lock:
            self.counters["submit_requests"] += 1
            if self.dedupe and self._by_key.get(key):
                return self._by_key[key][0]
            job_id = str(next(self._ids))
            run_seconds = payload.get("run_seconds", self.run_seconds)
            self._jobs[job_id] = FakeJob(
                job_id=job_id,
                key=key,
                payload=dict(payload),
                created_at=time.monotonic(),
                pending_seconds=float(payload.get("pending_seconds", self.pending_seconds)),
                run_seconds=None if run_seconds is None else float(run_seconds),
                outcome=str(payload.get("outcome", self.outcome)),
                message=str(payload.get("message", "")),
            )
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
                job.forced_state = "CANCELLED"
                job.message = "cancelled through the API"
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
            self._jobs[job_id].forced_state = outcome
            self._jobs[job_id].message = message

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


class FaultingJsonHandler(BaseHTTPRequestHandler):
    """
    A JSON-over-HTTP request handler that applies one injected :class:`Fault` around a request's work.

    Shared by the HTTP fakes: each routes a request to its handler and says how an injected error
    looks in its API; the fault semantics (error, delay, drop or hold the response after committing)
    live here once.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests print their own story
        pass

    def _serve_with_fault(
        self,
        fault: Fault | None,
        handle: Callable[[], tuple[int, dict[str, Any]]],
        error_body: Callable[[Fault], dict[str, Any]],
    ) -> None:
        """Do ``handle``'s work under ``fault`` and answer (or, for a lost response, don't)."""
        if fault is not None and fault.kind == "error":
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            self._reply(fault.status, error_body(fault), headers)
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        status, body = handle()
        if fault is not None and fault.kind == "hold_after_commit":
            fault.release.wait(timeout=60)
        if fault is not None and fault.kind in ("drop_response", "hold_after_commit"):
            # The work is done; the client never hears of it.
            self.close_connection = True
            return
        self._reply(status, body)

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
    server: _Server

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


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, service: FakeJobService) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.service = service


class FakeJobServer:
    """
    Serves a :class:`FakeJobService` over HTTP on 127.0.0.1 (a random free port) in a thread.

    Use as a context manager; :attr:`url` is what :class:`FakeJobClient` (and the test operator's
    ``endpoint``) needs.

    :param service: the service to serve.
    """

    def __init__(self, service: FakeJobService) -> None:
        self.service = service
        self._server = _Server(service)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-job-server", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeJobServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeJobServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
