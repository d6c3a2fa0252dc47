# Licensed under the Apache License, Version 2.0.
"""A DAG author swaps the import and nothing else: the EMR operators against the pinned upstream ones."""

from __future__ import annotations

import inspect

import pytest
from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator, EmrServerlessStartJobOperator
from airflow.sdk import BaseOperator

from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrServerlessStartJobOperator,
)

PAIRS = [
    (EmrAddStepsOperator, ResumableEmrAddStepsOperator),
    (EmrServerlessStartJobOperator, ResumableEmrServerlessStartJobOperator),
]
IDS = ["add-steps", "serverless-start-job"]

DEFAULTS_WE_CHANGE: set[str] = set()
"""None: ``deferrable`` reads ``[operators] default_deferrable`` as upstream's does
(``test_deferrable_parity.py`` checks both follow the option)."""

AWS_BASE_OPERATOR_ARGS = {
    "aws_conn_id": "aws_default",
    "region_name": None,
    "verify": None,
    "botocore_config": None,
}
"""What upstream takes through ``AwsBaseOperator.__init__(**kwargs)``, with its defaults."""


def _named(cls: type) -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_upstream_constructor_argument_is_accepted(theirs, ours):
    base_operator_args = set(_named(BaseOperator))
    wanted = [*_named(theirs), *AWS_BASE_OPERATOR_ARGS]
    missing = [name for name in wanted if name not in _named(ours) and name not in base_operator_args]

    assert missing == [], f"{ours.__name__} lacks upstream arguments {missing}"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_upstream_defaults_are_kept(theirs, ours):
    mine = _named(ours)
    changed = {
        name: (p.default, mine[name].default)
        for name, p in _named(theirs).items()
        if name in mine and name not in DEFAULTS_WE_CHANGE and p.default != mine[name].default
    }
    changed |= {
        name: (default, mine[name].default)
        for name, default in AWS_BASE_OPERATOR_ARGS.items()
        if mine[name].default != default
    }

    assert changed == {}


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_template_fields_ext_and_extra_links_match_upstream(theirs, ours):
    assert tuple(ours.template_fields) == tuple(theirs.template_fields)
    assert tuple(ours.template_ext) == tuple(theirs.template_ext)
    assert [type(link) for link in ours.operator_extra_links] == [
        type(link) for link in theirs.operator_extra_links
    ], "the same link classes read the same XComs"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_argument_is_documented(theirs, ours):
    doc = inspect.getdoc(ours) or ""
    undocumented = [name for name in _named(ours) if f":param {name}:" not in doc]

    assert undocumented == []
