# Licensed under the Apache License, Version 2.0.
"""
A listener plugin for the system tests: records every ``on_task_instance_checkpointed`` call.

Each call appends one JSON line to ``$AIRFLOW_HOME/checkpoint-listener.jsonl``, which the tests
read back. On a stock Airflow the hook has no spec and is never called, so the file stays empty.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

RECORD_NAME = "checkpoint-listener.jsonl"


class CheckpointListener:
    @hookimpl
    def on_task_instance_checkpointed(self, previous_state: Any, task_instance: Any) -> None:
        record = {
            "dag_id": task_instance.dag_id,
            "run_id": task_instance.run_id,
            "task_id": task_instance.task_id,
            "try_number": task_instance.try_number,
            "previous_state": getattr(previous_state, "value", previous_state),
        }
        with (Path(os.environ["AIRFLOW_HOME"]) / RECORD_NAME).open("a") as records:
            records.write(json.dumps(record) + "\n")


class CheckpointListenerPlugin(AirflowPlugin):
    name = "resumable_system_checkpoint_listener"
    listeners = [CheckpointListener()]
