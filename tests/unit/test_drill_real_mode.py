# Licensed under the Apache License, Version 2.0.
"""
``airflow-resumable drill`` against your own deployment: everything refused before anything starts,
secrets never printed, and the real-cloud adapters counting through the real clients (pointed at the
fakes, which speak the wire protocol).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow.providers.resumable.cli import main
from airflow.providers.resumable.drill.clouds import DrilledTask
from airflow.providers.resumable.drill.drill_dags import drill_run_name
from airflow.providers.resumable.drill.real_clouds import (
    DrillConfigError,
    RealDatabricksCloud,
    RealDataprocCloud,
    RealEmrCloud,
    RealEmrServerlessCloud,
    real_targets,
    validate_job_spec,
)
from airflow.providers.resumable.hooks.dataproc import KEY_LABEL, key_label
from airflow.providers.resumable.hooks.emr import tag_step_name
from airflow.providers.resumable.testing.databricks import FakeDatabricksServer, FakeDatabricksService
from airflow.providers.resumable.testing.dataproc import FakeDataprocServer, FakeDataprocService, JobScript
from airflow.providers.resumable.testing.emr import FakeEmr, FakeEmrServer, JobRunScript, StepScript

SECRET = "dapi-s3cr3t-never-printed"
NONCE = "0123456789abcdef0123456789abcdef"
DATABRICKS_JOB: dict[str, Any] = {
    "existing_cluster_id": "0923-164208-meows279",
    "notebook_task": {"notebook_path": "/x"},
}
EMR_JOB: dict[str, Any] = {
    "job_flow_id": "j-2AXXXXXXGAPLF",
    "steps": [{"Name": "pi", "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["spark-example"]}}],
}
DATAPROC_JOB: dict[str, Any] = {
    "region": "europe-west1",
    "job": {"placement": {"cluster_name": "c"}, "pyspark_job": {"main_python_file_uri": "gs://b/p.py"}},
}


@pytest.fixture
def workspace_conn(monkeypatch: pytest.MonkeyPatch) -> str:
    """A Databricks connection the drill process resolves from the environment, holding a secret."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_MY_WORKSPACE",
        json.dumps({"conn_type": "databricks", "host": "adb-1.azuredatabricks.net", "password": SECRET}),
    )
    return "my_workspace"


@pytest.fixture
def job_file(tmp_path: Path) -> Path:
    path = tmp_path / "job.json"
    path.write_text(json.dumps(DATABRICKS_JOB))
    return path


def _drill(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["drill", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# -- refused before anything starts ------------------------------------------------------------


def test_a_fault_kind_against_a_real_cloud_is_refused_naming_the_kind(capsys, workspace_conn, job_file):
    code, output = _drill(
        capsys,
        *("--conn", f"databricks={workspace_conn}", "--job", f"databricks={job_file}"),
        *("--kinds", "sigterm_mid_poll,throttle_storm"),
    )

    assert code == 2
    assert "throttle_storm need(s) fault injection, which only the fakes can do" in output
    assert "sigterm_mid_poll" in output.split("choose from", 1)[1], "says what can be drilled instead"
    assert "starting Airflow" not in output


def test_a_connection_without_a_job_spec_is_refused(capsys, workspace_conn):
    code, output = _drill(capsys, "--conn", f"databricks={workspace_conn}")

    assert code == 2
    assert "--conn databricks=... needs --job databricks=<file.json>" in output


def test_an_unknown_cloud_is_refused(capsys, workspace_conn, job_file):
    code, output = _drill(capsys, "--conn", f"synapse={workspace_conn}", "--job", f"synapse={job_file}")

    assert code == 2
    assert "unknown cloud synapse; known: databricks, emr, dataproc" in output


def test_a_fake_cloud_cannot_join_a_drill_against_your_deployment(capsys, workspace_conn, job_file):
    code, output = _drill(
        capsys,
        *("--conn", f"databricks={workspace_conn}", "--job", f"databricks={job_file}"),
        *("--clouds", "databricks,emr"),
    )

    assert code == 2
    assert "emr has no --conn/--job" in output


def test_a_connection_this_process_cannot_resolve_is_a_clear_error(capsys, job_file):
    code, output = _drill(capsys, "--conn", "databricks=nowhere", "--job", f"databricks={job_file}")

    assert code == 2
    assert "cannot resolve the databricks connection 'nowhere'" in output
    assert "AIRFLOW_CONN_NOWHERE" in output


def test_a_malformed_connection_is_refused_without_quoting_it(capsys, monkeypatch, job_file):
    monkeypatch.setenv("AIRFLOW_CONN_BROKEN", f"databricks://:{SECRET}@host:notaport")

    code, output = _drill(capsys, "--conn", "databricks=broken", "--job", f"databricks={job_file}")

    assert code == 2
    assert "cannot resolve the databricks connection 'broken'" in output
    assert SECRET not in output


def test_a_job_spec_that_is_not_json_names_the_file(capsys, workspace_conn, tmp_path):
    bad = tmp_path / "job.json"
    bad.write_text("existing_cluster_id: x")

    code, output = _drill(capsys, "--conn", f"databricks={workspace_conn}", "--job", f"databricks={bad}")

    assert code == 2
    assert f"the databricks job spec {bad} is not JSON" in output


def test_a_pair_without_an_equals_sign_is_refused(capsys, job_file):
    code, output = _drill(capsys, "--conn", "databricks", "--job", f"databricks={job_file}")

    assert code == 2
    assert "--conn takes CLOUD=VALUE, got 'databricks'" in output


def test_the_resolved_target_keeps_its_secret_out_of_repr_and_description(workspace_conn, job_file):
    [target] = real_targets({"databricks": workspace_conn}, {"databricks": job_file}).values()

    assert target.connection.password == SECRET, "resolved through the environment, as Airflow does"
    assert SECRET not in repr(target)
    assert SECRET not in target.describe()
    assert target.describe() == "databricks: your deployment, through connection 'my_workspace' (databricks)"


@pytest.mark.parametrize(
    ("cloud", "spec", "problem"),
    [
        ("databricks", [], "must be a JSON object, got list"),
        ("databricks", {"existing_cluster_id": "x"}, "give 'tasks' or exactly one of"),
        ("databricks", {**DATABRICKS_JOB, "run_name": "mine"}, "remove 'run_name'"),
        ("databricks", {**DATABRICKS_JOB, "idempotency_token": "t"}, "remove 'idempotency_token'"),
        ("databricks", {"tasks": []}, "'tasks' must be a non-empty list"),
        ("emr", {**EMR_JOB, "job_flow_id": "my-cluster"}, "'job_flow_id' must be a cluster id"),
        ("emr", {**EMR_JOB, "steps": [{"Name": "x"}]}, "step 1 needs a string 'Name' and a 'HadoopJarStep'"),
        ("emr", {**EMR_JOB, "job_flow_name": "x"}, "unknown key 'job_flow_name'"),
        ("dataproc", {"job": DATAPROC_JOB["job"]}, "'region' is required"),
        (
            "dataproc",
            {**DATAPROC_JOB, "job": {"pyspark_job": {}}},
            "'job.placement.cluster_name' is required",
        ),
        (
            "dataproc",
            {**DATAPROC_JOB, "job": {**DATAPROC_JOB["job"], "reference": {"job_id": "fixed"}}},
            "remove 'job.reference.job_id'",
        ),
        ("dataproc", {**DATAPROC_JOB, "request_id": "r"}, "unknown key 'request_id'"),
    ],
)
def test_a_job_spec_is_checked_before_any_cloud_call(cloud, spec, problem):
    with pytest.raises(DrillConfigError, match="job spec") as refused:
        validate_job_spec(cloud, spec)
    assert problem in str(refused.value)


@pytest.mark.parametrize(
    ("cloud", "spec"), [("databricks", DATABRICKS_JOB), ("emr", EMR_JOB), ("dataproc", DATAPROC_JOB)]
)
def test_a_usable_job_spec_is_returned_as_given(cloud, spec):
    assert validate_job_spec(cloud, spec) == spec


# -- the adapters count through the real clients ----------------------------------------------


def test_databricks_adapter_counts_the_runs_named_after_the_dag_run_and_sees_a_cancel(monkeypatch):
    service = FakeDatabricksService()
    with FakeDatabricksServer(service) as server:
        monkeypatch.setenv("AIRFLOW_CONN_REAL_DB", server.connection_uri())
        cloud = RealDatabricksCloud("real_db")
        mine = drill_run_name("manual__1")
        first = cloud.hook.submit_run({"run_name": mine, "notebook_task": {"notebook_path": "/x"}})
        second = cloud.hook.submit_run({"run_name": mine, "notebook_task": {"notebook_path": "/x"}})
        cloud.hook.submit_run(
            {"run_name": drill_run_name("manual__2"), "notebook_task": {"notebook_path": "/x"}}
        )
        cloud.hook.cancel_run(second)
        task = DrilledTask("d", "manual__1", NONCE, datetime.now(timezone.utc))

        jobs = cloud.jobs_of(task)

        assert sorted(jobs) == sorted([str(first), str(second)]), "the other DAG run's run is not counted"
        assert [cloud.cancellations_of(job) for job in (str(first), str(second))] == [0, 1]
        assert cloud.is_running(str(first))
        assert cloud.faults is None, "a real cloud injects no faults"


def test_emr_adapter_counts_each_tagged_submission_of_the_nonce_through_boto3(monkeypatch):
    with FakeEmrServer(FakeEmr(default_step=StepScript(run_seconds=None))) as server:
        monkeypatch.setenv("AIRFLOW_CONN_REAL_AWS", server.connection_uri())
        cluster_id = server.emr.create_cluster("real-cluster")
        cloud = RealEmrCloud("real_aws", cluster_id=cluster_id)

        def add(key: str) -> list[str]:
            steps = [
                {
                    "Name": tag_step_name(name, key, i, 2),
                    "ActionOnFailure": "CONTINUE",
                    "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["true"]},
                }
                for i, name in enumerate(("a", "b"), start=1)
            ]
            return cloud.client.add_job_flow_steps(JobFlowId=cluster_id, Steps=steps)["StepIds"]

        first, duplicate = add(f"{NONCE}-0"), add(f"{NONCE}-0")
        add("f" * 32 + "-0")  # another task instance's
        cloud.client.cancel_steps(ClusterId=cluster_id, StepIds=duplicate)

        jobs = cloud.jobs_of(DrilledTask("d", "r", NONCE, datetime.now(timezone.utc)))

        assert sorted(jobs) == sorted(f"{cluster_id}:{','.join(ids)}" for ids in (first, duplicate))
        assert cloud.cancellations_of(f"{cluster_id}:{','.join(first)}") == 0
        assert cloud.cancellations_of(f"{cluster_id}:{','.join(duplicate)}") == 1


def test_dataproc_adapter_counts_the_jobs_labelled_with_the_nonce_through_grpc(monkeypatch):
    service = FakeDataprocService(default_job_script=JobScript(run_seconds=None))
    with FakeDataprocServer(service) as server:
        monkeypatch.setenv("AIRFLOW_CONN_REAL_GCP", server.connection_uri())
        cloud = RealDataprocCloud("real_gcp", region="europe-west1", cluster_name="c")

        def submit(key: str, job_id: str) -> str:
            job = {
                "reference": {"job_id": job_id},
                "placement": {"cluster_name": "c"},
                "pyspark_job": {"main_python_file_uri": "gs://b/p.py"},
                "labels": {KEY_LABEL: key_label(key)},
            }
            request = {"project_id": cloud.project_id, "region": "europe-west1", "job": job}
            return cloud.client.submit_job(request=request).reference.job_id

        first, second = submit(f"{NONCE}-0", "first"), submit(f"{NONCE}-1", "second")
        submit("f" * 32 + "-0", "someone-else")
        cloud.client.cancel_job(
            request={"project_id": cloud.project_id, "region": "europe-west1", "job_id": second}
        )

        jobs = cloud.jobs_of(DrilledTask("d", "r", NONCE, datetime.now(timezone.utc)))

        assert sorted(jobs) == [first, second], "every generation of the nonce, no one else's"
        assert [cloud.cancellations_of(job) for job in (first, second)] == [0, 1]
        assert cloud.is_running(first)


def test_emr_serverless_adapter_counts_the_job_runs_named_after_the_dag_run(monkeypatch):
    with FakeEmrServer(FakeEmr(default_job_run=JobRunScript(run_seconds=None))) as server:
        monkeypatch.setenv("AIRFLOW_CONN_REAL_AWS", server.connection_uri())
        application_id = server.emr.create_application()
        cloud = RealEmrServerlessCloud("real_aws", application_id=application_id, run_name=drill_run_name)
        since = datetime.now(timezone.utc)

        def start(name: str, token: str) -> str:
            return cloud.client.start_job_run(
                applicationId=application_id,
                executionRoleArn="arn:aws:iam::123456789012:role/job",
                jobDriver={"sparkSubmit": {"entryPoint": "s3://b/p.py"}},
                name=name,
                clientToken=token,
            )["jobRunId"]

        mine = start(drill_run_name("manual__1"), "a")
        start(drill_run_name("manual__2"), "b")

        assert cloud.jobs_of(DrilledTask("d", "manual__1", NONCE, since)) == [mine]
        assert cloud.cancellations_of(mine) == 0
        cloud.client.cancel_job_run(applicationId=application_id, jobRunId=mine)
        assert cloud.cancellations_of(mine) == 1
