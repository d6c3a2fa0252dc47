# Licensed under the Apache License, Version 2.0.
"""
The bundled patch of every supported Airflow release, against that release's pristine sdists.

For each release: the patch applies, a second apply is a no-op, revert restores every byte, and the
patch of any other release is refused with nothing written; a release without a patch is refused
naming the supported ones.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from pathlib import Path

import pytest

from airflow.providers.resumable import __version__
from airflow.providers.resumable.cli import main
from airflow.providers.resumable.core_patch.installation import (
    RECORD_FILE,
    RELEASES,
    PatchError,
    PatchState,
    apply_patch,
    bundled_patch,
    bundled_patches,
    inspect_target,
    revert_patch,
)
from airflow.providers.resumable.core_patch.unified_diff import FilePatch
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from tests.unit.core_patch.conftest import TreeFactory, digests

VERSIONS = list(RELEASES)
SUPPORTED_NAMED = "3.3.0 (task SDK 1.3.0), 3.3.1 (task SDK 1.3.1), 3.3.2 (task SDK 1.3.2)"


def _set_version(root: Path, relative: str, version: str) -> None:
    path = root / relative
    path.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', path.read_text()))


def _changes(file: FilePatch) -> Counter[tuple[str, bytes]]:
    """The lines a file's hunks remove and add, wherever they are."""
    changed: Counter[tuple[str, bytes]] = Counter()
    for hunk in file.hunks:
        changed.update(("-", line) for line in Counter(hunk.old_lines) - Counter(hunk.new_lines))
        changed.update(("+", line) for line in Counter(hunk.new_lines) - Counter(hunk.old_lines))
    return changed


def test_one_patch_per_release_each_naming_its_release_and_carrying_blob_ids():
    patches = bundled_patches()

    assert [p.airflow_version for p in patches] == ["3.3.0", "3.3.1", "3.3.2"]
    assert len({p.sha256 for p in patches}) == len(patches)
    for patch in patches:
        header = patch.text.split(b"\ndiff --git ", 1)[0]
        assert f"apache-airflow-core {patch.airflow_version}".encode() in header
        assert f"apache-airflow-task-sdk {patch.task_sdk_version}".encode() in header
        assert all(f.old_blob and f.new_blob for f in patch.files), patch.name


def test_the_ported_patches_make_the_changes_of_the_3_3_2_patch():
    reference = {f.path: _changes(f) for f in bundled_patch("3.3.2").diff_files}
    for version in ("3.3.0", "3.3.1"):
        ported = {f.path: _changes(f) for f in bundled_patch(version).diff_files}
        assert ported.keys() == reference.keys(), version
        differing = sorted(path for path in reference if ported[path] != reference[path])
        # 3.3.0's mark_tasks.py predates the helper the 3.3.2 hunks touch, and its supervisor starts
        # the task process without a process group of its own (see the patch header).
        expected = (
            [
                "airflow-core/src/airflow/api/common/mark_tasks.py",
                "task-sdk/src/airflow/sdk/execution_time/supervisor.py",
            ]
            if version == "3.3.0"
            else []
        )
        assert differing == expected, version


def test_every_task_state_store_key_is_one_path_segment(release_tree_of: TreeFactory):
    # 3.3.0's Execution API routes /{task_instance_id}/{key}; 3.3.1 changed it to {key:path}.
    route = (
        release_tree_of("3.3.0") / "airflow/api_fastapi/execution_api/routes/task_state_store.py"
    ).read_text()
    assert '@router.get("/{task_instance_id}/{key}")' in route
    reserved = {
        key.decode()
        for p in bundled_patches()
        for key in re.findall(rb'^\+\s*\w+_KEY = "([^"]+)"', p.text, re.M)
    }
    assert reserved == {
        "airflow.checkpoint_data",
        "airflow.resume_on_worker_loss",
        "airflow.worker_loss_checkpoints",
    }

    for key in {LEDGER_KEY, *reserved}:
        assert "/" not in key, key


@pytest.mark.parametrize("version", VERSIONS)
def test_apply_then_second_apply_then_revert_is_byte_identical(tree_of: TreeFactory, version: str):
    tree = tree_of(version)
    patch = bundled_patch(version)
    before = digests(tree)
    assert inspect_target(tree).state is PatchState.NOT_APPLIED

    written = apply_patch(tree)

    assert len(written) == len(patch.files) + 1  # every file and the record
    status = inspect_target(tree)
    assert status.state is PatchState.APPLIED
    assert status.applied is not None
    assert (status.applied.sha256, status.applied.provider_version) == (patch.sha256, __version__)
    airflow = tree / "airflow"
    assert "class AirflowTaskCheckpointed(" in (airflow / "sdk/exceptions.py").read_text()
    assert "class CheckpointTask(" in (airflow / "sdk/execution_time/comms.py").read_text()
    assert 'CHECKPOINTED = "checkpointed"' in (airflow / "utils/state.py").read_text()
    for path in written:
        if path.suffix == ".py":
            compile(path.read_bytes(), str(path), "exec")  # the port is at least valid Python
    after_apply = digests(tree)

    assert apply_patch(tree) == []
    assert digests(tree) == after_apply

    assert len(revert_patch(tree)) == len(written)
    assert digests(tree) == before
    assert not (tree / RECORD_FILE).exists()
    assert revert_patch(tree) == []


@pytest.mark.parametrize(("version", "other"), list(itertools.permutations(VERSIONS, 2)))
def test_the_patch_of_another_release_is_refused_and_nothing_is_written(
    tree_of: TreeFactory, version: str, other: str
):
    tree = tree_of(version)
    before = digests(tree)

    for action in (apply_patch, revert_patch, inspect_target):
        with pytest.raises(PatchError, match=re.escape(f"apache-airflow-core {version} (")):
            action(tree, bundled_patch(other))

    assert digests(tree) == before


@pytest.mark.parametrize(
    ("core", "sdk"),
    [("3.3.3", "1.3.3"), ("3.4.0", "1.4.0"), ("3.2.9", "1.2.9"), ("3.3.2", "1.3.1")],
    ids=["newer-patch-release", "next-minor", "older-minor", "mismatched-pair"],
)
def test_a_release_without_a_patch_is_refused_naming_the_supported_ones(
    tree_of: TreeFactory, capsys: pytest.CaptureFixture[str], core: str, sdk: str
):
    tree = tree_of("3.3.2")
    _set_version(tree, "airflow/__init__.py", core)
    _set_version(tree, "airflow/sdk/__init__.py", sdk)
    before = digests(tree)

    for action in (apply_patch, revert_patch, inspect_target):
        with pytest.raises(PatchError, match=re.escape(SUPPORTED_NAMED)):
            action(tree)
    code = main(["patch", "apply", "--target", str(tree)])
    _, err = capsys.readouterr()

    assert code == 3
    assert f"apache-airflow-core {core} and apache-airflow-task-sdk {sdk}" in err
    assert SUPPORTED_NAMED in err
    assert "Nothing was written" in err
    assert "up_for_reschedule" in err
    assert digests(tree) == before
