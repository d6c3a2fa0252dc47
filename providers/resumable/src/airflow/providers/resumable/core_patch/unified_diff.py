# Licensed under the Apache License, Version 2.0.
"""
A unified diff, parsed and applied exactly, in pure Python.

What it is for: applying the bundled core patch where no ``patch`` or ``git`` binary can be assumed
(the official Airflow image has neither), and undoing it byte for byte.

How it works: :func:`parse_unified_diff` reads the ``git diff --full-index`` format (modified files
only) into :class:`FilePatch` values; :func:`apply_file_patch` rewrites one file's bytes, forward or
in reverse. Every hunk must match at exactly the line it names, context and removed lines byte for
byte (line endings included); there is no fuzz and no offset search, so a file either is the exact
pre-image (or post-image) of each hunk or is refused. When the diff carries full blob ids, the
result is also checked against the expected git blob id.

What it does not do: file creation, deletion, renames, mode changes or binary patches; I/O of any
kind (see :mod:`airflow.providers.resumable.core_patch.installation`).

Known limitation: a file edited elsewhere but with every hunk's lines untouched still matches by
hunks; only the blob id check (when the diff has ``index`` lines) tells such a file from the release.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

_HUNK_HEADER = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_INDEX_LINE = re.compile(rb"^index ([0-9a-f]+)\.\.([0-9a-f]+)(?: \d+)?$")
_NO_NEWLINE = b"\\ No newline at end of file"


class Direction(Enum):
    """Which way a patch is applied."""

    FORWARD = "forward"
    REVERSE = "reverse"


class DiffError(ValueError):
    """The diff text is malformed or uses a feature this parser does not support."""


class HunkMismatch(ValueError):
    """A hunk does not match the file it is applied to."""


@dataclass(frozen=True)
class Hunk:
    """
    One ``@@`` block: lines to find at ``old_start`` and what replaces them.

    :param old_start: 1-based line number of the hunk in the pre-image (0 for an empty range).
    :param new_start: 1-based line number of the hunk in the post-image.
    :param old_lines: the pre-image lines (context and removed), each with its line ending.
    :param new_lines: the post-image lines (context and added), each with its line ending.
    """

    old_start: int
    new_start: int
    old_lines: tuple[bytes, ...]
    new_lines: tuple[bytes, ...]

    def header(self) -> str:
        """The hunk's ``@@`` header, to name it in messages."""
        return f"@@ -{self.old_start},{len(self.old_lines)} +{self.new_start},{len(self.new_lines)} @@"


@dataclass(frozen=True)
class FilePatch:
    """
    The hunks of one modified file.

    :param path: the file's path in the repository, without the ``a/`` or ``b/`` prefix.
    :param hunks: the hunks, in file order.
    :param old_blob: the pre-image's full git blob id, if the diff carries one.
    :param new_blob: the post-image's full git blob id, if the diff carries one.
    """

    path: str
    hunks: tuple[Hunk, ...]
    old_blob: str | None = None
    new_blob: str | None = None

    def expected_blob(self, direction: Direction) -> tuple[str | None, str | None]:
        """The (source, result) blob ids of applying this patch in ``direction``."""
        if direction is Direction.FORWARD:
            return self.old_blob, self.new_blob
        return self.new_blob, self.old_blob

    def apply(self, content: bytes, direction: Direction) -> bytes:
        """:func:`apply_file_patch` as a method, like :meth:`.replacements.FileReplacements.apply`."""
        return apply_file_patch(content, self, direction)

    def applies(self, content: bytes, direction: Direction) -> bool:
        """:func:`applies` as a method, like :meth:`.replacements.FileReplacements.applies`."""
        return applies(content, self, direction)


def git_blob_id(content: bytes) -> str:
    """
    The git blob id (SHA-1 of ``blob <size>\\0<content>``) of a file's content.

    :param content: the file's bytes.
    """
    return hashlib.sha1(b"blob %d\0" % len(content) + content, usedforsecurity=False).hexdigest()


def parse_unified_diff(text: bytes) -> tuple[FilePatch, ...]:
    """
    Parse a ``git diff`` of modified text files.

    Lines before the first ``diff --git`` (or ``---``) line are a free-form header and are ignored.

    :param text: the diff's bytes.
    :raises DiffError: the diff is malformed, or creates, deletes or renames a file.
    """
    lines = text.splitlines(keepends=True)
    patches: list[FilePatch] = []
    i = 0
    blobs: tuple[str | None, str | None] = (None, None)
    while i < len(lines):
        line = lines[i]
        if line.startswith(b"diff --git "):
            blobs = (None, None)
            i += 1
            continue
        if match := _INDEX_LINE.match(line.rstrip(b"\r\n")):
            old, new = match.group(1).decode(), match.group(2).decode()
            blobs = (old if len(old) == 40 else None, new if len(new) == 40 else None)
            i += 1
            continue
        if line.startswith((b"new file mode", b"deleted file mode", b"rename ", b"similarity index")):
            raise DiffError(f"line {i + 1}: only modified files are supported, found {line.strip()!r}")
        if line.startswith(b"Binary files") or line.startswith(b"GIT binary patch"):
            raise DiffError(f"line {i + 1}: binary patches are not supported")
        if line.startswith(b"--- ") and i + 1 < len(lines) and lines[i + 1].startswith(b"+++ "):
            old_path = _strip_prefix(lines[i][4:], b"a/", i + 1)
            new_path = _strip_prefix(lines[i + 1][4:], b"b/", i + 2)
            if old_path != new_path:
                raise DiffError(f"line {i + 1}: renames are not supported ({old_path} -> {new_path})")
            hunks, i = _parse_hunks(lines, i + 2)
            if not hunks:
                raise DiffError(f"line {i + 1}: {old_path} has no hunks")
            patches.append(FilePatch(old_path, tuple(hunks), old_blob=blobs[0], new_blob=blobs[1]))
            blobs = (None, None)
            continue
        i += 1
    paths = [p.path for p in patches]
    if duplicates := sorted({p for p in paths if paths.count(p) > 1}):
        raise DiffError(f"files patched more than once: {', '.join(duplicates)}")
    return tuple(patches)


def _strip_prefix(raw: bytes, prefix: bytes, line_no: int) -> str:
    path = raw.rstrip(b"\r\n").split(b"\t")[0]
    if path == b"/dev/null":
        raise DiffError(f"line {line_no}: only modified files are supported (found /dev/null)")
    if not path.startswith(prefix):
        raise DiffError(f"line {line_no}: expected a path starting with {prefix.decode()!r}, got {path!r}")
    return path[len(prefix) :].decode()


def _parse_hunks(lines: Sequence[bytes], i: int) -> tuple[list[Hunk], int]:
    hunks: list[Hunk] = []
    while i < len(lines) and (match := _HUNK_HEADER.match(lines[i])):
        old_start, new_start = int(match.group(1)), int(match.group(3))
        old_count = int(match.group(2)) if match.group(2) is not None else 1
        new_count = int(match.group(4)) if match.group(4) is not None else 1
        old: list[bytes] = []
        new: list[bytes] = []
        i += 1
        while len(old) < old_count or len(new) < new_count:
            if i >= len(lines):
                raise DiffError(f"hunk at line {old_start} is truncated")
            line = lines[i]
            tag, body = line[:1], line[1:]
            if tag == b"\n" or line in (b"\n", b"\r\n"):
                tag, body = b" ", line  # an empty context line whose space was stripped
            if tag == b" ":
                old.append(body)
                new.append(body)
            elif tag == b"-":
                old.append(body)
            elif tag == b"+":
                new.append(body)
            elif line.startswith(_NO_NEWLINE):
                pass
            else:
                raise DiffError(f"hunk at line {old_start}: unexpected line {line!r}")
            i += 1
            if i < len(lines) and lines[i].startswith(_NO_NEWLINE):
                _strip_last_newline(tag, old, new)
                i += 1
        if len(old) != old_count or len(new) != new_count:
            raise DiffError(f"hunk at line {old_start}: line counts do not match its header")
        hunks.append(Hunk(old_start, new_start, tuple(old), tuple(new)))
    return hunks, i


def _strip_last_newline(tag: bytes, old: list[bytes], new: list[bytes]) -> None:
    targets = {b" ": (old, new), b"-": (old,), b"+": (new,)}.get(tag, ())
    for side in targets:
        side[-1] = side[-1].rstrip(b"\r\n")


def apply_file_patch(content: bytes, patch: FilePatch, direction: Direction) -> bytes:
    """
    Return ``content`` with every hunk of ``patch`` applied, or raise without a partial result.

    :param content: the file's current bytes.
    :param patch: the file's hunks.
    :param direction: ``FORWARD`` turns the pre-image into the post-image, ``REVERSE`` undoes it.
    :raises HunkMismatch: a hunk's lines are not at the line it names, or the result is not the
        blob the diff expects.
    """
    lines = content.splitlines(keepends=True)
    out: list[bytes] = []
    cursor = 0
    for hunk in patch.hunks:
        find, replace = (
            (hunk.old_lines, hunk.new_lines)
            if direction is Direction.FORWARD
            else (hunk.new_lines, hunk.old_lines)
        )
        start = (hunk.old_start if direction is Direction.FORWARD else hunk.new_start) - 1
        if not find:
            start += 1  # an empty range names the line *before* the insertion point
        # Line numbers in the diff are in the source's own numbering; hunks are applied in order, so
        # `start` indexes the untouched source directly.
        if start < cursor or lines[start : start + len(find)] != list(find):
            raise HunkMismatch(f"{patch.path}: hunk {hunk.header()} does not match ({direction.value})")
        out.extend(lines[cursor:start])
        out.extend(replace)
        cursor = start + len(find)
    out.extend(lines[cursor:])
    result = b"".join(out)
    _, expected = patch.expected_blob(direction)
    if expected is not None and git_blob_id(result) != expected:
        raise HunkMismatch(f"{patch.path}: the result is not the expected file (blob {expected[:12]})")
    return result


def applies(content: bytes, patch: FilePatch, direction: Direction) -> bool:
    """
    Whether every hunk of ``patch`` applies to ``content`` in ``direction``.

    When the diff carries blob ids, ``content`` must also be exactly the expected source file.

    :param content: the file's current bytes.
    :param patch: the file's hunks.
    :param direction: the direction to test.
    """
    source, _ = patch.expected_blob(direction)
    if source is not None and git_blob_id(content) != source:
        return False
    try:
        apply_file_patch(content, patch, direction)
    except HunkMismatch:
        return False
    return True
