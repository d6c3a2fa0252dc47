# Licensed under the Apache License, Version 2.0.
"""
Exact text replacements in a file, applied and undone byte for byte, in pure Python.

What it is for: the part of the core patch a unified diff cannot carry in a reviewable form, the
compiled web UI (``airflow/ui/dist/assets/index-<hash>.js``). Its few lines are 170 to 325 KB each,
so a diff adding one word would repeat a megabyte of minified JavaScript; a replacement names only
the few dozen characters it changes.

How it works: :func:`parse_replacements` reads a JSON document (``airflow-<version>-checkpointed-ui
.json``) into :class:`FileReplacements` values: per file, its git blob ids before and after, and an
ordered list of :class:`Replacement` (``find`` becomes ``replace``, with the reason). Forward, each
``find`` must occur exactly once in the file as it is at that point; in reverse (last replacement
first) each ``replace`` must. Both ways the source must be the expected blob and the result is
checked against the other, so a file is exactly the release file, exactly the patched file, or
refused: the same contract as :mod:`.unified_diff`, whose :class:`~.unified_diff.FilePatch` this
mirrors (``path``, ``apply``, ``applies``) so the applier treats both alike.

What it does not do: patterns, fuzz, repeated matches, creating or deleting files; I/O of any kind.

Known limitation: the bundle's identifiers are renamed by the minifier in every release, so each
release has its own document, written against that release's bundle.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from airflow.providers.resumable.core_patch.unified_diff import Direction, git_blob_id

_BLOB_ID = re.compile(r"^[0-9a-f]{40}$")


class ReplacementError(ValueError):
    """The replacements document is malformed."""


class ReplacementMismatch(ValueError):
    """A replacement does not match the file it is applied to."""


@dataclass(frozen=True)
class Replacement:
    """
    One change: ``find`` (exactly once in the file) becomes ``replace``.

    :param find: the release text, long enough to occur once.
    :param replace: the patched text, which must also occur once in the patched file.
    :param why: what the change does, in a reviewer's words.
    """

    find: bytes
    replace: bytes
    why: str


@dataclass(frozen=True)
class FileReplacements:
    """
    The replacements of one file.

    :param path: the file's path in the repository (upstream layout, like a diff's).
    :param replacements: applied in this order (reverted in the opposite one).
    :param old_blob: the release file's git blob id.
    :param new_blob: the patched file's git blob id.
    """

    path: str
    replacements: tuple[Replacement, ...]
    old_blob: str
    new_blob: str

    def expected_blob(self, direction: Direction) -> tuple[str, str]:
        """The (source, result) blob ids of applying these replacements in ``direction``."""
        if direction is Direction.FORWARD:
            return self.old_blob, self.new_blob
        return self.new_blob, self.old_blob

    def apply(self, content: bytes, direction: Direction) -> bytes:
        """
        Return ``content`` with every replacement made (or undone), or raise without a result.

        :param content: the file's current bytes.
        :param direction: ``FORWARD`` turns the release file into the patched one, ``REVERSE`` back.
        :raises ReplacementMismatch: the file is not the expected source, a text to replace does not
            occur exactly once, or the result is not the expected file.
        """
        source, expected = self.expected_blob(direction)
        if git_blob_id(content) != source:
            raise ReplacementMismatch(f"{self.path}: not the expected file (blob {source[:12]})")
        ordered = self.replacements if direction is Direction.FORWARD else reversed(self.replacements)
        for r in ordered:
            old, new = (r.find, r.replace) if direction is Direction.FORWARD else (r.replace, r.find)
            if (count := content.count(old)) != 1:
                raise ReplacementMismatch(
                    f"{self.path}: {r.why!r} expects its text once, found it {count} times ({direction.value})"
                )
            content = content.replace(old, new)
        if git_blob_id(content) != expected:
            raise ReplacementMismatch(
                f"{self.path}: the result is not the expected file (blob {expected[:12]})"
            )
        return content

    def applies(self, content: bytes, direction: Direction) -> bool:
        """
        Whether :meth:`apply` succeeds on ``content`` in ``direction``.

        :param content: the file's current bytes.
        :param direction: the direction to test.
        """
        try:
            self.apply(content, direction)
        except ReplacementMismatch:
            return False
        return True


def parse_replacements(text: bytes) -> tuple[FileReplacements, ...]:
    """
    Parse a replacements document.

    Its shape: ``{"about": [lines of prose], "files": [{"path", "old_blob", "new_blob",
    "replacements": [{"why", "find", "replace"}, ...]}, ...]}``; strings are UTF-8 text.

    :param text: the document's bytes.
    :raises ReplacementError: the document is malformed or ambiguous.
    """
    try:
        document = json.loads(text)
        files = [
            FileReplacements(
                path=_string(entry, "path"),
                replacements=tuple(
                    Replacement(
                        find=_string(r, "find").encode(),
                        replace=_string(r, "replace").encode(),
                        why=_string(r, "why"),
                    )
                    for r in entry["replacements"]
                ),
                old_blob=_blob(entry, "old_blob"),
                new_blob=_blob(entry, "new_blob"),
            )
            for entry in document["files"]
        ]
    except (ValueError, KeyError, TypeError) as err:
        raise ReplacementError(f"malformed replacements document: {err}") from err
    for file in files:
        if not file.replacements:
            raise ReplacementError(f"{file.path} has no replacements")
        for r in file.replacements:
            # An empty text would "occur" everywhere; an unchanged one could not be told applied.
            if not r.find or not r.replace or r.find == r.replace:
                raise ReplacementError(f"{file.path}: {r.why!r} must change a non-empty text into another")
    paths = [f.path for f in files]
    if duplicates := sorted({p for p in paths if paths.count(p) > 1}):
        raise ReplacementError(f"files listed more than once: {', '.join(duplicates)}")
    return tuple(files)


def _string(entry: dict[str, object], key: str) -> str:
    value = entry[key]
    if not isinstance(value, str):
        raise TypeError(f"{key!r} must be a string, got {type(value).__name__}")
    return value


def _blob(entry: dict[str, object], key: str) -> str:
    value = _string(entry, key)
    if not _BLOB_ID.match(value):
        raise ValueError(f"{key!r} must be a full git blob id, got {value!r}")
    return value
