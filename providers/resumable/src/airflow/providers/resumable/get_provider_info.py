# Licensed under the Apache License, Version 2.0.
"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def get_provider_info() -> dict[str, Any]:
    """Return the provider's metadata in the shape ``airflow providers list`` expects."""
    from airflow.providers.resumable import __version__

    return {
        "package-name": "airflow-provider-resumable",
        "name": "Resumable",
        "description": (
            "Operators that submit a long-running Databricks, EMR or Dataproc job exactly once, "
            "checkpoint instead of cancelling when the worker shuts down, and resume by reconnecting."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Resumable jobs",
                "external-doc-url": "https://airflow.apache.org/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Resumable jobs",
                "python-modules": ["airflow.providers.resumable.operators.base"],
            },
            {
                "integration-name": "Resumable jobs",
                "python-modules": ["airflow.providers.resumable.operators.databricks"],
            },
            {
                "integration-name": "Resumable jobs",
                "python-modules": ["airflow.providers.resumable.operators.dataproc"],
            },
            {
                "integration-name": "Resumable jobs",
                "python-modules": ["airflow.providers.resumable.operators.emr"],
            },
        ],
        "hooks": [
            {
                "integration-name": "Resumable jobs",
                "python-modules": [
                    "airflow.providers.resumable.hooks.databricks",
                    "airflow.providers.resumable.hooks.dataproc",
                    "airflow.providers.resumable.hooks.emr",
                ],
            },
        ],
        "extra-links": [
            "airflow.providers.resumable.operators.databricks.ResumableDatabricksJobRunLink",
            "airflow.providers.resumable.links.dataproc.ResumableDataprocJobLink",
            "airflow.providers.resumable.links.dataproc.ResumableDataprocBatchLink",
        ],
        "plugins": [
            {
                "name": "resumable_job_reaper",
                "plugin-class": "airflow.providers.resumable.plugins.job_reaper.ResumableJobReaperPlugin",
            }
        ],
        "config": {
            "resumable": {
                "description": "The job reaper: cancels, in the scheduler, the jobs of task instances a "
                "person ended while no attempt was running (see the provider's concepts page); and the "
                "triggers' backoff cap in deferrable mode.",
                "options": {
                    "reaper_enabled": {
                        "description": "Run the job reaper in the scheduler.",
                        "version_added": "0.1.0",
                        "type": "boolean",
                        "example": None,
                        "default": "True",
                    },
                    "reaper_interval": {
                        "description": "Seconds between two sweeps of the ledgers.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "5.0",
                    },
                    "reaper_grace_period": {
                        "description": "Seconds after a task instance finished before the reaper "
                        "acts on its job: a running attempt cancels its own job within this time.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "15.0",
                    },
                    "reaper_lookback_hours": {
                        "description": "Only task instances that finished this recently are swept.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": None,
                        "default": "24.0",
                    },
                    "trigger_max_backoff": {
                        "description": "Deferrable mode: the longest single wait, in seconds, of a "
                        "trigger's backoff when the cloud throttles or fails a poll (a longer Retry-After "
                        "is cut to it). Read where the task defers; an operator's trigger_max_backoff "
                        "argument overrides it.",
                        "version_added": "0.1.0",
                        "type": "float",
                        "example": "60",
                        "default": "300.0",
                    },
                },
            }
        },
    }
