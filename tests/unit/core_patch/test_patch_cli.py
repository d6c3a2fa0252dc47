# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import re
from pathlib import Path

import pytest

from airflow.providers.resumable.cli import main
from airflow.providers.resumable.doctor import check_airflow_version, check_patch


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_apply_revert_exit_codes_and_messages(pristine_tree: Path, capsys):
    target = ("--target", str(pristine_tree))

    code, out, _ = _run(capsys, "patch", "status", *target)
    assert (code, "patch not applied" in out) == (1, True)

    code, out, _ = _run(capsys, "patch", "apply", *target)
    assert code == 0
    assert re.search(
        # 24 files of the diff, the UI bundle, and the record
        r"Applied airflow-3\.3\.2-checkpointed\.patch \(sha256 [0-9a-f]{12}, .*\) to 26 files",
        out,
    )

    code, out, _ = _run(capsys, "patch", "apply", *target)
    assert (code, out.startswith("Nothing to do")) == (0, True)

    code, out, _ = _run(capsys, "patch", "status", *target)
    assert (code, "patch applied" in out) == (0, True)

    code, out, _ = _run(capsys, "patch", "revert", *target)
    assert (code, "Reverted" in out) == (0, True)


def test_refusal_exits_3_and_explains_on_stderr(pristine_tree: Path, capsys):
    init = pristine_tree / "airflow/__init__.py"
    init.write_text(init.read_text().replace('__version__ = "3.3.2"', '__version__ = "3.4.0"'))

    code, out, err = _run(capsys, "patch", "apply", "--target", str(pristine_tree))

    assert code == 3
    assert out == ""
    assert "apache-airflow-core 3.4.0 and apache-airflow-task-sdk 1.3.2" in err
    assert "3.3.0 (task SDK 1.3.0), 3.3.1 (task SDK 1.3.1), 3.3.2 (task SDK 1.3.2)" in err
    assert "Nothing was written" in err


def test_doctor_checks_say_what_to_do_on_an_unpatched_tree(pristine_tree: Path):
    version = check_airflow_version(pristine_tree)
    patch = check_patch(pristine_tree)

    assert version.ok is True
    assert patch.ok is False
    assert "airflow-resumable patch apply" in patch.remedy


def test_doctor_flags_another_airflow_version(pristine_tree: Path):
    init = pristine_tree / "airflow/sdk/__init__.py"
    init.write_text(init.read_text().replace('__version__ = "1.3.2"', '__version__ = "1.4.0"'))

    version = check_airflow_version(pristine_tree)

    assert version.ok is False
    assert "apache-airflow-task-sdk 1.4.0" in version.detail
    assert "fallback path" in version.detail
    assert "3.3.2 (task SDK 1.3.2)" in version.remedy
    patch = check_patch(pristine_tree)
    assert patch.ok is False
    assert patch.detail == "none bundled for this Airflow release"
