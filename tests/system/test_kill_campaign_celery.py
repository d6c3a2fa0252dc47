# Licensed under the Apache License, Version 2.0.
"""
The kill campaign on the production flavour: Postgres, Redis, Celery workers with the drain-aware
configuration line, strikes aimed at the worker that runs each drilled task (see
``drill/celery_strikes.py``: a warm shutdown, a cold shutdown, the host lost, a pod-style eviction, a
freeze past the heartbeat timeout), the worker brought back after each, several task instances per
cloud in flight at once, so a whole-worker strike also hits the others on that worker.

Zero duplicates, zero cancellations on shutdown, zero retries used, zero orphaned jobs, for the task
instance each strike was aimed at and for every other one it hit. The seed is printed (and taken from
``RESUMABLE_DRILL_SEED`` when set): ``airflow-resumable drill --executor celery --seed <seed>`` replays it.

``make test`` runs the strikes that only a Celery worker meets, plus the warm shutdown and the lost
host, once each, dealt across the clouds, two at a time per cloud (about 3 minutes);
``make campaign-celery`` (and ``make campaign``) runs every default Celery kind,
``RESUMABLE_CAMPAIGN_PER_CLOUD`` (20) per cloud.
"""

from __future__ import annotations

import io
import os
import random
import sys

import pytest

from airflow.providers.resumable.drill.plan import DisruptionKind
from airflow.providers.resumable.drill.runner import FAKE_CLOUDS, default_kinds, run_drill

pytestmark = pytest.mark.system

QUICK_KINDS = [
    DisruptionKind.SIGTERM_MID_POLL,  # a warm shutdown of the task's worker
    DisruptionKind.COLD_SHUTDOWN,
    DisruptionKind.POD_EVICTION,
    DisruptionKind.SIGKILL_MID_POLL,  # the task's worker host lost
]
"""The quick campaign's kinds: one per way production takes a Celery worker down (the freeze and the
fault kinds are the same on Celery as on the LocalExecutor, which the other campaign drills)."""
CONCURRENCY = 2


def _seed() -> int:
    return int(os.environ.get("RESUMABLE_DRILL_SEED") or random.SystemRandom().randrange(2**31))


@pytest.mark.timeout(3000)
def test_celery_kill_campaign_every_struck_task_exactly_once_no_cancel_no_retry_no_orphan():
    requested = os.environ.get("RESUMABLE_CAMPAIGN_PER_CLOUD")
    kinds = default_kinds(executor="celery") if requested else QUICK_KINDS
    per_cloud = int(requested or len(kinds))
    across = not requested
    seed = _seed()
    sys.stderr.write(
        f"\n[celery kill campaign] {'quick kinds once across the clouds' if across else f'{per_cloud} per cloud'}"
        f", {CONCURRENCY} at a time per cloud, seed {seed} (replay: RESUMABLE_DRILL_SEED={seed})\n"
    )
    report = io.StringIO()

    exit_code = run_drill(
        disruptions_per_cloud=per_cloud,
        clouds=list(FAKE_CLOUDS),
        seed=seed,
        kinds=kinds,
        timeout=2700,
        out=report,
        kinds_across_clouds=across,
        executor="celery",
        concurrency=CONCURRENCY,
    )

    story = report.getvalue()
    sys.stderr.write(story)
    assert exit_code == 0, story
    planned = len(kinds) if across else per_cloud * len(FAKE_CLOUDS)
    assert f"drill PASSED: {planned}/{planned} disruptions ok" in story
    assert "duplicates 0, shutdown cancellations 0, lost runs 0, retries used 0, orphans 0" in story
    assert "CeleryExecutor" in story, "the campaign ran on the production flavour"
    assert "worker recovery:" not in story, "every struck worker came back"
    for kind in kinds:
        assert story.count(f" {kind.value}:") >= (1 if across else len(FAKE_CLOUDS)), kind
