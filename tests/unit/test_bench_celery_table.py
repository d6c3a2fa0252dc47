# Licensed under the Apache License, Version 2.0.
"""The Celery disruption table says per row and operator what happened, and which rows it left out."""

from __future__ import annotations

from dataclasses import asdict

from bench.celery_table import SECTION, Measured, render_section


def test_each_measurement_is_a_row_and_rows_not_run_are_named() -> None:
    ours = Measured(
        "host_lost",
        "ResumableDatabricksSubmitRunOperator",
        60,
        lost_worker="worker-a",
        runs=1,
        try_number=1,
        final_state="success",
        dag_run="success",
        ran_again_seconds=31.4,
        ran_again_on="worker-b",
        worker_exit_seconds=0.1,
        states=["running", "checkpointed", "scheduled", "queued", "running", "success"],
    )
    upstream = Measured(
        "host_lost",
        "DatabricksSubmitRunOperator",
        60,
        lost_worker="worker-b",
        runs=1,
        try_number=2,
        final_state="success",
        dag_run="success",
        ran_again_seconds=35.0,
        ran_again_on="worker-a",
        worker_exit_seconds=0.1,
        states=["running", "up_for_retry", "scheduled", "queued", "running", "success"],
    )
    section = render_section(
        {"started": "2026-11-30 03:00 UTC", "wall_seconds": 300, "measured": [asdict(ours), asdict(upstream)]}
    )
    assert section.startswith(SECTION.start)
    assert section.rstrip().endswith(SECTION.end)
    assert (
        "| worker host lost (SIGKILL of the tree) | `ResumableDatabricksSubmitRunOperator` | yes | 1 | 0 | 1 "
        "| 31.4 s on worker-b (the other worker) |"
    ) in section
    assert (
        "| `DatabricksSubmitRunOperator` | yes | 1 | 0 | 2 | 35.0 s on worker-a (the other worker) |"
        in section
    )
    assert "Not measured in this run: warm shutdown (SIGTERM to the worker);" in section
    assert "running -> checkpointed -> scheduled -> queued -> running -> success" in section
