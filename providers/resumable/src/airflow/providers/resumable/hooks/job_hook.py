# Licensed under the Apache License, Version 2.0.
"""What the base operator asks of a cloud's hook: how a job stands, and how to cancel it."""

from __future__ import annotations

from typing import Protocol

from airflow.providers.resumable.status import JobState


class JobHook(Protocol):
    """
    The calls every hook of this provider offers for the jobs its operator starts.

    A new cloud is one hook with these (plus its submit and find-by-key, which only its operator
    calls) and a thin operator; see ``docs/concepts.rst``, "Write your own resumable operator".
    """

    def describe(self, external_id: str) -> JobState:
        """The job's normalised status; :meth:`JobState.not_found` if the cloud has no such job."""
        ...

    def cancel(self, external_id: str, *, timeout: float | None = None) -> None:
        """Cancel the job within ``timeout`` seconds a call; a job that has ended must not raise."""
        ...
