# Licensed under the Apache License, Version 2.0.
"""
A wire-level fake of the Databricks Jobs API 2.2, for the real ``DatabricksHook`` to talk to over HTTP.

Two parts:

- :class:`FakeDatabricksService`: the workspace, in-process and thread-safe: jobs, runs with a
  controllable lifecycle, ``idempotency_token`` deduplication, counters and fault injection.
- :class:`FakeDatabricksServer`: serves it on ``127.0.0.1`` (a random free port) with a
  ``ThreadingHTTPServer``. :meth:`FakeDatabricksServer.connection_uri` is an Airflow connection URI
  (``schema=http`` plus the port, the token as the password) that the real hook resolves and uses
  unpatched, in this process or in a child process that inherits ``AIRFLOW_CONN_<ID>``.

Endpoints (the paths the hook calls; GET parameters arrive as the query string, POST ones as JSON):

======================================  ==========================================================
``POST /api/2.2/jobs/runs/submit``      create a one-time run (``tasks`` or a single-task payload)
``POST /api/2.2/jobs/run-now``          create a run of a job made with :meth:`create_job`
``GET /api/2.2/jobs/runs/get``          the run: ``state``, ``tasks``, ``run_page_url``, history
``GET /api/2.2/jobs/runs/get-output``   a (task) run's ``error`` / ``notebook_output``
``POST /api/2.2/jobs/runs/cancel``      cancel an active run (a finished one stays as it is)
``POST /api/2.2/jobs/runs/cancel-all``  cancel every active run of a job
``POST /api/2.2/jobs/runs/repair``      re-run a finished run's failed tasks
``POST /api/2.2/jobs/update``           merge new settings into a job (repair with new settings)
``GET /api/2.2/jobs/runs/list``         runs, newest first, filtered by ``job_id``/``active_only``
``GET /api/2.2/jobs/list``              jobs, filtered by exact ``name``
======================================  ==========================================================

Semantics kept from the real service, because the operators' correctness rests on them:

- **Idempotency.** A submit or run-now carrying an ``idempotency_token`` seen before returns the
  run created under it, without creating another (``counters["deduplicated"]``).
- **Auth.** Every request needs ``Authorization: Bearer <token>``: none gives 401, a wrong one 403
  (the statuses and error codes a workspace answers with).
- **Lifecycle.** A run is ``PENDING`` for ``pending_seconds``, ``RUNNING`` for ``run_seconds``
  (``None``: until :meth:`FakeDatabricksService.finish`), then ``TERMINATED`` with its scripted
  ``result_state`` and ``state_message``; a cancelled run can be made to stay ``TERMINATING`` for a
  while (``cancel_seconds``), as a workspace's asynchronous ``runs/cancel`` leaves it; multi-task
  runs carry one task run per task, and the failed ones explain themselves through
  ``runs/get-output``.
- **Missing runs.** An unknown (or :meth:`expired <FakeDatabricksService.expire>`) run answers 400
  ``INVALID_PARAMETER_VALUE`` "Run N does not exist." as the workspace does (404
  ``RESOURCE_DOES_NOT_EXIST`` with ``missing_run_status=404``).

Faults (:meth:`FakeDatabricksService.inject`, per operation: ``"runs/submit"``, ``"runs/get"``,
``"runs/cancel"``, ``"jobs/run-now"``, ``"jobs/list"``, ...) reuse
:class:`~airflow.providers.resumable.testing.fake_jobs.Fault`: an error status (429 with
``Retry-After``, 5xx), latency, and "commit, then drop the response" (optionally holding the
connection open until the test releases it, so a client can be killed at exactly that moment).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, quote, urlparse

from airflow.providers.resumable.testing.fake_jobs import FaultingJsonHandler
from airflow.providers.resumable.testing.faults import Fault, FaultQueue, InjectsFaults
from airflow.providers.resumable.testing.lifecycle import JobClock
from airflow.providers.resumable.testing.servers import ServiceHttpServer, ThreadedHttpServer

__all__ = ["FakeDatabricksServer", "FakeDatabricksService", "Fault", "RunScript"]

DEFAULT_TOKEN = "dapi-fake-token"
API_PREFIX = "/api/2.2/"
RESULT_STATES = ("SUCCESS", "FAILED", "TIMEDOUT", "CANCELED")


@dataclass(frozen=True)
class RunScript:
    """
    How a new run behaves.

    :param pending_seconds: time in ``PENDING`` before ``RUNNING``.
    :param run_seconds: time in ``RUNNING``; ``None`` runs until the test calls ``finish``.
    :param result_state: the run's ``result_state`` once it ends (``SUCCESS``, ``FAILED``, ...).
    :param state_message: the run's ``state_message`` once it ends.
    :param failed_tasks: task keys whose task runs fail (multi-task runs); the others succeed.
    :param error: the ``error`` that ``runs/get-output`` reports for a failed task run.
    """

    pending_seconds: float = 0.0
    run_seconds: float | None = 1.0
    result_state: str = "SUCCESS"
    state_message: str = ""
    failed_tasks: tuple[str, ...] = ()
    error: str = "Exception: the task failed"


RunState = tuple[str, str, str]
"""(life_cycle_state, result_state, state_message)."""
_CANCELLING: RunState = ("TERMINATING", "", "Run is being cancelled.")
_CANCELLED: RunState = ("TERMINATED", "CANCELED", "Run cancelled through the API.")


def _phases(script: RunScript) -> list[tuple[RunState, float | None]]:
    return [
        (("PENDING", "", "Waiting for cluster"), script.pending_seconds),
        (("RUNNING", "", "In run"), script.run_seconds),
    ]


def _final(script: RunScript) -> RunState:
    return ("TERMINATED", script.result_state, script.state_message)


@dataclass
class _Run:
    run_id: int
    job_id: int | None
    run_name: str
    token: str | None
    payload: dict[str, Any]
    script: RunScript
    task_keys: list[str]
    task_run_ids: list[int]
    clock: JobClock[RunState]
    repairs: list[int] = field(default_factory=list)
    one_time_job_id: int | None = None
    """The job Databricks makes for a ``runs/submit`` run (``runs/get`` shows it as ``job_id``); kept
    apart from :attr:`job_id`, which names a job ``jobs/run-now`` ran, so ``runs/cancel-all`` and
    ``runs/list`` by job see only those."""

    def state(self, now: float) -> RunState:
        return self.clock.state(now)

    def task_result(self, task_key: str, run_result: str) -> str:
        if run_result == "FAILED" and self.script.failed_tasks:
            return "FAILED" if task_key in self.script.failed_tasks else "SUCCESS"
        return run_result


class FakeDatabricksService(InjectsFaults[Fault]):
    """
    An in-process Databricks workspace with the Jobs API semantics the operators rely on.

    Every new run follows :attr:`default_script` unless :meth:`script` named its ``run_name`` (or, for
    run-now, its job's name) first.

    :param token: the only bearer token accepted.
    :param missing_run_status: the status for an unknown run id: 400 (``INVALID_PARAMETER_VALUE``,
        what workspaces answer) or 404 (``RESOURCE_DOES_NOT_EXIST``).
    :param default_script: how runs behave unless scripted otherwise.
    :param cancel_seconds: how long a cancelled run stays ``TERMINATING`` before it is
        ``TERMINATED``/``CANCELED``: ``runs/cancel`` is asynchronous on a real workspace. ``0`` (the
        default) ends it at once; ``None`` never does (a cancel that hangs).
    """

    def __init__(
        self,
        *,
        token: str = DEFAULT_TOKEN,
        missing_run_status: int = 400,
        default_script: RunScript | None = None,
        cancel_seconds: float | None = 0.0,
    ) -> None:
        self.token = token
        self.missing_run_status = missing_run_status
        self.default_script = default_script or RunScript()
        self.repair_script: RunScript | None = None
        """How a repaired run behaves; ``None``: it runs for the default duration and succeeds."""
        self.cancel_seconds = cancel_seconds
        self.workspace_url = "http://127.0.0.1"
        """Set by the server once it is bound; used to build ``run_page_url``."""
        self.counters: Counter[str] = Counter()
        """``submit_requests`` (runs/submit + run-now that reached the workspace), ``runs_created``,
        ``deduplicated``, ``gets``, ``cancel_requests``, ``runs_cancelled``, ``repairs``,
        ``auth_failures``, plus ``requests:<operation>`` for every request the server received."""
        self.fault_queue: FaultQueue[Fault] = FaultQueue(self.counters)
        self._runs: dict[int, _Run] = {}
        self._task_runs: dict[int, tuple[int, str]] = {}
        self._by_token: dict[str, int] = {}
        self._jobs: dict[int, dict[str, Any]] = {}
        self._scripts: dict[str, RunScript] = {}
        # Ids start at a random million: two workspaces faked behind one connection id on one stack
        # (a test run twice, two tests) must never share a run id, or the job reaper, acting on an
        # earlier test's ledger through that connection, could cancel the later test's run.
        self._ids = itertools.count(1_000_001 + random.randrange(1, 1_000_000) * 1_000_000)
        self._cancel_requests_by_run: Counter[int] = Counter()
        self._cancel_all_requests_by_job: Counter[int] = Counter()
        self._lock = threading.Lock()

    # -- test controls ------------------------------------------------------------------------

    def script(self, run_name: str, script: RunScript) -> None:
        """Make every new run named ``run_name`` (run-now: whose job is named so) follow ``script``."""
        with self._lock:
            self._scripts[run_name] = script

    def create_job(self, name: str, tasks: list[dict[str, Any]] | None = None) -> int:
        """Create a job for ``jobs/run-now``; returns its ``job_id``."""
        with self._lock:
            job_id = next(self._ids)
            self._jobs[job_id] = {
                "job_id": job_id,
                "settings": {"name": name, "tasks": tasks or [{"task_key": "main"}]},
            }
            return job_id

    def finish(self, run_id: int | str, result_state: str = "SUCCESS", state_message: str = "") -> None:
        """End a run now with ``result_state``."""
        with self._lock:
            self._runs[int(run_id)].clock.finish(("TERMINATED", result_state, state_message))

    def expire(self, run_id: int | str) -> None:
        """Forget a run, as a workspace forgets runs past their retention: 'does not exist' from now on."""
        with self._lock:
            run = self._runs.pop(int(run_id))
            if run.token is not None:
                self._by_token.pop(run.token, None)

    def runs(self) -> list[dict[str, Any]]:
        """Every run the workspace knows, oldest first, as ``runs/get`` shows it."""
        with self._lock:
            now = time.monotonic()
            return [self._run_json(run, now) for run in self._runs.values()]

    def state_of(self, run_id: int | str) -> str:
        """``"LIFE_CYCLE_STATE"`` or ``"TERMINATED/RESULT_STATE"`` of a run right now."""
        with self._lock:
            life, result, _ = self._runs[int(run_id)].state(time.monotonic())
            return f"{life}/{result}" if result else life

    def cancellations_of(self, run_id: int | str) -> int:
        """How many ``runs/cancel`` requests named this run (``runs/cancel-all`` counts for its job's runs)."""
        with self._lock:
            run = self._runs.get(int(run_id))
            by_job = self._cancel_all_requests_by_job[run.job_id] if run and run.job_id is not None else 0
            return self._cancel_requests_by_run[int(run_id)] + by_job

    def payload_of(self, run_id: int | str) -> dict[str, Any]:
        """The JSON body the run was created from (token included), as the workspace received it."""
        with self._lock:
            return dict(self._runs[int(run_id)].payload)

    # -- the server's side ------------------------------------------------------------------

    def count(self, counter: str) -> None:
        with self._lock:
            self.counters[counter] += 1

    def submit(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``runs/submit``: one run of the payload's tasks (or of the single task at top level)."""
        if "tasks" in payload:
            task_keys = [str(t.get("task_key") or f"task_{i}") for i, t in enumerate(payload["tasks"])]
        else:
            task_keys = [str(payload.get("run_name") or "task")]
        return self._create(
            payload, job_id=None, run_name=str(payload.get("run_name") or ""), tasks=task_keys
        )

    def run_now(self, payload: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        """``jobs/run-now``: a run of an existing job."""
        try:
            job_id = int(payload.get("job_id"))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return HTTPStatus.BAD_REQUEST, _error("INVALID_PARAMETER_VALUE", "job_id is required")
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            return HTTPStatus.BAD_REQUEST, _error("INVALID_PARAMETER_VALUE", f"Job {job_id} does not exist.")
        settings = job["settings"]
        tasks = [str(t["task_key"]) for t in settings["tasks"]]
        created = self._create(payload, job_id=job_id, run_name=settings["name"], tasks=tasks)
        return HTTPStatus.OK, {**created, "number_in_job": created["run_id"]}

    def _create(
        self, payload: dict[str, Any], *, job_id: int | None, run_name: str, tasks: list[str]
    ) -> dict[str, Any]:
        token = payload.get("idempotency_token")
        with self._lock:
            self.counters["submit_requests"] += 1
            if token and token in self._by_token:
                self.counters["deduplicated"] += 1
                return {"run_id": self._by_token[token]}
            run_id = next(self._ids)
            task_run_ids = [next(self._ids) for _ in tasks]
            script = self._scripts.get(run_name, self.default_script)
            self._runs[run_id] = _Run(
                run_id=run_id,
                job_id=job_id,
                run_name=run_name,
                token=token,
                payload=json.loads(json.dumps(payload)),
                script=script,
                task_keys=tasks,
                task_run_ids=task_run_ids,
                clock=JobClock(_phases(script), _final(script), _CANCELLING, _CANCELLED),
                one_time_job_id=next(self._ids) if job_id is None else None,
            )
            for task_run_id, key in zip(task_run_ids, tasks, strict=True):
                self._task_runs[task_run_id] = (run_id, key)
            if token:
                self._by_token[token] = run_id
            self.counters["runs_created"] += 1
            return {"run_id": run_id}

    def get(self, run_id: int, *, include_history: bool = False) -> dict[str, Any] | None:
        with self._lock:
            self.counters["gets"] += 1
            run = self._runs.get(run_id)
            if run is None:
                return None
            body = self._run_json(run, time.monotonic())
            if include_history:
                history = [{"id": run_id, "type": "ORIGINAL"}]
                history += [{"id": rid, "type": "REPAIR"} for rid in run.repairs]
                body["repair_history"] = history
            return body

    def get_output(self, run_id: int) -> dict[str, Any] | None:
        with self._lock:
            now = time.monotonic()
            if run_id in self._task_runs:
                parent_id, key = self._task_runs[run_id]
                parent = self._runs.get(parent_id)
                if parent is None:
                    return None
                _, result, _ = parent.state(now)
                body: dict[str, Any] = {"metadata": {"run_id": run_id, "task_key": key}}
                if parent.task_result(key, result) == "FAILED":
                    body["error"] = parent.script.error
                return body
            run = self._runs.get(run_id)
            if run is None:
                return None
            _, result, message = run.state(now)
            body = {"metadata": self._run_json(run, now)}
            if result == "FAILED":
                body["error"] = message or run.script.error
            return body

    def cancel(self, run_id: int) -> bool:
        with self._lock:
            self.counters["cancel_requests"] += 1
            self._cancel_requests_by_run[run_id] += 1
            run = self._runs.get(run_id)
            if run is None:
                return False
            self._cancel_locked(run)
            return True

    def cancel_all(self, job_id: int) -> None:
        with self._lock:
            self.counters["cancel_all_requests"] += 1
            self._cancel_all_requests_by_job[job_id] += 1
            for run in self._runs.values():
                if run.job_id == job_id:
                    self._cancel_locked(run)

    def _cancel_locked(self, run: _Run) -> None:
        run.clock.cancel_seconds = self.cancel_seconds
        # Over, or already being cancelled: a repeated cancel changes nothing.
        if run.clock.cancel():
            self.counters["runs_cancelled"] += 1

    def repair(self, run_id: int, latest_repair_id: int | None) -> tuple[HTTPStatus, dict[str, Any]]:
        with self._lock:
            run = self._runs.get(run_id)
            if run is None:
                return HTTPStatus.BAD_REQUEST, _error(
                    "INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist."
                )
            current = run.repairs[-1] if run.repairs else None
            if latest_repair_id != current:
                return HTTPStatus.BAD_REQUEST, _error(
                    "INVALID_PARAMETER_VALUE", f"latest_repair_id {latest_repair_id} is not {current}"
                )
            repair_id = next(self._ids)
            run.repairs.append(repair_id)
            run.script = self.repair_script or RunScript(
                pending_seconds=0.0,
                run_seconds=self.default_script.run_seconds or 0.2,
                result_state="SUCCESS",
            )
            run.clock.restart(phases=_phases(run.script), final=_final(run.script))
            self.counters["repairs"] += 1
            return HTTPStatus.OK, {"repair_id": repair_id}

    def update_job(self, job_id: int, new_settings: dict[str, Any]) -> None:
        """``jobs/update``: merge ``new_settings`` into the job's settings (top-level keys)."""
        with self._lock:
            self._jobs[job_id]["settings"].update(json.loads(json.dumps(new_settings)))
            self.counters["job_updates"] += 1

    def job_settings(self, job_id: int) -> dict[str, Any]:
        """A job's current settings."""
        with self._lock:
            return json.loads(json.dumps(self._jobs[job_id]["settings"]))

    def list_runs(self, job_id: int | None, active_only: bool) -> list[dict[str, Any]]:
        with self._lock:
            now = time.monotonic()
            runs = [
                self._run_json(run, now)
                for run in reversed(self._runs.values())
                if (job_id is None or run.job_id == job_id)
                and (not active_only or run.state(now)[0] != "TERMINATED")
            ]
            return runs

    def list_jobs(self, name: str | None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                json.loads(json.dumps(job))
                for job in self._jobs.values()
                if name is None or job["settings"]["name"] == name
            ]

    def _run_json(self, run: _Run, now: float) -> dict[str, Any]:
        life, result, message = run.state(now)
        state: dict[str, Any] = {"life_cycle_state": life, "state_message": message}
        if result:
            state["result_state"] = result
        tasks = []
        for task_run_id, key in zip(run.task_run_ids, run.task_keys, strict=True):
            task_state: dict[str, Any] = {"life_cycle_state": life, "state_message": ""}
            if result:
                task_state["result_state"] = run.task_result(key, result)
            tasks.append({"run_id": task_run_id, "task_key": key, "state": task_state, "attempt_number": 0})
        body: dict[str, Any] = {
            "run_id": run.run_id,
            "run_name": run.run_name,
            "state": state,
            "tasks": tasks,
            "run_page_url": f"{self.workspace_url}/?o=0#job/{run.job_id or 0}/run/{run.run_id}",
        }
        if (job_id := run.job_id if run.job_id is not None else run.one_time_job_id) is not None:
            body["job_id"] = job_id
        return body


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error_code": code, "message": message}


class _Handler(FaultingJsonHandler):
    server: ServiceHttpServer[FakeDatabricksService]

    @property
    def service(self) -> FakeDatabricksService:
        return self.server.service

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        # The hook's async calls (aiohttp) send a GET's parameters as a JSON body, not a query.
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            try:
                body = json.loads(self.rfile.read(length))
            except json.JSONDecodeError:
                body = None
            if isinstance(body, dict):
                query = {**body, **query}
        self._dispatch("GET", url.path, query)

    def do_POST(self) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except json.JSONDecodeError:
            self._reply(HTTPStatus.BAD_REQUEST, _error("MALFORMED_REQUEST", "body is not JSON"))
            return
        self._dispatch("POST", url.path, body if isinstance(body, dict) else {})

    def _dispatch(self, method: str, path: str, args: dict[str, Any]) -> None:
        if not path.startswith(API_PREFIX):
            self._reply(HTTPStatus.NOT_FOUND, _error("ENDPOINT_NOT_FOUND", f"no API at {path}"))
            return
        # Operation names as the issue and the docs say them: "runs/submit", "jobs/run-now", "jobs/list".
        rest = path[len(API_PREFIX) :]
        operation = rest.removeprefix("jobs/") if rest.startswith("jobs/runs/") else rest
        routes = {
            ("POST", "runs/submit"): self._submit,
            ("POST", "jobs/run-now"): self._run_now,
            ("GET", "runs/get"): self._get,
            ("GET", "runs/get-output"): self._get_output,
            ("POST", "runs/cancel"): self._cancel,
            ("POST", "runs/cancel-all"): self._cancel_all,
            ("POST", "runs/repair"): self._repair,
            ("POST", "jobs/update"): self._update_job,
            ("GET", "runs/list"): self._list_runs,
            ("GET", "jobs/list"): self._list_jobs,
        }
        handle = routes.get((method, operation))
        if handle is None:
            self._reply(HTTPStatus.NOT_FOUND, _error("ENDPOINT_NOT_FOUND", f"no {method} {path}"))
            return
        fault = self.service.record(operation)
        if not self._authorised():
            return
        self._serve_with_fault(fault, lambda: handle(args), _injected_error)

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization") or ""
        if not header.startswith("Bearer "):
            self.service.count("auth_failures")
            self._reply(
                HTTPStatus.UNAUTHORIZED,
                _error("UNAUTHENTICATED", "Credential was not sent or was unsupported."),
            )
            return False
        if header.removeprefix("Bearer ") != self.service.token:
            self.service.count("auth_failures")
            self._reply(HTTPStatus.FORBIDDEN, _error("PERMISSION_DENIED", "Invalid access token."))
            return False
        return True

    def _run_id(self, args: dict[str, Any]) -> int | None:
        try:
            return int(args["run_id"])
        except (KeyError, TypeError, ValueError):
            return None

    def _missing_run(self, run_id: int | None) -> tuple[HTTPStatus, dict[str, Any]]:
        if self.service.missing_run_status == 404:
            return HTTPStatus.NOT_FOUND, _error("RESOURCE_DOES_NOT_EXIST", f"Run {run_id} does not exist.")
        return HTTPStatus.BAD_REQUEST, _error("INVALID_PARAMETER_VALUE", f"Run {run_id} does not exist.")

    def _submit(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        has_task = "tasks" in body or any(key.endswith("_task") for key in body)
        if not has_task:
            return HTTPStatus.BAD_REQUEST, _error("INVALID_PARAMETER_VALUE", "A task must be specified.")
        return HTTPStatus.OK, self.service.submit(body)

    def _run_now(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        return self.service.run_now(body)

    def _get(self, args: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        run_id = self._run_id(args)
        history = str(args.get("include_history", "")).lower() == "true"
        run = self.service.get(run_id, include_history=history) if run_id is not None else None
        return (HTTPStatus.OK, run) if run is not None else self._missing_run(run_id)

    def _get_output(self, args: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        run_id = self._run_id(args)
        output = self.service.get_output(run_id) if run_id is not None else None
        return (HTTPStatus.OK, output) if output is not None else self._missing_run(run_id)

    def _cancel(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        run_id = self._run_id(body)
        if run_id is None or not self.service.cancel(run_id):
            return self._missing_run(run_id)
        return HTTPStatus.OK, {}

    def _cancel_all(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            self.service.cancel_all(int(body["job_id"]))
        except (KeyError, TypeError, ValueError):
            return HTTPStatus.BAD_REQUEST, _error("INVALID_PARAMETER_VALUE", "job_id is required")
        return HTTPStatus.OK, {}

    def _repair(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        run_id = self._run_id(body)
        if run_id is None:
            return self._missing_run(None)
        latest = body.get("latest_repair_id")
        return self.service.repair(run_id, int(latest) if latest is not None else None)

    def _update_job(self, body: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        try:
            self.service.update_job(int(body["job_id"]), dict(body.get("new_settings") or {}))
        except (KeyError, TypeError, ValueError):
            return HTTPStatus.BAD_REQUEST, _error("INVALID_PARAMETER_VALUE", "no such job_id")
        return HTTPStatus.OK, {}

    def _list_runs(self, args: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        job_id = int(args["job_id"]) if args.get("job_id") else None
        active_only = str(args.get("active_only", "")).lower() == "true"
        return HTTPStatus.OK, {"runs": self.service.list_runs(job_id, active_only), "has_more": False}

    def _list_jobs(self, args: dict[str, Any]) -> tuple[HTTPStatus, dict[str, Any]]:
        # One page holds everything: the hook stops paging when next_page_token is absent.
        return HTTPStatus.OK, {"jobs": self.service.list_jobs(args.get("name"))}


def _injected_error(fault: Fault) -> dict[str, Any]:
    code = {429: "TOO_MANY_REQUESTS", 403: "PERMISSION_DENIED", 404: "RESOURCE_DOES_NOT_EXIST"}.get(
        fault.status, "INTERNAL_ERROR"
    )
    return _error(code, f"injected {fault.status}")


class FakeDatabricksServer(ThreadedHttpServer[FakeDatabricksService]):
    """
    Serves a :class:`FakeDatabricksService` over HTTP on 127.0.0.1 (a random free port) in a thread.

    Use as a context manager. Point the real hook at it with :meth:`connection_uri` (for an
    ``AIRFLOW_CONN_<ID>`` environment variable, which Airflow's environment-variables secrets backend
    resolves in a task, a bare process or a child process alike).

    :param service: the workspace to serve.
    """

    def __init__(self, service: FakeDatabricksService) -> None:
        super().__init__(_Handler, service, name="fake-databricks")
        self.service = service
        service.workspace_url = self.url

    def connection_uri(self, token: str | None = None) -> str:
        """
        An Airflow connection URI for this server: ``databricks://:TOKEN@127.0.0.1:PORT/?__extra__``.

        The token travels as the password with no login (the hook's token auth); ``schema=http``
        makes the hook build ``http://127.0.0.1:PORT/api/...`` instead of ``https://``.

        :param token: the token to present; defaults to the one the service accepts.
        """
        secret = quote(token if token is not None else self.service.token, safe="")
        return f"databricks://:{secret}@127.0.0.1:{self.port}/http"
