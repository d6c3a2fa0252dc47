# Licensed under the Apache License, Version 2.0.
"""
Dataproc for real (issue 6): the worker running a job is SIGTERMed mid-run, and the job is kept, listed
once by its key label through ``ListJobs``, never cancelled, and the task succeeds on try 1.

Needs ``GOOGLE_APPLICATION_CREDENTIALS`` (a service-account key file), ``RESUMABLE_DATAPROC_PROJECT``,
``RESUMABLE_DATAPROC_REGION`` and ``RESUMABLE_DATAPROC_CLUSTER``; skipped with that reason otherwise.
Submits one real job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from airflow.providers.resumable.drill.real_clouds import RealDataprocCloud
from airflow.providers.resumable.testing.stack import AirflowStack
from tests.system.real_clouds import example_real_dataproc as example
from tests.system.real_clouds.environment import DATAPROC
from tests.system.real_clouds.scenario import sigterm_mid_run_keeps_the_one_job, use_connection

pytestmark = [pytest.mark.system, DATAPROC.skipif()]


@pytest.mark.timeout(5400)
def test_real_dataproc_worker_sigterm_mid_job_keeps_the_one_job(
    airflow_stack: AirflowStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = {"key_path": os.environ["GOOGLE_APPLICATION_CREDENTIALS"], "project": example.PROJECT}
    use_connection(
        airflow_stack,
        monkeypatch,
        example.CONN_ID,
        {"conn_type": "google_cloud_platform", "extra": json.dumps(extra)},
    )

    sigterm_mid_run_keeps_the_one_job(
        airflow_stack,
        dag_file=Path(example.__file__),
        dag_id=example.DAG_ID,
        task_id=example.TASK_ID,
        cloud=RealDataprocCloud(
            example.CONN_ID, region=example.REGION, cluster_name=example.CLUSTER, project_id=example.PROJECT
        ),
    )
