# Licensed under the Apache License, Version 2.0.
"""The real-cloud system tests skip, before any stack starts, with a reason that names what to set."""

from __future__ import annotations

import importlib

import pytest

from tests.system.real_clouds.environment import DATABRICKS, DATAPROC, EMR, EMR_SERVERLESS


def test_the_skip_reason_names_every_missing_variable_and_only_those():
    reason = DATABRICKS.skip_reason({"DATABRICKS_HOST": "https://adb-1.azuredatabricks.net"})

    assert reason == (
        "set DATABRICKS_TOKEN and RESUMABLE_DATABRICKS_NOTEBOOK_PATH to run against a real Databricks "
        "workspace (see docs/testing.rst)"
    )


def test_with_everything_set_there_is_no_skip():
    environ = {"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t", "RESUMABLE_DATABRICKS_NOTEBOOK_PATH": "/n"}

    assert DATABRICKS.skip_reason(environ) is None


def test_any_source_of_aws_credentials_will_do_but_one_is_needed():
    without = EMR.skip_reason({"AWS_DEFAULT_REGION": "eu-west-1", "RESUMABLE_EMR_CLUSTER_ID": "j-1"})
    with_profile = {"AWS_PROFILE": "ci", "AWS_REGION": "eu-west-1", "RESUMABLE_EMR_CLUSTER_ID": "j-1"}

    assert without is not None
    assert without.startswith("set AWS_ACCESS_KEY_ID or AWS_PROFILE or ")
    assert EMR.skip_reason(with_profile) is None


def test_an_empty_variable_counts_as_missing():
    reason = DATAPROC.skip_reason(
        {
            "GOOGLE_APPLICATION_CREDENTIALS": "",
            "RESUMABLE_DATAPROC_PROJECT": "p",
            "RESUMABLE_DATAPROC_REGION": "r",
            "RESUMABLE_DATAPROC_CLUSTER": "c",
        }
    )

    assert (
        reason
        == "set GOOGLE_APPLICATION_CREDENTIALS to run against a real Dataproc cluster (see docs/testing.rst)"
    )


@pytest.mark.parametrize(
    ("module", "environment"),
    [
        ("test_real_databricks", DATABRICKS),
        ("test_real_emr", EMR),
        ("test_real_emr_serverless", EMR_SERVERLESS),
        ("test_real_dataproc", DATAPROC),
    ],
)
def test_each_real_cloud_module_is_gated_at_import_on_its_own_variables(module, environment):
    loaded = importlib.import_module(f"tests.system.real_clouds.{module}")
    [skipif] = [mark for mark in loaded.pytestmark if mark.name == "skipif"]

    assert skipif.args == (environment.skip_reason() is not None,)
    assert skipif.kwargs["reason"] == (environment.skip_reason() or "")
    assert "system" in {mark.name for mark in loaded.pytestmark}


@pytest.mark.parametrize(
    "module",
    ["example_real_databricks", "example_real_emr", "example_real_emr_serverless", "example_real_dataproc"],
)
def test_each_real_example_dag_imports_without_its_environment(module):
    loaded = importlib.import_module(f"tests.system.real_clouds.{module}")

    assert loaded.dag.dag_id == loaded.DAG_ID
    assert loaded.dag.task_ids == [loaded.TASK_ID]
