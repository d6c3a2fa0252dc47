# Licensed under the Apache License, Version 2.0.
"""
The fake job service's client and hook: the smallest complete cloud layer, for the fake-job operator.

:class:`FakeJobClient` speaks the JSON-over-HTTP API of
:class:`~airflow.providers.resumable.testing.fake_jobs.FakeJobServer`; :class:`FakeJobHook` is what
a real cloud's hook is (submit, find by key, describe, cancel, error classification, an async
describe), over that client. It lives below the operators so that the testing kit and the drill can
use it without importing an operator.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

import requests

from airflow.providers.resumable.hooks.errors import http_retry_after, is_transient_http
from airflow.providers.resumable.status import JobState, RemoteStatus

_STATES = {
    "PENDING": RemoteStatus.PENDING,
    "RUNNING": RemoteStatus.RUNNING,
    "SUCCEEDED": RemoteStatus.SUCCEEDED,
    "FAILED": RemoteStatus.FAILED,
    "CANCELLED": RemoteStatus.CANCELLED,
}


def job_to_job_state(job: dict[str, Any]) -> JobState:
    """Translate the fake's job JSON into the normalised status.

    :param job: the job as ``GET /jobs/<id>`` returns it.
    """
    return JobState(_STATES[job["state"]], job["state"], job.get("message") or "")


def is_transient(error: BaseException) -> bool:
    """Connection errors and timeouts of ``requests``, 429 and 5xx."""
    if isinstance(error, (requests.ConnectionError, requests.Timeout)):
        return True
    return is_transient_http(error)


class FakeJobApiError(Exception):
    """The fake answered with an error status; carries the response like ``requests.HTTPError``."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self.status_code = response.status_code
        super().__init__(
            f"{response.status_code} from {response.request.method} {response.url}: {response.text}"
        )


class FakeJobClient:
    """
    The client of :class:`FakeJobServer`.

    :param base_url: the server's :attr:`FakeJobServer.url`.
    :param timeout: seconds per request.
    """

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def submit(self, payload: dict[str, Any], key: str) -> str:
        return str(self._request("POST", "/jobs", json={"payload": payload, "key": key})["job_id"])

    def get(self, job_id: str) -> dict[str, Any] | None:
        try:
            return self._request("GET", f"/jobs/{job_id}")
        except FakeJobApiError as err:
            if err.status_code == HTTPStatus.NOT_FOUND:
                return None
            raise

    def cancel(self, job_id: str, *, timeout: float | None = None) -> None:
        """Cancel a job; ``timeout`` replaces the client's per-request timeout for this request."""
        self._request("POST", f"/jobs/{job_id}/cancel", json={}, timeout=timeout)

    def find(self, key: str) -> list[str]:
        return [str(i) for i in self._request("GET", "/jobs", params={"key": key})["job_ids"]]

    def counters(self) -> dict[str, int]:
        return dict(self._request("GET", "/counters"))

    def _request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        response = self._session.request(
            method, self.base_url + path, timeout=timeout if timeout is not None else self.timeout, **kwargs
        )
        if response.status_code >= 400:
            raise FakeJobApiError(response)
        return response.json()


class FakeJobHook:
    """
    Submit, find, describe and cancel jobs of a fake job server; constructible from plain arguments.

    :param endpoint: the server's URL.
    :param request_timeout: seconds per HTTP request.
    """

    def __init__(self, endpoint: str, *, request_timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        self.request_timeout = request_timeout
        self.client = FakeJobClient(endpoint, timeout=request_timeout)

    def params(self) -> dict[str, Any]:
        """The arguments that rebuild this hook elsewhere (JSON-serialisable)."""
        return {"endpoint": self.endpoint, "request_timeout": self.request_timeout}

    is_transient = staticmethod(is_transient)
    retry_after = staticmethod(http_retry_after)

    def submit(self, payload: dict[str, Any], idempotency_key: str) -> str:
        """Submit under the key; the service deduplicates it unless told not to."""
        return self.client.submit(payload, idempotency_key)

    def find(self, idempotency_key: str) -> str | None:
        """The oldest job submitted under the key, or ``None``."""
        found = self.client.find(idempotency_key)
        return found[0] if found else None

    def describe(self, job_id: str) -> JobState:
        """The job's normalised status; ``NOT_FOUND`` once the service forgot it."""
        job = self.client.get(job_id)
        if job is None:
            return JobState.not_found(f"the service has no job {job_id}")
        return job_to_job_state(job)

    async def a_describe(self, job_id: str) -> JobState:
        """:meth:`describe` in a worker thread: the fake's client is ``requests``, which has no async twin."""
        return await asyncio.to_thread(self.describe, job_id)

    def output(self, job_id: str) -> Any:
        """The job's ``output`` (set once it succeeded)."""
        job = self.client.get(job_id)
        return job.get("output") if job else None

    def cancel(self, job_id: str, *, timeout: float | None = None) -> None:
        """Cancel the job; ``timeout`` bounds the request."""
        self.client.cancel(job_id, timeout=timeout)
