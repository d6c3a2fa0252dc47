# Licensed under the Apache License, Version 2.0.
"""A concrete resumable operator over the fake job service: the base's contract, shown whole."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests
from airflow.sdk.exceptions import AirflowFailException

from airflow.providers.resumable.operators.base import ResumableSubmitOperator
from airflow.providers.resumable.status import JobState, RemoteStatus
from airflow.providers.resumable.testing.fake_jobs import FakeJobClient

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context

_STATES = {
    "PENDING": RemoteStatus.PENDING,
    "RUNNING": RemoteStatus.RUNNING,
    "SUCCEEDED": RemoteStatus.SUCCEEDED,
    "FAILED": RemoteStatus.FAILED,
    "CANCELLED": RemoteStatus.CANCELLED,
}


class FakeJobSubmitOperator(ResumableSubmitOperator):
    """
    Submit a job to a :class:`~airflow.providers.resumable.testing.fake_jobs.FakeJobServer`.

    :param endpoint: the fake server's URL (templated).
    :param job: the job: ``{"name": str}`` plus optional ``pending_seconds``, ``run_seconds``,
        ``outcome`` and ``output`` that script its lifecycle (templated).
    :param use_find_existing: look jobs up by key before any repeated submit, as an adapter for a
        cloud without server-side deduplication must.
    :param request_timeout: seconds per HTTP request.
    """

    template_fields: Sequence[str] = ("endpoint", "job")
    ledger_kind = "testing.fake_jobs"
    job_noun = "job"

    def __init__(
        self,
        *,
        endpoint: str,
        job: dict[str, Any],
        use_find_existing: bool = False,
        request_timeout: float = 10.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.endpoint = endpoint
        self.job = job
        self.use_find_existing = use_find_existing
        self.request_timeout = request_timeout

    @functools.cached_property
    def client(self) -> FakeJobClient:
        return FakeJobClient(self.endpoint, timeout=self.request_timeout)

    def build_submission(self, context: Context) -> dict[str, Any]:
        job = self.job
        if not isinstance(job, dict):
            raise AirflowFailException(f"job must be a dict, got {type(job).__name__}")
        if not isinstance(job.get("name"), str) or not job["name"]:
            raise AirflowFailException("job needs a non-empty 'name'")
        for field in ("pending_seconds", "run_seconds"):
            value = job.get(field)
            if value is not None and (not isinstance(value, (int, float)) or value < 0):
                raise AirflowFailException(f"job[{field!r}] must be a non-negative number, got {value!r}")
        if job.get("outcome", "SUCCEEDED") not in ("SUCCEEDED", "FAILED", "CANCELLED"):
            raise AirflowFailException(
                f"job['outcome'] must be SUCCEEDED, FAILED or CANCELLED, got {job['outcome']!r}"
            )
        return dict(job)

    def submit(self, submission: dict[str, Any], idempotency_key: str) -> str:
        return self.client.submit(submission, idempotency_key)

    def find_existing(self, idempotency_key: str, *, intent_at: datetime | None = None) -> str | None:
        if not self.use_find_existing:
            return None
        found = self.client.find(idempotency_key)
        return found[0] if found else None

    def describe(self, external_id: str) -> JobState:
        job = self.client.get(external_id)
        if job is None:
            return JobState(RemoteStatus.NOT_FOUND, "NOT_FOUND", f"the service has no job {external_id}")
        return JobState(_STATES[job["state"]], job["state"], job.get("message") or "")

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        self.client.cancel(external_id, timeout=timeout)

    def result(self, external_id: str, state: JobState) -> Any:
        job = self.client.get(external_id)
        return {"job_id": external_id, "output": job.get("output") if job else None}

    def on_job_known(self, external_id: str, context: Context) -> None:
        context["ti"].xcom_push(key="job_id", value=external_id)

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, (requests.ConnectionError, requests.Timeout)):
            return True
        return super().is_transient(error)
