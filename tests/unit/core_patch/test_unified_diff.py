# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest

from airflow.providers.resumable.core_patch.unified_diff import (
    DiffError,
    Direction,
    HunkMismatch,
    applies,
    apply_file_patch,
    git_blob_id,
    parse_unified_diff,
)

BEFORE = b"one\ntwo\nthree\nfour\nfive\nsix\nseven\n"
AFTER = b"one\ntwo\nthree\nFOUR\nfive\nsix\nseven\neight\n"
DIFF = b"""A free-form header line that is not part of any file.

diff --git a/pkg/src/mod.py b/pkg/src/mod.py
--- a/pkg/src/mod.py
+++ b/pkg/src/mod.py
@@ -3,3 +3,3 @@
 three
-four
+FOUR
 five
@@ -7 +7,2 @@
 seven
+eight
"""


def _with_index(diff: bytes, old: bytes, new: bytes) -> bytes:
    index = b"index %s..%s 100644\n" % (git_blob_id(old).encode(), git_blob_id(new).encode())
    return diff.replace(b"--- a/", index + b"--- a/", 1)


def test_header_is_ignored_and_hunks_are_parsed():
    (patch,) = parse_unified_diff(DIFF)
    assert patch.path == "pkg/src/mod.py"
    assert [h.header() for h in patch.hunks] == ["@@ -3,3 +3,3 @@", "@@ -7,1 +7,2 @@"]
    assert patch.old_blob is None


def test_forward_then_reverse_restores_the_exact_bytes():
    (patch,) = parse_unified_diff(DIFF)
    patched = apply_file_patch(BEFORE, patch, Direction.FORWARD)
    assert patched == AFTER
    assert apply_file_patch(patched, patch, Direction.REVERSE) == BEFORE


def test_a_hunk_that_does_not_match_exactly_is_refused():
    (patch,) = parse_unified_diff(DIFF)
    with pytest.raises(HunkMismatch, match="@@ -3,3"):
        apply_file_patch(BEFORE.replace(b"four", b"four "), patch, Direction.FORWARD)


def test_a_hunk_at_another_line_is_refused_rather_than_searched_for():
    (patch,) = parse_unified_diff(DIFF)
    assert not applies(b"zero\n" + BEFORE, patch, Direction.FORWARD)


def test_applying_forward_twice_is_refused():
    (patch,) = parse_unified_diff(DIFF)
    assert not applies(AFTER, patch, Direction.FORWARD)
    assert applies(AFTER, patch, Direction.REVERSE)


def test_crlf_line_endings_must_match_byte_for_byte():
    (patch,) = parse_unified_diff(DIFF)
    assert not applies(BEFORE.replace(b"\n", b"\r\n"), patch, Direction.FORWARD)
    crlf_patch = parse_unified_diff(DIFF.replace(b"\n", b"\r\n"))[0]
    crlf_before = BEFORE.replace(b"\n", b"\r\n")
    assert apply_file_patch(crlf_before, crlf_patch, Direction.FORWARD) == AFTER.replace(b"\n", b"\r\n")


def test_no_newline_at_end_of_file_is_kept():
    diff = b"""--- a/f
+++ b/f
@@ -1,2 +1,2 @@
 a
-b
\\ No newline at end of file
+c
\\ No newline at end of file
"""
    (patch,) = parse_unified_diff(diff)
    assert apply_file_patch(b"a\nb", patch, Direction.FORWARD) == b"a\nc"
    assert apply_file_patch(b"a\nc", patch, Direction.REVERSE) == b"a\nb"


def test_blob_ids_reject_a_file_that_differs_outside_the_hunks():
    (patch,) = parse_unified_diff(_with_index(DIFF, BEFORE, AFTER))
    assert patch.old_blob == git_blob_id(BEFORE)
    assert applies(BEFORE, patch, Direction.FORWARD)
    assert not applies(BEFORE.replace(b"one", b"ONE"), patch, Direction.FORWARD)


def test_git_blob_id_matches_git():
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_id(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


@pytest.mark.parametrize(
    "bad",
    [
        b"diff --git a/x b/x\nnew file mode 100644\n--- /dev/null\n+++ b/x\n@@ -0,0 +1 @@\n+x\n",
        b"--- a/x\n+++ b/y\n@@ -1 +1 @@\n-x\n+y\n",
        b"--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n-x\n+y\n",
        b"--- a/x\n+++ b/x\n",
    ],
    ids=["new-file", "rename", "truncated-hunk", "no-hunks"],
)
def test_unsupported_or_malformed_diffs_are_rejected(bad: bytes):
    with pytest.raises(DiffError):
        parse_unified_diff(bad)
