# Licensed under the Apache License, Version 2.0.
"""``airflow-resumable drill``: seeded disruptions against a real Airflow stack, checked for exactly-once."""

from __future__ import annotations
