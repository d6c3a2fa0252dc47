# Licensed under the Apache License, Version 2.0.
"""
Keeps the :class:`~airflow.providers.resumable.ledger.SubmissionLedger` in Airflow's task state store.

The AIP-103 task state store (``context["task_state_store"]``) is scoped to one task instance
(dag_id, run_id, task_id, map_index) and survives retries and reschedules, which is exactly the
scope a ledger needs. This adapter only reads, validates and writes; it never decides anything.

**Retention.** By default a task state store row expires ``[state_store] default_retention_days``
(30) days after it was written, and ``airflow state-store clean`` then deletes it, whether or not
the task, and its job, are still going. A ledger deleted under a running job makes the next attempt
submit a second one. So every ledger write says ``retention=NEVER_EXPIRE``: the row has no
``expires_at`` and the clean-up skips it.

**Clean-up after the task ends.** The ledger stays after the task succeeds or fails, which is what
lets a later attempt return a succeeded job's result without polling, and lets a person see which job
a task ran. It goes with its task instance's dag run: the row's foreign key deletes it when the run
is deleted (``airflow db clean`` purges old dag runs with their ``task_state_store`` rows). With
``[state_store] clear_on_success = True`` Airflow also deletes it when the task succeeds. A person
can delete it at any time through the REST API (:meth:`LedgerStore.reset_hint`). No write is added
on success to shorten its life: that would cost a metadata write per task for nothing the above does
not already do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from airflow.sdk.execution_time.context import NEVER_EXPIRE

from airflow.providers.resumable.ledger import (
    LedgerCorrupted,
    LedgerError,
    LedgerForeign,
    LedgerOwner,
    LedgerVersionUnsupported,
    SubmissionLedger,
)

LEDGER_KEY = "resumable.ledger"
"""The task state store key the ledger lives under. Renaming it would orphan in-flight ledgers.

No ``/`` in it: Airflow 3.3.0's Execution API routes the key as one path segment (``{key}``; 3.3.1
made it ``{key:path}``), so a key with a slash would not reach the store there."""


class TaskStateStore(Protocol):
    """The part of Airflow's ``TaskStateStoreAccessor`` the ledger uses."""

    def get(self, key: str, default: Any = None) -> Any: ...

    def set(self, key: str, value: Any, *, retention: timedelta | None = None) -> None: ...

    def delete(self, key: str) -> None: ...


class LedgerStore:
    """
    Loads and saves one task instance's ledger, refusing any ledger it must not act on.

    :param store: the task instance's task state store (``context["task_state_store"]``).
    :param owner: the task instance running now.
    :param kind: the operator family running now (e.g. ``databricks.runs_submit``).
    :param key: the task state store key.
    """

    def __init__(
        self, store: TaskStateStore, *, owner: LedgerOwner, kind: str, key: str = LEDGER_KEY
    ) -> None:
        self._store = store
        self.owner = owner
        self.kind = kind
        self.key = key

    def load(self) -> SubmissionLedger | None:
        """
        Return this task instance's ledger, or ``None`` if it has none.

        :raises LedgerError: the stored value is malformed, of a newer schema, or belongs to another
            task instance or operator family. The message says what was found and what to do.
        """
        raw = self._store.get(self.key)
        if raw is None:
            return None
        try:
            ledger = SubmissionLedger.from_json(raw)
        except LedgerVersionUnsupported as err:
            raise LedgerVersionUnsupported(
                f"The ledger under task state key {self.key!r} for {self.owner} cannot be read: {err}. "
                "Nothing was submitted or cancelled. Upgrade airflow-provider-resumable on this worker "
                "to the release that wrote it (every worker must run the same release)."
            ) from err
        except LedgerCorrupted as err:
            raise LedgerCorrupted(
                f"The ledger under task state key {self.key!r} for {self.owner} is malformed ({err}). "
                "Nothing was submitted or cancelled. Check in the cloud whether a job from an earlier "
                f"attempt is still running; then {self.reset_hint()}"
            ) from err
        if ledger.owner != self.owner:
            raise LedgerForeign(
                f"The ledger under task state key {self.key!r} belongs to another task instance "
                f"({ledger.owner}), not to {self.owner}. Nothing was submitted or cancelled, and its job "
                f"{ledger.external_id or '(id not recorded)'} was not adopted. If it was copied here by "
                f"mistake, {self.reset_hint()}"
            )
        if ledger.kind != self.kind:
            raise LedgerForeign(
                f"The ledger under task state key {self.key!r} for {self.owner} was written by a "
                f"{ledger.kind!r} operator, but this task now runs a {self.kind!r} operator. Nothing was "
                f"submitted or cancelled, and job {ledger.external_id or '(id not recorded)'} was not "
                f"adopted. If the task was changed on purpose, cancel that job if needed, then "
                f"{self.reset_hint()}"
            )
        return ledger

    def save(self, ledger: SubmissionLedger) -> None:
        """
        Write the ledger (a synchronous round trip: it is stored when this returns), never to expire.

        :param ledger: the ledger to write; it must belong to this task instance and operator family.
        """
        if ledger.owner != self.owner or ledger.kind != self.kind:
            raise LedgerError(f"refusing to write a ledger of {ledger.owner} / {ledger.kind} as {self.owner}")
        self._store.set(self.key, ledger.to_json(), retention=NEVER_EXPIRE)

    def reset_hint(self) -> str:
        """How a person removes this task instance's ledger."""
        owner = self.owner
        query = "" if owner.map_index < 0 else f"?map_index={owner.map_index}"
        return (
            f"delete the key (DELETE /api/v2/dags/{owner.dag_id}/dagRuns/{owner.run_id}/taskInstances/"
            f"{owner.task_id}/state-store/{self.key}{query}) and clear the task to start over."
        )
