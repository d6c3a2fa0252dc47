# Licensed under the Apache License, Version 2.0.
"""
The decision: given what the ledger says and what the cloud says, what does this attempt do?

One pure function, :func:`decide`, so the exactly-once argument can be checked by reading it and its
table of tests. No I/O, no clock, no Airflow.
"""

from __future__ import annotations

from dataclasses import dataclass

from airflow.providers.resumable._compat import StrEnum
from airflow.providers.resumable.ledger import LedgerPhase, SubmissionLedger
from airflow.providers.resumable.status import RemoteStatus


class PriorFailurePolicy(StrEnum):
    """What to do when the job recorded in the ledger ended badly (failed, cancelled, gone)."""

    RESUBMIT = "resubmit"
    """Start a new job under a new generation of the key: a retry means "try the job again"."""
    FAIL = "fail"
    """Fail the task without starting anything: a human decides."""


class Action(StrEnum):
    """What one attempt does. Values are the names used in logs and metrics."""

    SUBMIT = "submit"
    """No ledger: write the intent for generation 0, then submit."""
    RESUBMIT_SAME_KEY = "resubmit_same_key"
    """An earlier submit was interrupted: send it again with the same key, so the cloud returns the
    job it may already have (or the adapter finds it by key) instead of creating a second one."""
    RECONNECT = "reconnect"
    """The recorded job is still active: poll it."""
    COMPLETE = "complete"
    """The recorded job already succeeded: return its result without polling or submitting."""
    SUBMIT_NEW_GENERATION = "submit_new_generation"
    """The recorded job is over and a new one is wanted: bump the generation, write the intent,
    submit."""
    CANCEL_THEN_SUBMIT_NEW_GENERATION = "cancel_then_submit_new_generation"
    """The task was cleared while its job still runs: cancel that job (never orphan it), then
    start a new generation."""
    FAIL = "fail"
    """The recorded job ended badly and the policy says not to start another."""


@dataclass(frozen=True)
class Decision:
    """An action and the sentence that explains it in the task log."""

    action: Action
    reason: str


def decide(
    ledger: SubmissionLedger | None,
    remote: RemoteStatus | None,
    policy: PriorFailurePolicy,
    *,
    max_tries: int,
    resend_refused: bool = False,
) -> Decision:
    """
    Decide what this attempt does.

    :param ledger: the task instance's ledger, or ``None`` when it has none.
    :param remote: the status of ``ledger.external_id``; required when the ledger is ``submitted``
        and ignored otherwise (an interrupted submit has no id to ask about).
    :param policy: what to do about a prior job that ended badly.
    :param max_tries: the task instance's current ``max_tries``; a value different from the
        ledger's means the task was cleared, and clearing means "run it again".
    :param resend_refused: the cloud has just refused, with a permanent error, the key of the
        interrupted submit this attempt re-sent (after ``find_existing``, where the cloud has one,
        found no job under it). Only read for a ``submitting`` ledger.
    """
    if ledger is None:
        return Decision(Action.SUBMIT, "no ledger: first submission")

    if ledger.phase is LedgerPhase.SUBMITTING:
        if resend_refused and ledger.was_cleared(max_tries):
            # The key can never go through, and every later clear would re-send it again: a trap.
            # A clear asks for a run, so give the key up for a new one.
            return Decision(
                Action.SUBMIT_NEW_GENERATION,
                f"the task was cleared and the cloud refuses key {ledger.key} of the interrupted submit: "
                "giving that key up and submitting under a new one",
            )
        if resend_refused:
            return Decision(
                Action.RESUBMIT_SAME_KEY,
                f"the cloud refuses key {ledger.key} of the interrupted submit; the task was not cleared, "
                "so the key is kept (the next try sends it again; clearing the task starts over with a "
                "new key)",
            )
        # Never a new key here: the previous attempt may have reached the cloud, and only the
        # same key lets the cloud (or find_existing) hand that job back instead of a second one.
        # After a clear too: the job it hands back is adopted as the run the clear asked for.
        return Decision(
            Action.RESUBMIT_SAME_KEY,
            f"an earlier submit with key {ledger.key} was interrupted; sending it again with the same key",
        )

    if remote is None:
        raise ValueError("a submitted ledger needs the remote job's status to decide")

    job = f"{ledger.external_id} ({remote.value})"
    if ledger.was_cleared(max_tries):
        if remote.is_active:
            return Decision(
                Action.CANCEL_THEN_SUBMIT_NEW_GENERATION,
                f"the task was cleared while job {job} is still active: cancelling it, then submitting anew",
            )
        return Decision(
            Action.SUBMIT_NEW_GENERATION,
            f"the task was cleared and job {job} is over: submitting a new job",
        )

    if remote.is_active:
        return Decision(Action.RECONNECT, f"reconnecting to job {job}")
    if remote is RemoteStatus.SUCCEEDED:
        return Decision(Action.COMPLETE, f"job {job} already succeeded; not submitting again")
    if policy is PriorFailurePolicy.FAIL:
        return Decision(
            Action.FAIL,
            f"the prior job {job} did not succeed and on_prior_failure='fail': not submitting another",
        )
    return Decision(
        Action.SUBMIT_NEW_GENERATION,
        f"the prior job {job} did not succeed; submitting a new job (on_prior_failure='resubmit')",
    )
