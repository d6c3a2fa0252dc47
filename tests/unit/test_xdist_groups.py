# Licensed under the Apache License, Version 2.0.
"""The xdist groups of tests/conftest.py reach pytest-xdist's scheduler (make test relies on them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_test_of_a_group_reaches_the_scheduler_with_its_group():
    # The scheduler groups by a "@group" suffix of the node id. Without it every test of a group is
    # a unit of its own: a worker drawing one starts a stack of its own, and tests that must share
    # one worker do not. A test of the campaign group (skipped here: it is the costly one) shows it.
    env = {name: value for name, value in os.environ.items() if name != "RESUMABLE_CAMPAIGN_PER_CLOUD"}
    result = subprocess.run(
        [
            *(
                sys.executable,
                "-m",
                "pytest",
                "-n",
                "1",
                "--dist",
                "loadgroup",
                "-v",
                "-p",
                "no:cacheprovider",
            ),
            *("tests/system/test_kill_campaign.py", "-k", "deferrable_kill_campaign"),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (
        "test_deferrable_kill_campaign_triggerers_killed_stopped_and_frozen_exactly_once_no_cancel_no_retry@campaign"
        in (result.stdout)
    ), result.stdout
