# Licensed under the Apache License, Version 2.0.
"""
Dependencies point one way: core <- hooks <- triggers <- operators, core <- links <- operators, and
the testing kit and the drill use hooks, triggers and the core, never an operator module (DAG files
aside). Links import no hook, so a cloud's links load on an install without that cloud's extra (the
providers manager imports every one). Read off the source with ``ast``, so a
forbidden import fails here even when nothing imports the module under test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import airflow.providers.resumable as package

ROOT = Path(package.__file__).parent
PREFIX = "airflow.providers.resumable"
DAG_FILES = {"drill/drill_dags.py"}
"""Modules that are DAG files: they are what uses an operator, so they may import one."""
ENTRY_POINTS = {"cli.py"}
"""The command line sits above every layer and may import any of them."""

FORBIDDEN = {
    # layer of the importing module -> layers it must not import
    "core": ("hooks", "triggers", "operators", "testing", "drill", "demo"),
    "hooks": ("triggers", "operators", "testing", "drill", "demo"),
    "links": ("hooks", "triggers", "operators", "testing", "drill", "demo"),
    "triggers": ("operators", "testing", "drill", "demo"),
    "operators": ("testing", "drill", "demo"),
    "testing": ("operators", "drill", "demo"),
    "drill": ("operators", "demo"),
}
LAYERS = ("hooks", "links", "triggers", "operators", "testing", "drill", "demo", "core_patch", "example_dags")


def _layer(relative: str) -> str:
    top = relative.split("/", 1)[0]
    return top if top in LAYERS and "/" in relative else "core"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == PREFIX:
                # ``from airflow.providers.resumable import operators`` imports a layer by name.
                found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _imported_layer(module: str) -> str | None:
    if not module.startswith(PREFIX + "."):
        return None
    rest = module[len(PREFIX) + 1 :].split(".")
    return rest[0] if rest[0] in LAYERS else "core"


MODULES = sorted(
    str(path.relative_to(ROOT))
    for path in ROOT.rglob("*.py")
    if _layer(str(path.relative_to(ROOT))) in FORBIDDEN
    and str(path.relative_to(ROOT)) not in DAG_FILES | ENTRY_POINTS
)


def forbidden_imports(relative: str, root: Path = ROOT) -> list[str]:
    """``file:line imports module`` for every import of ``relative`` that points the wrong way."""
    banned = FORBIDDEN[_layer(relative)]
    return [
        f"{relative}:{line} imports {module}"
        for line, module in _imports(root / relative)
        if _imported_layer(module) in banned
    ]


@pytest.mark.parametrize("relative", MODULES)
def test_no_module_imports_against_the_layering(relative):
    assert forbidden_imports(relative) == []


def test_the_check_sees_every_layer_it_guards():
    layers = {_layer(relative) for relative in MODULES}
    assert {"core", "hooks", "links", "triggers", "operators", "testing", "drill"} <= layers
    assert "drill/drill_dags.py" not in MODULES, "a DAG file may import operators"


def test_the_check_would_catch_an_upward_import(tmp_path):
    # Guard against a check that passes vacuously: a testing module importing an operator fails.
    fake_root = tmp_path / "resumable"
    (fake_root / "testing").mkdir(parents=True)
    (fake_root / "testing" / "bad.py").write_text(
        "from airflow.providers.resumable.operators.base import ResumableSubmitOperator\n"
        "from airflow.providers.resumable import drill\n"
    )
    assert forbidden_imports("testing/bad.py", fake_root) == [
        "testing/bad.py:1 imports airflow.providers.resumable.operators.base",
        "testing/bad.py:2 imports airflow.providers.resumable.drill",
    ]


MAX_OPERATOR_MODULE_LINES = 600


def test_every_operator_module_stays_small_enough_to_read():
    # An operator module carries arguments, validation, templating, XComs and links; wire calls,
    # lineage and adoption live in their own modules. Past this size something else crept in.
    sizes = {path.name: len(path.read_text().splitlines()) for path in (ROOT / "operators").glob("*.py")}
    assert {name: n for name, n in sizes.items() if n > MAX_OPERATOR_MODULE_LINES} == {}
