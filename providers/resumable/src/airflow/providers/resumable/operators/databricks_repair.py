# Licensed under the Apache License, Version 2.0.
"""
Databricks ``repair_run`` under the task state store: at most one repair per try, sent once.

**What it is for.** Upstream's ``DatabricksRunNowOperator(repair_run=True)`` repairs a run that
ended unsuccessfully (re-runs its failed tasks, same run id) once per try: polling in the worker, it
clears its ``repair_run`` flag; deferred, it defers again with ``repair_run=False`` in the trigger,
so the event that ends the repaired run does not repair it a second time. A resumable attempt cannot
keep that flag in memory: deferred, or resumed after a checkpoint, the attempt that sees the repaired
run end is another process, which would repair it again.

**How it works.** A repair is a cloud call that changes a job, so it is recorded like a submission:
:class:`RepairRecord` (the run, the try, the run's latest repair id before the call) is written to
the task state store *before* ``runs/repair`` is called, and the repair's id after. An attempt that
finds a record of its own try and run does not repair again: the repair was made, or was sent by an
attempt that died (Databricks' repair history then shows a newer repair than the record's). Only an
intent whose repair never reached Databricks is sent again, with the same ``latest_repair_id``,
which Databricks refuses if a repair got in meanwhile: never two repairs for one try.

**What it does not do.** A new try (a retry after the task failed) runs a new run and may repair
it once, as upstream's retry does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from airflow.sdk.execution_time.context import NEVER_EXPIRE

from airflow.providers.resumable.ledger_store import TaskStateStore

REPAIR_KEY = "resumable.databricks_repair"
"""The task state store key of the repair record (beside the ledger's; no ``/``, see ``LEDGER_KEY``)."""


@dataclass(frozen=True)
class RepairRecord:
    """
    One try's repair of one run.

    :param run_id: the repaired run.
    :param try_number: the try that repairs it.
    :param latest_repair_id_before: the run's latest repair id when the intent was written (``None``:
        never repaired); a newer one in the run's history means the repair landed.
    :param repair_id: the repair's id once Databricks answered; ``None`` while only the intent is known.
    """

    run_id: int
    try_number: int | None
    latest_repair_id_before: int | None
    repair_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, value: Any) -> RepairRecord | None:
        """The record, or ``None`` for a value that is not one (it is then written anew)."""
        if not isinstance(value, dict) or not isinstance(value.get("run_id"), int):
            return None
        return cls(
            run_id=value["run_id"],
            try_number=value.get("try_number"),
            latest_repair_id_before=value.get("latest_repair_id_before"),
            repair_id=value.get("repair_id"),
        )

    def already_repaired(self, run_id: int, try_number: int | None, latest_repair_id: int | None) -> bool:
        """Whether this try has repaired ``run_id`` (or sent a repair that landed) already."""
        if self.run_id != run_id or self.try_number != try_number:
            return False
        return self.repair_id is not None or latest_repair_id != self.latest_repair_id_before


class RepairLog:
    """
    The :class:`RepairRecord` of one task instance in its task state store (write-ahead, never
    expiring).

    :param store: the task state store; ``None`` (``durable=False``): nothing is recorded.
    """

    def __init__(self, store: TaskStateStore | None) -> None:
        self._store = store

    def begin(self, run_id: int, try_number: int | None, latest_repair_id: int | None) -> RepairRecord | None:
        """
        The record to repair ``run_id`` under, its intent written before this returns; ``None`` when
        this try has repaired the run already.
        """
        record = self.load()
        if record is not None and record.already_repaired(run_id, try_number, latest_repair_id):
            return None
        if record is None or (record.run_id, record.try_number) != (run_id, try_number):
            record = RepairRecord(run_id, try_number, latest_repair_id)
            self.save(record)
        return record

    def done(self, record: RepairRecord, repair_id: int) -> None:
        """Record the repair Databricks made."""
        self.save(dataclasses.replace(record, repair_id=repair_id))

    def load(self) -> RepairRecord | None:
        return RepairRecord.from_json(self._store.get(REPAIR_KEY)) if self._store is not None else None

    def save(self, record: RepairRecord) -> None:
        # As the ledger's: a record that expired under a running try would allow a second repair.
        if self._store is not None:
            self._store.set(REPAIR_KEY, record.to_json(), retention=NEVER_EXPIRE)
