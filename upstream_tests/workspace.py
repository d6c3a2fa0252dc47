# Licensed under the Apache License, Version 2.0.
"""
Edit the test diff as a git tree: ``workspace DIR`` lays it out, ``export DIR`` writes it back.

The workspace is in upstream repository layout (``DIR/task-sdk/tests/...``) with the release tests
committed and the test diff applied on top, uncommitted, so ``git diff`` in it *is* the test diff.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from upstream_tests.runner import (
    Interpreter,
    UpstreamTestsError,
    apply_tests_patch,
    fetch_sdist,
    read_tests_patch,
    suite_for,
    unpack,
)
from upstream_tests.suite import TESTS_PATCH_PREFIX, UpstreamSuite


def _git(directory: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise UpstreamTestsError(f"git {' '.join(args)} failed in {directory}: {result.stderr.strip()}")
    return result.stdout


def create_workspace(python: Path, directory: Path, cache: Path) -> UpstreamSuite:
    """Lay out the release tests in ``directory`` as a git tree and apply the test diff on top."""
    if directory.exists() and any(directory.iterdir()):
        raise UpstreamTestsError(f"{directory} is not empty; give a new directory")
    suite = suite_for(Interpreter.inspect(python))
    tarball = fetch_sdist(python, suite, cache)
    with tempfile.TemporaryDirectory() as scratch:
        sdist = unpack(tarball, Path(scratch), suite)
        component = directory / TESTS_PATCH_PREFIX
        component.mkdir(parents=True)
        shutil.copytree(sdist / "tests", component / "tests")
    _git(directory, "init", "--quiet")
    _git(directory, "add", "--all")
    identity = ["-c", "user.name=upstream-tests", "-c", "user.email=upstream-tests@localhost"]
    _git(directory, *identity, "commit", "--quiet", "-m", f"release tests of {suite.sdist_requirement}")
    apply_tests_patch(directory / TESTS_PATCH_PREFIX, read_tests_patch(suite))
    return suite


def export_workspace(python: Path, directory: Path, output: Path | None = None) -> Path:
    """
    Write ``git diff`` of the workspace back into the test diff, keeping its header.

    :param output: where to write it; by default the test diff this checkout ships.
    """
    suite = suite_for(Interpreter.inspect(python))
    body = _git(directory, "diff", "--full-index").encode()
    if not body:
        raise UpstreamTestsError(f"{directory} has no changes against the release tests")
    text = read_tests_patch(suite)
    header = text[: text.find(b"diff --git")] if b"diff --git" in text else b""
    target = output or Path(
        str(resources.files("airflow.providers.resumable.core_patch").joinpath(suite.tests_patch))
    )
    target.write_bytes(header + body)
    return target
