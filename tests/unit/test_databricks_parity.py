# Licensed under the Apache License, Version 2.0.
"""A DAG author swaps the import and nothing else: our operators against the pinned upstream ones."""

from __future__ import annotations

import inspect

import pytest
from airflow.providers.databricks.operators.databricks import (
    DatabricksRunNowOperator,
    DatabricksSubmitRunOperator,
)
from airflow.sdk import BaseOperator

from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)

PAIRS = [
    (DatabricksSubmitRunOperator, ResumableDatabricksSubmitRunOperator),
    (DatabricksRunNowOperator, ResumableDatabricksRunNowOperator),
]
IDS = ["submit-run", "run-now"]

DEFAULTS_WE_CHANGE: set[str] = set()
"""None: ``deferrable`` reads ``[operators] default_deferrable`` as upstream's does
(``test_deferrable_parity.py`` checks both follow the option)."""


def _named(cls: type) -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_upstream_constructor_argument_is_accepted(theirs, ours):
    base_operator_args = set(_named(BaseOperator))
    missing = [name for name in _named(theirs) if name not in _named(ours) and name not in base_operator_args]

    assert missing == [], f"{ours.__name__} lacks upstream arguments {missing}"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_upstream_defaults_are_kept(theirs, ours):
    mine = _named(ours)
    changed = {
        name: (p.default, mine[name].default)
        for name, p in _named(theirs).items()
        if name in mine and name not in DEFAULTS_WE_CHANGE and p.default != mine[name].default
    }

    assert changed == {}


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_template_fields_ext_and_extra_link_match_upstream(theirs, ours):
    assert tuple(ours.template_fields) == tuple(theirs.template_fields)
    assert tuple(ours.template_ext) == tuple(theirs.template_ext)
    assert [link.name for link in ours.operator_extra_links] == [
        link.name for link in theirs.operator_extra_links
    ]
    assert all(
        isinstance(mine, type(upstream))
        for mine, upstream in zip(ours.operator_extra_links, theirs.operator_extra_links, strict=True)
    ), "the link reads the same run_page_url XCom"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_argument_is_documented(theirs, ours):
    doc = inspect.getdoc(ours) or ""
    undocumented = [name for name in _named(ours) if f":param {name}:" not in doc]

    assert undocumented == []
