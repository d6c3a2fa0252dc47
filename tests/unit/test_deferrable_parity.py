# Licensed under the Apache License, Version 2.0.
"""
A DAG that uses upstream's deferrable operators swaps the import and nothing else: ``deferrable``
defaults to ``[operators] default_deferrable`` as upstream's does, and ``deferrable=True`` (with
upstream's own arguments) makes our operator defer to its cloud's trigger instead of being refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow.providers.resumable.operators.databricks import (
    ResumableDatabricksRunNowOperator,
    ResumableDatabricksSubmitRunOperator,
)
from airflow.providers.resumable.operators.dataproc import (
    ResumableDataprocCreateBatchOperator,
    ResumableDataprocSubmitJobOperator,
)
from airflow.providers.resumable.operators.emr import (
    ResumableEmrAddStepsOperator,
    ResumableEmrServerlessStartJobOperator,
)
from airflow.providers.resumable.operators.fake_job import FakeJobSubmitOperator

UPSTREAM_SNAPSHOT = Path(__file__).parent / "upstream" / "google_22_8_0_operators_dataproc.py.txt"

OURS = {
    "airflow.providers.resumable.operators.databricks": [
        "ResumableDatabricksSubmitRunOperator",
        "ResumableDatabricksRunNowOperator",
    ],
    "airflow.providers.resumable.operators.emr": [
        "ResumableEmrAddStepsOperator",
        "ResumableEmrServerlessStartJobOperator",
    ],
    "airflow.providers.resumable.operators.dataproc": [
        "ResumableDataprocSubmitJobOperator",
        "ResumableDataprocCreateBatchOperator",
    ],
    "airflow.providers.resumable.operators.fake_job": ["FakeJobSubmitOperator"],
}
UPSTREAM = {
    "airflow.providers.databricks.operators.databricks": [
        "DatabricksSubmitRunOperator",
        "DatabricksRunNowOperator",
    ],
    "airflow.providers.amazon.aws.operators.emr": ["EmrAddStepsOperator", "EmrServerlessStartJobOperator"],
}
"""Upstream operators installed here (the google provider is not: its snapshot is read as text)."""

_PROBE = """
import importlib, inspect, json, sys
found = {}
for module, names in json.loads(sys.argv[1]).items():
    for name in names:
        cls = getattr(importlib.import_module(module), name)
        # The class that declares it (the fake-job operator passes it on to the base in **kwargs).
        declared = next(c for c in cls.__mro__ if "deferrable" in inspect.signature(c.__init__).parameters)
        found[name] = inspect.signature(declared.__init__).parameters["deferrable"].default
print(json.dumps(found))
"""


def _defaults(option: str | None) -> dict[str, Any]:
    """Every operator's ``deferrable`` default, read in a fresh interpreter with the option set so."""
    env = {k: v for k, v in os.environ.items() if k != "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"}
    if option is not None:
        env["AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE"] = option
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps({**OURS, **UPSTREAM})],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("option", "expected"), [("True", True), (None, False)], ids=["set", "unset"])
def test_deferrable_defaults_to_the_option_exactly_as_upstream(option, expected):
    defaults = _defaults(option)

    assert defaults == dict.fromkeys(defaults, expected)
    assert len(defaults) == 7 + 4, "all six operators, the fake-job one, and the installed upstream ones"


def test_the_dataproc_snapshot_reads_the_same_option():
    text = UPSTREAM_SNAPSHOT.read_text()
    assert (
        text.count('deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False)')
        >= 2
    )


SWAPPED = [
    (
        ResumableDatabricksSubmitRunOperator,
        {"json": {"run_name": "n", "notebook_task": {"notebook_path": "/x"}, "existing_cluster_id": "c"}},
    ),
    (ResumableDatabricksRunNowOperator, {"job_id": 42}),
    (ResumableEmrAddStepsOperator, {"job_flow_id": "j-1", "steps": [], "waiter_delay": 30}),
    (
        ResumableEmrServerlessStartJobOperator,
        {"application_id": "app", "execution_role_arn": "arn:aws:iam::1:role/r", "job_driver": {}},
    ),
    (ResumableDataprocSubmitJobOperator, {"job": {}, "region": "r", "polling_interval_seconds": 5}),
    (ResumableDataprocCreateBatchOperator, {"batch": {}, "region": "r", "polling_interval_seconds": 5}),
    (FakeJobSubmitOperator, {"endpoint": "http://127.0.0.1:1", "job": {"name": "n"}}),
]


@pytest.mark.parametrize(("operator", "kwargs"), SWAPPED, ids=[op.__name__ for op, _ in SWAPPED])
def test_an_upstream_deferrable_task_swapped_to_ours_defers_instead_of_being_refused(operator, kwargs):
    task = operator(task_id="t", deferrable=True, **kwargs)

    assert task.deferrable is True
    assert task.trigger_class is not None
    assert task.trigger_class.__module__.startswith("airflow.providers.resumable.triggers.")
