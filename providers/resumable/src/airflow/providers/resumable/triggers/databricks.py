# Licensed under the Apache License, Version 2.0.
"""The trigger a deferrable resumable Databricks operator (SubmitRun, RunNow) defers to."""

from __future__ import annotations

from typing import Any

from airflow.providers.resumable.hooks.databricks import ResumableDatabricksHook
from airflow.providers.resumable.triggers.base import ResumableJobTrigger


class ResumableDatabricksRunTrigger(ResumableJobTrigger):
    """
    Poll a Databricks run (``runs/get`` over ``aiohttp``) until it ends; never cancel it.

    The hook is rebuilt with one try per request: the trigger's own backoff is the only retry, so a
    ``Retry-After`` is honoured rather than the hook's fixed wait (see the base class for the arguments).
    """

    hook_class = ResumableDatabricksHook

    def make_hook(self) -> Any:
        return ResumableDatabricksHook(**{**self.hook_params, "retry_limit": 1})
