# Licensed under the Apache License, Version 2.0.
"""The campaign bench's tables and its section of docs/benchmarks.md (bench/campaign.py)."""

from __future__ import annotations

import json
from typing import Any

from airflow.providers.resumable.drill import runner
from airflow.providers.resumable.drill.plan import Disruption, DisruptionKind
from airflow.providers.resumable.drill.runner import DisruptionResult
from bench.__main__ import kept_sections
from bench.campaign import (
    SECTION_END,
    SECTION_START,
    main,
    percentile,
    render_section,
    replace_section,
    summarise,
    tables,
)
from tests.unit.drill_results import ok_result


def _row(cloud: str, kind: str, seconds: float, **changes) -> dict:
    row = {
        "number": 1,
        "cloud": cloud,
        "kind": kind,
        "ok": True,
        "verdict": "ok",
        "duplicates": 0,
        "shutdown_cancellations": 0,
        "retries_used": 0,
        "orphans": 0,
        "lost": False,
        "checkpoints": 1,
        "collateral": [],
        "seconds": seconds,
    }
    return {**row, **changes}


def test_percentiles_are_nearest_rank_and_none_without_samples():
    assert percentile([], 0.5) is None
    assert percentile([3.0], 0.95) == 3.0
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0


def test_a_summary_counts_each_failure_where_it_happened():
    rows = [
        _row("emr", "cold_shutdown", 10),
        _row("emr", "cold_shutdown", 30, ok=False, duplicates=1, collateral=[4]),
        _row("databricks", "pod_eviction", 20, ok=False, retries_used=1, lost=True, orphans=2),
    ]
    summary = tables(rows)

    assert summary["by_cloud"]["emr"] == {
        "disruptions": 2,
        "ok": 1,
        "duplicates": 1,
        "cancels": 0,
        "retries": 0,
        "orphans": 0,
        "lost": 0,
        "collateral": 1,
        "p50_seconds": 10,
        "p95_seconds": 30,
    }
    assert summary["by_kind"]["pod_eviction"]["retries"] == 1
    assert summary["by_kind"]["pod_eviction"]["lost"] == 1
    assert summary["by_kind"]["pod_eviction"]["orphans"] == 2
    assert summary["total"]["disruptions"] == 3
    assert summary["total"] == summarise(rows)


def test_the_section_replaces_its_previous_self_and_survives_a_full_bench_rewrite():
    body = _body(
        per_cloud=2,
        concurrency=2,
        workers=["worker-a", "worker-b", "worker-c"],
        planned=2,
        wall_seconds=120.0,
        tables=tables([_row("emr", "cold_shutdown", 10), _row("emr", "pod_eviction", 14)]),
    )
    section = render_section(body)
    assert section.startswith(SECTION_START)
    assert section.rstrip().endswith(SECTION_END)
    assert "| emr | 2 | 2 | 0 | 0 | 0 | 0 | 0 | 0 | 10 | 14 |" in section
    assert "**PASSED**" in section

    page = "# Benchmarks\n\nold text\n"
    once = replace_section(page, section)
    twice = replace_section(once, render_section({**body, "exit_code": 1}))
    assert twice.count(SECTION_START) == 1
    assert "**FAILED**" in twice
    assert "**PASSED**" not in twice
    assert twice.startswith("# Benchmarks\n\nold text\n")
    assert SECTION_START in kept_sections(twice), "make bench keeps the section when it rewrites the page"


def _body(**changes: Any) -> dict[str, Any]:
    """What ``campaign.json`` holds for a finished campaign of one disruption, with ``changes``."""
    body = {
        "started": "2026-11-30 03:00 UTC",
        "seed": 42,
        "per_cloud": 1,
        "concurrency": 1,
        "workers": ["worker-a", "worker-b"],
        "planned": 1,
        "exit_code": 0,
        "wall_seconds": 60.0,
        "disruptions_per_minute": 1.0,
        "cores": 2,
        "cpu_percent": {"mean": 80.0, "p95": 99.0, "samples": 12},
        "tables": tables([_row("emr", "cold_shutdown", 10)]),
    }
    return {**body, **changes}


def _result(number: int, cloud: str) -> DisruptionResult:
    disruption = Disruption(number=number, cloud=cloud, kind=DisruptionKind.COLD_SHUTDOWN, delay=0.0, times=1)
    return ok_result(disruption, seconds=30.0)


def test_an_interrupted_campaign_writes_what_finished_marked_interrupted(monkeypatch, tmp_path, capsys):
    # The drill was stopped (SIGTERM) after 2 of its 6 disruptions finished: it exits 130 with those 2
    # in the sink.
    def interrupted_drill(*, results_sink: list[DisruptionResult], **kwargs: object) -> int:
        results_sink.extend([_result(1, "emr"), _result(4, "dataproc")])
        return 130

    monkeypatch.setattr(runner, "run_drill", interrupted_drill)
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n")
    results = tmp_path / "campaign.json"

    code = main(
        [
            *("--per-cloud", "3", "--clouds", "emr,dataproc", "--seed", "5", "--concurrency", "2"),
            *("--results", str(results), "--page", str(page)),
        ]
    )

    assert code == 130
    body = json.loads(results.read_text())
    assert [row["number"] for row in body["disruptions"]] == [1, 4]
    assert body["interrupted"] is True
    assert body["finished"] == 2
    assert body["planned"] == 6
    assert body["tables"]["total"]["ok"] == 2
    section = page.read_text()
    assert "interrupted after 2 of 6 disruptions" in section
    assert "**INTERRUPTED**" in section
    assert "**PASSED**" not in section
    assert "**FAILED**" not in section
    assert "campaign: interrupted after 2 of 6 disruptions" in capsys.readouterr().out


def test_a_campaign_interrupted_before_anything_finished_keeps_the_last_results(
    monkeypatch, tmp_path, capsys
):
    def drill_stopped_while_starting(*, results_sink: list[DisruptionResult], **kwargs: object) -> int:
        return 130

    monkeypatch.setattr(runner, "run_drill", drill_stopped_while_starting)
    page = tmp_path / "benchmarks.md"
    page.write_text("# Benchmarks\n\nthe last campaign\n")
    results = tmp_path / "campaign.json"
    results.write_text('{"the": "last campaign"}\n')

    code = main(["--per-cloud", "3", "--clouds", "emr", "--results", str(results), "--page", str(page)])

    assert code == 130
    assert results.read_text() == '{"the": "last campaign"}\n'
    assert page.read_text() == "# Benchmarks\n\nthe last campaign\n"
    assert "interrupted before any disruption finished" in capsys.readouterr().out


def test_a_campaign_that_ran_to_the_end_is_not_marked_interrupted():
    body = _body()

    section = render_section(body)

    assert "**PASSED** (1/1 disruptions ok)" in section
    assert "interrupted" not in section.lower()


def test_the_section_states_the_scale_target_as_missed_with_what_it_would_take():
    body = _body(
        per_cloud=30,
        concurrency=4,
        clouds=["databricks", "emr", "dataproc"],
        planned=90,
        wall_seconds=1080.0,
        disruptions_per_minute=5.0,
        cpu_percent={"mean": 50.0, "p95": 100.0, "samples": 200},
    )

    section = render_section(body)

    assert (
        "| at least 200 disruptions per cloud in one run, under 60 minutes | 30 per cloud (90) in 18 minutes | **missed** |"
        in section
    )
    assert "600 take about 120 minutes" in section
    assert "about 2.0 times the CPU" in section
    assert "| 1/1 ok; 0, 0, 0, 0, 0 | met |" in section

    at_scale = render_section({**body, "per_cloud": 200, "planned": 600, "wall_seconds": 3000.0})
    assert "| 200 per cloud (600) in 50 minutes | met |" in at_scale
    assert "What the scale target would take" not in at_scale
