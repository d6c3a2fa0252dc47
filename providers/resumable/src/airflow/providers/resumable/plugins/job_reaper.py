# Licensed under the Apache License, Version 2.0.
"""
The plugin that runs the :mod:`job reaper <airflow.providers.resumable.job_reaper>` in the scheduler.

Airflow loads it from the provider's ``airflow.plugins`` entry point in every component. Its
listener hears every Airflow job start (``on_starting``), and starts the reaper only in a scheduler:
the job's type is set by the runner just after the listener is called, so the reaper thread waits a
moment and checks it, and exits at once in a triggerer or dag processor. ``[resumable] reaper_enabled
= False`` turns it off.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

_JOB_TYPE_WAIT_SECONDS = 30.0


class JobReaperListener:
    """Starts the reaper when a scheduler job starts and stops it when that job stops."""

    def __init__(self) -> None:
        self._thread: Any = None
        self._lock = threading.Lock()

    @hookimpl
    def on_starting(self, component: Any) -> None:
        from airflow.configuration import conf

        if not conf.getboolean("resumable", "reaper_enabled", fallback=True):
            return
        threading.Thread(
            target=self._start_if_scheduler, args=(component,), name="resumable-reaper-start", daemon=True
        ).start()

    def _start_if_scheduler(self, component: Any) -> None:
        from airflow.providers.resumable.job_reaper import JobReaper, ReaperSettings, ReaperThread

        deadline = time.monotonic() + _JOB_TYPE_WAIT_SECONDS
        while getattr(component, "job_type", None) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if getattr(component, "job_type", None) != "SchedulerJob":
            return
        with self._lock:
            if self._thread is not None:
                return
            self._thread = ReaperThread(JobReaper(ReaperSettings.from_config()))
            self._thread.start()

    @hookimpl
    def before_stopping(self, component: Any) -> None:
        with self._lock:
            if self._thread is not None and getattr(component, "job_type", None) == "SchedulerJob":
                self._thread.stop()
                self._thread = None


class ResumableJobReaperPlugin(AirflowPlugin):
    """Registers :class:`JobReaperListener` in every Airflow component."""

    name = "resumable_job_reaper"
    listeners = [JobReaperListener()]
