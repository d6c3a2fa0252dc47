# Licensed under the Apache License, Version 2.0.
"""
A resumable job against the fake job service: the whole contract, with no cloud account.

Start a fake service first (``FakeJobServer(FakeJobService()).start()``) and point the
``FAKE_JOBS_URL`` environment variable of the Airflow components at its ``url``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG

from airflow.providers.resumable.operators.fake_job import FakeJobSubmitOperator

with DAG(
    dag_id="example_resumable_fake_job",
    start_date=datetime(2026, 1, 1),
    schedule=None,
    catchup=False,
    tags=["example", "resumable"],
) as dag:
    # [START howto_operator_resumable_fake_job]
    nightly_etl = FakeJobSubmitOperator(
        task_id="nightly_etl",
        endpoint=os.environ.get("FAKE_JOBS_URL", "http://127.0.0.1:8765"),
        job={"name": "nightly-etl-{{ ds_nodash }}", "run_seconds": 60, "output": "done"},
        retries=0,  # a worker shutdown is a checkpoint, not a retry: none are needed for it
        resume_after=timedelta(seconds=10),
        poll_interval=5,
        max_poll_interval=60,
    )
    # [END howto_operator_resumable_fake_job]
