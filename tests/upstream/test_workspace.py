# Licensed under the Apache License, Version 2.0.
"""The documented way to edit the diffs: an unedited workspace exports the same diff."""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from upstream_tests.runner import read_patch
from upstream_tests.suite import SUITES

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="the workspace is a git tree")


def _upstream_tests(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "upstream_tests", *args], cwd=REPO, capture_output=True, text=True, timeout=300
    )


def test_an_unedited_workspace_exports_exactly_the_shipped_test_diff(tmp_path: Path):
    workspace = tmp_path / "pr-tests"
    work = tmp_path / "work"

    laid_out = _upstream_tests("--work", str(work), "workspace", str(workspace))
    assert laid_out.returncode == 0, laid_out.stdout + laid_out.stderr
    assert (workspace / "task-sdk" / "tests" / "task_sdk" / "execution_time" / "test_supervisor.py").is_file()
    status = subprocess.run(
        ["git", "-C", str(workspace), "status", "--porcelain"], capture_output=True, text=True, check=True
    )
    changed = sorted(line.split()[-1] for line in status.stdout.splitlines())
    assert changed == [
        "task-sdk/tests/task_sdk/api/test_client.py",
        "task-sdk/tests/task_sdk/execution_time/test_supervisor.py",
        "task-sdk/tests/task_sdk/execution_time/test_task_runner.py",
    ]

    exported = tmp_path / "exported.patch"
    written = _upstream_tests("export", str(workspace), "--output", str(exported))
    assert written.returncode == 0, written.stdout + written.stderr
    suite = SUITES[importlib.metadata.version("apache-airflow-core")]  # the workspace's release
    assert exported.read_bytes() == read_patch(suite.tests_patch)


def test_a_workspace_needs_an_empty_directory(tmp_path: Path):
    (tmp_path / "something").write_text("x")
    refused = _upstream_tests("--work", str(tmp_path / "work"), "workspace", str(tmp_path))
    assert refused.returncode == 2
    assert "is not empty" in refused.stderr


def test_an_unedited_source_workspace_exports_exactly_the_shipped_source_diff(tmp_path: Path):
    workspace = tmp_path / "pr-source"
    laid_out = _upstream_tests("--work", str(tmp_path / "work"), "workspace", "--source", str(workspace))
    assert laid_out.returncode == 0, laid_out.stdout + laid_out.stderr
    assert (workspace / "airflow-core" / "src" / "airflow" / "models" / "taskinstance.py").is_file()
    assert (workspace / "task-sdk" / "src" / "airflow" / "sdk" / "execution_time" / "supervisor.py").is_file()

    exported = tmp_path / "exported.patch"
    written = _upstream_tests("export", "--source", str(workspace), "--output", str(exported))
    assert written.returncode == 0, written.stdout + written.stderr
    suite = SUITES[importlib.metadata.version("apache-airflow-core")]  # the workspace's release
    assert exported.read_bytes() == read_patch(suite.source_patch)
