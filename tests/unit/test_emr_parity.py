# Licensed under the Apache License, Version 2.0.
"""A DAG author swaps the import and nothing else: the EMR operators against the pinned upstream ones."""

from __future__ import annotations

import inspect
import warnings

import pytest
from airflow.exceptions import AirflowProviderDeprecationWarning
from airflow.providers.amazon.aws.operators.emr import EmrAddStepsOperator, EmrServerlessStartJobOperator
from airflow.sdk import DAG
from signatures import constructor_parameters, hidden_alias_lines, upstream_constructor_sources

from airflow.providers.resumable.operators.base import ResumableSubmitOperator
from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrServerlessStartJobOperator,
)

PAIRS = [
    (EmrAddStepsOperator, ResumableEmrAddStepsOperator),
    (EmrServerlessStartJobOperator, ResumableEmrServerlessStartJobOperator),
]
IDS = ["add-steps", "serverless-start-job"]
REQUIRED = {
    EmrAddStepsOperator: {"job_flow_id": "j-1"},
    EmrServerlessStartJobOperator: {
        "application_id": "00app",
        "execution_role_arn": "arn:aws:iam::123456789012:role/job",
        "job_driver": {"sparkSubmit": {"entryPoint": "s3://b/job.py"}},
    },
}
"""The arguments each operator cannot be built without."""

DEFAULTS_WE_CHANGE: set[str] = set()
"""None: ``deferrable`` reads ``[operators] default_deferrable`` as upstream's does
(``test_deferrable_parity.py`` checks both follow the option)."""

AWS_BASE_OPERATOR_ARGS = {"aws_conn_id", "region_name", "verify", "botocore_config", "region"}
"""What upstream takes on ``AwsBaseOperator.__init__``, ``region`` being the deprecated alias."""


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_every_upstream_constructor_argument_is_accepted_aliases_included(theirs, ours):
    upstream = constructor_parameters(theirs)
    assert set(upstream) >= AWS_BASE_OPERATOR_ARGS, "the walk over upstream's bases found AwsBaseOperator's"
    missing = [name for name in upstream if name not in constructor_parameters(ours)]

    assert missing == [], f"{ours.__name__} lacks upstream arguments {missing}"


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_upstream_takes_no_alias_out_of_kwargs(theirs, ours):
    # An alias read out of **kwargs has no named parameter, so the comparison above cannot see it:
    # the pinned operators and AwsBaseOperator have none. Fails when a bump adds one.
    sources = upstream_constructor_sources(theirs, "airflow.providers.amazon")
    assert {theirs.__name__, "AwsBaseOperator"} <= set(sources)
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
@pytest.mark.parametrize(
    "arguments",
    [
        {"region": "eu-west-1"},
        {"region": "eu-west-1", "region_name": "us-east-2"},
        {"region_name": "us-east-2"},
    ],
    ids=["region", "region-and-region_name", "region_name"],
)
def test_the_deprecated_region_alias_means_what_it_means_upstream(theirs, ours, arguments):
    # Upstream 9.39.0 accepts `region` and ignores it (region_name and the connection decide): ours
    # must reach the same region, and warn, since ignoring a region silently surprises.
    built = {}
    for cls in (theirs, ours):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            operator = cls(task_id="t", **REQUIRED[theirs], **arguments)
        built[cls] = (operator.region_name, caught)
    assert built[ours][0] == built[theirs][0] == arguments.get("region_name")
    ours_warned = [w for w in built[ours][1] if issubclass(w.category, AirflowProviderDeprecationWarning)]
    assert bool(ours_warned) == ("region" in arguments)
    if ours_warned:
        message = str(ours_warned[0].message)
        assert "`region`" in message
        assert "region_name" in message


@pytest.mark.parametrize(("theirs", "ours"), PAIRS, ids=IDS)
def test_a_mapped_task_may_pass_the_alias_as_upstreams_may(theirs, ours):
    # `.partial()` checks every name against the constructors' signatures: a named `region`, as upstream.
    for cls in (theirs, ours):
        with DAG(dag_id=f"mapped_{cls.__name__}"):
            cls.partial(task_id="mapped", region="eu-west-1", **REQUIRED[theirs]).expand(
                aws_conn_id=["aws_default"]
            )
    with DAG(dag_id="mapped_bogus"), pytest.raises(TypeError, match="bogus"):
        ours.partial(task_id="mapped", bogus=1, **REQUIRED[theirs]).expand(aws_conn_id=["aws_default"])


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
    undocumented = [
        name
        for name in constructor_parameters(ours, below=ResumableSubmitOperator)
        if f":param {name}:" not in doc
    ]

    assert undocumented == []
