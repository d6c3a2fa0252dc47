# Licensed under the Apache License, Version 2.0.
"""A concrete resumable operator over the fake job service: the base's contract, shown whole."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow.providers.resumable.hooks.fake_job import FakeJobHook
from airflow.providers.resumable.operators.base import ResumableSubmitOperator
from airflow.providers.resumable.status import JobState
from airflow.providers.resumable.triggers.fake_job import FakeJobTrigger

if TYPE_CHECKING:
    from airflow.sdk.definitions.context import Context


class FakeJobSubmitOperator(ResumableSubmitOperator):
    """
    Submit a job to a :class:`~airflow.providers.resumable.testing.fake_jobs.FakeJobServer`.

    :param endpoint: the fake server's URL (templated).
    :param job: the job: ``{"name": str}`` plus optional ``pending_seconds``, ``run_seconds``,
        ``outcome`` and ``output`` that script its lifecycle (templated).
    :param use_find_existing: look jobs up by key before any repeated submit, as an adapter for a
        cloud without server-side deduplication must.
    :param request_timeout: seconds per HTTP request.
    :param kwargs: :class:`~airflow.providers.resumable.operators.base.ResumableSubmitOperator` and
        ``BaseOperator`` arguments.
    """

    template_fields: Sequence[str] = ("endpoint", "job")
    ledger_kind = "testing.fake_jobs"
    trigger_class = FakeJobTrigger
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
    def hook(self) -> FakeJobHook:
        """The fake service's hook."""
        return FakeJobHook(self.endpoint, request_timeout=self.request_timeout)

    def hook_params(self) -> dict[str, Any]:
        return self.hook.params()

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

    def submit(self, submission: dict[str, Any], idempotency_key: str, *, resend: bool) -> str:
        return self.hook.submit(submission, idempotency_key)

    def find_existing(self, idempotency_key: str, *, intent_at: datetime | None = None) -> str | None:
        return self.hook.find(idempotency_key) if self.use_find_existing else None

    def result(self, external_id: str, state: JobState) -> Any:
        return {"job_id": external_id, "output": self.hook.output(external_id)}

    def on_job_known(self, external_id: str, context: Context) -> None:
        context["ti"].xcom_push(key="job_id", value=external_id)

    def is_transient(self, error: BaseException) -> bool:
        return self.hook.is_transient(error)

    def retry_after(self, error: BaseException) -> float | None:
        return self.hook.retry_after(error)
