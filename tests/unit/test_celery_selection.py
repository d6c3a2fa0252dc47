# Licensed under the Apache License, Version 2.0.
"""make test leaves the Celery flavour to make test-celery, and make test-celery selects every Celery test."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOTH_FLAVOURS = ("tests/system/test_worker_loss.py", "tests/system/test_checkpoint_resume.py")


def _collected(*args: str, celery: bool) -> list[str]:
    env = {name: value for name, value in os.environ.items() if name != "RESUMABLE_CELERY_SYSTEM_TESTS"}
    if celery:
        env["RESUMABLE_CELERY_SYSTEM_TESTS"] = "1"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:xdist",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
            *args,
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line for line in result.stdout.splitlines() if "::" in line]


def _flavour(test: str) -> str | None:
    """The stack flavour a test id names first in its parameters (``[local]``, ``[celery-worker-lost]``)."""
    match = re.search(r"\[(local|celery)(?:-[^\]]*)?\]$", test)
    return match.group(1) if match else None


def test_make_test_runs_the_local_flavours_and_not_the_celery_one() -> None:
    collected = _collected(*BOTH_FLAVOURS, "tests/system/test_celery_disruptions.py", celery=False)
    assert not [test for test in collected if "[celery]" in test or "test_celery_disruptions" in test]
    assert len([test for test in collected if _flavour(test) == "local"]) == 7
    assert len([test for test in collected if test.endswith("[patched]")]) == 2


def test_make_test_celery_selects_the_celery_flavour_and_every_celery_module() -> None:
    collected = _collected("-m", "celery", "tests/system", celery=True)
    by_module: dict[str, int] = {}
    for test in collected:
        module = test.split("::")[0]
        by_module[module] = by_module.get(module, 0) + 1
    assert by_module == {
        "tests/system/test_celery_disruptions.py": 3,
        "tests/system/test_celery_stack.py": 4,
        "tests/system/test_checkpoint_resume.py": 2,
        "tests/system/test_resume_race_celery.py": 2,
        "tests/system/test_worker_loss.py": 7,
    }
    assert all(_flavour(test) == "celery" for test in collected if test.startswith(BOTH_FLAVOURS))
