# Licensed under the Apache License, Version 2.0.
"""
The bundled core patch against one installed Airflow: where it is, which version, and its state.

What it is for: ``airflow-resumable patch status|apply|revert``. A target is a directory holding
the ``airflow`` package of apache-airflow-core and ``airflow/sdk`` of apache-airflow-task-sdk
(a site-packages, or the two sdists' ``src`` trees unpacked into one directory).

How it works: the diff is in upstream repository layout; ``airflow-core/src/`` and
``task-sdk/src/`` both map onto the target. The versions are read from the tree itself
(``__version__`` in ``airflow/__init__.py`` and ``airflow/sdk/__init__.py``, never by importing
them) and checked before anything else. Each file is then classified by whether the diff applies to
it forward (*pristine*) or in reverse (*patched*); see :class:`PatchState` for how the files add up.
``apply`` and ``revert`` compute every new file in memory first and write nothing unless all of them
are ready; each file is replaced atomically (temporary file + ``os.replace``, mode kept), files
already written are restored if a later write fails, and the ``__pycache__`` entries of every
touched module are deleted.

What it does not do: it does not lock the tree against a concurrent pip install, and it does not
update the dist-info ``RECORD`` hashes (pip uses them only to uninstall, by path).
"""

from __future__ import annotations

import importlib.util
import os
import re
import sysconfig
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path

from airflow.providers.resumable.core_patch.unified_diff import (
    Direction,
    FilePatch,
    HunkMismatch,
    applies,
    apply_file_patch,
    parse_unified_diff,
)

PATCH_RESOURCE = "airflow-3.3.2-checkpointed.patch"
"""The bundled diff, package data of :mod:`airflow.providers.resumable.core_patch`."""

SUPPORTED_VERSIONS: dict[str, str] = {"apache-airflow-core": "3.3.2", "apache-airflow-task-sdk": "1.3.2"}
"""The distributions (and their versions) the bundled diff was written against."""

_VERSION_FILES = {
    "apache-airflow-core": Path("airflow/__init__.py"),
    "apache-airflow-task-sdk": Path("airflow/sdk/__init__.py"),
}
_LAYOUT_PREFIXES = ("airflow-core/src/", "task-sdk/src/")
_VERSION_ASSIGNMENT = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


class PatchError(RuntimeError):
    """The patch cannot be applied, reverted or inspected here; the message says why and what to do."""


class PatchState(Enum):
    """
    Where a target stands with respect to the bundled patch.

    ``APPLIED``: every file is the patched file. ``NOT_APPLIED``: every file is the release file.
    ``PARTIALLY_APPLIED``: some files are patched and the others are the release files (an
    interrupted apply or revert; running either again finishes it). ``CONFLICT``: at least one file
    is neither (edited by something else); nothing will be written. A tree of another version is
    refused before any file is looked at.
    """

    APPLIED = "applied"
    NOT_APPLIED = "not applied"
    PARTIALLY_APPLIED = "partially applied"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class FileStatus:
    """
    One patched file in the target.

    :param patch: the file's hunks.
    :param path: where the file is in the target.
    :param state: ``APPLIED``, ``NOT_APPLIED`` or ``CONFLICT`` for this one file.
    """

    patch: FilePatch
    path: Path
    state: PatchState


@dataclass(frozen=True)
class TargetStatus:
    """
    The bundled patch's state in one target.

    :param root: the target directory.
    :param versions: the distribution versions read from the target.
    :param files: every file the patch touches.
    """

    root: Path
    versions: dict[str, str]
    files: tuple[FileStatus, ...]

    @property
    def state(self) -> PatchState:
        """The target's overall state (see :class:`PatchState`)."""
        states = {f.state for f in self.files}
        if PatchState.CONFLICT in states:
            return PatchState.CONFLICT
        if states == {PatchState.APPLIED}:
            return PatchState.APPLIED
        if states == {PatchState.NOT_APPLIED}:
            return PatchState.NOT_APPLIED
        return PatchState.PARTIALLY_APPLIED

    def in_state(self, state: PatchState) -> list[FileStatus]:
        """The files in ``state``."""
        return [f for f in self.files if f.state is state]


def bundled_patch_text() -> bytes:
    """The bundled diff's bytes."""
    return resources.files(__package__).joinpath(PATCH_RESOURCE).read_bytes()


def bundled_patch() -> tuple[FilePatch, ...]:
    """The bundled diff, parsed."""
    return parse_unified_diff(bundled_patch_text())


def default_target() -> Path:
    """
    The directory the running interpreter imports ``airflow`` from (without importing it).

    Falls back to this interpreter's site-packages when ``airflow`` is not importable.
    """
    spec = importlib.util.find_spec("airflow")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location)
        if (candidate / "__init__.py").is_file():
            return candidate.parent
    return Path(sysconfig.get_paths()["purelib"])


def target_path(root: Path, upstream_path: str) -> Path:
    """
    Where a file of the upstream repository layout lives in ``root``.

    :param root: the target directory.
    :param upstream_path: e.g. ``airflow-core/src/airflow/utils/state.py``.
    :raises PatchError: the path is outside ``airflow-core/src/`` and ``task-sdk/src/``.
    """
    for prefix in _LAYOUT_PREFIXES:
        if upstream_path.startswith(prefix):
            relative = Path(upstream_path[len(prefix) :])
            if relative.is_absolute() or ".." in relative.parts:
                break
            return root / relative
    raise PatchError(f"The bundled patch names {upstream_path!r}, which is outside {_LAYOUT_PREFIXES}.")


def read_versions(root: Path) -> dict[str, str]:
    """
    The apache-airflow-core and apache-airflow-task-sdk versions found in ``root``.

    :param root: the target directory.
    :raises PatchError: a distribution is missing from ``root``.
    """
    versions: dict[str, str] = {}
    for dist, relative in _VERSION_FILES.items():
        path = root / relative
        try:
            match = _VERSION_ASSIGNMENT.search(path.read_text(encoding="utf-8"))
        except OSError:
            match = None
        if match is None:
            raise PatchError(
                f"{root} does not contain {dist} (no __version__ in {path}). Pass --target with the "
                "site-packages directory that holds the 'airflow' package, or install apache-airflow "
                f"{SUPPORTED_VERSIONS['apache-airflow-core']} there."
            )
        versions[dist] = match.group(1)
    return versions


def check_versions(versions: dict[str, str], root: Path) -> None:
    """
    Refuse a target whose versions are not the ones the bundled patch was written for.

    :param versions: the versions found in the target.
    :param root: the target directory, to name it.
    :raises PatchError: naming the found and the supported version of each mismatching distribution.
    """
    mismatches = [
        f"{dist} {versions.get(dist, 'missing')} (the patch is for {expected})"
        for dist, expected in SUPPORTED_VERSIONS.items()
        if versions.get(dist) != expected
    ]
    if mismatches:
        raise PatchError(
            f"Refusing to touch {root}: it has {'; '.join(mismatches)}. Nothing was written. "
            "Install the supported versions, or use the airflow-provider-resumable release made for "
            "this Airflow."
        )


def inspect_target(root: Path, patches: Iterable[FilePatch] | None = None) -> TargetStatus:
    """
    Check the versions in ``root``, then classify every file the patch touches.

    :param root: the target directory.
    :param patches: the diff to inspect against; the bundled one by default.
    :raises PatchError: the target is of another version, lacks Airflow, or a file is unreadable.
    """
    root = Path(root)
    versions = read_versions(root)
    check_versions(versions, root)
    files = []
    for patch in bundled_patch() if patches is None else patches:
        path = target_path(root, patch.path)
        try:
            content = path.read_bytes()
        except OSError as err:
            raise PatchError(
                f"Cannot read {path} ({err.strerror}). The Airflow installation in {root} looks "
                "incomplete; reinstall apache-airflow there."
            ) from err
        if applies(content, patch, Direction.REVERSE):
            state = PatchState.APPLIED
        elif applies(content, patch, Direction.FORWARD):
            state = PatchState.NOT_APPLIED
        else:
            state = PatchState.CONFLICT
        files.append(FileStatus(patch, path, state))
    return TargetStatus(root, versions, tuple(files))


def apply_patch(root: Path, patches: Iterable[FilePatch] | None = None) -> list[Path]:
    """
    Apply the patch to every file not yet patched; return the files written (none if already applied).

    :param root: the target directory.
    :param patches: the diff to apply; the bundled one by default.
    :raises PatchError: the target is of another version or a file conflicts; nothing was written.
    """
    return _transition(inspect_target(root, patches), Direction.FORWARD)


def revert_patch(root: Path, patches: Iterable[FilePatch] | None = None) -> list[Path]:
    """
    Restore every patched file to the release file; return the files written (none if not applied).

    :param root: the target directory.
    :param patches: the diff to revert; the bundled one by default.
    :raises PatchError: the target is of another version or a file conflicts; nothing was written.
    """
    return _transition(inspect_target(root, patches), Direction.REVERSE)


def _transition(status: TargetStatus, direction: Direction) -> list[Path]:
    if conflicts := status.in_state(PatchState.CONFLICT):
        names = "\n  ".join(str(f.path) for f in conflicts)
        raise PatchError(
            f"Nothing was written: these files in {status.root} are neither the release files of "
            f"apache-airflow-core {status.versions['apache-airflow-core']} / apache-airflow-task-sdk "
            f"{status.versions['apache-airflow-task-sdk']} nor their patched versions (something else "
            f"changed them):\n  {names}\nReinstall those distributions (pip install --force-reinstall "
            "--no-deps apache-airflow-core==... apache-airflow-task-sdk==...) and run this again."
        )
    source_state = PatchState.NOT_APPLIED if direction is Direction.FORWARD else PatchState.APPLIED
    pending = status.in_state(source_state)
    planned: list[tuple[Path, bytes, bytes]] = []
    for file in pending:
        original = file.path.read_bytes()
        try:
            planned.append((file.path, original, apply_file_patch(original, file.patch, direction)))
        except HunkMismatch as err:  # changed since it was inspected
            raise PatchError(f"Nothing was written: {err}. Run the command again.") from err
    _check_writable(path for path, _, _ in planned)
    written: list[Path] = []
    try:
        for path, _, new in planned:
            _atomic_write(path, new)
            written.append(path)
    except OSError as err:
        for path, original, _ in planned[: len(written)]:
            _atomic_write(path, original)
        raise PatchError(
            f"Writing {planned[len(written)][0]} failed ({err.strerror}); the files already written "
            "were restored, so nothing changed. Fix the cause (disk space, permissions) and run "
            "this again."
        ) from err
    finally:
        for path in written:
            remove_bytecode(path)
    return written


def _check_writable(paths: Iterable[Path]) -> None:
    blocked = [p for p in paths if not (os.access(p.parent, os.W_OK) and os.access(p, os.W_OK))]
    if blocked:
        raise PatchError(
            f"Nothing was written: no write permission for {', '.join(map(str, blocked))}. Run this as "
            "the user that owns the Airflow installation (e.g. in a Dockerfile, before 'USER airflow' "
            "changes it, or with the same user that ran pip install)."
        )


def _atomic_write(path: Path, content: bytes) -> None:
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_bytecode(source: Path) -> list[Path]:
    """
    Delete the cached bytecode of ``source`` for every interpreter and optimisation level.

    Bytecode compiled with ``--invalidation-mode unchecked-hash`` is never revalidated against the
    source, and a timestamp check can miss a same-size rewrite within one second, so deleting is the
    only safe way to make the next import read the new source.

    :param source: a file; only a ``.py`` file has bytecode.
    """
    removed: list[Path] = []
    if source.suffix != ".py":
        return removed
    for cached in source.parent.joinpath("__pycache__").glob(f"{source.stem}.*.pyc"):
        if cached.name.split(".")[0] == source.stem:
            cached.unlink(missing_ok=True)
            removed.append(cached)
    return removed
