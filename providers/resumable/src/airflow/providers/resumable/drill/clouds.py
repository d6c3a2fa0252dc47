# Licensed under the Apache License, Version 2.0.
"""
The drill's view of a cloud: the protocols (kept in :mod:`airflow.providers.resumable.testing.protocols`,
where the fakes implementing them can import them too) and the EMR submission accounting (kept in
:mod:`airflow.providers.resumable.hooks.emr`, next to the step tag it reads), under their old names.
"""

from __future__ import annotations

from airflow.providers.resumable.hooks.emr import emr_submissions
from airflow.providers.resumable.testing.protocols import DrillCloud, DrilledTask, FaultInjector

__all__ = ["DrillCloud", "DrilledTask", "FaultInjector", "emr_submissions"]
