# Licensed under the Apache License, Version 2.0.
"""
ResumableSubmitOperator against the fake job service, attempt by attempt.

Crash and signal tests run each attempt in a real child process (see ``attempts.py``) and kill or
signal it at the moment that matters; the rest run the attempt in this process.
"""

from __future__ import annotations

import itertools
import json
import signal
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from airflow.sdk.exceptions import AirflowException
from attempts import (
    AttemptProcess,
    JsonFileTaskStateStore,
    assert_gave_up_cancelling_in_time,
    run_attempt,
    stop_by_a_person,
    wait_for,
)

from airflow.providers.resumable.checkpoint import (
    checkpointed_state_available,
    worker_loss_checkpoints_available,
)
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.operators.fake_job import FakeJobSubmitOperator
from airflow.providers.resumable.testing.fake_jobs import Fault

CHECKPOINT_OUTCOME = "checkpointed" if checkpointed_state_available() else "rescheduled"
WORKER_LOSS_KEY = "airflow.resume_on_worker_loss"


def _ledger(spec) -> dict:
    return JsonFileTaskStateStore(spec.workdir / "state_store.json").get(LEDGER_KEY)


# -- the happy path ---------------------------------------------------------------------------


def test_submit_poll_success_returns_result_and_pushes_the_job_id(spec, service):
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert service.counters["jobs_created"] == 1
    job_id = service.jobs()[0]["job_id"]
    assert outcome["result"] == {"job_id": job_id, "output": "42 rows"}
    assert outcome["xcoms"] == {"job_id": job_id}
    ledger = _ledger(spec)
    assert (ledger["phase"], ledger["external_id"], ledger["generation"]) == ("submitted", job_id, 0)
    assert service.jobs()[0]["key"] == f"{ledger['nonce']}-0"


def test_a_failed_job_fails_the_task_with_the_jobs_message(spec, service):
    spec.job = {**spec.job, "outcome": "FAILED", "message": "OOM on executor 3"}
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "failed"
    assert "did not succeed: FAILED" in outcome["error"]
    assert "OOM on executor 3" in outcome["error"]


def test_a_retry_after_success_returns_the_result_without_submitting_again(spec, service):
    assert run_attempt(spec)["outcome"] == "success"
    again = run_attempt(spec)

    assert again["outcome"] == "success"
    assert service.counters["submit_requests"] == 1


# -- exactly once under crashes and lost responses --------------------------------------------


def test_crash_between_submit_and_persist_then_next_attempt_reconnects_to_the_one_job(spec, service):
    spec.job = {**spec.job, "run_seconds": 2.0}
    hold = service.inject("submit", Fault.hold_after_commit())
    first = AttemptProcess(spec).start()
    # The cloud has committed the job; its answer is still in flight. Kill the worker now.
    wait_for(lambda: service.counters["jobs_created"] == 1, what="the job to be created")
    first.signal(signal.SIGKILL)
    assert first.join() is None, "a SIGKILLed attempt records nothing"
    hold.release.set()
    assert _ledger(spec)["phase"] == "submitting", "the worker died before the id was persisted"

    second = run_attempt(spec)

    assert second["outcome"] == "success", second["error"]
    assert service.counters["jobs_created"] == 1
    assert service.counters["submit_requests"] == 2, "the second attempt re-sent the same key"
    assert second["xcoms"]["job_id"] == service.jobs()[0]["job_id"]


def test_crash_in_submit_window_without_cloud_dedupe_is_closed_by_find_existing(spec, service):
    service.dedupe = False
    spec.job = {**spec.job, "run_seconds": 2.0}
    spec = replace(spec, operator_kwargs={**spec.operator_kwargs, "use_find_existing": True})
    hold = service.inject("submit", Fault.hold_after_commit())
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["jobs_created"] == 1, what="the job to be created")
    first.signal(signal.SIGKILL)
    first.join()
    hold.release.set()

    second = run_attempt(spec)

    assert second["outcome"] == "success", second["error"]
    assert service.counters["jobs_created"] == 1
    assert service.counters["submit_requests"] == 1, "the job was found by its key, not submitted again"


def test_the_same_crash_without_dedupe_or_find_existing_would_duplicate(spec, service):
    """The control for the test above: it is find_existing that closes the window."""
    service.dedupe = False
    hold = service.inject("submit", Fault.hold_after_commit())
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["jobs_created"] == 1, what="the job to be created")
    first.signal(signal.SIGKILL)
    first.join()
    hold.release.set()

    assert run_attempt(spec)["outcome"] == "success"
    assert service.counters["jobs_created"] == 2


def test_lost_submit_response_is_retried_with_the_same_key_and_yields_one_job(spec, service):
    service.inject("submit", Fault.drop_response())
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert service.counters["submit_requests"] == 2
    assert service.counters["jobs_created"] == 1


def test_lost_submit_response_without_dedupe_is_found_before_resending(spec, service):
    service.dedupe = False
    service.inject("submit", Fault.drop_response())
    spec.operator_kwargs = {**spec.operator_kwargs, "use_find_existing": True}
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert service.counters["submit_requests"] == 1
    assert service.counters["jobs_created"] == 1


def test_a_429_storm_honours_retry_after_and_completes(spec, service):
    service.inject("get", Fault.error(429, retry_after=0.5), times=4)
    service.inject("submit", Fault.error(503), times=2)
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "success", outcome["error"]
    assert service.counters["jobs_created"] == 1
    assert service.counters["submit_requests"] == 1
    gets = [at for operation, at in service.requests if operation == "get"]
    gaps = [later - earlier for earlier, later in itertools.pairwise(gets[:5])]
    assert len(gaps) == 4
    # Each 429 was waited out for its Retry-After, not for the exponential fallback, which would
    # have waited at least 1 + 2 + 4 + 8 s for these four.
    assert all(gap >= 0.45 for gap in gaps), gaps
    assert sum(gaps) < 6.0, gaps


def test_a_permanent_error_is_not_retried(spec, service):
    service.inject("submit", Fault.error(400))
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "failed"
    assert "400" in outcome["error"]
    assert service.counters["submit_requests"] == 0, "the fake refused before reaching the service"


# -- termination ------------------------------------------------------------------------------


def test_sigterm_mid_poll_leaves_the_job_running_and_checkpoints(spec, service):
    spec.job = {**spec.job, "run_seconds": None}  # runs until the test finishes it
    first = AttemptProcess(spec).start()
    wait_for(lambda: _ledger(spec) and _ledger(spec)["phase"] == "submitted", what="the job to be recorded")
    wait_for(lambda: service.counters["gets"] >= 2, what="polling to start")

    first.signal(signal.SIGTERM)
    outcome = first.join(timeout=10)

    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME, outcome
    assert service.counters["cancel_requests"] == 0
    job_id = _ledger(spec)["external_id"]
    assert service.state_of(job_id) == "RUNNING"

    # The resumed attempt reconnects to the same job and finishes with it.
    service.finish(job_id, "SUCCEEDED")
    second = run_attempt(spec)
    assert second["outcome"] == "success", second["error"]
    assert second["xcoms"]["job_id"] == job_id
    assert service.counters["jobs_created"] == 1
    assert service.counters["cancel_requests"] == 0


def test_sigterm_is_noticed_at_once_even_with_a_long_poll_interval(spec, service):
    spec.job = {**spec.job, "run_seconds": None}
    spec.operator_kwargs = {**spec.operator_kwargs, "poll_interval": 600}
    first = AttemptProcess(spec).start()
    wait_for(lambda: (_ledger(spec) or {}).get("external_id"), what="the job to be recorded")
    time.sleep(0.5)  # into the first 600 s wait

    first.signal(signal.SIGTERM)
    # join() fails the test if the attempt is still sleeping out its 600 s interval.
    outcome = first.join(timeout=10)

    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME
    # A job just submitted has nothing to tell yet: the first look waits one interval.
    assert service.counters["gets"] == 0


def _polling_an_endless_job(spec, service) -> AttemptProcess:
    """An attempt in a child process, polling a job that runs until cancelled."""
    spec.job = {**spec.job, "run_seconds": None}
    attempt = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 2, what="polling to start")
    return attempt


def _stop_checkpoints_leaving_the_job_running(attempt: AttemptProcess, spec, service) -> None:
    """SIGTERM the attempt: it must end as a checkpoint, with no cancel and its job still running."""
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=10)

    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME, outcome
    assert service.counters["cancel_requests"] == 0
    assert service.state_of(_ledger(spec)["external_id"]) == "RUNNING"


def test_user_intent_cancels_the_job_exactly_once(spec, service):
    attempt = _polling_an_endless_job(spec, service)
    # A person marked the task failed: the server no longer says running, then the SIGTERM comes.
    (spec.workdir / "server_state").write_text("failed")
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=10)

    assert outcome is not None
    assert outcome["outcome"] == "failed"
    assert "stopped by the user" in outcome["error"]
    assert service.counters["cancel_requests"] == 1
    assert service.jobs()[0]["state"] == "CANCELLED"


@pytest.mark.parametrize("ended", ["SUCCEEDED", "FAILED"])
def test_a_stop_by_decision_after_the_job_ended_cancels_nothing(spec, service, ended):
    """
    The server no longer says running and the job has ended meanwhile: nothing is left to cancel.

    What a frozen attempt meets when it thaws after its task resumed elsewhere and the resumed
    attempt found the job finished and concluded (it declares nothing then, so the thawed one cannot
    tell it was taken over): the server's 'success' reads as a decision, but cancelling a finished
    job is a cancel request the cloud counts and nobody wanted.
    """
    attempt = _polling_an_endless_job(spec, service)
    job_id = _ledger(spec)["external_id"]
    attempt.signal(signal.SIGSTOP)
    service.finish(job_id, ended)
    (spec.workdir / "server_state").write_text("success")
    attempt.signal(signal.SIGTERM)
    attempt.signal(signal.SIGCONT)
    outcome = attempt.join(timeout=10)

    assert outcome is not None
    assert outcome["outcome"] == "failed", outcome
    assert f"had already ended ({ended})" in outcome["error"], outcome["error"]
    assert service.counters["cancel_requests"] == 0
    assert service.state_of(job_id) == ended


def test_a_cancel_the_cloud_is_slow_to_answer_gives_up_within_the_sigkill_window(spec, service, capfd):
    service.inject("cancel", Fault.delay(20), times=5)  # the cloud holds every cancel for 20 s
    attempt = _polling_an_endless_job(spec, service)
    job_id = _ledger(spec)["external_id"]

    outcome, took = stop_by_a_person(attempt, spec, timeout=30)

    assert_gave_up_cancelling_in_time(outcome, took, capfd, job=f"job {job_id}")


def test_a_slow_answer_from_the_server_shortens_the_cancel_so_the_report_beats_the_sigkill(
    spec, service, capfd
):
    # 2.5 s to learn the task was marked failed, then a cancel that hangs: a budget counted from the
    # cancel's start (3 s) would report at 5.5 s, after the SIGKILL.
    (spec.workdir / "server_delay").write_text("2.5")
    service.inject("cancel", Fault.delay(20), times=5)
    attempt = _polling_an_endless_job(spec, service)
    job_id = _ledger(spec)["external_id"]

    outcome, took = stop_by_a_person(attempt, spec, timeout=30)

    assert_gave_up_cancelling_in_time(outcome, took, capfd, job=f"job {job_id}")
    assert "could not be cancelled" in outcome["error"]


@pytest.mark.parametrize(
    "server_state", ["up_for_retry", "queued", "checkpointed", "deferred", "a_state_from_the_future"]
)
def test_a_stop_the_scheduler_caused_checkpoints_and_never_cancels(spec, service, server_state):
    attempt = _polling_an_endless_job(spec, service)
    # The scheduler moved this task instance on (e.g. a heartbeat timeout made it up_for_retry while
    # this attempt still polls): nobody decided the job should end.
    (spec.workdir / "server_state").write_text(server_state)
    _stop_checkpoints_leaving_the_job_running(attempt, spec, service)


@pytest.mark.skipif(
    not worker_loss_checkpoints_available(), reason="attempts declare themselves only with the core patch"
)
@pytest.mark.parametrize("server_state", ["success", "failed"])
def test_a_thawed_attempt_another_took_over_neither_cancels_nor_takes_the_decision_as_its_own(
    spec, service, server_state
):
    """
    Frozen past the heartbeat timeout, then thawed: meanwhile the task resumed in another attempt.

    Whatever the server now says (the later attempt finished, or a person decided about *it*) is
    not about this attempt: the later attempt owns the job. This one stops without cancelling.
    """
    attempt = _polling_an_endless_job(spec, service)
    store = JsonFileTaskStateStore(spec.workdir / "state_store.json")
    declaration = store.get(WORKER_LOSS_KEY)
    assert declaration["pid"] == attempt.pid  # this attempt declared itself ...
    store.set(WORKER_LOSS_KEY, {**declaration, "pid": declaration["pid"] + 1})  # ... then a later one did
    (spec.workdir / "server_state").write_text(server_state)

    _stop_checkpoints_leaving_the_job_running(attempt, spec, service)


def test_execution_timeout_cancels_once_and_fails(spec, service):
    spec.job = {**spec.job, "run_seconds": None}
    spec.operator_kwargs = {**spec.operator_kwargs, "execution_timeout": timedelta(seconds=1)}
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "timed_out"
    assert service.counters["cancel_requests"] == 1
    assert service.jobs()[0]["state"] == "CANCELLED"


def _checkpoint_while_polling(spec) -> None:
    """Run an attempt in a child process until it polls, then SIGTERM it: a worker shutdown."""
    attempt = AttemptProcess(spec).start()
    attempt.wait_until_started()
    wait_for(lambda: (_ledger(spec) or {}).get("phase") == "submitted", what="the job to be recorded")
    time.sleep(0.3)  # a few polls
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=30)
    assert outcome is not None
    assert outcome["outcome"] == CHECKPOINT_OUTCOME, outcome


def test_execution_timeout_bounds_the_whole_try_across_resumes(spec, service):
    budget = timedelta(seconds=15)
    spec.job = {**spec.job, "run_seconds": None}  # hangs: only the timeout can end it
    spec.operator_kwargs = {**spec.operator_kwargs, "execution_timeout": budget}
    _checkpoint_while_polling(spec)  # resume ...
    _checkpoint_while_polling(spec)  # ... and resume again: neither attempt ran out its own timeout
    assert service.counters["cancel_requests"] == 0
    # By now the try has used up its budget, counted from its first intent, resumes included.
    first_intent = datetime.fromisoformat(_ledger(spec)["intent_at"])
    time.sleep(max(0.0, (first_intent + budget - datetime.now(tz=timezone.utc)).total_seconds()) + 0.5)

    started = time.monotonic()
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "timed_out", outcome
    assert time.monotonic() - started < budget.total_seconds() / 3, "a fresh budget was granted on resume"
    assert service.counters["cancel_requests"] == 1
    assert service.jobs()[0]["state"] == "CANCELLED"
    assert service.counters["jobs_created"] == 1


def test_a_new_try_that_reconnects_gets_a_budget_of_its_own(spec, service):
    budget = timedelta(seconds=30)
    spec.job = {**spec.job, "run_seconds": None}
    spec.operator_kwargs = {**spec.operator_kwargs, "execution_timeout": budget}
    _checkpoint_while_polling(spec)
    # Try 1 began long ago: its budget is spent. Try 2 (a retry) reconnects to the same job.
    store = JsonFileTaskStateStore(spec.workdir / "state_store.json")
    ledger = store.get(LEDGER_KEY)
    long_ago = (datetime.now(tz=timezone.utc) - timedelta(hours=1)).isoformat()
    store.set(LEDGER_KEY, {**ledger, "intent_at": long_ago, "try_started_at": long_ago})
    job_id = ledger["external_id"]
    finisher = threading.Thread(
        target=lambda: (time.sleep(1.0), service.finish(job_id, "SUCCEEDED")), daemon=True
    )
    finisher.start()

    retry = run_attempt(replace(spec, try_number=2))
    finisher.join()

    assert retry["outcome"] == "success", retry["error"]
    assert retry["xcoms"]["job_id"] == job_id
    assert service.counters["cancel_requests"] == 0
    assert _ledger(spec)["try_number"] == 2, "the retry's own clock is kept for its resumes"
    assert datetime.fromisoformat(_ledger(spec)["try_started_at"]) > datetime.now(tz=timezone.utc) - budget


def test_durable_false_cancels_on_any_kill_like_the_stock_operator(spec, service):
    spec.job = {**spec.job, "run_seconds": None}
    spec.operator_kwargs = {**spec.operator_kwargs, "durable": False}
    attempt = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 2, what="polling to start")
    attempt.signal(signal.SIGTERM)
    outcome = attempt.join(timeout=10)

    assert outcome is not None
    assert outcome["outcome"] == "failed"
    assert service.counters["cancel_requests"] == 1
    assert _ledger(spec) is None, "durable=False keeps no ledger"


# -- worker loss (core patch): the declaration ------------------------------------------------

WORKER_LOSS_KEY = "airflow.resume_on_worker_loss"
"""The core patch's ``AirflowTaskCheckpointed.RESUME_ON_WORKER_LOSS_KEY`` (spelled out: a stock
Airflow has no such attribute)."""

patched_only = pytest.mark.skipif(
    not checkpointed_state_available(),
    reason="this interpreter's Airflow is not patched; run 'airflow-resumable patch apply' (make patch-venv)",
)


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys written to the task state store by attempts run in this process, in order."""
    written: list[str] = []
    original = JsonFileTaskStateStore.set

    def recording(self: JsonFileTaskStateStore, key: str, value: object, **kwargs: object) -> None:
        written.append(key)
        original(self, key, value, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(JsonFileTaskStateStore, "set", recording)
    return written


def _store(spec) -> JsonFileTaskStateStore:
    return JsonFileTaskStateStore(spec.workdir / "state_store.json")


def _finish_once_polled_again(service, job_id: str, *, what: str) -> threading.Thread:
    """A thread that lets the job succeed once the next attempt has polled it again."""
    gets_before = service.counters["gets"]
    finisher = threading.Thread(
        target=lambda: (
            wait_for(lambda: service.counters["gets"] > gets_before + 1, what=what),
            service.finish(job_id, "SUCCEEDED"),
        )
    )
    finisher.start()
    return finisher


def _declaration(spec, try_number: int = 1) -> dict[str, object]:
    """What the attempt that started last declares: its try, this host, its pid, the operator's delay."""
    from airflow.sdk.api.client import get_hostname

    return {
        "try_number": try_number,
        "hostname": get_hostname(),
        "pid": int((spec.workdir / "pid").read_text()),
        "resume_after": spec.build_operator().resume_after.total_seconds(),
    }


def test_a_run_declares_itself_resumable_on_worker_loss_once_after_the_intent(spec, service, writes):
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "success", outcome["error"]
    if checkpointed_state_available():
        # Three metadata writes for the whole task: intent, declaration, job id.
        assert writes == [LEDGER_KEY, WORKER_LOSS_KEY, LEDGER_KEY]
        assert _store(spec).get(WORKER_LOSS_KEY) == _declaration(spec)
    else:
        # A stock Airflow has no worker-loss checkpoint: the key would be pointless there.
        assert writes == [LEDGER_KEY, LEDGER_KEY]
        assert _store(spec).get(WORKER_LOSS_KEY) is None


@patched_only
def test_the_declaration_is_in_place_before_the_cloud_hears_of_the_job(spec, service, writes):
    spec.job = {**spec.job, "run_seconds": 2.0}
    hold = service.inject("submit", Fault.hold_after_commit())
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["jobs_created"] == 1, what="the job to be created")
    # The worker dies mid-submit: the scheduler would now find the declaration and checkpoint.
    first_declaration = _declaration(spec)
    assert _store(spec).get(WORKER_LOSS_KEY) == first_declaration
    assert _ledger(spec)["phase"] == "submitting"
    first.signal(signal.SIGKILL)
    first.join()
    hold.release.set()
    writes.clear()

    # The resumed attempt (same try, another process) re-sends the key and declares for itself: a
    # loss of *this* attempt is what the server will be asked to forgive next.
    resumed = run_attempt(spec)

    assert resumed["outcome"] == "success", resumed["error"]
    assert service.counters["jobs_created"] == 1
    assert writes == [WORKER_LOSS_KEY, LEDGER_KEY]
    assert _store(spec).get(WORKER_LOSS_KEY) == _declaration(spec)
    assert _declaration(spec)["pid"] != first_declaration["pid"]


@patched_only
def test_a_reconnecting_attempt_declares_for_itself_and_leaves_the_ledger_alone(spec, service, writes):
    spec.job = {**spec.job, "run_seconds": None}
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 1, what="polling")
    first.signal(signal.SIGTERM)
    assert first.join()["outcome"] == CHECKPOINT_OUTCOME
    writes.clear()
    finisher = _finish_once_polled_again(
        service, _ledger(spec)["external_id"], what="the resumed attempt to poll"
    )

    resumed = run_attempt(spec)
    finisher.join()

    assert resumed["outcome"] == "success", resumed["error"]
    # One write per resumed attempt: an attempt that dies before it declares is not forgiven.
    assert writes == [WORKER_LOSS_KEY]
    assert _store(spec).get(WORKER_LOSS_KEY) == _declaration(spec)


@patched_only
def test_an_attempt_that_finds_its_job_finished_declares_nothing(spec, service, writes):
    spec.job = {**spec.job, "run_seconds": None}
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 1, what="polling")
    first.signal(signal.SIGTERM)
    assert first.join()["outcome"] == CHECKPOINT_OUTCOME
    service.finish(_ledger(spec)["external_id"], "SUCCEEDED")
    writes.clear()

    resumed = run_attempt(spec)

    assert resumed["outcome"] == "success", resumed["error"]
    assert writes == []  # nothing left to lose: it concludes without polling


@patched_only
def test_a_retry_that_reconnects_to_a_running_job_declares_for_its_own_try(spec, service, writes):
    spec.job = {**spec.job, "run_seconds": None}
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 1, what="polling")
    # A worker lost on a stock path (or before this provider declared anything): the task failed
    # and Airflow retries it while the job still runs.
    first.signal(signal.SIGKILL)
    first.join()
    _store(spec).delete(WORKER_LOSS_KEY)
    writes.clear()
    job_id = _ledger(spec)["external_id"]
    finisher = _finish_once_polled_again(service, job_id, what="the retry to poll")

    retry = run_attempt(replace(spec, try_number=2))
    finisher.join()

    assert retry["outcome"] == "success", retry["error"]
    assert retry["xcoms"]["job_id"] == job_id
    assert writes == [WORKER_LOSS_KEY]
    assert _store(spec).get(WORKER_LOSS_KEY) == _declaration(spec, try_number=2)


@patched_only
def test_a_new_try_declares_again(spec, service, writes):
    spec.job = {**spec.job, "outcome": "FAILED"}
    assert run_attempt(spec)["outcome"] == "failed"
    assert _store(spec).get(WORKER_LOSS_KEY) == _declaration(spec, try_number=1)
    spec.job = {**spec.job, "outcome": "SUCCEEDED"}
    writes.clear()

    # Try 1's declaration does not cover try 2: until try 2 re-declares, a lost worker fails it.
    retry = run_attempt(replace(spec, try_number=2))

    assert retry["outcome"] == "success", retry["error"]
    assert writes.count(WORKER_LOSS_KEY) == 1
    assert _store(spec).get(WORKER_LOSS_KEY) == _declaration(spec, try_number=2)


@patched_only
@pytest.mark.parametrize("stale", [True, 1, {"try_number": 1}], ids=["bare-true", "bare-try", "partial"])
def test_a_stale_value_is_replaced_by_this_attempts_declaration(spec, service, writes, stale):
    _store(spec).set(WORKER_LOSS_KEY, stale)
    writes.clear()

    assert run_attempt(spec)["outcome"] == "success"

    assert writes.count(WORKER_LOSS_KEY) == 1
    assert _store(spec).get(WORKER_LOSS_KEY) == _declaration(spec)


# -- prior failures and clearing --------------------------------------------------------------


def test_after_a_failed_job_the_retry_submits_a_new_generation(spec, service):
    spec.job = {**spec.job, "outcome": "FAILED"}
    assert run_attempt(spec)["outcome"] == "failed"
    spec.job = {**spec.job, "outcome": "SUCCEEDED"}

    retry = run_attempt(replace(spec, try_number=2))

    assert retry["outcome"] == "success", retry["error"]
    assert service.counters["jobs_created"] == 2
    keys = [job["key"] for job in service.jobs()]
    assert keys[0].endswith("-0")
    assert keys[1].endswith("-1")
    assert keys[0][:32] == keys[1][:32]


def test_on_prior_failure_fail_refuses_to_submit_again(spec, service):
    spec.job = {**spec.job, "outcome": "FAILED", "message": "bad input table"}
    spec.operator_kwargs = {**spec.operator_kwargs, "on_prior_failure": "fail"}
    assert run_attempt(spec)["outcome"] == "failed"

    retry = run_attempt(replace(spec, try_number=2))

    assert retry["outcome"] == "failed_no_retry"
    assert "on_prior_failure='fail'" in retry["error"]
    assert "bad input table" in retry["error"]
    assert service.counters["submit_requests"] == 1


def test_an_expired_job_is_resubmitted_under_a_new_generation(spec, service):
    spec.job = {**spec.job, "run_seconds": None}
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 1, what="polling")
    first.signal(signal.SIGTERM)
    first.join()
    service.expire(_ledger(spec)["external_id"])
    spec.job = {**spec.job, "run_seconds": 0.2}

    again = run_attempt(spec)

    assert again["outcome"] == "success", again["error"]
    assert _ledger(spec)["generation"] == 1
    assert service.counters["jobs_created"] == 2


def test_clearing_a_task_whose_job_still_runs_cancels_it_then_runs_again(spec, service):
    spec.job = {**spec.job, "run_seconds": None}
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 1, what="polling")
    first.signal(signal.SIGTERM)
    assert first.join()["outcome"] == CHECKPOINT_OUTCOME
    old_job = _ledger(spec)["external_id"]

    # Clear: Airflow sets max_tries = try_number + retries.
    spec.job = {**spec.job, "run_seconds": 0.2}
    cleared = run_attempt(replace(spec, max_tries=1, try_number=2))

    assert cleared["outcome"] == "success", cleared["error"]
    assert service.state_of(old_job) == "CANCELLED"
    assert service.counters["jobs_created"] == 2
    assert cleared["xcoms"]["job_id"] != old_job


def test_a_clear_whose_cancel_is_refused_starts_no_second_job(spec, service):
    spec.job = {**spec.job, "run_seconds": None}
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["gets"] >= 1, what="polling")
    first.signal(signal.SIGTERM)
    assert first.join()["outcome"] == CHECKPOINT_OUTCOME
    old_job = _ledger(spec)["external_id"]
    service.inject("cancel", Fault.error(403), times=10)

    cleared = run_attempt(replace(spec, max_tries=1, try_number=2))

    assert cleared["outcome"] == "failed_no_retry", cleared
    assert f"job {old_job}" in cleared["error"]
    assert "403" in cleared["error"]
    assert service.counters["jobs_created"] == 1
    assert service.state_of(old_job) == "RUNNING"
    assert _ledger(spec)["external_id"] == old_job
    assert _ledger(spec)["generation"] == 0


def _interrupted_submit(spec, service) -> str:
    """An attempt dies mid-submit, after the cloud created the job: the ledger says submitting."""
    hold = service.inject("submit", Fault.hold_after_commit())
    first = AttemptProcess(spec).start()
    wait_for(lambda: service.counters["jobs_created"] == 1, what="the job to be created")
    first.signal(signal.SIGKILL)
    first.join()
    hold.release.set()
    assert _ledger(spec)["phase"] == "submitting"
    return service.jobs()[0]["job_id"]


def test_a_job_adopted_after_a_clear_is_not_cancelled_by_a_later_resume(spec, service):
    spec.job = {**spec.job, "run_seconds": None}
    job_id = _interrupted_submit(spec, service)
    cleared = replace(spec, max_tries=1, try_number=2)  # cleared while the ledger said submitting

    # The cleared attempt re-sends the key, adopts the job, and is then drained: a checkpoint.
    adopting = AttemptProcess(cleared).start()
    wait_for(lambda: (_ledger(spec) or {}).get("phase") == "submitted", what="the job to be adopted")
    adopting.signal(signal.SIGTERM)
    assert adopting.join(timeout=15)["outcome"] == CHECKPOINT_OUTCOME
    assert _ledger(spec)["external_id"] == job_id
    assert _ledger(spec)["max_tries"] == 1, "the adoption recorded the clear"

    # A resume of the same try reconnects to it: the clear was already answered.
    service.finish(job_id, "SUCCEEDED")
    resumed = run_attempt(cleared)

    assert resumed["outcome"] == "success", resumed["error"]
    assert resumed["xcoms"]["job_id"] == job_id
    assert service.counters["cancel_requests"] == 0
    assert service.counters["jobs_created"] == 1


def test_a_clear_gets_past_a_key_the_cloud_refuses(spec, service):
    # The intent was written and the attempt died before its submit got through (every send failed).
    service.inject("submit", Fault.error(503), times=1000)
    first = AttemptProcess(spec).start()
    wait_for(lambda: sum(op == "submit" for op, _ in service.requests) >= 2, what="the submit to be retried")
    first.signal(signal.SIGKILL)
    first.join()
    service.discard_faults()
    stuck = _ledger(spec)
    assert stuck["phase"] == "submitting"
    old_key = f"{stuck['nonce']}-0"
    service.refuse_key(old_key)  # from now on the cloud will not take that key, whatever comes with it

    # Without a clear the key is kept: the refusal is the task's error, the next try sends it again.
    retry = run_attempt(replace(spec, try_number=2))
    assert retry["outcome"] == "failed"
    assert "409" in retry["error"]
    assert _ledger(spec)["generation"] == 0

    # A clear means run it again: a key the cloud refuses is given up for a new generation.
    cleared = run_attempt(replace(spec, max_tries=1, try_number=3))

    assert cleared["outcome"] == "success", cleared["error"]
    ledger = _ledger(spec)
    assert (ledger["phase"], ledger["generation"], ledger["max_tries"]) == ("submitted", 1, 1)
    assert service.counters["jobs_created"] == 1
    assert service.jobs()[0]["key"] == f"{stuck['nonce']}-1"


def test_clearing_a_succeeded_task_runs_the_job_again(spec, service):
    assert run_attempt(spec)["outcome"] == "success"
    cleared = run_attempt(replace(spec, max_tries=1, try_number=2))

    assert cleared["outcome"] == "success"
    assert service.counters["jobs_created"] == 2
    assert service.counters["cancel_requests"] == 0


# -- bad input loses nothing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"v": 1, "nonce": "zz"}, "malformed"),
        ({"v": 99, "nonce": "0" * 32}, "schema v99"),
        (
            {
                "v": 1,
                "nonce": "0" * 32,
                "generation": 0,
                "phase": "submitted",
                "kind": "testing.fake_jobs",
                "owner": {"dag_id": "other_dag", "run_id": "r", "task_id": "t", "map_index": -1},
                "max_tries": 0,
                "intent_at": "2026-11-23T00:00:00+00:00",
                "external_id": "999",
                "submitted_at": None,
            },
            "belongs to another task instance",
        ),
    ],
    ids=["malformed", "future-version", "foreign"],
)
def test_unusable_ledgers_fail_clearly_without_touching_the_cloud(spec, service, stored, message):
    JsonFileTaskStateStore(spec.workdir / "state_store.json").set(LEDGER_KEY, stored)
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "failed_no_retry", "retrying would not help: no crash loop"
    assert message in outcome["error"]
    assert "Nothing was submitted or cancelled" in outcome["error"]
    assert sum(service.counters.values()) == 0, f"the cloud was called: {dict(service.counters)}"
    assert json.loads((spec.workdir / "state_store.json").read_text())[LEDGER_KEY] == stored


def test_an_invalid_job_fails_before_any_request(spec, service):
    spec.job = {"name": "", "run_seconds": 1}
    outcome = run_attempt(spec)

    assert outcome["outcome"] == "failed_no_retry"
    assert "non-empty 'name'" in outcome["error"]
    assert sum(service.counters.values()) == 0
    assert _ledger(spec) is None


def test_deferrable_without_a_trigger_is_refused_when_the_dag_is_parsed():
    class NoTrigger(FakeJobSubmitOperator):
        trigger_class = None

    with pytest.raises(AirflowException, match="has no trigger to defer to"):
        NoTrigger(task_id="t", endpoint="http://127.0.0.1:1", job={"name": "x"}, deferrable=True)
    assert NoTrigger(task_id="t", endpoint="http://127.0.0.1:1", job={"name": "x"}).deferrable is False


def test_an_unknown_prior_failure_policy_is_refused_when_the_dag_is_parsed():
    with pytest.raises(AirflowException, match="'retry' is not one of 'resubmit', 'fail'"):
        FakeJobSubmitOperator(
            task_id="t", endpoint="http://127.0.0.1:1", job={"name": "x"}, on_prior_failure="retry"
        )


def test_an_airflow_exception_is_not_mistaken_for_a_server_error():
    """AirflowException carries a class-level status_code of 500 (for the REST API), not an HTTP answer."""
    operator = FakeJobSubmitOperator(task_id="t", endpoint="http://127.0.0.1:1", job={"name": "x"})
    assert operator.is_transient(AirflowException("the payload is wrong")) is False
