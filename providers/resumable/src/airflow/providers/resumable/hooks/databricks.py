# Licensed under the Apache License, Version 2.0.
"""
What goes over the wire to Databricks for the resumable operators: one file, sync and async.

**What it is for.** :class:`ResumableDatabricksHook` owns every Jobs API call the resumable
Databricks operators (and, later, their triggers, or a sweeper cancelling a checkpointed task's
run) make: submit under an idempotency token, trigger a job, describe a run as a
:class:`~airflow.providers.resumable.status.JobState`, cancel it within a time budget. The
translation of a run's states and the classification of errors are pure functions here, shared by
the synchronous methods and their ``a_`` twins.

**How it works.** Calls go through the Databricks provider's own ``DatabricksHook``, so a
``databricks_conn_id`` means exactly what it means for the upstream operators. The synchronous path
uses its ``requests`` calls; the asynchronous path uses its native ``aiohttp`` calls
(``a_get_run``), not a thread.

**What it does not do.** Build or validate payloads (the operators do), nor wait: polling is the
base operator's (or a trigger's) job.

**Known limitation.** The hook's async error carries the HTTP reason, not Databricks' body, so a
run gone from the history answers ``400 Bad Request`` there without the "does not exist" words the
synchronous path reads: :meth:`ResumableDatabricksHook.a_describe` treats only 404 as not found and
raises on a 400, which a caller polling asynchronously should then confirm synchronously.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import Any

import tenacity
from airflow.sdk.definitions._internal.logging_mixin import LoggingMixin
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from airflow.providers.resumable.extras import missing_extra

try:
    from airflow.providers.databricks.exceptions import DatabricksApiError
    from airflow.providers.databricks.hooks.databricks import DatabricksHook, RunState
    from airflow.providers.databricks.hooks.databricks_base import BaseDatabricksHook
    from airflow.providers.databricks.utils.databricks import (
        extract_failed_task_errors,
        extract_failed_task_errors_async,
    )
except ImportError as err:
    raise missing_extra("databricks", err) from err

from airflow.providers.resumable.hooks.errors import http_retry_after, is_transient_http
from airflow.providers.resumable.retrying import stop_when, wait_retry_after
from airflow.providers.resumable.status import JobState, RemoteStatus

DEFAULT_CONN_ID = "databricks_default"
MAX_TOKEN_LENGTH = 64
"""Databricks refuses an ``idempotency_token`` longer than this."""

_PENDING = frozenset({"PENDING", "QUEUED", "BLOCKED", "WAITING_FOR_RETRY"})
_RUNNING = frozenset({"RUNNING", "TERMINATING"})
_TERMINAL = frozenset({"TERMINATED", "SKIPPED", "INTERNAL_ERROR"})
SINGLE_TASK_KEYS = (
    "spark_jar_task",
    "notebook_task",
    "spark_python_task",
    "spark_submit_task",
    "pipeline_task",
    "dbt_task",
    "python_wheel_task",
    "sql_task",
    "run_job_task",
    "condition_task",
    "for_each_task",
    "clean_rooms_notebook_task",
    "dashboard_task",
    "power_bi_task",
    "gen_ai_compute_task",
)
"""The top-level ``*_task`` keys a single-task ``runs/submit`` body may give its work as."""


# -- pure: state translation and error classification ------------------------------------------------


def run_state_to_job_state(
    run: Mapping[str, Any], *, failed_tasks: Sequence[Mapping[str, Any]] = ()
) -> JobState:
    """
    Translate a ``runs/get`` answer into the normalised status.

    ``life_cycle_state`` says whether the run is going; ``result_state`` says how it ended. A
    terminal run without a run-level ``result_state`` (seen on multi-task runs while the last task
    winds down) takes it from its tasks: any failed task fails the run. The message carries the
    run's ``state_message``, the errors of failed tasks and the run's page URL.

    :param run: the ``runs/get`` JSON.
    :param failed_tasks: ``extract_failed_task_errors`` output for a failed run.
    """
    state = run.get("state") or {}
    life = str(state.get("life_cycle_state") or "")
    result = str(state.get("result_state") or "")
    if life in _TERMINAL and not result:
        task_results = {str((t.get("state") or {}).get("result_state") or "") for t in run.get("tasks") or ()}
        task_results.discard("")
        if task_results:
            result = "SUCCESS" if task_results == {"SUCCESS"} else "FAILED"
    raw = f"{life}/{result}" if result else life
    if life in _PENDING:
        status = RemoteStatus.PENDING
    elif life in _RUNNING:
        status = RemoteStatus.RUNNING
    elif life in _TERMINAL or result:
        if life == "TERMINATED" and result == "SUCCESS":
            status = RemoteStatus.SUCCEEDED
        elif result == "CANCELED":
            status = RemoteStatus.CANCELLED
        else:
            # FAILED, TIMEDOUT, SKIPPED, INTERNAL_ERROR, ...: upstream fails the task on all of them.
            status = RemoteStatus.FAILED
    else:
        # A life cycle state newer than this code, with no result yet: keep polling, say so.
        status = RemoteStatus.RUNNING
        raw = f"{life} (unknown life_cycle_state, treated as running)"
    parts = [str(state.get("state_message") or "")] if status.is_terminal else []
    if failed_tasks:
        parts.append(
            "failed tasks: "
            + "; ".join(f"{t['task_key']} (run {t['run_id']}): {t['error']}" for t in failed_tasks)
        )
    if run.get("run_page_url"):
        parts.append(f"run page: {run['run_page_url']}")
    return JobState(status, raw, " | ".join(p for p in parts if p))


def is_missing_run(error: DatabricksApiError) -> bool:
    """Whether Databricks says the run does not exist (404, or 400 'Run N does not exist.')."""
    if error.http_status_code == 404:
        return True
    text = str(error)
    return error.http_status_code == 400 and ("does not exist" in text or "RESOURCE_DOES_NOT_EXIST" in text)


def causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and what it wraps: the hook raises from a tenacity ``RetryError`` or an HTTPError."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, tenacity.RetryError):
            current = current.last_attempt.exception()
        else:
            current = current.__cause__ or current.__context__


def is_transient(error: BaseException) -> bool:
    """Whether the hook's ``error`` (or what it wraps) is a 429, a 5xx, or a connection error or timeout."""
    for cause in causes(error):
        if isinstance(cause, DatabricksApiError) and cause.http_status_code is not None:
            if cause.http_status_code == 429 or cause.http_status_code >= 500:
                return True
        elif BaseDatabricksHook._retryable_error(cause) or is_transient_http(cause):
            return True
    return False


def retry_after(error: BaseException) -> float | None:
    """The ``Retry-After`` Databricks sent with ``error`` (or with what it wraps), if any."""
    for cause in causes(error):
        hinted = http_retry_after(cause)
        if hinted is not None:
            return hinted
    return None


def check_retry_limit(retry_limit: int) -> None:
    """
    Refuse a retry limit below 1, naming the operators' argument: the hook would send no request.

    The operators call it when they are built, so that a DAG carrying the mistake fails to parse
    instead of failing the first time the hook is made.

    :param retry_limit: ``databricks_retry_limit``, the hook's ``retry_limit``.
    """
    if retry_limit < 1:
        raise AirflowException(f"databricks_retry_limit must be at least 1, got {retry_limit}")


def with_token(submission: Mapping[str, Any], idempotency_key: str) -> dict[str, Any]:
    """
    The request body with ``idempotency_token`` set: the user's own token wins (the documented
    trade-off); otherwise the ledger's key, so every re-send of this submission deduplicates.
    """
    return {**submission, "idempotency_token": submission.get("idempotency_token") or idempotency_key}


# -- the hook ---------------------------------------------------------------------------------------


class ResumableDatabricksHook(LoggingMixin):
    """
    Jobs API calls under an idempotency token, over the Databricks provider's ``DatabricksHook``.

    Constructible from plain, serialisable arguments (see :meth:`params`), so a component outside
    any task attempt can rebuild it from what an operator recorded and cancel a run.

    :param databricks_conn_id: the Databricks connection.
    :param retry_limit: how many times the hook tries one HTTP request (at least 1).
    :param retry_delay: the hook's minimum wait between those tries.
    :param retry_args: ``tenacity.Retrying`` arguments for the hook's own retry (the operators pass
        one that honours ``Retry-After`` and wakes on a stop request); not part of :meth:`params`.
    :param caller: the name the hook reports in its user agent.
    """

    def __init__(
        self,
        databricks_conn_id: str = DEFAULT_CONN_ID,
        *,
        retry_limit: int = 3,
        retry_delay: float = 1.0,
        retry_args: dict[Any, Any] | None = None,
        caller: str = "ResumableDatabricksHook",
    ) -> None:
        check_retry_limit(retry_limit)
        self.databricks_conn_id = databricks_conn_id
        self.retry_limit = retry_limit
        self.retry_delay = retry_delay
        self.caller = caller
        self.api = DatabricksHook(
            databricks_conn_id,
            retry_limit=retry_limit,
            retry_delay=retry_delay,
            retry_args=retry_args,
            caller=caller,
        )
        """The Databricks provider's hook every synchronous call goes through."""
        self.last_run: dict[str, Any] | None = None
        """The ``runs/get`` answer of the last :meth:`describe`, for page URLs and repairs."""

    def params(self) -> dict[str, Any]:
        """The arguments that rebuild this hook elsewhere (JSON-serialisable)."""
        return {
            "databricks_conn_id": self.databricks_conn_id,
            "retry_limit": self.retry_limit,
            "retry_delay": self.retry_delay,
            "caller": self.caller,
        }

    # -- errors -----------------------------------------------------------------------------------

    @contextlib.contextmanager
    def explained_errors(self) -> Iterator[None]:
        """Turn the hook's bare 401/403 into an error naming the connection and what to check."""
        try:
            yield
        except DatabricksApiError as err:
            if err.http_status_code in (401, 403):
                raise AirflowException(
                    f"Databricks refused the credentials of connection {self.databricks_conn_id!r} "
                    f"(HTTP {err.http_status_code}). Check the connection's token (password field, no "
                    f"login) or login/password, and its host. Databricks said: {err}"
                ) from err
            raise

    is_transient = staticmethod(is_transient)
    retry_after = staticmethod(retry_after)

    @staticmethod
    def interruptible_retry_args(
        *,
        limit: int,
        delay: float,
        max_wait: float,
        should_stop: Callable[[], bool],
        sleep: Callable[[float], object],
    ) -> dict[Any, Any]:
        """
        ``retry_args`` for the hook's own HTTP retry that honour ``Retry-After`` and can be woken.

        The hook retries connection errors, timeouts, 429 and 5xx itself, re-sending the same body
        (safe: the idempotency token is in the body). Its default wait ignores ``Retry-After``; this
        one honours it (capped at ``max_wait``), falls back to the hook's own exponential wait, and
        gives up at once when ``should_stop()`` says so, so a SIGTERM during a 429 storm
        checkpoints instead of sleeping on.

        :param limit: tries per request (``databricks_retry_limit``).
        :param delay: the shortest exponential wait (``databricks_retry_delay``).
        :param max_wait: the longest single wait, ``Retry-After`` included.
        :param should_stop: checked before each retry.
        :param sleep: how to wait (an interruptible wait).
        """
        return {
            "stop": tenacity.stop_after_attempt(limit) | stop_when(should_stop),
            "wait": wait_retry_after(
                retry_after, fallback=tenacity.wait_exponential(min=delay, max=2**limit), cap=max_wait
            ),
            "sleep": lambda seconds: sleep(seconds) and None,
        }

    # -- submit -----------------------------------------------------------------------------------

    def submit_run(self, submission: Mapping[str, Any], idempotency_key: str) -> str:
        """
        ``runs/submit`` under the key (see :func:`with_token`); a ``pipeline_task`` given by
        ``pipeline_name`` is resolved to its id first, as upstream does. Returns the run id.
        """
        payload = with_token(submission, idempotency_key)
        pipeline = payload.get("pipeline_task")
        with self.explained_errors():
            if (
                isinstance(pipeline, Mapping)
                and pipeline.get("pipeline_id") is None
                and pipeline.get("pipeline_name")
            ):
                pipeline_id = self.api.find_pipeline_id_by_name(pipeline["pipeline_name"])
                payload["pipeline_task"] = {k: v for k, v in pipeline.items() if k != "pipeline_name"}
                payload["pipeline_task"]["pipeline_id"] = pipeline_id
            return str(self.api.submit_run(payload))

    def resolve_job(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        """``payload`` with a ``job_name`` replaced by its ``job_id`` (``jobs/list``; exactly one match)."""
        resolved = dict(payload)
        if not resolved.get("job_name"):
            return resolved
        name = resolved.pop("job_name")
        with self.explained_errors():
            found = self.api.find_job_id_by_name(name)
        if found is None:
            raise AirflowFailException(
                f"No Databricks job is named {name!r} (connection {self.databricks_conn_id!r})"
            )
        resolved["job_id"] = found
        return resolved

    def run_now(
        self, payload: Mapping[str, Any], idempotency_key: str, *, cancel_previous_runs: bool = False
    ) -> str:
        """
        ``jobs/run-now`` under the key; ``payload`` names the job by ``job_id`` (see :meth:`resolve_job`).

        :param payload: the resolved request body.
        :param idempotency_key: the ledger key (a token in ``payload`` wins).
        :param cancel_previous_runs: cancel the job's active runs first. The caller must never pass
            it when re-sending a key: it would cancel the run the first send may have created.
        """
        body = with_token(payload, idempotency_key)
        with self.explained_errors():
            if cancel_previous_runs:
                self.api.cancel_all_runs(body["job_id"])
            return str(self.api.run_now(body))

    # -- describe ---------------------------------------------------------------------------------

    def describe(self, run_id: str) -> JobState:
        """The run's normalised status (failed tasks' errors included); ``NOT_FOUND`` once it is gone."""
        try:
            with self.explained_errors():
                run = self.api.get_run(int(run_id))
        except DatabricksApiError as err:
            if is_missing_run(err):
                return _run_not_found(run_id, err)
            raise
        self.last_run = run
        failed: list[dict[str, Any]] = []
        if _has_failed_tasks(run):
            with self.explained_errors():
                failed = extract_failed_task_errors(self.api, run, RunState(**run["state"]))
        return run_state_to_job_state(run, failed_tasks=failed)

    async def a_describe(self, run_id: str) -> JobState:
        """:meth:`describe` over the hook's native ``aiohttp`` calls (see the module's known limitation)."""
        async with DatabricksHook(
            self.databricks_conn_id,
            retry_limit=self.retry_limit,
            retry_delay=self.retry_delay,
            caller=self.caller,
        ) as hook:
            try:
                run = await hook.a_get_run(int(run_id))
            except DatabricksApiError as err:
                if err.http_status_code == 404:
                    return _run_not_found(run_id, err)
                raise
            failed: list[dict[str, Any]] = []
            if _has_failed_tasks(run):
                failed = await extract_failed_task_errors_async(hook, run, RunState(**run["state"]))
        return run_state_to_job_state(run, failed_tasks=failed)

    def run_page_url(self, run_id: str) -> str:
        """The run's page: from the last describe when it was this run, else asked for."""
        known = self.last_run or {}
        if known.get("run_id") == int(run_id) and known.get("run_page_url"):
            return str(known["run_page_url"])
        with self.explained_errors():
            return str(self.api.get_run_page_url(int(run_id)))

    # -- cancel -----------------------------------------------------------------------------------

    def cancel(self, run_id: str, *, timeout: float | None = None) -> None:
        """
        Cancel the run; a run Databricks no longer knows is nothing to cancel.

        :param run_id: the run.
        :param timeout: seconds each request may take (token requests included), with no retry of
            the hook's own, or ``None`` for the hook's usual timeout and retries.
        """
        hook = self.api if timeout is None else self._quick(timeout)
        try:
            with self.explained_errors():
                hook.cancel_run(int(run_id))
        except DatabricksApiError as err:
            if not is_missing_run(err):
                raise
            self.log.info("Run %s no longer exists; nothing to cancel", run_id)

    @cached_property
    def _quick_hook(self) -> DatabricksHook:
        # retry_limit=1: no retries of its own; the caller's budget decides whether to try again.
        return DatabricksHook(self.databricks_conn_id, retry_limit=1, caller=self.caller)

    def _quick(self, timeout: float) -> DatabricksHook:
        """A hook whose every request (token requests included) gives up after ``timeout`` seconds."""
        hook = self._quick_hook
        # Instead of the hook's 180 s per request (10 s per token request). Typed int there, but it
        # goes straight to requests, which takes seconds as a float.
        hook.timeout_seconds = timeout  # type: ignore[assignment]
        hook.token_timeout_seconds = timeout  # type: ignore[assignment]
        return hook


def _has_failed_tasks(run: Mapping[str, Any]) -> bool:
    state = run.get("state") or {}
    return (
        state.get("result_state") == "FAILED"
        and state.get("life_cycle_state") in RunState.RUN_LIFE_CYCLE_STATES
    )


def _run_not_found(run_id: str, error: BaseException) -> JobState:
    return JobState.not_found(
        f"Databricks has no run {run_id} (expired out of its history or deleted): {error}"
    )
