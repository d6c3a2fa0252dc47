# Licensed under the Apache License, Version 2.0.
"""
What the drill needs from a cloud, fake or real: one interface, so one runner drives both.

A drill cloud says which Airflow connection reaches it, which jobs it created for one drilled task
instance, whether a job is running, and how many times a job was cancelled. Fault injection (errors,
a lost response, a submit held open) is a separate interface that only the fakes implement: a real
workspace cannot be made to misbehave on cue, so the kinds that need it are refused there.

These protocols live in the testing kit, below both their users: the fakes
(:mod:`airflow.providers.resumable.testing.clouds`) implement them, and the drill
(:mod:`airflow.providers.resumable.drill`) drives them, so neither imports the other upward.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class DrilledTask:
    """
    One drilled task instance, as a cloud can recognise the jobs it created.

    :param dag_id: the drill DAG.
    :param run_id: the DAG run the drill triggered (Databricks and EMR Serverless runs are named after it).
    :param nonce: the ledger's nonce, which prefixes every idempotency key the task instance sent.
    :param since: when the drill triggered the run (UTC): nothing older can belong to it, which
        bounds the listing on a real, busy workspace.
    """

    dag_id: str
    run_id: str
    nonce: str
    since: datetime


class FaultInjector(Protocol):
    """A cloud that can be made to misbehave on cue: the fakes only."""

    def inject(self, fault: str, *, times: int) -> None:
        """Queue ``times`` faults: ``throttle`` (429 with Retry-After on status polls),
        ``server_error`` (503 on submit), ``drop_submit_response`` (commit, lose the answer),
        ``cancel_refused`` (403, or ``PERMISSION_DENIED``, on cancel)."""
        ...

    def jobs_run_until_cancelled(self, endless: bool) -> None:
        """From now on, new jobs run until cancelled (``True``) or for the fake's usual time."""
        ...

    def jobs_run_for(self, seconds: float) -> None:
        """From now on, new jobs run ``seconds`` (``jobs_run_until_cancelled(False)`` restores the usual time)."""
        ...

    def hold_next_submit(self) -> threading.Event:
        """Commit the next submit but hold its answer until the returned event is set."""
        ...

    def faults_pending(self) -> int:
        """How many of the queued faults (and held submits) no request has taken yet."""
        ...


class DrillCloud(Protocol):
    """A cloud the drill runs its tasks on and accounts for, through that cloud's own API."""

    name: str
    poll_seconds: float
    """How often the drill may ask this cloud about a job (a fake: often; a real API: gently)."""
    run_timeout: float
    """Seconds a drilled run may take, from trigger to its end, before it counts as lost."""

    @property
    def faults(self) -> FaultInjector | None:
        """The fault injector, or ``None`` for a cloud that cannot be made to misbehave (a real one)."""
        ...

    def connection(self, conn_id: str | None = None) -> dict[str, Any]:
        """The Airflow connection (a REST ``POST /connections`` body) that reaches the cloud, under
        ``conn_id`` or the cloud's standard connection id."""
        ...

    def jobs_of(self, task: DrilledTask) -> list[str]:
        """External ids (as the ledger writes them) of every job the cloud created for ``task``."""
        ...

    def is_running(self, external_id: str) -> bool:
        """Whether the job is running now (not pending, not ended)."""
        ...

    def cancellations_of(self, external_id: str) -> int:
        """How often the job was cancelled (a fake counts requests; a real cloud shows a final state)."""
        ...
