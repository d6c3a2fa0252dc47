# Licensed under the Apache License, Version 2.0.
"""
The web UI part of the core patch: exact replacements in each release's compiled bundle.

Against the pristine sdists of every release: the replacements patch the bundle the UI actually
loads, give ``checkpointed`` its own colour, an icon, a filter entry, a refresh, a summary position
and a dashboard count, and come off byte for byte; a tree patched by a provider whose patch had no UI
part is upgraded in one step. The applier's general contract (second apply a no-op, another release
refused) is checked for every file, the bundle included, in test_patch_versions.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from airflow.providers.resumable.core_patch.installation import (
    RECORD_FILE,
    RELEASES,
    PatchError,
    PatchState,
    apply_patch,
    bundled_patch,
    inspect_target,
    revert_patch,
    target_path,
)
from airflow.providers.resumable.core_patch.replacements import (
    FileReplacements,
    Replacement,
    ReplacementError,
    ReplacementMismatch,
    parse_replacements,
)
from airflow.providers.resumable.core_patch.unified_diff import Direction, git_blob_id
from tests.unit.core_patch.conftest import TreeFactory, digests

VERSIONS = list(RELEASES)
# Feather's pause-circle: a circle and two vertical strokes.
PAUSE_CIRCLE = (
    "{tag:`circle`,attr:{cx:`12`,cy:`12`,r:`10`},child:[]},"
    "{tag:`line`,attr:{x1:`10`,y1:`15`,x2:`10`,y2:`9`},child:[]},"
    "{tag:`line`,attr:{x1:`14`,y1:`15`,x2:`14`,y2:`9`},child:[]}"
)


def _bundle(tree: Path, version: str) -> Path:
    (ui,) = bundled_patch(version).ui_files
    return target_path(tree, ui.path)


def _state_palettes(bundle: str) -> dict[str, str]:
    """The theme's semantic colour of each name, e.g. ``{"running": "cyan", ...}``."""
    tokens = bundle[bundle.index("semanticTokens:{colors:{") :]
    return dict(re.findall(r"(\w+):[\w$]+\(`(\w+)`\)", tokens[: tokens.index("}}}")]))


@pytest.mark.parametrize("version", VERSIONS)
def test_the_replacements_patch_the_bundle_the_ui_loads(release_tree_of: TreeFactory, version: str):
    tree = release_tree_of(version)
    index_html = (tree / "airflow/ui/dist/index.html").read_text()
    (loaded,) = re.findall(r'<script type="module" crossorigin src="\./static/assets/([^"]+)">', index_html)

    assert _bundle(tree, version).name == loaded
    assert "checkpointed" not in _bundle(tree, version).read_text()


@pytest.mark.parametrize("version", VERSIONS)
def test_the_patched_bundle_gives_checkpointed_a_colour_an_icon_and_a_filter_entry(
    tree_of: TreeFactory, version: str
):
    tree = tree_of(version)
    apply_patch(tree)
    bundle = _bundle(tree, version).read_text()

    palettes = _state_palettes(bundle)
    assert palettes["checkpointed"] == "teal"
    # Its own colour: no other task or run state shares it (teal is otherwise only the raw palette).
    assert [name for name, palette in palettes.items() if palette == "teal"] == ["checkpointed", "teal"]
    # The StateIcon switch draws a pause circle with the same react-icons factory as the other icons.
    (factory,) = re.findall(
        r"case`checkpointed`:return ([\w$]+)\(\{tag:`svg`,attr:\{[^}]*\},child:\[", bundle
    )
    assert re.search(rf"function {re.escape(factory)}\(e\)\{{return t=>", bundle)
    case = bundle[bundle.index("case`checkpointed`:") : bundle.index("case`up_for_reschedule`:")]
    assert PAUSE_CIRCLE in case
    assert (
        "{label:`common:states.up_for_reschedule`,value:`up_for_reschedule`},"
        "{label:`common:states.checkpointed`,value:`checkpointed`}," in bundle
    )
    assert "e===`up_for_reschedule`||e===`checkpointed`||" in bundle  # pending: keeps refreshing
    assert "`up_for_reschedule`,`checkpointed`,`running`" in bundle  # group summary order
    assert "`up_for_reschedule`,`checkpointed`,`upstream_failed`" in bundle  # dashboard counts
    # The filter's label key resolves: the diff adds it to the English locale.
    locale = json.loads((tree / "airflow/ui/dist/i18n/locales/en/common.json").read_text())
    assert locale["states"]["checkpointed"] == "Checkpointed"


@pytest.mark.parametrize("version", VERSIONS)
def test_revert_restores_the_release_bundle_byte_for_byte(
    tree_of: TreeFactory, release_tree_of: TreeFactory, version: str
):
    tree = tree_of(version)
    release = _bundle(release_tree_of(version), version).read_bytes()
    apply_patch(tree)
    assert _bundle(tree, version).read_bytes() != release

    revert_patch(tree)

    assert _bundle(tree, version).read_bytes() == release


def test_a_tree_patched_without_the_ui_part_reads_another_version_and_apply_adds_it(
    tree_of: TreeFactory, release_tree_of: TreeFactory
):
    # What a provider bundling the diff only left behind: every diff file patched, the bundle stock.
    tree = tree_of("3.3.2")
    pristine = digests(tree)
    diff_only = dataclasses.replace(bundled_patch("3.3.2"), ui_text=b"")
    apply_patch(tree, diff_only)
    assert _bundle(tree, "3.3.2").read_bytes() == _bundle(release_tree_of("3.3.2"), "3.3.2").read_bytes()

    status = inspect_target(tree)
    assert status.state is PatchState.OTHER_PATCH  # not "an interrupted apply"
    assert status.applied == diff_only

    written = apply_patch(tree)

    assert set(written) == {_bundle(tree, "3.3.2"), tree / RECORD_FILE}
    assert inspect_target(tree).state is PatchState.APPLIED
    revert_patch(tree)
    assert digests(tree) == pristine


def test_an_edited_bundle_is_refused_and_nothing_is_written(pristine_tree: Path):
    bundle = _bundle(pristine_tree, "3.3.2")
    bundle.write_bytes(bundle.read_bytes() + b"\n// a local edit\n")
    before = digests(pristine_tree)

    with pytest.raises(PatchError, match=re.escape(str(bundle))):
        apply_patch(pristine_tree)

    assert inspect_target(pristine_tree).state is PatchState.CONFLICT
    assert digests(pristine_tree) == before


def _one_file(content: bytes, *replacements: tuple[bytes, bytes]) -> tuple[FileReplacements, bytes]:
    patched = content
    for find, replace in replacements:
        patched = patched.replace(find, replace)
    changes = tuple(Replacement(find, replace, why=f"{find!r}") for find, replace in replacements)
    return FileReplacements("f.js", changes, git_blob_id(content), git_blob_id(patched)), patched


def test_replacements_apply_in_order_and_revert_in_reverse():
    file, patched = _one_file(b"a=`x`,b=`y`", (b"a=`x`", b"a=`x`,c=`z`"), (b"c=`z`", b"c=`w`"))

    assert file.apply(b"a=`x`,b=`y`", Direction.FORWARD) == patched == b"a=`x`,c=`w`,b=`y`"
    assert file.apply(patched, Direction.REVERSE) == b"a=`x`,b=`y`"


@pytest.mark.parametrize(
    ("release", "content", "direction", "message"),
    [
        # Even a file whose blob id the document names is refused when the text is there twice.
        (b"a=1;a=1;", b"a=1;a=1;", Direction.FORWARD, "found it 2 times"),
        (b"a=1;", b"b=2;", Direction.FORWARD, "not the expected file"),
        (b"a=1;", b"a=1;", Direction.REVERSE, "not the expected file"),
    ],
    ids=["twice", "another-file", "reverse-of-a-release-file"],
)
def test_a_replacement_that_does_not_match_exactly_once_is_refused(
    release: bytes, content: bytes, direction: Direction, message: str
):
    file = FileReplacements(
        "f.js", (Replacement(b"a=1;", b"a=2;", "x"),), git_blob_id(release), git_blob_id(b"a=2;")
    )

    with pytest.raises(ReplacementMismatch, match=message):
        file.apply(content, direction)
    assert file.applies(content, direction) is False


@pytest.mark.parametrize(
    "entry",
    [
        {"why": "empty", "find": "", "replace": "x"},
        {"why": "no change", "find": "x", "replace": "x"},
        {"why": "not text", "find": 1, "replace": "x"},
    ],
    ids=["empty-find", "unchanged", "not-a-string"],
)
def test_a_malformed_replacements_document_is_refused(entry: dict[str, object]):
    document = {
        "files": [{"path": "f.js", "old_blob": "0" * 40, "new_blob": "1" * 40, "replacements": [entry]}]
    }

    with pytest.raises(ReplacementError):
        parse_replacements(json.dumps(document).encode())


def test_each_release_touches_each_file_once():
    for version in VERSIONS:
        patch = bundled_patch(version)
        paths = [f.path for f in patch.files]
        assert len(paths) == len(set(paths)), version
        assert [f.path.rsplit("/", 1)[-1][:6] for f in patch.ui_files] == ["index-"], version
