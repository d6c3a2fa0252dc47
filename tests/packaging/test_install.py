# Licensed under the Apache License, Version 2.0.
"""
A user's install, from the release files: ``python -m build`` makes the sdist and the wheel (checked
by ``twine check``), the wheel goes into a clean venv with no extra, and there:

- with no extra, Airflow finds the provider and its CLI, the core imports, no cloud package is
  installed, and importing a cloud's operator names the extra to install;
- the documented Dockerfile recipe's own commands install the ``[databricks]`` extra (the operator
  then imports, and Airflow stays at the release it had) and patch that install.

The clean venv starts with the oldest supported Airflow, 3.3.0, as a deployment that has not
upgraded would: installing the provider, with or without an extra, must leave it at 3.3.0, and the
3.3.0 core patch must apply there.

The tests run in file order (one xdist group, ``tests/conftest.py``): the last one adds the extra.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEV_CONSTRAINTS = REPO / "constraints-3.11.txt"
AIRFLOW = "3.3.0"
"""The deployment's Airflow: the oldest release the provider supports."""
TASK_SDK = "1.3.0"
AIRFLOW_PINS = re.compile(r"^(apache-airflow(-core|-task-sdk)?|aiosqlite)==")


def _constraints_for_the_deployment(path: Path) -> Path:
    """The dev pins with the deployment's Airflow in place of 3.3.2 (3.3.0 caps aiosqlite below 0.22)."""
    kept = [line for line in DEV_CONSTRAINTS.read_text().splitlines() if not AIRFLOW_PINS.match(line)]
    pins = [
        f"apache-airflow=={AIRFLOW}",
        f"apache-airflow-core=={AIRFLOW}",
        f"apache-airflow-task-sdk=={TASK_SDK}",
    ]
    path.write_text("\n".join([*kept, *pins, "aiosqlite==0.21.0"]) + "\n")
    return path


_DOCKERFILE_BLOCK = re.compile(r"^\.\. code-block:: dockerfile\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)
CLOUD_DISTRIBUTIONS = (
    "apache-airflow-providers-amazon",
    "apache-airflow-providers-databricks",
    "apache-airflow-providers-google",
    "boto3",
    "botocore",
    "google-cloud-dataproc",
)


def _pip(python: Path, *args: str) -> None:
    constraints = python.parents[2] / "constraints.txt"  # beside the venv: the deployment's pins
    # Under the pins a user of this checkout would use: quick (the local wheel cache) and repeatable.
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            # No .pyc for all of Airflow up front: the tests import a small part of it.
            "--no-compile",
            "-c",
            str(constraints),
            *args,
        ],
        check=True,
        timeout=900,
    )


# Building the release and installing Airflow into fresh venvs takes 2 to 4 minutes on a loaded 2-core
# machine before a test's own steps (setup and call are timed together); 300 s ran out once in CI.
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def release_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, as ``python -m build`` makes them (the wheel is built from the sdist)."""
    out = tmp_path_factory.mktemp("dist")
    # From a copy of the files git knows (as a release is built from a checkout): the build writes
    # egg-info into the tree it builds, and other tests run from this one at the same time.
    source = tmp_path_factory.mktemp("source")
    listed = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, f"python -m build failed:\n{built.stdout[-3000:]}\n{built.stderr[-5000:]}"
    [sdist] = out.glob("*.tar.gz")
    [wheel] = out.glob("*.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def clean_install(
    tmp_path_factory: pytest.TempPathFactory, release_files: tuple[Path, Path]
) -> tuple[Path, dict[str, str]]:
    """A fresh venv with Airflow 3.3.0, then the provider's wheel with no extra; and an environment to
    run it in."""
    tmp_path = tmp_path_factory.mktemp("clean-install")
    _constraints_for_the_deployment(tmp_path / "constraints.txt")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    _pip(env_dir / "bin" / "python", f"apache-airflow=={AIRFLOW}")
    _pip(env_dir / "bin" / "python", str(release_files[1]))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow_home"),
        "PYTHONPATH": "",
        "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }
    return env_dir, env


def _run(env: dict[str, str], *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(command), capture_output=True, text=True, env=env, timeout=300, check=check)


def test_the_sdist_and_the_wheel_pass_twine_check_and_declare_the_license(release_files):
    sdist, wheel = release_files
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    with zipfile.ZipFile(wheel) as archive:
        [metadata_name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = archive.read(metadata_name).decode()
        assert any(n.endswith(".dist-info/licenses/LICENSE") for n in archive.namelist())
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Python: !=3.15.*,>=3.10" in metadata
    unconditional = [
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert not [line for line in unconditional if any(d in line for d in CLOUD_DISTRIBUTIONS)], unconditional


def test_the_core_install_has_no_cloud_package_and_registers_the_provider_and_the_cli(clean_install):
    env_dir, env = clean_install
    python = str(env_dir / "bin" / "python")
    installed = _run(env, python, "-m", "pip", "list", "--format", "freeze").stdout.lower()
    assert [d for d in CLOUD_DISTRIBUTIONS if f"\n{d}==" in f"\n{installed}"] == []

    listed = _run(env, str(env_dir / "bin" / "airflow"), "providers", "list", "--output", "plain")
    assert "airflow-provider-resumable" in listed.stdout, listed.stdout + listed.stderr
    version = _run(env, str(env_dir / "bin" / "airflow-resumable"), "version")
    assert version.stdout.startswith("airflow-provider-resumable ")

    # The core: the ledger, the reaper and its plugin, the fake-job operator, the provider's metadata;
    # and the wheel's copy of them, not this checkout (no editable leakage).
    core = _run(
        env,
        python,
        "-c",
        "import airflow.providers.resumable.ledger, airflow.providers.resumable.job_reaper, "
        "airflow.providers.resumable.plugins.job_reaper, airflow.providers.resumable.operators.fake_job\n"
        "from airflow.providers.resumable.get_provider_info import get_provider_info\n"
        "import airflow.providers.resumable as m; print(m.__file__, get_provider_info()['versions'][0])",
    )
    where, reported_version = core.stdout.split()
    assert where.startswith(str(env_dir)), where
    assert not where.startswith(sys.prefix), where
    # get_provider_info's version is the installed distribution's (the wheel's file name carries it).
    assert (
        _run(env, python, "-m", "pip", "show", "airflow-provider-resumable").stdout.count(
            f"Version: {reported_version}\n"
        )
        == 1
    )

    # doctor runs there too (it fails here: no patch, no metadata database; what matters is that it runs).
    doctor = _run(env, str(env_dir / "bin" / "airflow-resumable"), "doctor", check=False)
    assert f"[ok     ] Airflow version: apache-airflow-core {AIRFLOW}" in doctor.stdout, (
        doctor.stdout + doctor.stderr
    )
    assert "Traceback" not in doctor.stderr, doctor.stderr

    databricks = _run(
        env, python, "-c", "import airflow.providers.resumable.operators.databricks", check=False
    )
    assert databricks.returncode != 0
    assert "MissingExtraError" in databricks.stderr
    assert "pip install 'airflow-provider-resumable[databricks]'" in databricks.stderr, databricks.stderr


def test_the_documented_dockerfile_recipe_installs_an_extra_and_patches_the_install(
    clean_install, release_files
):
    """
    The recipe in docs/core_patch.rst, minus what needs Docker: its base image is Airflow 3.3.2 (any
    Python tag) and its one RUN line installs the provider with an extra, then patches that install.
    The install runs here as written, with the wheel in place of the name on the package index.
    """
    env_dir, env = clean_install
    blocks = _DOCKERFILE_BLOCK.findall((REPO / "docs" / "core_patch.rst").read_text())
    assert len(blocks) == 1, "expected exactly one Dockerfile recipe in docs/core_patch.rst"
    lines = [line.strip() for line in blocks[0].replace("\\\n", " ").splitlines() if line.strip()]
    assert lines[0] == "FROM apache/airflow:3.3.2", "the default tag: whatever Python it has"
    run = [line for line in lines if line.startswith("RUN ")]
    assert len(run) == 1, lines
    install, *commands = (part.strip() for part in run[0].removeprefix("RUN ").split("&&"))
    words = shlex.split(install)
    assert words[:2] == ["pip", "install"]
    # The image sets AIRFLOW_VERSION; pinning it in the same command keeps pip from moving Airflow.
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert "airflow-provider-resumable[databricks]" in words
    assert commands, "the recipe must apply the patch after installing"

    python = env_dir / "bin" / "python"
    wheel = release_files[1]
    # As written, but from the wheel, and with pip's cache (--no-cache-dir keeps an image small; here
    # it would only download every wheel again).
    requirements = [
        word.replace("${AIRFLOW_VERSION}", AIRFLOW).replace("airflow-provider-resumable", f"{wheel}", 1)
        if word.startswith(("apache-airflow==", "airflow-provider-resumable"))
        else word
        for word in words[2:]
        if word != "--no-cache-dir"
    ]
    _pip(python, *requirements)

    after = _run(
        env,
        str(python),
        "-c",
        "import airflow, airflow.providers.resumable.operators.databricks as d\n"
        "print(airflow.__version__, d.ResumableDatabricksSubmitRunOperator.__name__)",
    )
    assert after.stdout.split() == [AIRFLOW, "ResumableDatabricksSubmitRunOperator"], "Airflow did not move"

    outputs = [_run(env, *shlex.split(command)) for command in commands]
    # `patch status` exits 0 only when the patch is applied (check=True in _run); and says so.
    assert "CHECKPOINTED patch applied" in outputs[-1].stdout, outputs[-1].stdout
