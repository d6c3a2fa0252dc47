# Licensed under the Apache License, Version 2.0.
"""
Helpers for the DAG files system tests copy into a stack's dags folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def load_slowly_the_first_time(dag_id: str, *, marker: str, seconds: float) -> None:
    """
    Called at the top of a DAG file: the first task process that loads it for ``dag_id`` sleeps.

    That opens a window in which the task has started (``ti_run`` recorded its host) but none of its
    code runs yet: the task runner has not taken SIGTERM over, and a resumable operator has not
    declared or announced itself. The process leaves ``marker`` in ``AIRFLOW_HOME``, holding its pid,
    before it sleeps, so a test knows when to strike. Later loads (the dag processor's, which parses
    for no particular DAG, and a resumed attempt's) are fast.

    :param dag_id: the DAG whose task processes load slowly.
    :param marker: the file name, in ``AIRFLOW_HOME``.
    :param seconds: how long the first load takes.
    """
    from airflow.sdk import get_parsing_context

    if get_parsing_context().dag_id != dag_id:
        return
    path = Path(os.environ["AIRFLOW_HOME"]) / marker
    if path.exists():
        return
    path.write_text(str(os.getpid()))
    time.sleep(seconds)
