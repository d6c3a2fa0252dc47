# Licensed under the Apache License, Version 2.0.
"""
The exactly-once contract in deferrable mode, for every cloud: the operator submits under the
ledger in the worker and defers; the cloud's real trigger polls from an asyncio loop through the
hook's async calls against the wire-level fake; the task comes back only to conclude.

What the triggerer does is played here by hand, as Airflow 3.3.2's does it: the trigger is rebuilt
from what ``serialize()`` returned after a JSON round trip (the server stores it so), run until its
first event, and the event is handed to ``resume_execution("execute_complete", {"event": ...})``.
A cancelled trigger task is what a triggerer shutting down (or handing the trigger to another
triggerer) does to it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import json
import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException
from attempts import AttemptProcess, AttemptSpec, JsonFileTaskStateStore, run_attempt, wait_for
from contract_clouds import CLOUDS, ContractCloud

from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.operators.deferral import MAX_TRIGGER_GIVE_UPS
from airflow.providers.resumable.retrying import BackoffPolicy
from airflow.providers.resumable.triggers.base import TRIGGER_BACKOFF, ResumableJobTrigger

FAST_TRIGGER_BACKOFF = BackoffPolicy(max_attempts=12, max_delay=60, initial_wait=0.01, max_wait=1.0)
"""The trigger's backoff with sub-second waits (its default waits out hours); the cap of 1 s still
honours the fakes' 0.5 s ``Retry-After``, and an exponential wait starting at 10 ms would not reach
it in five tries, so a storm that takes 5 x 0.5 s shows the hint was honoured."""


@pytest.fixture(params=sorted(CLOUDS))
def cloud(
    request: pytest.FixtureRequest, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ContractCloud]:
    with ExitStack() as stack:
        yield CLOUDS[request.param](workdir, monkeypatch, stack)


def _spec(cloud: ContractCloud, **resume: Any) -> AttemptSpec:
    spec = cloud.spec()
    return dataclasses.replace(
        spec, operator_kwargs={**spec.operator_kwargs, "deferrable": True}, resume=resume.get("resume")
    )


def _ledger(cloud: ContractCloud) -> dict:
    return JsonFileTaskStateStore(cloud.workdir / "state_store.json").get(LEDGER_KEY)


def _trigger(outcome: dict[str, Any], *, fast: bool = True) -> ResumableJobTrigger:
    """The trigger the attempt deferred to, rebuilt from its serialisation as the triggerer does."""
    assert outcome["outcome"] == "deferred", outcome["error"]
    classpath, kwargs = json.loads(json.dumps(outcome["trigger"]))
    module, _, name = classpath.rpartition(".")
    if fast:
        kwargs["backoff"] = dataclasses.asdict(FAST_TRIGGER_BACKOFF)
    return getattr(importlib.import_module(module), name)(**kwargs)


def _first_event(trigger: ResumableJobTrigger, *, timeout: float = 60) -> dict[str, Any]:
    async def first() -> dict[str, Any]:
        async for event in trigger.run():
            return dict(event.payload)
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(asyncio.wait_for(first(), timeout))


def _conclude(cloud: ContractCloud, event: dict[str, Any]) -> dict[str, Any]:
    return run_attempt(_spec(cloud, resume=("execute_complete", {"event": event})))


def _deferred_run(cloud: ContractCloud) -> tuple[dict[str, Any], dict[str, Any]]:
    """Submit and defer, poll from the trigger to the end, conclude: the deferral and the conclusion."""
    deferred = run_attempt(_spec(cloud))
    event = _first_event(_trigger(deferred))
    return deferred, _conclude(cloud, event)


# -- the deferred path ------------------------------------------------------------------------------


def test_submits_in_the_worker_defers_and_concludes_with_one_job(cloud):
    deferred = run_attempt(_spec(cloud))

    assert deferred["outcome"] == "deferred", deferred["error"]
    classpath, kwargs = deferred["trigger"]
    assert classpath.startswith("airflow.providers.resumable.triggers.")
    job = _ledger(cloud)["external_id"]
    assert kwargs["external_id"] == job, "the trigger polls the ledger's job"
    assert _ledger(cloud)["phase"] == "submitted", "the id was recorded before the task deferred"

    event = _first_event(_trigger(deferred))
    assert event["status"] == "terminal"
    assert event["job_id"] == job
    assert event["remote_status"] == "SUCCEEDED"

    concluded = _conclude(cloud, event)
    assert concluded["outcome"] == "success", concluded["error"]
    assert cloud.jobs_created() == 1
    assert cloud.submit_requests() == 1
    assert cloud.cancel_calls() == 0


def test_concludes_exactly_as_the_polling_path_does(cloud):
    _, concluded = _deferred_run(cloud)
    assert concluded["outcome"] == "success", concluded["error"]
    deferred_job = _ledger(cloud)["external_id"]

    (cloud.workdir / "state_store.json").unlink()  # a second task instance, polling in the worker
    polled = run_attempt(cloud.spec())

    assert polled["outcome"] == "success", polled["error"]
    polled_job = _ledger(cloud)["external_id"]
    assert concluded["xcoms"].keys() == polled["xcoms"].keys()
    assert _masked(concluded["result"], deferred_job) == _masked(polled["result"], polled_job), (
        "the same return value, the job's ids aside"
    )


def _masked(value: Any, external_id: str) -> str:
    """``value`` as JSON with every part of the job's id (EMR's names a cluster and steps) masked."""
    text = json.dumps(value)
    for part in sorted(re.split(r"[,:/]", external_id), key=len, reverse=True):
        if part:
            text = text.replace(part, "<id>")
    return text


def test_the_trigger_survives_a_serialisation_round_trip(cloud):
    deferred = run_attempt(_spec(cloud))
    trigger = _trigger(deferred, fast=False)

    classpath, kwargs = trigger.serialize()
    assert [classpath, json.loads(json.dumps(kwargs))] == deferred["trigger"]
    rebuilt = type(trigger)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.make_hook() is not None, "the hook is rebuilt from the ledger's hook_params"


# -- the triggerer goes away ------------------------------------------------------------------------


def test_a_trigger_cancelled_mid_poll_never_cancels_the_job(cloud):
    cloud.run_forever()
    deferred = run_attempt(_spec(cloud))
    trigger = _trigger(deferred)
    polls_before = cloud.polls()

    async def cancelled_mid_poll() -> None:
        # What a triggerer shutting down or handing the trigger over does; on_kill and cleanup are
        # what 3.3.2 also calls when a user acts or the trigger moves (apache/airflow#73454).
        task = asyncio.ensure_future(trigger.run().__anext__())
        while cloud.polls() < polls_before + 3:
            await asyncio.sleep(0.02)
        task.cancel("user-action")
        with pytest.raises(asyncio.CancelledError):
            await task
        await trigger.on_kill()
        await trigger.cleanup()

    asyncio.run(asyncio.wait_for(cancelled_mid_poll(), 60))

    assert cloud.cancel_calls() == 0
    assert cloud.running_jobs() == 1, "the job goes on"
    # A second triggerer picks the same trigger up and sees the job through.
    cloud.finish_all()
    concluded = _conclude(cloud, _first_event(_trigger(deferred)))
    assert concluded["outcome"] == "success", concluded["error"]
    assert cloud.jobs_created() == 1
    assert cloud.cancel_calls() == 0


# -- the ledger, not the event, says which job --------------------------------------------------------


def test_execute_complete_refuses_an_event_about_another_job(cloud):
    cloud.run_forever()
    run_attempt(_spec(cloud))
    job = _ledger(cloud)["external_id"]
    foreign = {"status": "terminal", "job_id": "not-" + job, "remote_status": "SUCCEEDED"}

    refused = _conclude(cloud, foreign)

    assert refused["outcome"] == "deferred", "the event did not conclude the task"
    assert refused["trigger"][1]["external_id"] == job, "it defers again to the ledger's job"
    assert cloud.jobs_created() == 1
    assert cloud.submit_requests() == 1
    assert cloud.cancel_calls() == 0


def _finish_all_soon(cloud: ContractCloud, seconds: float = 1.5) -> threading.Timer:
    timer = threading.Timer(seconds, cloud.finish_all)
    timer.start()
    return timer


def test_a_trigger_that_gives_up_reconnects_from_the_ledger_then_polls_from_the_worker(cloud):
    cloud.run_forever()
    run_attempt(_spec(cloud))
    job = _ledger(cloud)["external_id"]
    gave_up = {"status": "error", "job_id": job, "message": "polling failed"}

    again = _conclude(cloud, gave_up)
    assert again["outcome"] == "deferred", again["error"]
    assert again["trigger"][1]["external_id"] == job, "reconnected to the ledger's job"
    assert again["defer_kwargs"] == {"trigger_give_ups": 1}

    # The third give-up in a row: the trigger keeps failing, so this attempt polls the job itself.
    timer = _finish_all_soon(cloud)
    polled = run_attempt(
        _spec(
            cloud,
            resume=("execute_complete", {"event": gave_up, "trigger_give_ups": MAX_TRIGGER_GIVE_UPS - 1}),
        )
    )
    timer.join()

    assert polled["outcome"] == "success", polled["error"]
    assert cloud.jobs_created() == 1
    assert cloud.submit_requests() == 1, "reconnected, never submitted again"
    assert cloud.cancel_calls() == 0


def test_a_crashed_trigger_reconnects_from_the_ledger_and_polls_from_the_worker(cloud):
    cloud.run_forever()
    run_attempt(_spec(cloud))
    timer = _finish_all_soon(cloud)

    crashed = run_attempt(
        _spec(cloud, resume=("__fail__", {"error": "Trigger failure", "traceback": ["ImportError: boom"]}))
    )
    timer.join()

    assert crashed["outcome"] == "success", crashed["error"]
    assert cloud.jobs_created() == 1
    assert cloud.submit_requests() == 1, "reconnected, never submitted again"
    assert cloud.cancel_calls() == 0


def test_a_deferred_attempt_restarted_after_the_submit_concludes_with_one_job(cloud):
    released = cloud.hold_next_submit()
    first = AttemptProcess(_spec(cloud)).start()
    wait_for(lambda: cloud.jobs_created() == 1, what="the job to be created")
    first.signal(signal.SIGKILL)  # the worker dies with the submit's answer in flight
    assert first.join() is None
    released.set()
    assert _ledger(cloud)["phase"] == "submitting"

    _, concluded = _deferred_run(cloud)

    assert concluded["outcome"] == "success", concluded["error"]
    assert cloud.jobs_created() == 1
    assert cloud.cancel_calls() == 0


# -- the cloud misbehaves while deferred ------------------------------------------------------------


def test_a_throttle_storm_while_deferred_backs_off_and_completes(cloud):
    deferred = run_attempt(_spec(cloud))
    trigger = _trigger(deferred)
    cloud.throttle_polls(5)
    started = time.monotonic()

    event = _first_event(trigger)

    assert event["status"] == "terminal", event
    assert event["remote_status"] == "SUCCEEDED"
    if cloud.retry_after_seconds is not None:
        # Five throttled polls each waited what the cloud asked for (Retry-After / RetryInfo).
        assert time.monotonic() - started >= 5 * cloud.retry_after_seconds * 0.9
    assert _conclude(cloud, event)["outcome"] == "success"
    assert cloud.jobs_created() == 1
    assert cloud.cancel_calls() == 0


def test_server_errors_while_deferred_back_off_and_complete(cloud):
    deferred = run_attempt(_spec(cloud))
    cloud.fail_polls(4)

    event = _first_event(_trigger(deferred))

    assert event["status"] == "terminal", event
    assert event["remote_status"] == "SUCCEEDED"
    assert cloud.jobs_created() == 1
    assert cloud.cancel_calls() == 0


def test_errors_past_the_backoff_send_an_error_event_not_a_failure(cloud):
    cloud.run_forever()
    deferred = run_attempt(_spec(cloud))
    trigger = _trigger(deferred)
    trigger.backoff = dataclasses.asdict(BackoffPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02))
    cloud.fail_polls(3)  # two for the trigger, one the concluding attempt's own backoff rides out

    event = _first_event(trigger)

    assert event["status"] == "error", event
    assert event["job_id"] == _ledger(cloud)["external_id"]
    again = _conclude(cloud, event)
    assert again["outcome"] == "deferred", "the task reconnects and defers again"
    assert cloud.submit_requests() == 1
    assert cloud.cancel_calls() == 0


# -- execution_timeout --------------------------------------------------------------------------------


def test_a_deferral_past_the_execution_timeout_cancels_the_job_once_and_fails(cloud):
    cloud.run_forever()
    spec = _spec(cloud)
    spec.operator_kwargs["execution_timeout"] = timedelta(minutes=10)
    deferred = run_attempt(spec)
    assert deferred["outcome"] == "deferred", deferred["error"]
    assert deferred["defer_timeout"] is not None, "the trigger is given what is left of the try"

    timed_out = run_attempt(
        dataclasses.replace(spec, resume=("__fail__", {"error": "Trigger timeout", "traceback": None}))
    )

    assert timed_out["outcome"] == "timed_out", timed_out["error"]
    assert cloud.cancel_calls() == 1
    assert cloud.jobs_created() == 1


def test_the_triggers_async_poll_reads_the_wait_the_server_asked_for(cloud):
    """The trigger's backoff honours Retry-After / RetryInfo only if the async path's error carries it."""
    cloud.run_forever()
    hook = _trigger(run_attempt(_spec(cloud))).make_hook()
    job = _ledger(cloud)["external_id"]
    cloud.throttle_polls(1)

    async def throttled() -> BaseException:
        try:
            await hook.a_describe(job)
        except Exception as err:
            return err
        raise AssertionError("the throttled poll did not fail")

    error = asyncio.run(throttled())

    assert hook.is_transient(error), error
    assert hook.retry_after(error) == cloud.retry_after_seconds, error


# -- the trigger's backoff cap ------------------------------------------------------------------------


def _waits(text: str) -> list[float]:
    """The waits the trigger's backoff announced ("retrying in 0.2s")."""
    return [float(wait) for wait in re.findall(r"retrying in ([0-9.]+)s", text)]


def test_trigger_max_backoff_caps_every_wait_of_the_trigger(cloud, capsys):
    """Without the cap a throttled poll waits at least 1 s (the trigger's first backoff) or the
    server's Retry-After; with ``trigger_max_backoff`` every wait is at most the cap."""
    spec = _spec(cloud)
    spec.operator_kwargs["trigger_max_backoff"] = timedelta(seconds=0.2)
    deferred = run_attempt(spec)
    trigger = _trigger(deferred, fast=False)
    assert trigger.backoff is not None
    assert trigger.backoff["max_wait"] == 0.2
    cloud.throttle_polls(3)
    capsys.readouterr()  # the attempt's lines: only the trigger's from here

    event = _first_event(trigger)

    assert event["status"] == "terminal", event
    assert event["remote_status"] == "SUCCEEDED"
    logged = "".join(capsys.readouterr())  # the trigger logs through structlog, to the console
    waits = _waits(logged)
    assert len(waits) == 3, logged
    assert max(waits) <= 0.2, waits
    assert cloud.jobs_created() == 1
    assert cloud.cancel_calls() == 0


def test_trigger_max_backoff_defaults_to_the_resumable_setting_where_the_task_defers(cloud, monkeypatch):
    monkeypatch.setenv("AIRFLOW__RESUMABLE__TRIGGER_MAX_BACKOFF", "7.5")  # the attempt's process reads it

    trigger = _trigger(run_attempt(_spec(cloud)), fast=False)

    assert trigger.backoff is not None
    assert trigger.backoff["max_wait"] == 7.5
    # The rest of the policy stays the trigger's default: only the cap is the setting's.
    assert trigger.backoff["max_attempts"] == TRIGGER_BACKOFF.max_attempts


def test_trigger_max_backoff_must_be_positive(cloud):
    spec = _spec(cloud)
    spec.operator_kwargs["trigger_max_backoff"] = timedelta(0)

    with pytest.raises(AirflowException, match="trigger_max_backoff must be positive"):
        spec.build_operator()  # refused when the DAG is parsed, before anything is submitted
