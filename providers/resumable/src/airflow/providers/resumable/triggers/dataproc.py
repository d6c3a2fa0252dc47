# Licensed under the Apache License, Version 2.0.
"""The triggers deferrable resumable Dataproc operators (SubmitJob, CreateBatch) defer to."""

from __future__ import annotations

from airflow.providers.resumable.hooks.dataproc import DataprocBatchHook, DataprocJobHook
from airflow.providers.resumable.triggers.base import ResumableJobTrigger


class ResumableDataprocJobTrigger(ResumableJobTrigger):
    """Poll a Dataproc job over the asyncio gRPC client until it ends; never cancel it (see the base class)."""

    hook_class = DataprocJobHook


class ResumableDataprocBatchTrigger(ResumableJobTrigger):
    """Poll a Dataproc batch over the asyncio gRPC client until it ends; never cancel it (see the base class)."""

    hook_class = DataprocBatchHook
