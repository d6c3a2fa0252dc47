# Licensed under the Apache License, Version 2.0.
"""
EMR Serverless for real (issue 5): the worker running a job run is SIGTERMed mid-run, and the job run
is kept, listed once through ``ListJobRuns``, never cancelled, and the task succeeds on try 1.

Needs AWS credentials for boto3, a region, ``RESUMABLE_EMR_SERVERLESS_APPLICATION_ID`` and
``RESUMABLE_EMR_SERVERLESS_EXECUTION_ROLE_ARN``; skipped with that reason otherwise. Starts one real
job run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow.providers.resumable.drill.real_clouds import RealEmrServerlessCloud
from airflow.providers.resumable.testing.stack import AirflowStack
from tests.system.real_clouds import example_real_emr_serverless as example
from tests.system.real_clouds.environment import EMR_SERVERLESS
from tests.system.real_clouds.scenario import sigterm_mid_run_keeps_the_one_job, use_connection
from tests.system.real_clouds.test_real_emr import aws_connection

pytestmark = [pytest.mark.system, EMR_SERVERLESS.skipif()]


@pytest.mark.timeout(5400)
def test_real_emr_serverless_worker_sigterm_mid_run_keeps_the_one_job_run(
    airflow_stack: AirflowStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(airflow_stack, monkeypatch, example.CONN_ID, aws_connection())

    sigterm_mid_run_keeps_the_one_job(
        airflow_stack,
        dag_file=Path(example.__file__),
        dag_id=example.DAG_ID,
        task_id=example.TASK_ID,
        cloud=RealEmrServerlessCloud(
            example.CONN_ID, application_id=example.APPLICATION_ID, run_name=example.run_name
        ),
    )
