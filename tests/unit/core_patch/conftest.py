# Licensed under the Apache License, Version 2.0.
"""
Pristine Airflow trees built from the sdists of apache-airflow-core 3.3.2 and apache-airflow-task-sdk 1.3.2.

The sdists are downloaded once into ``.tmp/sdists`` under the repository (PyPI is reachable in CI)
and reused; each tree is the two sdists' ``src`` directories unpacked into one directory, the same
shape as a site-packages.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from airflow.providers.resumable.core_patch.installation import SUPPORTED_VERSIONS

REPO_ROOT = Path(__file__).resolve().parents[3]
SDIST_CACHE = REPO_ROOT / ".tmp" / "sdists"


def _sdist(dist: str, version: str) -> Path:
    name = f"{dist.replace('-', '_')}-{version}.tar.gz"
    path = SDIST_CACHE / name
    if not path.is_file():
        SDIST_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                *(sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps"),
                *("--dest", str(SDIST_CACHE), f"{dist}=={version}"),
            ],
            check=True,
        )
    return path


def _unpack_src(sdist: Path, into: Path) -> None:
    """Copy the sdist's ``src/`` contents into ``into``."""
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        members = [m for m in archive.getmembers() if m.name.startswith(f"{top}/src/")]
        for member in members:
            member.name = member.name[len(f"{top}/src/") :]
        archive.extractall(into, members=[m for m in members if m.name], filter="data")


@pytest.fixture(scope="session")
def release_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only reference: both sdists unpacked into one directory. Do not modify it."""
    root = tmp_path_factory.mktemp("release")
    for dist, version in SUPPORTED_VERSIONS.items():
        _unpack_src(_sdist(dist, version), root)
    return root


@pytest.fixture
def pristine_tree(release_tree: Path, tmp_path: Path) -> Path:
    """A fresh, writable copy of :func:`release_tree`: the ``airflow`` package with, of the UI, only
    its locale files (the patch adds a label there; the rest of the UI is large and untouched)."""
    root = tmp_path / "site-packages"
    source = release_tree / "airflow"
    keep_only = {source / "ui": "dist", source / "ui" / "dist": "i18n"}

    def skip_ui_assets(directory: str, names: list[str]) -> list[str]:
        kept = keep_only.get(Path(directory))
        return [name for name in names if name != kept] if kept else []

    shutil.copytree(source, root / "airflow", ignore=skip_ui_assets)
    return root
