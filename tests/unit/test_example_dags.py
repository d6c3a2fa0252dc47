# Licensed under the Apache License, Version 2.0.
"""What the Databricks example DAG shows a DAG author (every example is also imported by tests/docs)."""

from __future__ import annotations


def test_the_databricks_example_wires_both_operators_and_the_dependency():
    from airflow.providers.resumable.example_dags.example_resumable_databricks import dag

    etl, publish = dag.get_task("nightly_etl"), dag.get_task("publish")
    assert type(etl).__name__ == "ResumableDatabricksSubmitRunOperator"
    assert type(publish).__name__ == "ResumableDatabricksRunNowOperator"
    assert publish.upstream_task_ids == {"nightly_etl"}
    assert etl.databricks_conn_id == "databricks_default", "default_args reach named arguments"
    assert etl.poll_interval == 60


def test_the_dataproc_example_wires_both_operators_and_the_dependency():
    from airflow.providers.resumable.example_dags.example_resumable_dataproc import dag

    etl, report = dag.get_task("nightly_etl"), dag.get_task("report")
    assert type(etl).__name__ == "ResumableDataprocSubmitJobOperator"
    assert type(report).__name__ == "ResumableDataprocCreateBatchOperator"
    assert report.upstream_task_ids == {"nightly_etl"}
    assert etl.gcp_conn_id == "google_cloud_default", "default_args reach named arguments"
    assert etl.poll_interval == 30, "polling_interval_seconds paces the polls"


def test_the_emr_example_wires_both_operators_and_the_dependency():
    from airflow.providers.resumable.example_dags.example_resumable_emr import dag

    steps, publish = dag.get_task("nightly_steps"), dag.get_task("publish")
    assert type(steps).__name__ == "ResumableEmrAddStepsOperator"
    assert type(publish).__name__ == "ResumableEmrServerlessStartJobOperator"
    assert publish.upstream_task_ids == {"nightly_steps"}
    assert steps.aws_conn_id == "aws_default", "default_args reach named arguments"
    assert steps.poll_interval == 60, "waiter_delay is the poll interval"
