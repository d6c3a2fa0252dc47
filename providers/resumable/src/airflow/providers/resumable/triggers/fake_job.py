# Licensed under the Apache License, Version 2.0.
"""The trigger the deferrable fake-job operator defers to (demo, drill, tests)."""

from __future__ import annotations

from airflow.providers.resumable.hooks.fake_job import FakeJobHook
from airflow.providers.resumable.triggers.base import ResumableJobTrigger


class FakeJobTrigger(ResumableJobTrigger):
    """Poll a job of the fake job service until it ends; never cancel it (see the base class)."""

    hook_class = FakeJobHook
