# Licensed under the Apache License, Version 2.0.
"""
What every Celery bench does around its measurement: run it so that a SIGTERM (a CI runner stopping
the job) unwinds like Ctrl-C and stops what the bench started, then write its results with when it
started, how long it took and on what.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def run_interruptibly(measure: Callable[[], T]) -> T | None:
    """
    ``measure()``, with SIGTERM raising ``KeyboardInterrupt`` meanwhile; ``None`` when interrupted.

    :param measure: the bench's run; it must stop what it started when interrupted.
    """
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return measure()
    except KeyboardInterrupt:
        print("bench interrupted; every process it started was stopped", file=sys.stderr)
        return None
    finally:
        signal.signal(signal.SIGTERM, previous)


def write_results(path: Path, started: float, **measured: Any) -> None:
    """
    Write a bench's results as JSON: ``measured`` with the start (UTC), the wall time and the machine.

    :param path: the results file (its directory is created).
    :param started: ``time.time()`` when the bench began.
    :param measured: what the bench measured, JSON-serialisable.
    """
    from bench.__main__ import _machine, _versions

    body = {
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "wall_seconds": time.time() - started,
        **measured,
        "environment": f"{_machine()}; {_versions()}",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=1) + "\n")
    print(f"results: {path}")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
