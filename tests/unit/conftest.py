# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from attempts import AttemptSpec

from airflow.providers.resumable.testing.fake_jobs import FakeJobServer, FakeJobService


@pytest.fixture
def service() -> FakeJobService:
    return FakeJobService()


@pytest.fixture
def server(service: FakeJobService) -> Iterator[FakeJobServer]:
    with FakeJobServer(service) as running:
        yield running


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """Where one task instance's state lives across attempts; the server says 'running' by default."""
    (tmp_path / "server_state").write_text("running")
    return tmp_path


@pytest.fixture
def spec(workdir: Path, server: FakeJobServer) -> AttemptSpec:
    """A fast-polling attempt of a job that runs for 1 s."""
    return AttemptSpec(
        workdir=workdir,
        endpoint=server.url,
        job={"name": "nightly-etl", "run_seconds": 1.0, "output": "42 rows"},
        operator_kwargs={"poll_interval": 0.05, "resume_after": timedelta(seconds=1)},
    )
