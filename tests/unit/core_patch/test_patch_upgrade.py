# Licensed under the Apache License, Version 2.0.
"""
Patch upgrades: a tree patched by another version of the patch (an older provider's) is moved to the
bundled one in one all-or-nothing step, and the applied patch names itself.

The "older" patch is made here from the bundled one: one added line reworded, its git blob id
recomputed, shipped by a provider "0.0.9". To the applier it is a different patch (another hash)
whose text it only knows from the record the older apply left in the target.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from airflow.providers.resumable import __version__
from airflow.providers.resumable.cli import main
from airflow.providers.resumable.core_patch import installation
from airflow.providers.resumable.core_patch.commands import EXIT_OTHER_PATCH
from airflow.providers.resumable.core_patch.installation import (
    RECORD_FILE,
    CorePatch,
    PatchError,
    PatchState,
    apply_patch,
    bundled_patch,
    inspect_target,
    revert_patch,
    target_path,
)
from airflow.providers.resumable.core_patch.unified_diff import (
    Direction,
    apply_file_patch,
    git_blob_id,
    parse_unified_diff,
)
from airflow.providers.resumable.doctor import check_patch
from tests.unit.core_patch.conftest import TreeFactory, digests

REWORDED_FILE = "airflow-core/src/airflow/utils/state.py"


def older_patch(
    current: CorePatch, release_tree: Path, files: tuple[str, ...] = (REWORDED_FILE,)
) -> CorePatch:
    """
    ``current`` with the first added comment line of each of ``files`` reworded, as a provider 0.0.9.

    :param current: the bundled patch.
    :param release_tree: a pristine tree of its release, to recompute the reworded files' blob ids.
    :param files: the files to reword (upstream layout); those without an added comment stay as they are.
    """
    lines = current.text.splitlines(keepends=True)
    section = None
    for i, line in enumerate(lines):
        if line.startswith(b"--- a/"):
            section = line[len(b"--- a/") :].strip().decode()
        elif section in files and line.startswith(b"+") and b"#" in line and line.endswith(b"\n"):
            lines[i] = line[:-1] + b" (older wording)\n"
            section = None
    text = b"".join(lines)
    for stale in parse_unified_diff(text):
        release = target_path(release_tree, stale.path).read_bytes()
        patched = apply_file_patch(release, dataclasses.replace(stale, new_blob=None), Direction.FORWARD)
        assert stale.new_blob is not None
        text = text.replace(stale.new_blob.encode(), git_blob_id(patched).encode())
    return dataclasses.replace(current, text=text, provider_version="0.0.9")


@pytest.fixture
def versions_tree(tree_of: TreeFactory) -> Path:
    return tree_of("3.3.2")


@pytest.fixture
def older(release_tree_of: TreeFactory) -> CorePatch:
    return older_patch(bundled_patch("3.3.2"), release_tree_of("3.3.2"))


def test_the_record_names_the_patch_and_holds_its_text(versions_tree: Path):
    apply_patch(versions_tree)

    record = (versions_tree / RECORD_FILE).read_bytes()
    recorded = CorePatch.from_record(record)

    assert recorded == bundled_patch("3.3.2")
    assert record.endswith(bundled_patch("3.3.2").text + bundled_patch("3.3.2").ui_text)
    assert recorded is not None
    assert recorded.provider_version == __version__


@pytest.mark.parametrize("version", ["3.3.0", "3.3.1", "3.3.2"])
def test_apply_replaces_an_older_patch_and_revert_then_restores_the_release(
    tree_of: TreeFactory, release_tree_of: TreeFactory, version: str
):
    tree = tree_of(version)
    current = bundled_patch(version)
    older = older_patch(current, release_tree_of(version))
    pristine = digests(tree)
    apply_patch(tree, older)
    status = inspect_target(tree)
    assert status.state is PatchState.OTHER_PATCH
    assert status.applied == older

    written = apply_patch(tree)

    assert set(written) == {target_path(tree, REWORDED_FILE), tree / RECORD_FILE}  # the rest is equal
    status = inspect_target(tree)
    assert status.state is PatchState.APPLIED
    assert status.applied is not None
    assert (status.applied.sha256, status.applied.provider_version) == (current.sha256, __version__)
    assert b"(older wording)" not in target_path(tree, REWORDED_FILE).read_bytes()
    assert apply_patch(tree) == []

    revert_patch(tree)
    assert digests(tree) == pristine


def test_revert_removes_an_older_patch_this_provider_does_not_ship(versions_tree: Path, older: CorePatch):
    pristine = digests(versions_tree)
    apply_patch(versions_tree, older)

    revert_patch(versions_tree)

    assert digests(versions_tree) == pristine


def test_an_upgrade_that_changes_every_file_it_can_is_one_step(
    tree_of: TreeFactory, release_tree_of: TreeFactory
):
    tree = tree_of("3.3.1")
    pristine = digests(tree)
    current = bundled_patch("3.3.1")
    older = older_patch(current, release_tree_of("3.3.1"), files=tuple(f.path for f in current.files))
    apply_patch(tree, older)
    reworded = [f for f in inspect_target(tree).files if f.state is PatchState.OTHER_PATCH]
    with_added_comment = [
        f
        for f in current.diff_files
        if any(b"#" in line for h in f.hunks for line in set(h.new_lines) - set(h.old_lines))
    ]
    assert len(reworded) == len(with_added_comment) > 1

    written = apply_patch(tree)

    assert len(written) == len(reworded) + 1
    assert inspect_target(tree).state is PatchState.APPLIED
    revert_patch(tree)
    assert digests(tree) == pristine


def test_a_write_failure_mid_upgrade_leaves_the_older_patch_intact(
    tree_of: TreeFactory, release_tree_of: TreeFactory, monkeypatch: pytest.MonkeyPatch
):
    tree = tree_of("3.3.2")
    older = older_patch(bundled_patch("3.3.2"), release_tree_of("3.3.2"))
    apply_patch(tree, older)
    with_older = digests(tree)
    real_write = installation._atomic_write

    def failing_second_write(path: Path, content: bytes) -> None:
        # The reworded file is written first, the record second: fail on the record.
        if path.name == RECORD_FILE.name:
            raise OSError(28, "No space left on device")
        real_write(path, content)

    monkeypatch.setattr(installation, "_atomic_write", failing_second_write)
    with pytest.raises(PatchError, match="No space left on device"):
        apply_patch(tree)

    assert digests(tree) == with_older
    status = inspect_target(tree)
    assert status.state is PatchState.OTHER_PATCH
    assert status.applied == older


def test_a_conflict_mid_upgrade_writes_nothing(versions_tree: Path, older: CorePatch):
    apply_patch(versions_tree, older)
    victim = target_path(versions_tree, "task-sdk/src/airflow/sdk/exceptions.py")
    victim.write_bytes(victim.read_bytes() + b"# a local edit\n")
    before = digests(versions_tree)

    with pytest.raises(PatchError, match="Nothing was written"):
        apply_patch(versions_tree)

    assert digests(versions_tree) == before


def test_a_damaged_record_is_not_used_to_revert_anything(versions_tree: Path, older: CorePatch):
    apply_patch(versions_tree, older)
    record = versions_tree / RECORD_FILE
    record.write_bytes(record.read_bytes()[:-200])  # e.g. a truncated copy
    before = digests(versions_tree)

    assert inspect_target(versions_tree).state is PatchState.CONFLICT
    with pytest.raises(PatchError, match="Nothing was written"):
        apply_patch(versions_tree)

    assert digests(versions_tree) == before


def test_a_record_left_behind_by_another_release_is_ignored(versions_tree: Path):
    # pip replacing Airflow 3.3.1 with 3.3.2 leaves the 3.3.1 record (pip does not know the file).
    (versions_tree / RECORD_FILE).write_bytes(bundled_patch("3.3.1").record())

    assert inspect_target(versions_tree).state is PatchState.NOT_APPLIED
    apply_patch(versions_tree)
    assert CorePatch.from_record((versions_tree / RECORD_FILE).read_bytes()) == bundled_patch("3.3.2")


def test_files_patched_without_a_matching_record_read_applied_and_apply_records_it(
    versions_tree: Path, older: CorePatch, capsys: pytest.CaptureFixture[str]
):
    # An upgrade killed after its last file and before the record: the files are the bundled
    # patch's, the record still names the older one.
    apply_patch(versions_tree, older)
    reworded = target_path(versions_tree, REWORDED_FILE)
    ours = next(f for f in bundled_patch("3.3.2").diff_files if f.path == REWORDED_FILE)
    theirs = next(f for f in older.diff_files if f.path == REWORDED_FILE)
    release = apply_file_patch(reworded.read_bytes(), theirs, Direction.REVERSE)
    reworded.write_bytes(apply_file_patch(release, ours, Direction.FORWARD))

    status = inspect_target(versions_tree)
    assert status.state is PatchState.APPLIED
    assert status.applied is not None
    assert status.applied.provider_version == "unrecorded"

    code = main(["patch", "apply", "--target", str(versions_tree)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(
        f"Recorded airflow-3.3.2-checkpointed.patch (sha256 {bundled_patch('3.3.2').sha256[:12]}"
    )
    assert apply_patch(versions_tree) == []
    status = inspect_target(versions_tree)
    assert status.applied is not None
    assert status.applied.provider_version == __version__


def test_status_and_doctor_name_the_applied_patch_and_apply_says_what_it_replaced(
    versions_tree: Path, older: CorePatch, capsys: pytest.CaptureFixture[str]
):
    current = bundled_patch("3.3.2")
    apply_patch(versions_tree, older)
    target = ("--target", str(versions_tree))

    code = main(["patch", "status", *target])
    out = capsys.readouterr().out
    assert code == EXIT_OTHER_PATCH
    assert f"another version applied: airflow-3.3.2-checkpointed.patch (sha256 {older.sha256[:12]}" in out
    assert "airflow-provider-resumable 0.0.9" in out
    assert f"sha256 {current.sha256[:12]}" in out
    doctor = check_patch(versions_tree)
    assert doctor.ok is False
    assert older.sha256[:12] in doctor.detail
    assert "patch apply" in doctor.remedy

    code = main(["patch", "apply", *target])
    out = capsys.readouterr().out
    assert code == 0
    assert f"Replaced airflow-3.3.2-checkpointed.patch (sha256 {older.sha256[:12]}" in out
    assert f"with airflow-3.3.2-checkpointed.patch (sha256 {current.sha256[:12]}" in out

    code = main(["patch", "status", *target])
    out = capsys.readouterr().out
    assert code == 0
    assert f"sha256 {current.sha256[:12]}, airflow-provider-resumable {__version__})" in out
    doctor = check_patch(versions_tree)
    assert doctor.ok is True
    assert current.sha256[:12] in doctor.detail
