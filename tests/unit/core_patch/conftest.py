# Licensed under the Apache License, Version 2.0.
"""
Pristine Airflow trees built from the sdists of every apache-airflow-core / apache-airflow-task-sdk
release the core patch is bundled for.

The sdists are downloaded once into ``.tmp/sdists`` under the repository from the package registry
and reused. A tree holds only the files its release's bundled patch touches, plus the few others the checks
read (:data:`EXTRA_FILES`): the same paths as a site-packages, at a fraction of the size (the checks
need nothing else, and copying the whole ``airflow`` package per test would dominate their run time).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow.providers.resumable.core_patch.installation import (
    RELEASES,
    bundled_patch,
    target_path,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
SDIST_CACHE = REPO_ROOT / ".tmp" / "sdists"
EXTRA_FILES = (
    "airflow/__init__.py",  # the versions are read from these two
    "airflow/sdk/__init__.py",
    "airflow/api_fastapi/execution_api/routes/task_state_store.py",  # how each release routes a key
    "airflow/ui/dist/index.html",  # which bundle the UI loads
)

TreeFactory = Callable[[str], Path]


def sdist(dist: str, version: str) -> Path:
    """
    The sdist of ``dist`` ``version``, downloaded into the cache on first use.

    Fails the test (it does not skip it) when the registry cannot be reached: these checks are the
    only proof that the patch fits each release, and a silent skip would pass without them.
    """
    path = SDIST_CACHE / f"{dist.replace('-', '_')}-{version}.tar.gz"
    if path.is_file():
        return path
    SDIST_CACHE.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check"]
    command += ["--no-binary", ":all:", "--no-deps", "--dest", str(SDIST_CACHE), f"{dist}=={version}"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not path.is_file():
        errors = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("WARNING"))
        pytest.fail(
            f"Could not download the {dist}=={version} sdist from the package registry into "
            f"{SDIST_CACHE} (pip exited {result.returncode}):\n{errors[-1500:]}\n"
            "The per-release patch checks need the pristine sources: make the registry reachable "
            "(or set PIP_INDEX_URL), or place the .tar.gz in that directory by hand.",
            pytrace=False,
        )
    return path


def touched_files(version: str) -> set[str]:
    """
    Every file the release's bundled patch touches (the diff's and the UI bundle's), relative to a
    site-packages. Per release: the UI bundle's name carries a content hash, so each release's differs.
    """
    root = Path("/")
    return {
        str(target_path(root, file.path).relative_to(root)) for file in bundled_patch(version).files
    } | set(EXTRA_FILES)


def _unpack_src(archive_path: Path, into: Path, wanted: set[str]) -> None:
    """Extract ``wanted`` (paths relative to the sdist's ``src/``) into ``into``."""
    with tarfile.open(archive_path) as archive:
        top = archive.getnames()[0].split("/")[0]
        members = []
        for member in archive.getmembers():
            relative = member.name.removeprefix(f"{top}/src/")
            if member.isfile() and relative in wanted:
                member.name = relative
                members.append(member)
        archive.extractall(into, members=members, filter="data")


def digests(root: Path) -> dict[str, str]:
    """Every file under ``root`` and the SHA-256 of its bytes: equal digests mean byte-identical trees."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def release_tree_of(tmp_path_factory: pytest.TempPathFactory) -> TreeFactory:
    """
    A read-only reference tree per apache-airflow-core release (both sdists). Do not modify it.

    Checks that every file a tree should hold was in the sdists.
    """
    trees: dict[str, Path] = {}

    def build(version: str) -> Path:
        if version not in trees:
            wanted = touched_files(version)
            root = tmp_path_factory.mktemp(f"release-{version}")
            core = (version, "apache-airflow-core")
            for dist_version, dist in (core, (RELEASES[version], "apache-airflow-task-sdk")):
                _unpack_src(sdist(dist, dist_version), root, wanted)
            missing = sorted(f for f in wanted if not (root / f).is_file())
            assert not missing, f"not in the {version} sdists: {missing}"
            trees[version] = root
        return trees[version]

    return build


@pytest.fixture
def tree_of(release_tree_of: TreeFactory, tmp_path: Path) -> TreeFactory:
    """A fresh, writable copy of :func:`release_tree_of` for a release, per test."""

    def copy(version: str) -> Path:
        root = tmp_path / f"site-packages-{version}"
        shutil.copytree(release_tree_of(version), root)
        return root

    return copy


@pytest.fixture
def release_tree(release_tree_of: TreeFactory) -> Path:
    """The read-only 3.3.2 reference tree."""
    return release_tree_of("3.3.2")


@pytest.fixture
def pristine_tree(tree_of: TreeFactory) -> Path:
    """A fresh, writable 3.3.2 tree."""
    return tree_of("3.3.2")
