# Licensed under the Apache License, Version 2.0.
"""
The kill campaign: seeded disruptions per cloud, each run to completion on a real stack.

Zero duplicates, zero cancellations on shutdown, zero retries used, zero orphaned jobs; every run
ends as its disruption demands (success with the job its ledger records; after a person's decision,
failure with its one job cancelled once). The seed is printed (and taken from
``RESUMABLE_DRILL_SEED`` when set), so a failure replays exactly: ``airflow-resumable drill --seed
<seed>``.

``make test`` runs every default kind once, dealt across the clouds by a fresh seed (each kind meets
every cloud over successive runs; the contract suite drives each cloud's client through the fault
kinds on every run), except the kinds of the hardening work (:data:`ON_EVERY_CLOUD`), which run on
every cloud each time; ``make campaign`` runs the full campaign, ``RESUMABLE_CAMPAIGN_PER_CLOUD``
(20) per cloud.
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

ON_EVERY_CLOUD = (
    DisruptionKind.SIGTERM_DURING_STARTUP,
    DisruptionKind.HEARTBEAT_STALL,
    DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED,
    DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED,
)
"""Kinds whose outcome rests on each cloud's own cancel and status semantics (a thawed attempt that
must not cancel, the job reaper's cancel, a refused cancel) or on the core patch's start-up path:
the quick campaign runs them on every cloud, not dealt to one."""


@pytest.mark.timeout(2400)
def test_kill_campaign_every_cloud_exactly_once_no_cancel_no_retry_no_orphan():
    requested = os.environ.get("RESUMABLE_CAMPAIGN_PER_CLOUD")
    per_cloud = int(requested or len(default_kinds()))
    across = not requested  # make test: every kind once in all
    seed = int(os.environ.get("RESUMABLE_DRILL_SEED") or random.SystemRandom().randrange(2**31))
    sys.stderr.write(
        f"\n[kill campaign] {'every kind once across the clouds, the hardening kinds on each' if across else f'{per_cloud} per cloud'}, seed {seed} (replay: RESUMABLE_DRILL_SEED={seed})\n"
    )
    report = io.StringIO()

    exit_code = run_drill(
        disruptions_per_cloud=per_cloud,
        clouds=list(FAKE_CLOUDS),
        seed=seed,
        timeout=2100,
        out=report,
        kinds_across_clouds=across,
        on_every_cloud=ON_EVERY_CLOUD if across else (),
    )

    story = report.getvalue()
    sys.stderr.write(story)
    assert exit_code == 0, story
    everywhere = [kind for kind in default_kinds() if kind in ON_EVERY_CLOUD] if across else []
    planned = (
        len(default_kinds()) + len(everywhere) * (len(FAKE_CLOUDS) - 1)
        if across
        else per_cloud * len(FAKE_CLOUDS)
    )
    assert f"drill PASSED: {planned}/" in story
    assert "duplicates 0, shutdown cancellations 0, lost runs 0, retries used 0, orphans 0" in story
    # Every default kind ran (the plan draws each kind once before repeating one), on every cloud
    # unless dealt across them; the hardening kinds on every cloud either way.
    for kind in default_kinds():
        if across and kind not in everywhere:
            assert f" {kind.value}: ok" in story, kind
            continue
        for cloud in FAKE_CLOUDS:
            assert f" {cloud} {kind.value}: ok" in story, (kind, cloud)


@pytest.mark.timeout(2400)
@pytest.mark.skipif(
    not os.environ.get("RESUMABLE_CAMPAIGN_PER_CLOUD"),
    reason="the deferrable campaign runs in make campaign (its jobs run 75 s under triggerer strikes); "
    "make test runs every deferrable scenario once in tests/system/test_deferrable.py",
)
def test_deferrable_kill_campaign_triggerers_killed_stopped_and_frozen_exactly_once_no_cancel_no_retry():
    """The same campaign with ``deferrable=True``: the triggerer kinds, and those of the submit window."""
    kinds = default_kinds(deferrable=True)
    per_cloud = int(os.environ.get("RESUMABLE_CAMPAIGN_PER_CLOUD") or len(kinds))
    seed = int(os.environ.get("RESUMABLE_DRILL_SEED") or random.SystemRandom().randrange(2**31))
    sys.stderr.write(f"\n[deferrable kill campaign] {per_cloud} per cloud, seed {seed}\n")
    report = io.StringIO()

    exit_code = run_drill(
        disruptions_per_cloud=per_cloud,
        clouds=list(FAKE_CLOUDS),
        seed=seed,
        timeout=2100,
        out=report,
        deferrable=True,
    )

    story = report.getvalue()
    sys.stderr.write(story)
    assert exit_code == 0, story
    assert f"drill PASSED: {per_cloud * len(FAKE_CLOUDS)}/" in story
    assert "duplicates 0, shutdown cancellations 0, lost runs 0, retries used 0, orphans 0" in story
    for kind in ("triggerer_sigkill", "triggerer_sigterm", "triggerer_freeze_moves"):
        assert story.count(f" {kind}:") >= len(FAKE_CLOUDS) or per_cloud < len(kinds), kind
