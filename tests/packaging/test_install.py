# Licensed under the Apache License, Version 2.0.
"""A user's install: ``pip install .`` into a clean venv, then Airflow finds the provider."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_pip_install_into_a_clean_venv_registers_the_provider_and_the_cli(tmp_path):
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
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow_home"), "PYTHONPATH": ""}
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
