# Licensed under the Apache License, Version 2.0.
"""
Edit the pull request as a git tree: ``workspace DIR`` lays it out, ``export DIR`` writes it back.

The workspace is in upstream repository layout with the release files committed and the diff
applied on top, uncommitted, so ``git diff --full-index`` in it *is* the diff:

- the test diff (default): ``DIR/task-sdk/tests/...`` from the task SDK sdist;
- the source diff (``--source``): ``DIR/airflow-core/src/...`` and ``DIR/task-sdk/src/...`` from
  the two sdists. After exporting it, ``airflow-resumable patch apply`` moves a venv patched with
  the previous version of the diff to the new one (the previous one is recorded in the venv).
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
    apply_patch_text,
    fetch_sdist,
    read_patch,
    suite_for,
    unpack,
)
from upstream_tests.suite import SOURCE_LAYOUT, TESTS_PATCH_PREFIX, UpstreamSuite


def _git(directory: Path, *args: str) -> str:
    result = subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise UpstreamTestsError(f"git {' '.join(args)} failed in {directory}: {result.stderr.strip()}")
    return result.stdout


def patch_name(suite: UpstreamSuite, *, source: bool) -> str:
    """The diff a workspace edits: the source diff or the test diff."""
    return suite.source_patch if source else suite.tests_patch


def create_workspace(python: Path, directory: Path, cache: Path, *, source: bool = False) -> UpstreamSuite:
    """
    Lay out the release files in ``directory`` as a git tree and apply the diff on top.

    :param source: the source diff (both sdists' ``src``) instead of the test diff.
    """
    if directory.exists() and any(directory.iterdir()):
        raise UpstreamTestsError(f"{directory} is not empty; give a new directory")
    suite = suite_for(Interpreter.inspect(python))
    # Which sdist fills which directory of the workspace, and from which of its own directories.
    layout = (
        {top: (getattr(suite, sdist), "src") for top, sdist in SOURCE_LAYOUT.items()}
        if source
        else {TESTS_PATCH_PREFIX.rstrip("/"): (suite.task_sdk, "tests")}
    )
    with tempfile.TemporaryDirectory() as scratch:
        for top, (sdist, inner) in layout.items():
            unpacked = unpack(fetch_sdist(python, sdist, cache), Path(scratch) / top, sdist)
            (directory / top).mkdir(parents=True)
            shutil.copytree(unpacked / inner, directory / top / inner)
    _git(directory, "init", "--quiet")
    _git(directory, "add", "--all")
    identity = ["-c", "user.name=upstream-tests", "-c", "user.email=upstream-tests@localhost"]
    release = ", ".join(sdist.requirement for sdist, _ in layout.values())
    _git(directory, *identity, "commit", "--quiet", "-m", f"release files of {release}")
    apply_patch_text(directory, read_patch(patch_name(suite, source=source)))
    return suite


def export_workspace(
    python: Path, directory: Path, output: Path | None = None, *, source: bool = False
) -> Path:
    """
    Write ``git diff`` of the workspace back into the diff, keeping its header.

    :param output: where to write it; by default the diff this checkout ships.
    :param source: the workspace holds the source diff, not the test diff.
    """
    suite = suite_for(Interpreter.inspect(python))
    body = _git(directory, "diff", "--full-index").encode()
    if not body:
        raise UpstreamTestsError(f"{directory} has no changes against the release files")
    name = patch_name(suite, source=source)
    text = read_patch(name)
    header = text[: text.find(b"diff --git")] if b"diff --git" in text else b""
    target = output or Path(str(resources.files("airflow.providers.resumable.core_patch").joinpath(name)))
    target.write_bytes(header + body)
    return target
