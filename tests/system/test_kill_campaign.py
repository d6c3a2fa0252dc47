# Licensed under the Apache License, Version 2.0.
"""
The kill campaign: at least 20 seeded disruptions per cloud, each run to completion on a real stack.

Zero duplicates, zero cancellations on shutdown, zero retries used, every run succeeded with the job
its ledger records. The seed is printed (and taken from ``RESUMABLE_DRILL_SEED`` when set), so a
failure replays exactly: ``airflow-resumable drill --seed <seed>``.
"""

from __future__ import annotations

import io
import os
import random
import sys

import pytest

from airflow.providers.resumable.drill.runner import FAKE_CLOUDS, run_drill

pytestmark = pytest.mark.system

DISRUPTIONS_PER_CLOUD = 20


# Three clouds side by side, 20 disruptions each: about 7 minutes on a 2-core machine (a SIGKILL waits
# out the 10 s heartbeat timeout and the 10 s resume).
@pytest.mark.timeout(1500)
def test_kill_campaign_every_cloud_exactly_once_no_cancel_no_retry():
    seed = int(os.environ.get("RESUMABLE_DRILL_SEED") or random.SystemRandom().randrange(2**31))
    sys.stderr.write(f"\n[kill campaign] seed {seed} (replay: RESUMABLE_DRILL_SEED={seed})\n")
    report = io.StringIO()

    exit_code = run_drill(
        disruptions_per_cloud=DISRUPTIONS_PER_CLOUD,
        clouds=list(FAKE_CLOUDS),
        seed=seed,
        timeout=1200,
        out=report,
    )

    story = report.getvalue()
    sys.stderr.write(story)
    assert exit_code == 0, story
    assert f"drill PASSED: {DISRUPTIONS_PER_CLOUD * len(FAKE_CLOUDS)}/" in story
    assert "duplicates 0, shutdown cancellations 0, lost runs 0, retries used 0" in story
