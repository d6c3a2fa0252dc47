# Licensed under the Apache License, Version 2.0.
"""The example DAGs the docs include must parse, so the docs cannot rot."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import airflow.providers.resumable.example_dags as example_dags

MODULES = sorted(m.name for m in pkgutil.iter_modules(example_dags.__path__))


@pytest.mark.parametrize("module", MODULES)
def test_example_dag_parses_and_holds_its_tasks(module):
    loaded = importlib.import_module(f"{example_dags.__name__}.{module}")

    assert loaded.dag.task_ids, f"{module} defines no tasks"


def test_the_databricks_example_wires_both_operators_and_the_dependency():
    from airflow.providers.resumable.example_dags.example_databricks import dag

    etl, publish = dag.get_task("nightly_etl"), dag.get_task("publish")
    assert type(etl).__name__ == "ResumableDatabricksSubmitRunOperator"
    assert type(publish).__name__ == "ResumableDatabricksRunNowOperator"
    assert publish.upstream_task_ids == {"nightly_etl"}
    assert etl.databricks_conn_id == "databricks_default", "default_args reach named arguments"
    assert etl.poll_interval == 60


def test_the_emr_example_wires_both_operators_and_the_dependency():
    from airflow.providers.resumable.example_dags.example_emr import dag

    steps, publish = dag.get_task("nightly_steps"), dag.get_task("publish")
    assert type(steps).__name__ == "ResumableEmrAddStepsOperator"
    assert type(publish).__name__ == "ResumableEmrServerlessStartJobOperator"
    assert publish.upstream_task_ids == {"nightly_steps"}
    assert steps.aws_conn_id == "aws_default", "default_args reach named arguments"
    assert steps.poll_interval == 60, "waiter_delay is the poll interval"
