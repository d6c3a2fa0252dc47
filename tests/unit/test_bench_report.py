# Licensed under the Apache License, Version 2.0.
"""The benchmark page's arithmetic: figures from recorded task instances, and honest target verdicts."""

from __future__ import annotations

from typing import Any

import pytest

from bench.__main__ import kept_sections
from bench.report import deferrable_figures, figures, percentile, render_markdown


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


def _sync_run(**overrides: Any) -> dict[str, Any]:
    """A sync run's results (``latest.json``) holding :data:`RECORDS`."""
    return {
        "records": RECORDS,
        "seed": 7,
        "disruptions_per_operator": 1,
        "run_seconds": 8.0,
        "baseline_run_seconds": 60.0,
        "poll_seconds": 2,
        "started": "2026-11-24 03:00 UTC",
        "wall_seconds": 600.0,
        "drain": None,
        "skipped": {},
        "environment": {"machine": "test", "versions": "test"},
        **overrides,
    }


def test_page_states_each_target_met_or_missed():
    page = render_markdown(
        _sync_run(skipped={"DataprocSubmitJobOperator": "not installed"}), "_static/benchmarks.png"
    )
    targets = page.split("## Targets", 1)[1]
    assert "| 0 duplicates, 0 compute-seconds thrown away | 0 duplicates, 0 s thrown away | met |" in targets
    # One disruption per operator is far from the 200 the target asks for: the page must say so.
    assert "| at least 200 disruptions per cloud | databricks 1 | **missed** |" in targets
    assert "**Not measured:** DataprocSubmitJobOperator: not installed" in page
    assert "`DatabricksSubmitRunOperator`" in page
    assert "`ResumableDatabricksSubmitRunOperator`" in page


DEFERRABLE_RECORDS = [
    # Undisturbed: each operator once sync (the slot held through the job) and once deferrable.
    _record(
        "upstream",
        "baseline",
        None,
        mode="sync",
        worker_slot_seconds=70.0,
        worker_slot_seconds_while_job_ran=60.0,
        kept_job_seconds=60.0,
        detection_latency=1.0,
    ),
    _record(
        "upstream",
        "baseline",
        None,
        mode="deferrable",
        worker_slot_seconds=12.0,
        worker_slot_seconds_while_job_ran=0.5,
        kept_job_seconds=60.0,
        detection_latency=9.0,
    ),
    _record(
        "ours",
        "baseline",
        None,
        mode="sync",
        worker_slot_seconds=66.0,
        worker_slot_seconds_while_job_ran=60.0,
        kept_job_seconds=60.0,
        detection_latency=1.0,
    ),
    _record(
        "ours",
        "baseline",
        None,
        mode="deferrable",
        worker_slot_seconds=6.0,
        worker_slot_seconds_while_job_ran=0.0,
        kept_job_seconds=60.0,
        detection_latency=5.0,
    ),
    # The frozen triggerer's on_kill cancels upstream's run; the retry submits a second one.
    _record(
        "upstream",
        "disruption",
        "triggerer_freeze_moves",
        mode="deferrable",
        jobs=["1", "2"],
        kept_job="2",
        try_number=2,
        cancellations=1,
        worker_slot_seconds=20.0,
        worker_slot_seconds_while_job_ran=2.0,
        kept_job_seconds=75.0,
    ),
    _record(
        "ours",
        "disruption",
        "triggerer_freeze_moves",
        mode="deferrable",
        worker_slot_seconds=6.0,
        worker_slot_seconds_while_job_ran=0.0,
        kept_job_seconds=75.0,
    ),
    # A task that ended with no finished job has no job-hour: left out of the ratio, not a zero.
    _record(
        "ours",
        "disruption",
        "dropped_response",
        mode="deferrable",
        worker_slot_seconds=9.0,
        kept_job_seconds=None,
        final_state="failed",
    ),
]


def test_deferrable_figures_count_jobs_cancels_retries_and_worker_slot_per_job_hour():
    upstream, ours = deferrable_figures(DEFERRABLE_RECORDS)

    assert (upstream.side, ours.side) == ("upstream", "ours")
    assert (upstream.jobs, upstream.duplicates, upstream.cancellations, upstream.retries_used) == (2, 1, 1, 1)
    assert (ours.jobs, ours.duplicates, ours.cancellations, ours.retries_used) == (2, 0, 0, 0)
    assert ours.not_succeeded == 1
    assert upstream.slot_sync_undisturbed == (pytest.approx(70 / 60 * 3600), pytest.approx(3600))
    assert ours.slot_undisturbed == (pytest.approx(6 / 60 * 3600), 0.0)
    assert upstream.slot_disrupted == (pytest.approx(20 / 75 * 3600), pytest.approx(2 / 75 * 3600))
    assert ours.slot_disrupted[0] == pytest.approx(6 / 75 * 3600)
    assert (ours.detection_latency, upstream.detection_latency) == ((1.0, 5.0), (1.0, 9.0))


def test_the_deferrable_section_sits_next_to_the_sync_tables_from_its_own_run():
    page = render_markdown(
        _sync_run(),
        "_static/benchmarks.png",
        deferrable={
            "records": DEFERRABLE_RECORDS,
            "seed": 11,
            "run_seconds": 15.0,
            "triggerer_run_seconds": 75.0,
            "baseline_run_seconds": 60.0,
            "started": "2026-11-30 00:10 UTC",
            "wall_seconds": 1800.0,
            "skipped": {"EmrAddStepsOperator (deferrable)": "aiobotocore is not installed"},
            "environment": {"machine": "test", "versions": "test"},
        },
    )

    section = page.split("## Deferrable mode", 1)[1].split("## Mass drain", 1)[0]
    assert "seed `11`" in section
    assert "| Databricks submit run | `DatabricksSubmitRunOperator` | 1 | 2 (1) | 1 | 1 | 1 / 1 |" in section
    assert (
        "| Databricks submit run | `ResumableDatabricksSubmitRunOperator` | 2 | 2 (0) | 0 | 0 | 1 / 2 |"
        in section
    )
    assert "| 4200 / 3600 | 720 / 30 |" in section  # upstream: sync, then deferrable undisturbed
    assert "Not run: `EmrAddStepsOperator` with `deferrable=True`: aiobotocore is not installed." in section
    assert "2: 2j 1c 1r 0f" not in section  # one freeze strike per side, not two
    # Each cell under its own kind's column (the columns are sorted: dropped_response first).
    assert "| Databricks submit run | upstream | n/a | 1: 2j 1c 1r 0f |" in section
    assert "| Databricks submit run | ours | 1: 1j 0c 0r 1f | 1: 1j 0c 0r 0f |" in section


def test_rewriting_the_page_keeps_the_sections_other_bench_scripts_own():
    other = (
        "<!-- bench-resume: generated by make bench-resume; do not edit by hand -->\n"
        "## Resume latency\n\n| stack | p95 |\n|---|---|\n| local | 2.01 s |\n\n"
        "<!-- /bench-resume -->\n"
    )
    page = "# Benchmarks\n\n## Head to head\n\n| a |\n|---|\n\n" + other + "\n## Stray text after it\n"

    assert kept_sections(page) == other
    assert kept_sections("# Benchmarks\n\nno owned sections\n") == ""
