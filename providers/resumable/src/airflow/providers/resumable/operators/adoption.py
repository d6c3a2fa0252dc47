# Licensed under the Apache License, Version 2.0.
"""
Adopting the job an upstream durable operator recorded, when a DAG is switched to ours mid-flight.

Upstream operators built on ``ResumableJobMixin`` (AIP-103; the Databricks provider's since 7.23.0)
keep their job's id in the task state store under their ``external_id_key``. A task instance whose
import is swapped while it runs (or waits for its retry) then has that key and no ledger of ours;
submitting would run the job twice. :func:`adopt_upstream_job` describes the job, asks the operator
whether it is this task's, and records it in a new ledger, after which the flow decides as for any
recorded job.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from airflow.providers.resumable.ledger import SubmissionLedger
from airflow.providers.resumable.operators.job_control import _StopDuringRetries
from airflow.providers.resumable.status import RemoteStatus

if TYPE_CHECKING:
    from airflow.providers.resumable.ledger_store import LedgerStore, TaskStateStore
    from airflow.providers.resumable.operators.base import ResumableSubmitOperator


def adopt_upstream_job(
    operator: ResumableSubmitOperator,
    ledgers: LedgerStore,
    store: TaskStateStore,
    submission: Any,
    max_tries: int,
) -> SubmissionLedger | None:
    """
    The ledger of the job the upstream operator recorded for this task instance, now adopted
    (written as submitted), or ``None`` when there is none to adopt.

    Upstream's key is left as it is: a DAG switched back reconnects too. A job the cloud no longer
    knows (its history expired) is not adopted, as upstream then submits afresh.

    :param operator: the operator running now; its ``upstream_state_key`` names upstream's key.
    :param ledgers: this task instance's ledger store (which holds no ledger).
    :param store: this task instance's task state store.
    :param submission: what the operator would submit (passed to ``job_belongs_here``).
    :param max_tries: the task instance's ``max_tries`` now.
    :raises AirflowFailException: the recorded job is not this task's; nothing is submitted.
    """
    key = operator.upstream_state_key
    recorded = store.get(key) if key else None
    if recorded in (None, ""):
        return None
    job_id = str(recorded)
    what = f"{operator.job_noun} {job_id}"
    try:
        remote = operator._call(lambda: operator.describe(job_id), what=f"describe {what}")
    except _StopDuringRetries:
        operator._stop_before_submit(None)
        raise
    if remote.status is RemoteStatus.NOT_FOUND:
        operator.log.warning(
            "The upstream operator recorded %s under %r, which the cloud no longer knows (%s); not adopting it",
            what,
            key,
            remote,
        )
        return None
    if (mismatch := operator.job_belongs_here(job_id, submission)) is not None:
        raise AirflowFailException(
            f"The task state store holds {key}={job_id} (written by the upstream operator), but {what} "
            f"is not this task's: {mismatch}. Nothing was submitted or cancelled. Check {what} in the "
            f"cloud; then delete the key (DELETE .../state-store/{key}) and clear the task to submit a "
            f"new {operator.job_noun}."
        )
    now = datetime.now(tz=timezone.utc)
    ledger = SubmissionLedger.begin(
        owner=ledgers.owner,
        kind=operator.ledger_kind,
        max_tries=max_tries,
        now=now,
        hook_params=operator.hook_params() or None,
    ).mark_submitted(job_id, now=now, max_tries=max_tries)
    ledgers.save(ledger)
    operator.log.info(
        "Adopted %s, which the upstream operator recorded under %r (%s): reconnecting, not submitting",
        what,
        key,
        remote,
    )
    operator._count("adopted_upstream_job")
    return ledger
