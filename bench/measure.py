# Licensed under the Apache License, Version 2.0.
"""
Instruments that watch the stack from outside: metadata writes, a process's peak memory, and
task-instance state changes. None of them changes what Airflow or the operators do.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from pathlib import Path

from airflow.providers.resumable.testing.stack import StackDatabase

WRITE_LOG_TABLE = "resumable_bench_write_log"
COUNTED_TABLES = ("task_state_store", "xcom")
"""Where an operator's own metadata writes land (task state store and XCom). Airflow's bookkeeping
of every attempt (task_instance, its history, logs, rendered fields) is the same whichever operator
runs, so it is left out of the count."""


def install_write_log(database: Path) -> None:
    """
    Record every row written to :data:`COUNTED_TABLES` with sqlite triggers.

    Triggers see the writes of every process (API server, scheduler) without touching Airflow's code;
    the log table is the bench's own and Airflow never reads it.
    """
    statements = [
        f"CREATE TABLE IF NOT EXISTS {WRITE_LOG_TABLE} "
        "(tbl TEXT, op TEXT, dag_id TEXT, run_id TEXT, task_id TEXT, key TEXT)"
    ]
    for table in COUNTED_TABLES:
        for op, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
            statements.append(
                f"CREATE TRIGGER IF NOT EXISTS {WRITE_LOG_TABLE}_{table}_{op.lower()} AFTER {op} ON {table} "
                f"BEGIN INSERT INTO {WRITE_LOG_TABLE} VALUES ('{table}', '{op.lower()}', {row}.dag_id, "
                f"{row}.run_id, {row}.task_id, {row}.key); END"
            )
    conn = sqlite3.connect(database, timeout=60)
    try:
        with conn:
            for statement in statements:
                conn.execute(statement)
    finally:
        conn.close()


def metadata_writes(db: StackDatabase, dag_id: str, run_id: str) -> Counter[str]:
    """Rows written for one dag run, by ``table.op`` (for example ``task_state_store.insert``)."""
    rows = db.query(
        f"SELECT tbl, op, COUNT(*) AS n FROM {WRITE_LOG_TABLE} WHERE dag_id = ? AND run_id = ? GROUP BY tbl, op",
        (dag_id, run_id),
    )
    return Counter({f"{row['tbl']}.{row['op']}": row["n"] for row in rows})


class PeakMemory:
    """The peak resident set (``VmHWM``) of one process, read from /proc until it exits."""

    def __init__(self, pid: int, *, interval: float = 0.25) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"peak-rss-{pid}", daemon=True)

    def start(self) -> PeakMemory:
        self._thread.start()
        return self

    def stop(self) -> float | None:
        """Stop sampling; the peak in MiB (None if the process was never read)."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak_kib / 1024 if self.peak_kib else None

    def _run(self) -> None:
        status = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            try:
                text = status.read_text()
            except OSError:
                return  # the process ended: its last reading was its peak so far
            for line in text.splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kib = max(self.peak_kib, int(line.split()[1]))
            self._stop.wait(self.interval)
