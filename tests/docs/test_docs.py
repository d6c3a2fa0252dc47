# Licensed under the Apache License, Version 2.0.
"""The documentation builds cleanly and its code cannot rot: every example is run or imported."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import airflow.providers.resumable.example_dags as example_dags

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
_PYTHON_BLOCK = re.compile(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", re.MULTILINE)


def _python_blocks() -> list[tuple[str, str]]:
    blocks = []
    for page in sorted(DOCS.rglob("*.rst")):
        for number, match in enumerate(_PYTHON_BLOCK.finditer(page.read_text()), start=1):
            code = "\n".join(line[3:] for line in match.group(1).splitlines())
            blocks.append((f"{page.relative_to(DOCS)}#{number}", code))
    return blocks


def test_sphinx_builds_with_warnings_as_errors(tmp_path):
    build = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr
    assert (tmp_path / "index.html").exists()


@pytest.mark.parametrize(("where", "code"), _python_blocks(), ids=lambda v: v if "#" in str(v) else "")
def test_every_python_block_on_the_site_runs(where, code):
    exec(compile(code, where, "exec"), {"__name__": f"docs_example_{where}"})


def test_the_site_has_python_blocks_to_check():
    assert _python_blocks(), "the block pattern found nothing: the test above would check nothing"


@pytest.mark.parametrize("module", [m.name for m in pkgutil.iter_modules(example_dags.__path__)])
def test_every_example_dag_imports_and_defines_a_dag(module):
    loaded = importlib.import_module(f"{example_dags.__name__}.{module}")
    dag = loaded.dag
    assert dag.dag_id == module
    assert dag.task_ids, f"{module} defines no task"


_JOB_SPEC_BLOCK = re.compile(
    r"^``(?P<cloud>\w+)``\n(?:   .*\n|\n)*?   \.\. code-block:: json\n\n(?P<body>(?:(?:      .*)?\n)+)",
    re.MULTILINE,
)


def test_every_job_spec_on_the_drill_page_passes_the_drills_own_check():
    """The drill page's job-spec examples are what `drill --job` accepts, per cloud."""
    from airflow.providers.resumable.drill.real_clouds import REAL_CLOUDS, validate_job_spec

    specs = {
        m["cloud"]: json.loads(m["body"]) for m in _JOB_SPEC_BLOCK.finditer((DOCS / "drill.rst").read_text())
    }
    assert set(specs) == set(REAL_CLOUDS), f"one example per cloud expected, found {sorted(specs)}"
    for cloud, spec in specs.items():
        assert validate_job_spec(cloud, spec) == spec
