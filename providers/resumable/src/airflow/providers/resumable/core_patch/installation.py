# Licensed under the Apache License, Version 2.0.
"""
The bundled core patch against one installed Airflow: where it is, which version, and its state.

What it is for: ``airflow-resumable patch status|apply|revert``. A target is a directory holding
the ``airflow`` package of apache-airflow-core and ``airflow/sdk`` of apache-airflow-task-sdk
(a site-packages, or the two sdists' ``src`` trees unpacked into one directory).

How it works: one diff per Airflow release (:data:`RELEASES`), in upstream repository layout, and
beside it the exact replacements in the release's compiled web UI (:mod:`.replacements`: a diff of
its minified lines would be megabytes); ``airflow-core/src/`` and ``task-sdk/src/`` both map onto
the target, and both kinds of change are checked against git blob ids and applied alike. The
versions are read from the tree itself (``__version__`` in ``airflow/__init__.py`` and ``airflow/sdk/__init__.py``, never by
importing them) and pick the diff; a release without one is refused before any file is looked at.
Each file is then classified by whether the diff applies to it forward (*pristine*) or in reverse
(*patched*), or whether the patch the target's record names (:data:`RECORD_FILE`, written by every
apply: the patch's identity and its full text) does; see :class:`PatchState` for how the files add
up. ``apply`` and ``revert`` compute every new file in memory first and write nothing unless all of
them are ready; each file is replaced atomically (temporary file + ``os.replace``, mode kept), files
already written are restored if a later write fails, and the ``__pycache__`` entries of every
touched module are deleted. So an upgrade from another version of the patch is one all-or-nothing
step: release bytes are recovered by reverting the recorded diff, then the bundled one is applied.

What it does not do: it does not lock the tree against a concurrent pip install, and it does not
update the dist-info ``RECORD`` hashes (pip uses them only to uninstall, by path). A tree patched
by a provider release that wrote no record (0.1.0 before this change) cannot be told from an edited
one: it is a conflict, and reinstalling Airflow's two distributions is the way out.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import re
import sysconfig
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path

from airflow.providers.resumable import __version__
from airflow.providers.resumable.core_patch.replacements import FileReplacements, parse_replacements
from airflow.providers.resumable.core_patch.unified_diff import Direction, FilePatch, parse_unified_diff

FileChange = FilePatch | FileReplacements
"""One file's change in a patch: hunks of the diff, or exact replacements (the UI bundle)."""

RELEASES: dict[str, str] = {"3.3.0": "1.3.0", "3.3.1": "1.3.1", "3.3.2": "1.3.2"}
"""Every Airflow release the core patch is bundled for: apache-airflow-core -> apache-airflow-task-sdk.

Each has its own diff, ``airflow-<core>-checkpointed.patch``: the hunks are the same changes, but
the files around them differ between the releases (line numbers and git blob ids), so no two
releases can share one."""

RECORD_FILE = Path("airflow/resumable-core-patch.diff")
"""Where an applied patch records itself in the target: next to the ``airflow`` package's files.

Its first line names the patch (name, versions, sha256, the provider version that applied it); the
rest is the applied diff itself, byte for byte, so a later provider can revert a patch it does not
ship. pip does not know the file (it is not in the dist-info ``RECORD``), so a reinstall of Airflow
can leave it behind over release files: it is trusted only as far as the files agree with it."""

_RECORD_PREFIX = b"# airflow-provider-resumable applied this core patch: "

_VERSION_FILES = {
    "apache-airflow-core": Path("airflow/__init__.py"),
    "apache-airflow-task-sdk": Path("airflow/sdk/__init__.py"),
}
_LAYOUT_PREFIXES = ("airflow-core/src/", "task-sdk/src/")
_VERSION_ASSIGNMENT = re.compile(r"""^__version__\s*=\s*["']([^"']+)["']""", re.MULTILINE)


class PatchError(RuntimeError):
    """The patch cannot be applied, reverted or inspected here; the message says why and what to do."""


@dataclass(frozen=True)
class CorePatch:
    """
    One version of the core patch, for one Airflow release.

    :param name: its file name, e.g. ``airflow-3.3.2-checkpointed.patch``.
    :param text: the diff's bytes (a free-form header, then ``git diff --full-index`` output).
    :param airflow_version: the apache-airflow-core version it was written against.
    :param task_sdk_version: the apache-airflow-task-sdk version it was written against.
    :param provider_version: the airflow-provider-resumable version that ships (or applied) it.
    :param ui_text: the web UI bundle's replacements (a :mod:`.replacements` JSON document), empty
        for a patch without them (as recorded by providers before they existed).
    """

    name: str
    text: bytes
    airflow_version: str
    task_sdk_version: str
    provider_version: str
    ui_text: bytes = b""

    @property
    def versions(self) -> dict[str, str]:
        """The distribution versions the diff is for, keyed like :func:`read_versions`."""
        return {"apache-airflow-core": self.airflow_version, "apache-airflow-task-sdk": self.task_sdk_version}

    @functools.cached_property
    def sha256(self) -> str:
        """The patch's identity: two patches with the same hash are the same patch."""
        if not self.ui_text:
            return hashlib.sha256(self.text).hexdigest()  # what records without a UI part carry
        # Length-prefixed, so no other split of the same bytes into diff and UI part has this hash.
        return hashlib.sha256(b"%d\n" % len(self.text) + self.text + self.ui_text).hexdigest()

    @functools.cached_property
    def diff_files(self) -> tuple[FilePatch, ...]:
        """The diff, parsed."""
        return parse_unified_diff(self.text)

    @functools.cached_property
    def ui_files(self) -> tuple[FileReplacements, ...]:
        """The UI bundle's replacements, parsed."""
        return parse_replacements(self.ui_text) if self.ui_text else ()

    @property
    def files(self) -> tuple[FileChange, ...]:
        """Every file the patch changes: the diff's, then the UI bundle's."""
        return (*self.diff_files, *self.ui_files)

    def identity(self) -> str:
        """How ``status`` and ``doctor`` name it: file name, short hash, and the provider version."""
        return f"{self.name} (sha256 {self.sha256[:12]}, airflow-provider-resumable {self.provider_version})"

    def record(self) -> bytes:
        """The record file's content for this patch: one line naming it, then the diff and the UI part."""
        fields: dict[str, object] = {
            "name": self.name,
            "sha256": self.sha256,
            "provider": self.provider_version,
            **self.versions,
        }
        if self.ui_text:
            fields["diff_bytes"] = len(self.text)  # the UI part follows the diff
        header = _RECORD_PREFIX + json.dumps(fields, sort_keys=True).encode() + b"\n"
        return header + self.text + self.ui_text

    @classmethod
    def from_record(cls, content: bytes) -> CorePatch | None:
        """
        The patch a record file describes, or ``None`` when it is not a whole, intact record.

        :param content: the record file's bytes.
        """
        first, _, body = content.partition(b"\n")
        if not first.startswith(_RECORD_PREFIX):
            return None
        try:
            fields = json.loads(first[len(_RECORD_PREFIX) :])
            split = int(fields.get("diff_bytes", len(body)))
            patch = cls(
                name=str(fields["name"]),
                text=body[:split],
                airflow_version=str(fields["apache-airflow-core"]),
                task_sdk_version=str(fields["apache-airflow-task-sdk"]),
                provider_version=str(fields["provider"]),
                ui_text=body[split:],
            )
        except (ValueError, KeyError, TypeError, AttributeError):  # AttributeError: JSON, not an object
            return None
        # A truncated or edited record must not be used to revert anything.
        return patch if patch.sha256 == fields["sha256"] else None


def bundled_patch(airflow_version: str) -> CorePatch:
    """
    The patch this provider ships for one apache-airflow-core release.

    :param airflow_version: e.g. ``3.3.2``.
    :raises PatchError: no patch is bundled for that release; the message names the supported ones.
    """
    if airflow_version not in RELEASES:
        raise PatchError(f"No core patch is bundled for apache-airflow-core {airflow_version}. {supported()}")
    name = f"airflow-{airflow_version}-checkpointed.patch"
    package = resources.files(__package__)
    return CorePatch(
        name=name,
        text=package.joinpath(name).read_bytes(),
        airflow_version=airflow_version,
        task_sdk_version=RELEASES[airflow_version],
        provider_version=__version__,
        ui_text=package.joinpath(ui_name(airflow_version)).read_bytes(),
    )


def ui_name(airflow_version: str) -> str:
    """The file name of a release's UI bundle replacements, beside its diff."""
    return f"airflow-{airflow_version}-checkpointed-ui.json"


def bundled_patches() -> tuple[CorePatch, ...]:
    """Every bundled patch, oldest Airflow first."""
    return tuple(bundled_patch(version) for version in RELEASES)


def supported() -> str:
    """A sentence naming the Airflow releases the core patch is bundled for."""
    releases = ", ".join(f"{core} (task SDK {sdk})" for core, sdk in RELEASES.items())
    return f"airflow-provider-resumable {__version__} bundles the core patch for Airflow {releases}."


class PatchState(Enum):
    """
    Where a target stands with respect to the bundled patch for its release.

    ``APPLIED``: every file is the patched file. ``NOT_APPLIED``: every file is the release file.
    ``PARTIALLY_APPLIED``: some files are patched and the others are the release files (an
    interrupted apply or revert; running either again finishes it). ``OTHER_PATCH``: another
    version of the patch (another hash, e.g. applied by an older provider) is applied, as its
    record in the target says; ``apply`` replaces it, ``revert`` removes it. ``CONFLICT``: at least
    one file is none of these (edited by something else); nothing will be written. A tree of
    another release is refused before any file is looked at.
    """

    APPLIED = "applied"
    NOT_APPLIED = "not applied"
    PARTIALLY_APPLIED = "partially applied"
    OTHER_PATCH = "another version applied"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class FileStatus:
    """
    One file either patch (the bundled one, or the one recorded in the target) touches.

    :param path: where the file is in the target.
    :param state: ``APPLIED``, ``NOT_APPLIED``, ``OTHER_PATCH`` or ``CONFLICT`` for this one file.
    :param current: its bytes now.
    :param release: its release bytes (the patch undone), ``None`` for a conflict.
    :param patch: its change in the bundled patch, ``None`` when only the recorded patch touches it.
    """

    path: Path
    state: PatchState
    current: bytes
    release: bytes | None
    patch: FileChange | None


@dataclass(frozen=True)
class TargetStatus:
    """
    The core patch's state in one target.

    :param root: the target directory.
    :param versions: the distribution versions read from the target.
    :param patch: the bundled patch for those versions (or the one passed in).
    :param record: the patch the target's record file names, when the record is intact and for
        this release; ``None`` otherwise (absent, damaged, or left over from another release).
    :param files: every file either patch touches.
    """

    root: Path
    versions: dict[str, str]
    patch: CorePatch
    record: CorePatch | None
    files: tuple[FileStatus, ...]

    @property
    def state(self) -> PatchState:
        """The target's overall state (see :class:`PatchState`)."""
        states = {f.state for f in self.files}
        if PatchState.CONFLICT in states:
            return PatchState.CONFLICT
        if PatchState.OTHER_PATCH in states:
            return PatchState.OTHER_PATCH
        if states == {PatchState.APPLIED}:
            return PatchState.APPLIED
        if states == {PatchState.NOT_APPLIED}:
            return PatchState.NOT_APPLIED
        if self.record is not None and self.record.sha256 != self.patch.sha256:
            # The recorded patch shares every file it touches with this one, which touches more (a
            # patch without the UI part, say): those are not an interrupted apply but another version.
            return PatchState.OTHER_PATCH
        return PatchState.PARTIALLY_APPLIED

    @property
    def applied(self) -> CorePatch | None:
        """
        The patch applied to the files, as far as they and the record tell; ``None`` if none is.

        Fully applied, it is the bundled patch (the files prove it), credited to the provider
        version its record names (``unrecorded`` when the record is missing or names another).
        """
        state = self.state
        if state is PatchState.APPLIED:
            if self.record is not None and self.record.sha256 == self.patch.sha256:
                return self.record
            return dataclasses.replace(self.patch, provider_version="unrecorded")
        if state is PatchState.OTHER_PATCH:
            return self.record
        return None

    @property
    def record_path(self) -> Path:
        """Where the target's record file is (or would be)."""
        return self.root / RECORD_FILE

    def in_state(self, state: PatchState) -> list[FileStatus]:
        """The files in ``state``."""
        return [f for f in self.files if f.state is state]


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
    raise PatchError(f"The patch names {upstream_path!r}, which is outside {_LAYOUT_PREFIXES}.")


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
                "site-packages directory that holds the 'airflow' package. " + supported()
            )
        versions[dist] = match.group(1)
    return versions


def patch_for(versions: dict[str, str], root: Path) -> CorePatch:
    """
    The bundled patch for the release in ``root``; refuse a release without one.

    :param versions: the versions found in the target.
    :param root: the target directory, to name it.
    :raises PatchError: naming the versions found and the supported releases.
    """
    core, sdk = versions["apache-airflow-core"], versions["apache-airflow-task-sdk"]
    if RELEASES.get(core) != sdk:
        raise PatchError(
            f"Refusing to touch {root}: it has apache-airflow-core {core} and apache-airflow-task-sdk "
            f"{sdk}. {supported()} Nothing was written. The operators work without the patch: a "
            "checkpoint falls back to up_for_reschedule ('airflow-resumable doctor' says which)."
        )
    return bundled_patch(core)


def check_versions(versions: dict[str, str], patch: CorePatch, root: Path) -> None:
    """
    Refuse a target whose versions are not the ones ``patch`` was written for.

    :param versions: the versions found in the target.
    :param patch: the patch to check them against.
    :param root: the target directory, to name it.
    :raises PatchError: naming the found and the expected version of each mismatching distribution.
    """
    mismatches = [
        f"{dist} {versions.get(dist, 'missing')} ({patch.name} is for {expected})"
        for dist, expected in patch.versions.items()
        if versions.get(dist) != expected
    ]
    if mismatches:
        raise PatchError(f"Refusing to touch {root}: it has {'; '.join(mismatches)}. Nothing was written.")


def read_record(root: Path, versions: dict[str, str]) -> CorePatch | None:
    """
    The patch the target's record file names, if the record is intact and for this release.

    A record of another release (left behind when pip replaced Airflow) says nothing about these
    files, so it is ignored, as is a damaged one.

    :param root: the target directory.
    :param versions: the versions found in the target.
    """
    try:
        content = (root / RECORD_FILE).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise PatchError(f"Cannot read {root / RECORD_FILE} ({err.strerror}).") from err
    recorded = CorePatch.from_record(content)
    if recorded is None or recorded.versions != versions:
        return None
    return recorded


def inspect_target(root: Path, patch: CorePatch | None = None) -> TargetStatus:
    """
    Check the versions in ``root``, then classify every file the patch (or the recorded one) touches.

    :param root: the target directory.
    :param patch: the patch to inspect against; by default the bundled one for the target's release.
    :raises PatchError: the target is of another (or an unsupported) release, lacks Airflow, or a
        file is unreadable.
    """
    root = Path(root)
    versions = read_versions(root)
    if patch is None:
        patch = patch_for(versions, root)
    else:
        check_versions(versions, patch, root)
    record = read_record(root, versions)
    other = record if record is not None and record.sha256 != patch.sha256 else None
    ours = {p.path: p for p in patch.files}
    theirs = {p.path: p for p in other.files} if other is not None else {}
    files = []
    for upstream_path in [*ours, *(p for p in theirs if p not in ours)]:
        path = target_path(root, upstream_path)
        try:
            content = path.read_bytes()
        except OSError as err:
            raise PatchError(
                f"Cannot read {path} ({err.strerror}). The Airflow installation in {root} looks "
                "incomplete; reinstall apache-airflow there."
            ) from err
        state, release = _classify(content, ours.get(upstream_path), theirs.get(upstream_path))
        files.append(FileStatus(path, state, content, release, ours.get(upstream_path)))
    return TargetStatus(root, versions, patch, record, tuple(files))


def _classify(
    content: bytes, ours: FileChange | None, theirs: FileChange | None
) -> tuple[PatchState, bytes | None]:
    """One file's state, and its release bytes (``None`` for a conflict)."""
    if ours is not None and ours.applies(content, Direction.REVERSE):
        return PatchState.APPLIED, ours.apply(content, Direction.REVERSE)
    if theirs is not None and theirs.applies(content, Direction.REVERSE):
        return PatchState.OTHER_PATCH, theirs.apply(content, Direction.REVERSE)
    # The release file is the pre-image of both patches (same release, same blob ids).
    if all(p.applies(content, Direction.FORWARD) for p in (ours, theirs) if p is not None):
        return PatchState.NOT_APPLIED, content
    return PatchState.CONFLICT, None


def apply_patch(root: Path, patch: CorePatch | None = None) -> list[Path]:
    """
    Make ``root`` carry the patch; return the files written (none if it already does).

    A release tree is patched; a tree patched by another version of the patch (as its record says)
    is moved to this one in the same step: every file goes from whatever it is to this patch's
    file, computed in memory first, written only if all of them could be. The record is written
    last, so an interruption leaves a record that still describes every file it could have left.

    :param root: the target directory.
    :param patch: the patch to apply; by default the bundled one for the target's release.
    :raises PatchError: the target is of another release or a file conflicts; nothing was written.
    """
    status = inspect_target(root, patch)
    _refuse_conflicts(status)
    changes: list[tuple[Path, bytes | None, bytes | None]] = []
    for file in status.files:
        if file.state is PatchState.APPLIED or file.release is None:
            continue
        wanted = file.patch.apply(file.release, Direction.FORWARD) if file.patch else file.release
        if wanted != file.current:
            changes.append((file.path, file.current, wanted))
    record = status.patch.record()
    current_record = _read_optional(status.record_path)
    if changes or current_record != record:
        changes.append((status.record_path, current_record, record))
    return _write_all(changes)


def revert_patch(root: Path, patch: CorePatch | None = None) -> list[Path]:
    """
    Restore every patched file to the release file and remove the record; return the files written.

    Reverts the bundled patch, or another version of it that the target's record names.

    :param root: the target directory.
    :param patch: the patch to revert; by default the bundled one for the target's release.
    :raises PatchError: the target is of another release or a file conflicts; nothing was written.
    """
    status = inspect_target(root, patch)
    _refuse_conflicts(status)
    changes: list[tuple[Path, bytes | None, bytes | None]] = [
        (f.path, f.current, f.release)
        for f in status.files
        if f.release is not None and f.release != f.current
    ]
    current_record = _read_optional(status.record_path)
    if current_record is not None:
        changes.append((status.record_path, current_record, None))
    return _write_all(changes)


def _refuse_conflicts(status: TargetStatus) -> None:
    if conflicts := status.in_state(PatchState.CONFLICT):
        names = "\n  ".join(str(f.path) for f in conflicts)
        raise PatchError(
            f"Nothing was written: these files in {status.root} are neither the release files of "
            f"apache-airflow-core {status.versions['apache-airflow-core']} / apache-airflow-task-sdk "
            f"{status.versions['apache-airflow-task-sdk']} nor their patched versions (something else "
            f"changed them, or a provider release that kept no record of its patch did):\n  {names}\n"
            "Reinstall those distributions (pip install --force-reinstall --no-deps "
            "apache-airflow-core==... apache-airflow-task-sdk==...) and run this again."
        )


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _write_all(changes: list[tuple[Path, bytes | None, bytes | None]]) -> list[Path]:
    """
    Write every change (``None`` content: the file is absent) or, on a failure, restore all.

    :param changes: (path, its content now, its content wanted), in the order to write them.
    """
    _check_writable(path for path, _, _ in changes)
    # The new contents were computed from what inspection read; a file changed since then (e.g. by
    # a concurrent pip install) must not be overwritten with them.
    if changed := [str(path) for path, original, _ in changes if _read_optional(path) != original]:
        raise PatchError(f"Nothing was written: {', '.join(changed)} changed while this ran. Run it again.")
    written: list[Path] = []
    try:
        for path, _, new in changes:
            _set_content(path, new)
            written.append(path)
    except OSError as err:
        for path, original, _ in changes[: len(written)]:
            _set_content(path, original)
        raise PatchError(
            f"Writing {changes[len(written)][0]} failed ({err.strerror}); the files already written "
            "were restored, so nothing changed. Fix the cause (disk space, permissions) and run "
            "this again."
        ) from err
    finally:
        for path in written:
            remove_bytecode(path)
    return written


def _set_content(path: Path, content: bytes | None) -> None:
    if content is None:
        path.unlink(missing_ok=True)
    else:
        _atomic_write(path, content)


def _check_writable(paths: Iterable[Path]) -> None:
    blocked = [
        p for p in paths if not os.access(p.parent, os.W_OK) or (p.exists() and not os.access(p, os.W_OK))
    ]
    if blocked:
        raise PatchError(
            f"Nothing was written: no write permission for {', '.join(map(str, blocked))}. Run this as "
            "the user that owns the Airflow installation (e.g. in a Dockerfile, before 'USER airflow' "
            "changes it, or with the same user that ran pip install)."
        )


def _atomic_write(path: Path, content: bytes) -> None:
    # A new file (the record) gets the mode of the package's own files.
    mode = (path if path.exists() else path.parent / "__init__.py").stat().st_mode & 0o7777
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
