# Licensed under the Apache License, Version 2.0.
"""
The fake EMR honours a cluster's StepConcurrencyLevel: the drill runs several task instances of the
EMR cloud at once on one cluster, and with EMR's default of one step at a time their steps queued
behind each other until the operators' waiters gave up ("still PENDING after 60 polls").
"""

from __future__ import annotations

import time

import boto3
import pytest

from airflow.providers.resumable.testing.emr import DEFAULT_REGION, FakeEmr, FakeEmrServer, StepScript

STEP = {
    "Name": "drill",
    "ActionOnFailure": "CONTINUE",
    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-submit", "s3://drill/job.py"]},
}


def _states_after_two_steps(step_concurrency: int | None) -> list[str]:
    fake = FakeEmr(default_step=StepScript(run_seconds=30.0))
    with FakeEmrServer(fake) as server:
        cluster = (
            fake.create_cluster("drill")
            if step_concurrency is None
            else fake.create_cluster("drill", step_concurrency=step_concurrency)
        )
        client = boto3.client(
            "emr",
            endpoint_url=server.endpoint_url,
            region_name=DEFAULT_REGION,
            aws_access_key_id="fake",
            aws_secret_access_key="fake",
        )
        step_ids = [
            client.add_job_flow_steps(JobFlowId=cluster, Steps=[STEP])["StepIds"][0] for _ in range(2)
        ]
        deadline = time.monotonic() + 5
        states: list[str] = []
        while time.monotonic() < deadline:
            states = [fake.step_state(cluster, step) for step in step_ids]
            if states[0] == "RUNNING" and (step_concurrency is None or states[1] == "RUNNING"):
                break
            time.sleep(0.05)
        time.sleep(0.3)  # a few more ticks: a queued step must stay queued
        return [fake.step_state(cluster, step) for step in step_ids]


def test_by_default_a_clusters_steps_run_one_at_a_time_as_on_emr():
    assert _states_after_two_steps(None) == ["RUNNING", "PENDING"]


def test_a_cluster_with_step_concurrency_two_runs_two_steps_at_once():
    assert _states_after_two_steps(2) == ["RUNNING", "RUNNING"]


def test_a_step_concurrency_emr_does_not_allow_is_refused():
    with pytest.raises(ValueError, match="1 to 256"):
        FakeEmr().create_cluster("drill", step_concurrency=0)
