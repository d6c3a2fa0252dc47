# Licensed under the Apache License, Version 2.0.
"""The decision table: every (ledger phase x remote status x policy x cleared) combination."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from airflow.providers.resumable.decision import Action, PriorFailurePolicy, decide
from airflow.providers.resumable.ledger import LedgerOwner, SubmissionLedger
from airflow.providers.resumable.status import RemoteStatus

NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)
OWNER = LedgerOwner(dag_id="d", run_id="r", task_id="t")
MAX_TRIES = 2
CLEARED = 3

SUBMITTING = SubmissionLedger.begin(owner=OWNER, kind="k", max_tries=MAX_TRIES, now=NOW)
SUBMITTED = SUBMITTING.mark_submitted("job-1", now=NOW)

R, F = PriorFailurePolicy.RESUBMIT, PriorFailurePolicy.FAIL
ACTIVE = (RemoteStatus.PENDING, RemoteStatus.RUNNING)
BAD = (RemoteStatus.FAILED, RemoteStatus.CANCELLED, RemoteStatus.NOT_FOUND)

TABLE = [
    # no ledger: fresh submit, whatever else is true
    *[(None, None, policy, MAX_TRIES, Action.SUBMIT) for policy in (R, F)],
    # interrupted submit: same key again, never a new one (even if cleared meanwhile)
    *[
        (SUBMITTING, None, policy, tries, Action.RESUBMIT_SAME_KEY)
        for policy in (R, F)
        for tries in (MAX_TRIES, CLEARED)
    ],
    # submitted, not cleared
    *[(SUBMITTED, status, policy, MAX_TRIES, Action.RECONNECT) for status in ACTIVE for policy in (R, F)],
    *[(SUBMITTED, RemoteStatus.SUCCEEDED, policy, MAX_TRIES, Action.COMPLETE) for policy in (R, F)],
    *[(SUBMITTED, status, R, MAX_TRIES, Action.SUBMIT_NEW_GENERATION) for status in BAD],
    *[(SUBMITTED, status, F, MAX_TRIES, Action.FAIL) for status in BAD],
    # submitted, then cleared: clearing means run again, never orphan a running job
    *[
        (SUBMITTED, status, policy, CLEARED, Action.CANCEL_THEN_SUBMIT_NEW_GENERATION)
        for status in ACTIVE
        for policy in (R, F)
    ],
    *[
        (SUBMITTED, status, policy, CLEARED, Action.SUBMIT_NEW_GENERATION)
        for status in (RemoteStatus.SUCCEEDED, *BAD)
        for policy in (R, F)
    ],
]


@pytest.mark.parametrize(("ledger", "remote", "policy", "max_tries", "expected"), TABLE)
def test_decision_table(ledger, remote, policy, max_tries, expected):
    decision = decide(ledger, remote, policy, max_tries=max_tries)
    assert decision.action is expected
    assert decision.reason


def test_the_table_covers_every_submitted_combination():
    covered = {(remote, policy, tries) for ledger, remote, policy, tries, _ in TABLE if ledger is SUBMITTED}
    assert covered == {
        (s, p, t) for s in RemoteStatus for p in PriorFailurePolicy for t in (MAX_TRIES, CLEARED)
    }


# The cloud refused the key an interrupted submit was re-sent with (a permanent error, not a
# transient one). Without a clear the key is kept: the refusal is the task's error and a retry sends
# it again. After a clear the key is given up for a new generation: re-sending it can never succeed,
# and clearing again would only repeat the refusal.
REFUSED_TABLE = [
    *[(SUBMITTING, policy, MAX_TRIES, Action.RESUBMIT_SAME_KEY) for policy in (R, F)],
    *[(SUBMITTING, policy, CLEARED, Action.SUBMIT_NEW_GENERATION) for policy in (R, F)],
]


@pytest.mark.parametrize(("ledger", "policy", "max_tries", "expected"), REFUSED_TABLE)
def test_decision_table_after_the_cloud_refused_the_resent_key(ledger, policy, max_tries, expected):
    decision = decide(ledger, None, policy, max_tries=max_tries, resend_refused=True)
    assert decision.action is expected
    assert str(ledger.key) in decision.reason


def test_the_refused_table_covers_every_policy_and_clear():
    covered = {(policy, tries) for _, policy, tries, _ in REFUSED_TABLE}
    assert covered == {(p, t) for p in PriorFailurePolicy for t in (MAX_TRIES, CLEARED)}


@pytest.mark.parametrize("remote", list(RemoteStatus))
def test_a_refused_resend_means_nothing_to_a_submitted_ledger(remote):
    """Only an interrupted submit is re-sent; a submitted ledger decides as it always does."""
    for tries in (MAX_TRIES, CLEARED):
        refused = decide(SUBMITTED, remote, R, max_tries=tries, resend_refused=True)
        assert refused == decide(SUBMITTED, remote, R, max_tries=tries)


def test_a_submitted_ledger_without_remote_status_is_a_programming_error():
    with pytest.raises(ValueError, match="remote job's status"):
        decide(SUBMITTED, None, R, max_tries=MAX_TRIES)


def test_reasons_name_the_job_and_the_key():
    assert "job-1 (RUNNING)" in decide(SUBMITTED, RemoteStatus.RUNNING, R, max_tries=MAX_TRIES).reason
    assert str(SUBMITTING.key) in decide(SUBMITTING, None, R, max_tries=MAX_TRIES).reason
