# Licensed under the Apache License, Version 2.0.
"""A DAG author swaps the import and nothing else: our operators against the pinned upstream ones."""

from __future__ import annotations

import inspect

import pytest
from airflow.providers.databricks.operators.databricks import (
    DatabricksRunNowOperator,
    DatabricksSubmitRunOperator,
)
from airflow.sdk.bases.resumablejobmixin import ResumableJobMixin
from airflow.sdk.exceptions import AirflowException
from signatures import constructor_parameters, hidden_alias_lines, upstream_constructor_sources

from airflow.providers.resumable.operators.base import ResumableSubmitOperator
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


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_upstream_constructor_argument_is_accepted_aliases_included(theirs, ours):
    upstream = constructor_parameters(theirs)
    # Upstream's bases count: the task SDK's ResumableJobMixin takes `durable`.
    assert issubclass(theirs, ResumableJobMixin)
    assert "durable" in upstream
    missing = [name for name in upstream if name not in constructor_parameters(ours)]

    assert missing == [], f"{ours.__name__} lacks upstream arguments {missing}"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_upstream_takes_no_alias_out_of_kwargs(theirs, ours):
    # An alias read out of **kwargs has no named parameter, so the comparison above cannot see it:
    # the pinned operators have none. Fails when a bump adds one, to be mirrored by hand.
    sources = upstream_constructor_sources(theirs, "airflow.providers.databricks")
    assert theirs.__name__ in sources
    found = {name: hidden_alias_lines(source) for name, source in sources.items()}

    assert found == {name: [] for name in sources}


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_upstream_defaults_are_kept(theirs, ours):
    mine = constructor_parameters(ours)
    changed = {
        name: (p.default, mine[name].default)
        for name, p in constructor_parameters(theirs).items()
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
    undocumented = [
        name
        for name in constructor_parameters(ours, below=ResumableSubmitOperator)
        if f":param {name}:" not in doc
    ]

    assert undocumented == []


NAMED_ARGUMENTS = [
    (
        DatabricksSubmitRunOperator,
        ResumableDatabricksSubmitRunOperator,
        {"tasks": [{"task_key": "t"}], "run_name": "nightly", "idempotency_token": "tok", "git_source": {}},
    ),
    (
        DatabricksRunNowOperator,
        ResumableDatabricksRunNowOperator,
        {"job_name": "publish", "job_parameters": {"day": "1"}, "performance_target": "STANDARD"},
    ),
]


@pytest.mark.parametrize(("theirs", "ours", "named"), NAMED_ARGUMENTS, ids=IDS)
def test_the_named_arguments_set_the_same_request_keys_as_upstreams(theirs, ours, named):
    expected = theirs(task_id="t", **named)._get_named_json_parameters()

    assert ours(task_id="t", **named)._named_json_parameters() == expected
    assert list(ours(task_id="t")._named_json_parameters()) == list(expected), "upstream's key order"


@pytest.mark.parametrize("ours", [ours for _, ours in PAIRS], ids=IDS)
def test_a_subclass_templating_one_more_field_sends_no_more_request_keys(ours):
    class Templated(ours):
        template_fields = (*ours.template_fields, "owner")

    assert Templated(task_id="t")._named_json_parameters() == ours(task_id="t")._named_json_parameters()


@pytest.mark.parametrize("ours", [ours for _, ours in PAIRS], ids=IDS)
def test_a_retry_limit_below_one_fails_when_the_operator_is_built(ours):
    with pytest.raises(AirflowException, match="databricks_retry_limit must be at least 1, got 0"):
        ours(task_id="t", databricks_retry_limit=0)
