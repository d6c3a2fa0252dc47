# Licensed under the Apache License, Version 2.0.
"""Resumable operators: submit a long-running remote job exactly once and survive the worker dying."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
