# Licensed under the Apache License, Version 2.0.
"""
A user's install: ``pip install .`` into a clean venv, then Airflow finds the provider, and the
documented Dockerfile recipe's commands patch that install.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_DOCKERFILE_BLOCK = re.compile(r"^\.\. code-block:: dockerfile\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)


@pytest.fixture(scope="module")
def clean_install(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A fresh venv with the provider installed from this checkout, and an environment to run it in."""
    tmp_path = tmp_path_factory.mktemp("clean-install")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # Non-editable, from the source tree, under the same pins a user would use.
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(REPO / "constraints-3.11.txt"),
            str(REPO),
        ],
        check=True,
        timeout=900,
    )
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "PYTHONPATH": "",
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    return env_dir, env


def test_pip_install_into_a_clean_venv_registers_the_provider_and_the_cli(clean_install):
    env_dir, env = clean_install
    python = env_dir / "bin" / "python"
    listed = subprocess.run(
        [str(env_dir / "bin" / "airflow"), "providers", "list", "--output", "plain"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=True,
    )
    assert "airflow-provider-resumable" in listed.stdout, listed.stdout + listed.stderr

    version = subprocess.run(
        [str(env_dir / "bin" / "airflow-resumable"), "version"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert version.stdout.startswith("airflow-provider-resumable ")

    # The installed package must be the wheel's copy, not this checkout (no editable leakage).
    where = subprocess.run(
        [str(python), "-c", "import airflow.providers.resumable as m; print(m.__file__)"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert str(env_dir) in where.stdout, where.stdout
    assert sys.prefix not in where.stdout


def test_the_documented_dockerfile_recipe_patches_a_clean_install(clean_install):
    """
    The recipe in docs/core_patch.rst, minus what needs Docker: its base image is Airflow 3.3.2 and
    its one RUN line installs the provider, then runs commands that must patch that install.
    """
    _, env = clean_install
    blocks = _DOCKERFILE_BLOCK.findall((REPO / "docs" / "core_patch.rst").read_text())
    assert len(blocks) == 1, "expected exactly one Dockerfile recipe in docs/core_patch.rst"
    lines = [line.strip() for line in blocks[0].replace("\\\n", " ").splitlines() if line.strip()]
    assert lines[0].startswith("FROM apache/airflow:3.3.2"), lines[0]
    run = [line for line in lines if line.startswith("RUN ")]
    assert len(run) == 1, lines
    install, *commands = (part.strip() for part in run[0].removeprefix("RUN ").split("&&"))
    assert shlex.split(install)[:2] == ["pip", "install"]
    assert "airflow-provider-resumable" in shlex.split(install)
    assert commands, "the recipe must apply the patch after installing"
    # The fixture did the install (from this checkout rather than the package index).
    outputs = [
        subprocess.run(shlex.split(command), capture_output=True, text=True, env=env, timeout=300, check=True)
        for command in commands
    ]
    # `patch status` exits 0 only when the patch is applied (check=True above); and says so.
    assert "CHECKPOINTED patch applied" in outputs[-1].stdout, outputs[-1].stdout
