# Licensed under the Apache License, Version 2.0.
"""The campaign bench's tables and its section of docs/benchmarks.md (bench/campaign.py)."""

from __future__ import annotations

from bench.__main__ import kept_sections
from bench.campaign import (
    SECTION_END,
    SECTION_START,
    percentile,
    render_section,
    replace_section,
    summarise,
    tables,
)


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
    body = {
        "started": "2026-11-30 03:00 UTC",
        "seed": 42,
        "per_cloud": 2,
        "concurrency": 2,
        "workers": ["worker-a", "worker-b", "worker-c"],
        "planned": 2,
        "exit_code": 0,
        "wall_seconds": 120.0,
        "disruptions_per_minute": 1.0,
        "cores": 2,
        "cpu_percent": {"mean": 80.0, "p95": 99.0, "samples": 20},
        "tables": tables([_row("emr", "cold_shutdown", 10), _row("emr", "pod_eviction", 14)]),
    }
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
