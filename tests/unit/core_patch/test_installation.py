# Licensed under the Apache License, Version 2.0.
"""The applier's mechanics, against a tree unpacked from the 3.3.2 / 1.3.2 sdists (every release: test_patch_versions)."""

from __future__ import annotations

import py_compile
import re
from pathlib import Path

import pytest

from airflow.providers.resumable.core_patch.installation import (
    RECORD_FILE,
    PatchError,
    PatchState,
    apply_patch,
    bundled_patch,
    inspect_target,
    remove_bytecode,
    revert_patch,
    target_path,
)
from airflow.providers.resumable.core_patch.unified_diff import Direction, apply_file_patch
from tests.unit.core_patch.conftest import digests as _digests

PATCH = bundled_patch("3.3.2")


def _set_version(root: Path, relative: str, version: str) -> None:
    path = root / relative
    path.write_text(re.sub(r'__version__ = "[^"]+"', f'__version__ = "{version}"', path.read_text()))


def test_apply_then_status_then_second_apply_then_revert_is_byte_identical(pristine_tree: Path):
    before = _digests(pristine_tree)
    assert inspect_target(pristine_tree).state is PatchState.NOT_APPLIED

    written = apply_patch(pristine_tree)

    assert len(written) == len(PATCH.files) + 1  # and the record
    assert inspect_target(pristine_tree).state is PatchState.APPLIED
    after_apply = _digests(pristine_tree)
    assert after_apply != before
    assert apply_patch(pristine_tree) == []
    assert _digests(pristine_tree) == after_apply

    assert len(revert_patch(pristine_tree)) == len(written)
    assert _digests(pristine_tree) == before
    assert inspect_target(pristine_tree).state is PatchState.NOT_APPLIED
    assert revert_patch(pristine_tree) == []


def test_patched_tree_provides_what_the_operators_check_for(pristine_tree: Path):
    apply_patch(pristine_tree)
    airflow = pristine_tree / "airflow"
    assert "class AirflowTaskCheckpointed(" in (airflow / "sdk/exceptions.py").read_text()
    assert "class CheckpointTask(" in (airflow / "sdk/execution_time/comms.py").read_text()
    assert 'CHECKPOINTED = "checkpointed"' in (airflow / "utils/state.py").read_text()


@pytest.mark.parametrize(
    ("relative", "version", "named"),
    [
        ("airflow/__init__.py", "3.3.1", "apache-airflow-core 3.3.1 and apache-airflow-task-sdk 1.3.2"),
        ("airflow/sdk/__init__.py", "1.3.3", "apache-airflow-core 3.3.2 and apache-airflow-task-sdk 1.3.3"),
    ],
)
def test_a_tree_of_another_version_is_refused_and_nothing_is_written(
    pristine_tree: Path, relative: str, version: str, named: str
):
    _set_version(pristine_tree, relative, version)
    before = _digests(pristine_tree)

    for action in (apply_patch, revert_patch, inspect_target):
        with pytest.raises(PatchError, match=re.escape(named)):
            action(pristine_tree)

    assert _digests(pristine_tree) == before


def test_a_tree_without_airflow_is_refused(tmp_path: Path):
    with pytest.raises(PatchError, match="does not contain apache-airflow-core"):
        apply_patch(tmp_path)


def test_a_tree_where_one_hunk_cannot_apply_is_left_untouched(pristine_tree: Path):
    victim = target_path(pristine_tree, PATCH.diff_files[-1].path)
    hunk = PATCH.diff_files[-1].hunks[-1]
    lines = victim.read_bytes().splitlines(keepends=True)
    lines[hunk.old_start - 1] = b"# changed by someone else\n"
    victim.write_bytes(b"".join(lines))
    before = _digests(pristine_tree)

    with pytest.raises(PatchError, match=re.escape(str(victim))):
        apply_patch(pristine_tree)

    assert inspect_target(pristine_tree).state is PatchState.CONFLICT
    assert _digests(pristine_tree) == before


def test_an_interrupted_apply_reads_partially_applied_and_apply_finishes_it(pristine_tree: Path):
    first = PATCH.diff_files[0]
    path = target_path(pristine_tree, first.path)
    path.write_bytes(apply_file_patch(path.read_bytes(), first, Direction.FORWARD))

    status = inspect_target(pristine_tree)
    assert status.state is PatchState.PARTIALLY_APPLIED
    assert [f.path for f in status.in_state(PatchState.APPLIED)] == [path]

    assert len(apply_patch(pristine_tree)) == len(PATCH.files) - 1 + 1  # the rest, and the record
    assert inspect_target(pristine_tree).state is PatchState.APPLIED
    assert (pristine_tree / RECORD_FILE).is_file()


def _compile(source: Path, optimize: int = -1) -> Path:
    cached = py_compile.compile(str(source), optimize=optimize, doraise=True)
    assert cached is not None
    return Path(cached)


def test_apply_and_revert_leave_no_stale_bytecode(pristine_tree: Path):
    state_py = pristine_tree / "airflow/utils/state.py"
    cached = [_compile(state_py, optimize=level) for level in (-1, 1, 2)]
    untouched = _compile(pristine_tree / "airflow/__init__.py")
    assert all(p.is_file() for p in cached)

    apply_patch(pristine_tree)
    assert not any(p.exists() for p in cached)
    assert untouched.is_file()

    cached = [_compile(state_py)]
    revert_patch(pristine_tree)
    assert not cached[0].exists()


def test_file_modes_are_kept(pristine_tree: Path):
    state_py = pristine_tree / "airflow/utils/state.py"
    state_py.chmod(0o640)
    apply_patch(pristine_tree)
    assert state_py.stat().st_mode & 0o777 == 0o640


def test_a_write_failure_restores_the_files_already_written(
    pristine_tree: Path, monkeypatch: pytest.MonkeyPatch
):
    from airflow.providers.resumable.core_patch import installation

    before = _digests(pristine_tree)
    real_write = installation._atomic_write
    calls = {"n": 0}

    def failing_third_write(path: Path, content: bytes) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        real_write(path, content)

    monkeypatch.setattr(installation, "_atomic_write", failing_third_write)
    with pytest.raises(PatchError, match="No space left on device"):
        apply_patch(pristine_tree)

    assert _digests(pristine_tree) == before


def test_remove_bytecode_ignores_files_that_are_not_python(tmp_path: Path):
    (tmp_path / "__pycache__").mkdir()
    unrelated = tmp_path / "__pycache__" / "config.cpython-311.pyc"
    unrelated.write_bytes(b"")
    assert remove_bytecode(tmp_path / "config.yml") == []
    assert unrelated.exists()


def test_a_file_changed_between_inspection_and_writing_is_not_overwritten(
    pristine_tree: Path, monkeypatch: pytest.MonkeyPatch
):
    from airflow.providers.resumable.core_patch import installation

    victim = target_path(pristine_tree, PATCH.files[-1].path)
    real_check = installation._check_writable

    def concurrent_edit_then_check(paths):
        # Runs after every new content was computed, before the first write: like a pip install.
        victim.write_bytes(victim.read_bytes() + b"# installed meanwhile\n")
        real_check(paths)

    monkeypatch.setattr(installation, "_check_writable", concurrent_edit_then_check)
    with pytest.raises(PatchError, match="changed while this ran"):
        apply_patch(pristine_tree)
    monkeypatch.undo()

    assert victim.read_bytes().endswith(b"# installed meanwhile\n")
    assert inspect_target(pristine_tree).in_state(PatchState.APPLIED) == []
    assert not (pristine_tree / RECORD_FILE).exists()
