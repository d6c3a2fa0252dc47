# Licensed under the Apache License, Version 2.0.
"""The benchmark page's arithmetic: figures from recorded task instances, and honest target verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from bench.report import figures, percentile, render_markdown


def _record(side: str, phase: str, kind: str | None, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "stream": "databricks_submit",
        "side": side,
        "operator": "DatabricksSubmitRunOperator"
        if side == "upstream"
        else "ResumableDatabricksSubmitRunOperator",
        "phase": phase,
        "kind": kind,
        "number": 1,
        "run_id": "r",
        "final_state": "success",
        "try_number": 1,
        "checkpoints": 0,
        "jobs": ["1"],
        "kept_job": "1",
        "cancellations": 0,
        "api_calls": 0,
        "wasted_seconds": 0.0,
        "strike_to_attempt_end": None,
        "attempt_end_state": None,
        "attempt_end_to_running": None,
        "metadata_writes": {},
        "peak_rss_mib": None,
        "job_seconds": None,
        "detection_latency": None,
        "seconds": 10.0,
        "error": None,
    }
    record.update(overrides)
    return record


RECORDS = [
    _record(
        "upstream",
        "baseline",
        None,
        api_calls=31,
        job_seconds=60.0,
        detection_latency=1.0,
        metadata_writes={"xcom.insert": 3, "task_state_store.insert": 1},
    ),
    _record(
        "ours",
        "baseline",
        None,
        api_calls=31,
        job_seconds=60.0,
        detection_latency=1.0,
        metadata_writes={"xcom.insert": 3, "task_state_store.insert": 2, "task_state_store.update": 1},
    ),
    _record(
        "upstream",
        "disruption",
        "sigterm_mid_poll",
        jobs=["1", "2"],
        kept_job="2",
        try_number=2,
        cancellations=1,
        wasted_seconds=3.5,
        strike_to_attempt_end=0.9,
        attempt_end_state="up_for_retry",
        attempt_end_to_running=10.6,
    ),
    _record(
        "ours",
        "disruption",
        "sigterm_mid_poll",
        checkpoints=1,
        strike_to_attempt_end=0.1,
        attempt_end_state="checkpointed",
        attempt_end_to_running=10.2,
        metadata_writes={"xcom.insert": 3, "task_state_store.insert": 3, "task_state_store.update": 1},
    ),
]


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 0.5) == 5.0
    assert percentile(values, 0.95) == 10.0
    assert percentile([0.3], 0.99) == 0.3
    assert percentile([], 0.5) is None


def test_figures_count_duplicates_retries_waste_and_calls_per_job_hour():
    upstream, ours = figures(RECORDS)
    assert (upstream.side, ours.side) == ("upstream", "ours")
    assert (upstream.duplicates, upstream.retries_used, upstream.cancellations) == (1, 1, 1)
    assert upstream.wasted_seconds == 3.5
    assert (ours.duplicates, ours.retries_used, ours.wasted_seconds) == (0, 0, 0.0)
    assert ours.sigterm_to_end == [0.1]
    assert ours.sigterm_end_states == {"checkpointed": 1}
    assert ours.api_calls_per_job_hour == pytest.approx(31 / 60 * 3600)
    # Baseline: state store 2 inserts + 1 update (XCom counted apart); the checkpointed run wrote one more.
    assert (ours.baseline_writes, ours.baseline_xcom_writes) == (3, 3)
    assert ours.writes_per_checkpoint == 1


def test_page_states_each_target_met_or_missed():
    page = render_markdown(
        {
            "records": RECORDS,
            "seed": 7,
            "disruptions_per_operator": 1,
            "run_seconds": 8.0,
            "baseline_run_seconds": 60.0,
            "poll_seconds": 2,
            "started": "2026-11-24 03:00 UTC",
            "wall_seconds": 600.0,
            "drain": None,
            "skipped": {"DataprocSubmitJobOperator": "not installed"},
            "environment": {"machine": "test", "versions": "test"},
        },
        "_static/benchmarks.png",
    )
    targets = page.split("## Targets", 1)[1]
    assert "| 0 duplicates, 0 compute-seconds thrown away | 0 duplicates, 0 s thrown away | met |" in targets
    # One disruption per operator is far from the 200 the target asks for: the page must say so.
    assert "| at least 200 disruptions per cloud | databricks 1 | **missed** |" in targets
    assert "**Not measured:** DataprocSubmitJobOperator: not installed" in page
    assert "`DatabricksSubmitRunOperator`" in page
    assert "`ResumableDatabricksSubmitRunOperator`" in page
