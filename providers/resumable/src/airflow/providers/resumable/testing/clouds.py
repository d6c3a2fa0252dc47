# Licensed under the Apache License, Version 2.0.
"""Each cloud the demo runs: its fake, the connection that reaches it, and what it counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from airflow.providers.resumable.testing.databricks import (
    FakeDatabricksServer,
    FakeDatabricksService,
    RunScript,
)

REMOTE_JOB_SECONDS = 40.0
"""How long every fake job runs: long enough to shut a worker down under it and resume."""


@dataclass(frozen=True)
class CloudCounts:
    """What a fake cloud saw: jobs created and cancellations asked for."""

    submissions: int
    cancellations: int


class DemoCloud(Protocol):
    """A fake cloud the demo starts, connects Airflow to, and reads counters from."""

    name: str
    task_id: str

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def connection(self) -> dict[str, Any]:
        """The Airflow connection (REST ``POST /connections`` body) that reaches the fake."""
        ...

    def counts(self) -> CloudCounts: ...

    def job_state(self, external_id: str) -> str:
        """The fake's own state word for a job, for the narration."""
        ...


class DatabricksDemoCloud:
    """A fake Databricks workspace (Jobs API 2.2 over HTTP) behind ``databricks_default``."""

    name = "databricks"
    task_id = "databricks_etl"

    def __init__(self) -> None:
        self.service = FakeDatabricksService(default_script=RunScript(run_seconds=REMOTE_JOB_SECONDS))
        self._server = FakeDatabricksServer(self.service)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()

    def connection(self) -> dict[str, Any]:
        return {
            "connection_id": "databricks_default",
            "conn_type": "databricks",
            "host": "127.0.0.1",
            "port": self._server.port,
            "schema": "http",
            "password": self.service.token,
        }

    def counts(self) -> CloudCounts:
        counters = self.service.counters
        return CloudCounts(
            submissions=counters["runs_created"],
            cancellations=counters["cancel_requests"] + counters["cancel_all_requests"],
        )

    def job_state(self, external_id: str) -> str:
        return self.service.state_of(external_id)


def demo_clouds() -> list[DemoCloud]:
    """The clouds of ``example_resumable_demo``, one task each."""
    return [DatabricksDemoCloud()]
