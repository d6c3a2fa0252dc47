# Licensed under the Apache License, Version 2.0.
"""``make bench-resume``'s arithmetic and its section of docs/benchmarks.md (no stack is started)."""

from __future__ import annotations

from typing import Any

from airflow.providers.resumable.testing.stack import StateChange
from bench.resume_latency import (
    END_MARKER,
    START_MARKER,
    checkpoint_to_running,
    place_section,
    render_section,
)


def _history(*changes: tuple[float, str | None]) -> list[StateChange]:
    return [StateChange(monotonic=at, state=state, try_number=1) for at, state in changes]


def test_each_checkpoint_counts_until_the_next_running_and_nothing_else_counts():
    history = _history(
        (0.0, "scheduled"),
        (0.3, "queued"),
        (0.9, "running"),  # the first attempt: no checkpoint before it
        (10.0, "checkpointed"),
        (11.1, "scheduled"),
        (11.2, "queued"),
        (11.8, "running"),
        (20.0, "checkpointed"),
        (21.5, "running"),  # a scheduled/queued pair shorter than one sample
        (30.0, "success"),
    )

    assert checkpoint_to_running(history) == [11.8 - 10.0, 1.5]


def test_a_checkpoint_never_followed_by_running_is_not_a_sample():
    assert checkpoint_to_running(_history((0.0, "running"), (1.0, "checkpointed"), (9.0, "failed"))) == []


def _body(p95_latencies: list[float]) -> dict[str, Any]:
    flavour = {
        "flavour": "local",
        "stack": "LocalExecutor, sqlite",
        "latencies": p95_latencies,
        "try_numbers": [1],
        "final_state": "success",
        "seconds": 60.0,
        "skipped": None,
    }
    skipped = {**flavour, "flavour": "celery", "latencies": [], "skipped": "redis is not installed"}
    return {
        "run_at": "2026-11-29 23:52 UTC",
        "minutes": 4.0,
        "transitions": len(p95_latencies),
        "resume_after": 1.0,
        "idle_sleep": 1.0,
        "environment": {"machine": "2 x CPU", "versions": "Python 3.11"},
        "flavours": [flavour, skipped],
    }


def test_the_section_says_whether_the_p95_target_was_met():
    met = render_section(_body([1.5] * 18 + [2.9, 2.9]))
    missed = render_section(_body([1.5] * 18 + [3.2, 3.4]))

    assert "| 1.50 s | 2.90 s | 2.90 s | success, try 1 | met |" in met
    assert "| 1.50 s | 3.20 s | 3.40 s | success, try 1 | **missed** |" in missed
    assert "| celery | skipped: redis is not installed |" in met


def test_the_section_is_appended_once_then_replaced_and_the_rest_of_the_page_is_kept():
    page = "# Benchmarks\n\n## Head to head\n\ntable\n"
    first = place_section(page, render_section(_body([1.0])))
    second = place_section(first, render_section(_body([2.0])))

    assert first.startswith(page)
    assert second.startswith(page)
    assert second.count(START_MARKER) == second.count(END_MARKER) == 1
    assert "| 2.00 s |" in second
    assert "| 1.00 s |" not in second
