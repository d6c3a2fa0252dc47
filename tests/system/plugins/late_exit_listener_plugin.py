# Licensed under the Apache License, Version 2.0.
"""
A listener plugin that makes a checkpointed attempt of ``system_late_executor_event`` end late.

The runner calls ``on_task_instance_checkpointed`` after the checkpoint has been reported, so the
task instance is already ``checkpointed`` while this listener sleeps; the task process, its
supervisor and so the executor's report of the workload's end all wait for it. That is how a slow
listener, a slow remote log upload or a busy executor delays the report in production. When it is
done it appends ``{"ended_at": <time.monotonic()>}`` (one clock for every process on the machine) to
``$AIRFLOW_HOME/late-exit-listener.jsonl``. Every other DAG is left alone.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

RECORD_NAME = "late-exit-listener.jsonl"
LATE_EVENT_DAG_ID = "system_late_executor_event"
LINGER_SECONDS = 6.0


class LateExitListener:
    @hookimpl
    def on_task_instance_checkpointed(self, previous_state: Any, task_instance: Any) -> None:
        if task_instance.dag_id != LATE_EVENT_DAG_ID:
            return
        time.sleep(LINGER_SECONDS)
        record = {"run_id": task_instance.run_id, "ended_at": time.monotonic()}
        with (Path(os.environ["AIRFLOW_HOME"]) / RECORD_NAME).open("a") as records:
            records.write(json.dumps(record) + "\n")


class LateExitListenerPlugin(AirflowPlugin):
    name = "resumable_system_late_exit_listener"
    listeners = [LateExitListener()]
