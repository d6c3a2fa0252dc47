# Licensed under the Apache License, Version 2.0.
"""``make demo``: a real Airflow stack, fake clouds, a worker shutdown mid-run, narrated live."""

from __future__ import annotations

from airflow.providers.resumable.demo.runner import run_demo

__all__ = ["run_demo"]
