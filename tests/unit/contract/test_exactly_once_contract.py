# Licensed under the Apache License, Version 2.0.
"""
The exactly-once contract, once, for every cloud: each scenario runs against each cloud's real
client and wire-level fake (see ``contract_clouds.py``), with the attempt in a real child process
that the test SIGTERMs or SIGKILLs at a real moment (``attempts.py``).

A cloud passes when, whatever happens to the worker or the wire: one job, never a cancel on a
worker shutdown, exactly one cancel on a person's stop, and nothing done on a ledger that is not
this task instance's.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from attempts import (
    SIGKILL_WINDOW,
    AttemptProcess,
    JsonFileTaskStateStore,
    assert_gave_up_cancelling_in_time,
    run_attempt,
    stop_by_a_person,
    wait_for,
)
from contract_clouds import CLOUDS, ContractCloud

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from airflow.providers.resumable.ledger_store import LEDGER_KEY

CHECKPOINT_OUTCOME = "checkpointed" if checkpointed_state_available() else "rescheduled"


@pytest.fixture(params=sorted(CLOUDS))
def cloud(
    request: pytest.FixtureRequest, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ContractCloud]:
    with ExitStack() as stack:
        yield CLOUDS[request.param](workdir, monkeypatch, stack)


def _ledger(cloud: ContractCloud) -> dict:
    return JsonFileTaskStateStore(cloud.workdir / "state_store.json").get(LEDGER_KEY)


def _start_polling(cloud: ContractCloud) -> AttemptProcess:
    """An attempt of a job that runs until finished, once it has polled a few times."""
    cloud.run_forever()
    attempt = AttemptProcess(cloud.spec()).start()
    wait_for(lambda: cloud.polls() >= 3, what="polling to start")
    return attempt


# -- worker loss ------------------------------------------------------------------------------------


def test_sigkill_mid_poll_then_the_next_attempt_reconnects_to_the_same_job(cloud):
    first = _start_polling(cloud)
    first.signal(signal.SIGKILL)
    assert first.join() is None, "a SIGKILLed attempt records nothing"
    job = _ledger(cloud)["external_id"]

    cloud.finish_all()
    second = run_attempt(cloud.spec())

    assert second["outcome"] == "success", second["error"]
    assert _ledger(cloud)["external_id"] == job
    assert cloud.jobs_created() == 1
    assert cloud.submit_requests() == 1, "reconnected, not re-submitted"


def test_crash_between_submit_and_persist_leaves_exactly_one_job(cloud):
    released = cloud.hold_next_submit()
    first = AttemptProcess(cloud.spec()).start()
    # The cloud has committed the job; its answer is still in flight. Kill the worker now.
    wait_for(lambda: cloud.jobs_created() == 1, what="the job to be created")
    first.signal(signal.SIGKILL)
    assert first.join() is None
    released.set()
    assert _ledger(cloud)["phase"] == "submitting", "the worker died before the id was persisted"

    second = run_attempt(cloud.spec())

    assert second["outcome"] == "success", second["error"]
    assert cloud.jobs_created() == 1
    if cloud.deduplicates:
        assert cloud.submit_requests() == 2, "the second attempt re-sent the same key"
    else:
        assert cloud.submit_requests() == 1, "found by its key, not sent again"
    assert _ledger(cloud)["phase"] == "submitted"


def test_a_dropped_submit_response_yields_one_job(cloud):
    cloud.drop_next_submit_response()
    outcome = run_attempt(cloud.spec())

    assert outcome["outcome"] == "success", outcome["error"]
    assert cloud.jobs_created() == 1
    if cloud.deduplicates:
        assert cloud.submit_requests() == 2, "the lost answer was re-sent under the same key"
    else:
        assert cloud.submit_requests() == 1, "the retry looked the job up instead of re-sending"


# -- termination ----------------------------------------------------------------------------------


def test_sigterm_mid_poll_checkpoints_with_zero_cancels_and_resumes(cloud):
    first = _start_polling(cloud)
    first.signal(signal.SIGTERM)
    outcome = first.join(timeout=15)

    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME, outcome
    assert cloud.cancel_calls() == 0
    assert cloud.running_jobs() == 1, "the job goes on"
    job = _ledger(cloud)["external_id"]

    cloud.finish_all()
    resumed = run_attempt(cloud.spec())
    assert resumed["outcome"] == "success", resumed["error"]
    assert _ledger(cloud)["external_id"] == job
    assert cloud.jobs_created() == 1
    assert cloud.cancel_calls() == 0


def test_a_persons_stop_cancels_the_job_exactly_once(cloud):
    attempt = _start_polling(cloud)

    outcome, took = stop_by_a_person(attempt, cloud.spec(), timeout=15)

    assert outcome is not None
    assert outcome["outcome"] == "failed"
    assert "stopped by the user" in outcome["error"]
    assert cloud.cancel_calls() == 1
    assert cloud.running_jobs() == 0
    assert took < SIGKILL_WINDOW, "the cancel landed before the supervisor's SIGKILL"


def test_a_cancel_that_hangs_gives_up_within_the_sigkill_window_and_names_the_job(cloud, capfd):
    cloud.hang_cancels(20, times=5)  # the clients' own timeouts (60 s, 180 s, none) would wait
    attempt = _start_polling(cloud)
    job = _ledger(cloud)["external_id"]

    outcome, took = stop_by_a_person(attempt, cloud.spec(), timeout=90)

    assert_gave_up_cancelling_in_time(outcome, took, capfd, job=cloud.describe_job(job))


# -- API faults -------------------------------------------------------------------------------------


def test_a_throttle_storm_backs_off_and_completes(cloud):
    started = time.monotonic()
    cloud.throttle_polls(5)
    outcome = run_attempt(cloud.spec())

    assert outcome["outcome"] == "success", outcome["error"]
    assert cloud.jobs_created() == 1
    assert cloud.polls() >= 1
    if cloud.retry_after_seconds is not None:
        # Five throttled polls each waited for the wait the cloud asked for.
        assert time.monotonic() - started >= 5 * cloud.retry_after_seconds * 0.9


def test_server_errors_on_submit_are_retried_into_one_job(cloud):
    cloud.fail_submits(2)
    outcome = run_attempt(cloud.spec())

    assert outcome["outcome"] == "success", outcome["error"]
    assert cloud.jobs_created() == 1
    assert cloud.submit_requests() >= 3, "two refused sends, then the one that took"


# -- ledgers that are not this task instance's ------------------------------------------------------

_OWNER = {"dag_id": "resumable_unit", "run_id": "manual__2026-11-23T00:00:00+00:00", "task_id": "long_job"}


def _unusable_ledgers(kind: str) -> Iterator[tuple[str, dict, str]]:
    submitted = {
        "v": 1,
        "nonce": "0" * 32,
        "generation": 0,
        "phase": "submitted",
        "kind": kind,
        "owner": {**_OWNER, "map_index": -1},
        "max_tries": 0,
        "intent_at": "2026-11-23T00:00:00+00:00",
        "external_id": "999",
        "submitted_at": None,
    }
    yield "malformed", {"v": 1, "nonce": "zz"}, "malformed"
    yield "future-version", {"v": 99, "nonce": "0" * 32}, "schema v99"
    yield (
        "foreign-task",
        {**submitted, "owner": {**_OWNER, "dag_id": "other_dag", "map_index": -1}},
        ("belongs to another task instance"),
    )
    yield "other-operator", {**submitted, "kind": "someone.else"}, "someone.else"


@pytest.mark.parametrize("which", ["malformed", "future-version", "foreign-task", "other-operator"])
def test_an_unusable_ledger_fails_clearly_without_touching_the_cloud(cloud, which):
    stored, message = next((s, m) for name, s, m in _unusable_ledgers(cloud.ledger_kind) if name == which)
    JsonFileTaskStateStore(cloud.workdir / "state_store.json").set(LEDGER_KEY, stored)

    outcome = run_attempt(cloud.spec())

    assert outcome["outcome"] == "failed_no_retry", "retrying would not help: no crash loop"
    assert message in outcome["error"]
    assert (cloud.jobs_created(), cloud.submit_requests(), cloud.polls(), cloud.cancel_calls()) == (
        0,
        0,
        0,
        0,
    )
    assert json.loads((cloud.workdir / "state_store.json").read_text())[LEDGER_KEY] == stored


def test_the_suite_covers_every_cloud_the_provider_ships():
    assert set(CLOUDS) == {"fake_job", "databricks", "emr", "dataproc"}
    assert len({cloud.ledger_kind for cloud in CLOUDS.values()}) == len(CLOUDS), "one ledger kind per cloud"
