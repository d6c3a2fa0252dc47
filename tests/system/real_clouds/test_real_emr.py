# Licensed under the Apache License, Version 2.0.
"""
EMR for real (issue 5): the worker running a step is SIGTERMed mid-run, and the step is kept, found
once by its key tag through ``ListSteps``, never cancelled, and the task succeeds on try 1.

Needs AWS credentials for boto3 (``AWS_ACCESS_KEY_ID``/``AWS_PROFILE``/...), a region and
``RESUMABLE_EMR_CLUSTER_ID``; skipped with that reason otherwise. Adds one real step.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow.providers.resumable.drill.real_clouds import RealEmrCloud
from airflow.providers.resumable.testing.stack import AirflowStack
from tests.system.real_clouds import example_real_emr as example
from tests.system.real_clouds.environment import EMR
from tests.system.real_clouds.scenario import sigterm_mid_run_keeps_the_one_job, use_connection

pytestmark = [pytest.mark.system, EMR.skipif()]


def aws_connection() -> dict[str, str]:
    """No login: boto3's default chain (the environment the stack inherits) supplies the credentials."""
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ["AWS_REGION"]
    return {"conn_type": "aws", "extra": json.dumps({"region_name": region})}


@pytest.mark.timeout(5400)
def test_real_emr_worker_sigterm_mid_step_keeps_the_one_step(
    airflow_stack: AirflowStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_connection(airflow_stack, monkeypatch, example.CONN_ID, aws_connection())

    sigterm_mid_run_keeps_the_one_job(
        airflow_stack,
        dag_file=Path(example.__file__),
        dag_id=example.DAG_ID,
        task_id=example.TASK_ID,
        cloud=RealEmrCloud(example.CONN_ID, cluster_id=example.CLUSTER_ID),
    )
