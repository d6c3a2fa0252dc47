# Licensed under the Apache License, Version 2.0.
"""
The submission ledger: one record per task instance that makes a remote submission exactly-once.

**What it is for.** A task that starts a remote job must, on any later attempt, know whether a job
was (or may have been) started and which one, so it can reconnect instead of starting a second one.

**How it works (write-ahead intent).** Before the cloud is called, the ledger is written with
``phase="submitting"`` and a fresh idempotency key (a random nonce plus a generation counter). The
submission carries that key; the cloud deduplicates on it (or, where the cloud cannot, the adapter
finds the job by the key it wrote into the job's name). Only then is ``phase="submitted"`` with the
external id persisted. A worker dying anywhere in between leaves ``submitting`` behind, and the next
attempt re-sends the *same* key, so the cloud returns the job that already exists: the "submit
returned but the id was never persisted" window that ``ResumableJobMixin`` documents as impossible
to close is closed by writing the intent first.

**What it does not do.** This module is pure: it neither reads nor writes the task state store
(see :mod:`airflow.providers.resumable.ledger_store`) nor talks to any cloud. It also does not
decide what to do with a ledger; :func:`airflow.providers.resumable.decision.decide` does.

**Known limitation.** Exactly-once holds per idempotency key only as far as the cloud honours the
key (Databricks ``idempotency_token``, Dataproc ``request_id``/job id, EMR Serverless
``clientToken``; for EMR steps, a key-tagged step name found by listing).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from airflow.providers.resumable._compat import StrEnum

LEDGER_SCHEMA_VERSION = 1
"""The record layout this code writes. A ledger with a higher ``v`` is refused, never guessed at."""

_NONCE_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_MAX_GENERATION = 9_999_999
"""Keeps ``f"{nonce}-{generation}"`` within 40 characters (Dataproc's ``request_id`` limit)."""


class LedgerError(Exception):
    """A ledger was found that this task instance must not act on. Nothing remote was touched."""


class LedgerCorrupted(LedgerError):
    """The stored value is not a ledger this code can read: wrong type, missing or invalid fields."""


class LedgerVersionUnsupported(LedgerError):
    """The ledger was written by a newer release of this provider (a higher schema version)."""


class LedgerForeign(LedgerError):
    """The ledger belongs to another task instance or to another kind of operator."""


class LedgerPhase(StrEnum):
    """Where the write-ahead protocol stood when the ledger was last written."""

    SUBMITTING = "submitting"
    """Intent recorded; the submission may or may not have reached the cloud."""
    SUBMITTED = "submitted"
    """The cloud accepted the submission and its external id is recorded."""


@dataclass(frozen=True)
class LedgerOwner:
    """The task instance a ledger belongs to (the task state store's own scope, recorded to check it)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @classmethod
    def of_task_instance(cls, ti: Any) -> LedgerOwner:
        """Read the owner fields off a task instance (anything with the four attributes)."""
        map_index = getattr(ti, "map_index", -1)
        return cls(
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            task_id=ti.task_id,
            map_index=-1 if map_index is None else int(map_index),
        )

    def __str__(self) -> str:
        suffix = "" if self.map_index < 0 else f", map_index={self.map_index}"
        return f"dag_id={self.dag_id!r}, run_id={self.run_id!r}, task_id={self.task_id!r}{suffix}"


@dataclass(frozen=True)
class IdempotencyKey:
    """
    ``f"{nonce}-{generation}"``: what the cloud deduplicates on.

    A random nonce (not a hash of the dag, task and run ids) so two Airflow deployments sharing one
    workspace never collide, and so deleting the ledger really means "start over". At most 40
    characters of ``[0-9a-f-]``: within Databricks' 64-character token, Dataproc's 40-character
    ``request_id`` and EMR Serverless' 64-character ``clientToken``.
    """

    nonce: str
    generation: int

    def __str__(self) -> str:
        return f"{self.nonce}-{self.generation}"


@dataclass(frozen=True)
class SubmissionLedger:
    """
    The record kept in the task state store for one task instance (schema version 1).

    :param nonce: 32 hex characters chosen once per ledger; with ``generation`` it forms the key.
    :param generation: bumped each time a *new* job is deliberately started (after a failed prior
        job, or after the task was cleared); never bumped to retry an interrupted submission.
    :param phase: ``submitting`` (intent written, job may exist) or ``submitted`` (job id known).
    :param owner: the task instance that wrote the ledger.
    :param kind: which operator family wrote it (e.g. ``databricks.runs_submit``); an id of one
        cloud is never handed to another cloud's adapter.
    :param max_tries: the task instance's ``max_tries`` when this generation started. Airflow's
        Clear raises ``max_tries`` while retries and reschedules leave it alone, so a different
        value on a later attempt means "the task was cleared: run it again".
    :param intent_at: when the intent for this generation was written (UTC).
    :param external_id: the remote job's id, once known.
    :param submitted_at: when the cloud accepted the submission (UTC), once known.
    :param try_number: the try that last took this ledger up (wrote an intent for it, or reconnected
        to its job in a new try), or ``None`` for a ledger written before this was recorded.
    :param try_started_at: when that try first took it up (UTC): where the try's
        ``execution_timeout`` is counted from, so that resuming does not restart it. Both are
        optional additions to schema version 1: a release that does not know them ignores them.
    :param hook_params: how to reach the job from outside any attempt (the cloud hook's plain,
        JSON-serialisable arguments: connection id, region, project, ...), for the
        :mod:`job reaper <airflow.providers.resumable.job_reaper>`; ``None`` when not recorded.
        Another optional addition to schema version 1.
    """

    nonce: str
    generation: int
    phase: LedgerPhase
    owner: LedgerOwner
    kind: str
    max_tries: int
    intent_at: datetime
    external_id: str | None = None
    submitted_at: datetime | None = None
    try_number: int | None = None
    try_started_at: datetime | None = None
    hook_params: dict[str, Any] | None = None
    version: int = field(default=LEDGER_SCHEMA_VERSION)

    @classmethod
    def begin(
        cls,
        *,
        owner: LedgerOwner,
        kind: str,
        max_tries: int,
        now: datetime,
        nonce: str | None = None,
        try_number: int | None = None,
        hook_params: dict[str, Any] | None = None,
    ) -> SubmissionLedger:
        """
        Start a ledger: generation 0, intent recorded, nothing submitted yet.

        :param owner: the task instance writing it.
        :param kind: the operator family writing it.
        :param max_tries: the task instance's ``max_tries`` now.
        :param now: the time of the intent (UTC).
        :param nonce: the nonce to use; a fresh random one by default.
        :param try_number: the task instance's try; its clock starts ``now``.
        :param hook_params: how to reach the job from outside any attempt (see the class).
        """
        return cls(
            nonce=nonce or uuid.uuid4().hex,
            generation=0,
            phase=LedgerPhase.SUBMITTING,
            owner=owner,
            kind=kind,
            max_tries=max_tries,
            intent_at=now,
            try_number=try_number,
            try_started_at=now if try_number is not None else None,
            hook_params=hook_params,
        )

    @property
    def key(self) -> IdempotencyKey:
        """The idempotency key of the current generation."""
        return IdempotencyKey(self.nonce, self.generation)

    def mark_submitted(
        self, external_id: str, *, now: datetime, max_tries: int | None = None
    ) -> SubmissionLedger:
        """
        The cloud accepted this generation's submission as ``external_id``.

        :param external_id: the job's id.
        :param now: when the cloud accepted it (UTC).
        :param max_tries: the task instance's ``max_tries`` now. A submit re-sent after a clear
            adopts its job as the run the clear asked for; recording the clear here keeps a later
            resume of the same try from reading it as a new clear (and cancelling that job).
        """
        if not external_id:
            raise ValueError("a submitted ledger needs the remote job's id")
        return replace(
            self,
            phase=LedgerPhase.SUBMITTED,
            external_id=external_id,
            submitted_at=now,
            max_tries=self.max_tries if max_tries is None else max_tries,
        )

    def next_generation(
        self, *, max_tries: int, now: datetime, try_number: int | None = None
    ) -> SubmissionLedger:
        """
        Intent for a deliberately new job: same nonce, generation + 1, nothing submitted yet.

        :param max_tries: the task instance's ``max_tries`` now.
        :param now: the time of the intent (UTC).
        :param try_number: the task instance's try; a new job in the same try keeps the try's clock.
        """
        if self.generation >= _MAX_GENERATION:
            raise LedgerError(
                f"Ledger for {self.owner} has started {self.generation} jobs; refusing to start another. "
                "Delete the task state key and clear the task if this is really intended."
            )
        return replace(
            self,
            generation=self.generation + 1,
            phase=LedgerPhase.SUBMITTING,
            max_tries=max_tries,
            intent_at=now,
            external_id=None,
            submitted_at=None,
        ).taken_up_by_try(try_number, now=now)

    def taken_up_by_try(self, try_number: int | None, *, now: datetime) -> SubmissionLedger:
        """
        This ledger with its try clock for ``try_number``: unchanged within the same try, else from ``now``.

        :param try_number: the task instance's try (``None``: not known, nothing recorded).
        :param now: when a new try took the ledger up (UTC).
        """
        if try_number is None or (try_number == self.try_number and self.try_started_at is not None):
            return self
        return replace(self, try_number=try_number, try_started_at=now)

    def was_cleared(self, max_tries: int) -> bool:
        """Whether the task instance was cleared since this generation started."""
        return max_tries != self.max_tries

    def to_json(self) -> dict[str, Any]:
        """The JSON object stored in the task state store."""
        return {
            "v": self.version,
            "nonce": self.nonce,
            "generation": self.generation,
            "phase": self.phase.value,
            "kind": self.kind,
            "owner": {
                "dag_id": self.owner.dag_id,
                "run_id": self.owner.run_id,
                "task_id": self.owner.task_id,
                "map_index": self.owner.map_index,
            },
            "max_tries": self.max_tries,
            "intent_at": self.intent_at.isoformat(),
            "external_id": self.external_id,
            "submitted_at": self.submitted_at.isoformat() if self.submitted_at else None,
            "try_number": self.try_number,
            "try_started_at": self.try_started_at.isoformat() if self.try_started_at else None,
            **({"hook_params": self.hook_params} if self.hook_params is not None else {}),
        }

    @classmethod
    def from_json(cls, value: Any) -> SubmissionLedger:
        """
        Parse a stored value, refusing anything that is not exactly a ledger this code understands.

        :raises LedgerVersionUnsupported: written by a newer schema version.
        :raises LedgerCorrupted: anything else that does not parse.
        """
        if not isinstance(value, dict):
            raise LedgerCorrupted(f"expected a JSON object, found {type(value).__name__}: {value!r:.200}")
        version = value.get("v")
        if not isinstance(version, int) or isinstance(version, bool):
            raise LedgerCorrupted(f"the schema version 'v' is missing or not an integer: {version!r}")
        if version > LEDGER_SCHEMA_VERSION:
            raise LedgerVersionUnsupported(
                f"it was written with ledger schema v{version}; this release reads up to "
                f"v{LEDGER_SCHEMA_VERSION}"
            )
        if version < 1:
            raise LedgerCorrupted(f"unknown schema version {version}")
        try:
            nonce = _require(value, "nonce", str)
            if not _NONCE_PATTERN.match(nonce):
                raise LedgerCorrupted(f"'nonce' is not 32 lowercase hex characters: {nonce!r}")
            generation = _require(value, "generation", int)
            if not 0 <= generation <= _MAX_GENERATION:
                raise LedgerCorrupted(f"'generation' out of range: {generation}")
            phase = LedgerPhase(_require(value, "phase", str))
            owner_raw = _require(value, "owner", dict)
            owner = LedgerOwner(
                dag_id=_require(owner_raw, "dag_id", str),
                run_id=_require(owner_raw, "run_id", str),
                task_id=_require(owner_raw, "task_id", str),
                map_index=_require(owner_raw, "map_index", int),
            )
            external_id = value.get("external_id")
            if external_id is not None and not (isinstance(external_id, str) and external_id):
                raise LedgerCorrupted(f"'external_id' must be a non-empty string or null: {external_id!r}")
            if phase is LedgerPhase.SUBMITTED and external_id is None:
                raise LedgerCorrupted("phase is 'submitted' but no 'external_id' is recorded")
            submitted_at_raw = value.get("submitted_at")
            try_number = value.get("try_number")
            if try_number is not None and (not isinstance(try_number, int) or isinstance(try_number, bool)):
                raise LedgerCorrupted(f"'try_number' must be an integer or null: {try_number!r}")
            try_started_at_raw = value.get("try_started_at")
            hook_params = value.get("hook_params")
            if hook_params is not None and not isinstance(hook_params, dict):
                raise LedgerCorrupted(f"'hook_params' must be an object or absent: {hook_params!r:.100}")
            return cls(
                nonce=nonce,
                generation=generation,
                phase=phase,
                owner=owner,
                kind=_require(value, "kind", str),
                max_tries=_require(value, "max_tries", int),
                intent_at=datetime.fromisoformat(_require(value, "intent_at", str)),
                external_id=external_id,
                submitted_at=datetime.fromisoformat(submitted_at_raw) if submitted_at_raw else None,
                try_number=try_number,
                try_started_at=datetime.fromisoformat(try_started_at_raw) if try_started_at_raw else None,
                hook_params=hook_params,
                version=version,
            )
        except LedgerCorrupted:
            raise
        except (ValueError, TypeError) as err:
            raise LedgerCorrupted(str(err)) from err


def _require(mapping: dict[str, Any], name: str, kind: type) -> Any:
    value = mapping.get(name)
    # bool is an int subclass; a ``True`` generation is corruption, not generation 1.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise LedgerCorrupted(f"field {name!r} is missing or not a {kind.__name__}: {value!r:.100}")
    return value
