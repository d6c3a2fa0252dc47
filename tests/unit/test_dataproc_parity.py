# Licensed under the Apache License, Version 2.0.
"""
A DAG author swaps the import and nothing else: our Dataproc operators against the Google provider's.

The Google provider (22.8.0) cannot be imported here without installing its own dependencies, so
its constructor signatures, template fields and links are read with ``ast`` from unmodified copies
of its ``operators/dataproc.py`` and of the base class's ``operators/cloud_base.py``
(``tests/unit/upstream/``), so arguments a base declares count, as they would for a DAG author. Defaults are compared where they
are literals; the two read from configuration (``deferrable``, the OpenLineage switches) are
compared by the option they read.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest
from airflow.sdk import BaseOperator
from signatures import constructor_parameters, hidden_alias_lines

from airflow.providers.resumable.operators.base import ResumableSubmitOperator
from airflow.providers.resumable.operators.dataproc import (
    ResumableDataprocCreateBatchOperator,
    ResumableDataprocSubmitJobOperator,
)

UPSTREAM = Path(__file__).parent / "upstream" / "google_22_8_0_operators_dataproc.py.txt"
UPSTREAM_BASE = Path(__file__).parent / "upstream" / "google_22_8_0_operators_cloud_base.py.txt"
PAIRS = [
    ("DataprocSubmitJobOperator", ResumableDataprocSubmitJobOperator),
    ("DataprocCreateBatchOperator", ResumableDataprocCreateBatchOperator),
]
IDS = ["submit-job", "create-batch"]

DEFAULTS_WE_CHANGE: set[str] = set()
"""None: ``deferrable`` reads ``[operators] default_deferrable`` as upstream's does
(``test_deferrable_parity.py`` checks both follow the option)."""
UPSTREAM_LINKS = {"DataprocJobLink": "Dataproc Job", "DataprocBatchLink": "Dataproc Batch"}
"""Upstream's link classes and their ``name`` (``links/dataproc.py``)."""
SENTINELS = {"PROVIDE_PROJECT_ID": None, "DEFAULT": "DEFAULT"}
"""Upstream names that stand for a value: ``PROVIDE_PROJECT_ID`` is ``cast(str, None)``."""


def _class(name: str) -> ast.ClassDef:
    for source in (UPSTREAM, UPSTREAM_BASE):
        tree = ast.parse(source.read_text())
        found = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name]
        if found:
            return found[0]
    raise AssertionError(f"no class {name} in the upstream snapshots")


def _upstream_classes(name: str) -> list[ast.ClassDef]:
    """The class and its upstream bases (from the snapshots), down to Airflow's ``BaseOperator``."""
    classes = [_class(name)]
    while (bases := [b.id for b in classes[-1].bases if isinstance(b, ast.Name)]) != ["BaseOperator"]:
        [base] = bases
        classes.append(_class(base))
    return classes


def _init(cls: ast.ClassDef) -> ast.FunctionDef | None:
    found = [n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"]
    return found[0] if found else None


def _upstream_parameters(name: str) -> dict[str, object]:
    """Upstream keyword parameters of the class's and its bases' ``__init__`` -> default (a literal, a
    sentinel name, or ast text); the most derived declaration wins, as a call sees it."""
    params: dict[str, object] = {}
    for cls in _upstream_classes(name):
        if (init := _init(cls)) is None:
            continue
        arguments = init.args
        for arg, default in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
            if arg.arg in params:
                continue
            if default is None:
                params[arg.arg] = inspect.Parameter.empty
            elif isinstance(default, ast.Name) and default.id in SENTINELS:
                params[arg.arg] = SENTINELS[default.id]
            elif isinstance(default, ast.Attribute) and default.attr == "DEFAULT":
                params[arg.arg] = "DEFAULT"
            else:
                try:
                    params[arg.arg] = ast.literal_eval(default)
                except ValueError:
                    params[arg.arg] = ast.unparse(default)
    return params


def _upstream_class_attribute(name: str, attribute: str) -> ast.expr:
    for node in _class(name).body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign):
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == attribute and node.value is not None:  # type: ignore[union-attr]
            return node.value  # type: ignore[union-attr]
    raise AssertionError(f"{name} has no {attribute}")


def _ours(cls: type) -> dict[str, inspect.Parameter]:
    # Across our bases: the arguments both Dataproc operators share are declared once, on theirs.
    return constructor_parameters(cls)


def _own(cls: type) -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _normalised_default(value: object) -> object:
    from google.api_core.gapic_v1.method import DEFAULT

    return "DEFAULT" if value is DEFAULT else value


def test_the_upstream_snapshot_is_the_one_we_claim():
    text = UPSTREAM.read_text()
    assert "class DataprocSubmitJobOperator(GoogleCloudBaseOperator):" in text
    assert "batch_id_prefix" in text, "22.8.0 already has batch_id_prefix"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_upstream_constructor_argument_is_accepted(theirs, ours):
    base_operator_args = set(_own(BaseOperator))
    missing = [name for name in _upstream_parameters(theirs) if name not in _ours(ours)]

    assert missing == [], f"{ours.__name__} lacks upstream arguments {missing}"
    assert not base_operator_args & set(_upstream_parameters(theirs)), "upstream shadows no BaseOperator arg"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_upstream_bases_declare_no_argument_and_no_alias_is_read_out_of_kwargs(theirs, ours):
    # GoogleCloudBaseOperator has no __init__; an alias read out of **kwargs (no named parameter)
    # would escape the signature comparison: the pinned operators have none. Fails when a bump adds one.
    classes = _upstream_classes(theirs)
    assert [cls.name for cls in classes] == [theirs, "GoogleCloudBaseOperator"]
    assert _init(classes[1]) is None
    text = UPSTREAM.read_text()
    init = _init(classes[0])
    assert init is not None
    assert hidden_alias_lines(ast.get_source_segment(text, init) or "") == []


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_upstream_defaults_and_required_arguments_are_kept(theirs, ours):
    mine = _ours(ours)
    changed = {}
    for name, default in _upstream_parameters(theirs).items():
        if name in DEFAULTS_WE_CHANGE:
            continue
        our_default = _normalised_default(mine[name].default)
        if isinstance(default, str) and default.startswith("conf.getboolean("):
            # Both read the same option at import time; compare what they read, not the expression.
            option = ast.literal_eval(ast.parse(default).body[0].value.args[1])  # type: ignore[attr-defined]
            assert option in (
                "spark_inject_parent_job_info",
                "spark_inject_transport_info",
                "default_deferrable",
            )
            continue
        if default != our_default:
            changed[name] = (default, our_default)

    assert changed == {}


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_template_fields_and_the_extra_link_match_upstream(theirs, ours):
    upstream_fields = ast.literal_eval(_upstream_class_attribute(theirs, "template_fields"))
    assert tuple(ours.template_fields) == tuple(upstream_fields)

    links = _upstream_class_attribute(theirs, "operator_extra_links")
    assert isinstance(links, ast.Tuple)
    names = [UPSTREAM_LINKS[call.func.id] for call in links.elts]  # type: ignore[attr-defined]
    assert [link.name for link in ours.operator_extra_links] == names
    # Same XCom key as upstream's link, so a link rendered by either provider reads the same value.
    keys = {"Dataproc Job": "dataproc_job", "Dataproc Batch": "dataproc_batch"}
    assert [link.xcom_key for link in ours.operator_extra_links] == [keys[n] for n in names]


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_argument_is_documented(theirs, ours):
    doc = inspect.getdoc(ours) or ""
    undocumented = [
        name
        for name in constructor_parameters(ours, below=ResumableSubmitOperator)
        if f":param {name}:" not in doc
    ]

    assert undocumented == []
