# Licensed under the Apache License, Version 2.0.
"""
``airflow-resumable drill --conn ... --job ...`` end to end, with a fake workspace standing in for a
real one: the connection id is resolved from ``AIRFLOW_CONN_*`` in the drill's process, copied into
the private stack through its environment, and every job is counted through ``DatabricksHook`` (the
real-cloud adapter), not through the fake's counters, which this test then checks it against.
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator

import pytest

from airflow.providers.resumable.drill.plan import DisruptionKind
from airflow.providers.resumable.drill.real_clouds import real_targets
from airflow.providers.resumable.drill.runner import run_drill
from airflow.providers.resumable.testing.clouds import FakeDatabricksCloud

pytestmark = pytest.mark.system


@pytest.fixture
def workspace(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeDatabricksCloud]:
    """A fake workspace reachable as connection ``my_workspace``, the way a deployment would define it."""
    cloud = FakeDatabricksCloud(run_seconds=30)
    cloud.start()
    try:
        fields = {k: v for k, v in cloud.connection().items() if k != "connection_id"}
        monkeypatch.setenv("AIRFLOW_CONN_MY_WORKSPACE", json.dumps(fields))
        yield cloud
    finally:
        cloud.stop()


@pytest.mark.timeout(600)
def test_real_mode_drill_counts_through_the_api_and_agrees_with_the_cloud(workspace, tmp_path):
    job = tmp_path / "job.json"
    job.write_text(
        json.dumps({"existing_cluster_id": "0923-164208-meows279", "notebook_task": {"notebook_path": "/x"}})
    )
    report = io.StringIO()

    exit_code = run_drill(
        disruptions_per_cloud=2,
        clouds=["databricks"],
        seed=7,
        kinds=[DisruptionKind.SIGTERM_MID_POLL, DisruptionKind.SIGTERM_IN_SUBMIT],
        timeout=420,
        out=report,
        real=real_targets({"databricks": "my_workspace"}, {"databricks": job}),
    )

    story = report.getvalue()
    sys.stderr.write(story)
    assert exit_code == 0, story
    assert "databricks: your deployment, through connection 'my_workspace' (databricks)" in story
    assert "drill PASSED: 2/2 disruptions ok; duplicates 0, shutdown cancellations 0" in story
    assert "orphans 0" in story
    assert workspace.service.token not in story, "the connection's secret is never printed"
    # The adapter counted through the API; the fake's own books must say the same.
    counts = workspace.counts()
    assert (counts.submissions, counts.cancellations) == (2, 0)
    assert all(
        run["run_name"].startswith("drill-") and run["state"]["result_state"] == "SUCCESS"
        for run in workspace.service.runs()
    )
