# Licensed under the Apache License, Version 2.0.
"""
Several disruptions of one cloud at once: a disruption that sets something up on the fake (faults,
a held submit, endless jobs) has the fake to itself until its task took it; the others share it.
"""

from __future__ import annotations

import threading
import time

import pytest

from airflow.providers.resumable.drill.concurrency import (
    FakeGate,
    needs_every_request_alone,
    needs_the_fake_alone,
    shares_the_fake_after_its_setup,
)
from airflow.providers.resumable.drill.plan import DisruptionKind


@pytest.mark.parametrize(
    "kind",
    [
        DisruptionKind.THROTTLE_STORM,
        DisruptionKind.SERVER_ERRORS,
        DisruptionKind.DROPPED_RESPONSE,
        DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW,
        DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED,
        DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED,
        DisruptionKind.TRIGGERER_SIGKILL,
    ],
)
def test_a_kind_that_changes_the_fake_for_whoever_asks_next_needs_it_alone(kind):
    assert needs_the_fake_alone(kind)


@pytest.mark.parametrize(
    "kind",
    [
        DisruptionKind.SIGTERM_MID_POLL,
        DisruptionKind.SIGKILL_MID_POLL,
        DisruptionKind.HEARTBEAT_STALL,
        DisruptionKind.SIGTERM_DURING_STARTUP,
        DisruptionKind.SIGTERM_IN_SUBMIT,
        DisruptionKind.COLD_SHUTDOWN,
        DisruptionKind.POD_EVICTION,
    ],
)
def test_a_kind_that_only_strikes_workers_shares_the_fake(kind):
    assert not needs_the_fake_alone(kind)
    assert not shares_the_fake_after_its_setup(kind)


def test_only_the_refused_cancel_keeps_the_fake_to_itself_for_its_whole_run():
    alone_all_run = [
        kind
        for kind in DisruptionKind
        if needs_the_fake_alone(kind) and not shares_the_fake_after_its_setup(kind)
    ]
    assert alone_all_run == [DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED]


def _in_thread(target) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def test_sharing_disruptions_run_together():
    gate = FakeGate()
    with gate.shared(), gate.shared():
        assert gate.in_flight == 2


def test_a_disruption_alone_waits_for_those_in_flight_and_holds_off_new_ones_until_it_shares():
    gate = FakeGate()
    events: list[str] = []
    first = gate.shared()
    first.__enter__()

    def alone() -> None:
        with gate.alone() as turn:
            events.append("alone in")
            time.sleep(0.2)
            events.append("alone shares")
            turn.share()
            time.sleep(0.2)
            events.append("alone out")

    def later() -> None:
        with gate.shared():
            events.append("later in")

    lone = _in_thread(alone)
    time.sleep(0.1)
    assert events == [], "it waits for the disruption in flight"
    newcomer = _in_thread(later)
    time.sleep(0.1)
    assert events == [], "a newcomer waits behind the one waiting to be alone"
    first.__exit__(None, None, None)
    lone.join(timeout=5)
    newcomer.join(timeout=5)
    assert events[:2] == ["alone in", "alone shares"]
    assert events.index("later in") > events.index("alone shares"), events
    assert gate.in_flight == 0


def test_a_disruption_alone_that_never_shares_lets_the_others_in_when_it_ends():
    gate = FakeGate()
    events: list[str] = []

    def later() -> None:
        with gate.shared():
            events.append("later in")

    with gate.alone():
        newcomer = _in_thread(later)
        time.sleep(0.1)
        assert events == []
        assert gate.in_flight == 1
    newcomer.join(timeout=5)
    assert events == ["later in"]
    assert gate.in_flight == 0


def test_two_disruptions_alone_never_overlap():
    gate = FakeGate()
    inside = []
    overlaps = []

    def alone() -> None:
        with gate.alone():
            inside.append(1)
            if len(inside) > 1:
                overlaps.append(len(inside))
            time.sleep(0.05)
            inside.pop()

    threads = [_in_thread(alone) for _ in range(6)]
    for thread in threads:
        thread.join(timeout=5)
    assert overlaps == []


def test_a_throttle_storm_and_a_refused_cancel_need_every_request_of_their_fake_the_others_only_its_submits():
    alone = [kind for kind in DisruptionKind if needs_the_fake_alone(kind)]
    # A refused cancel: the job reaper's cancel for a task a person marked failed comes long after
    # that disruption's submit, and would take the refusal.
    assert [kind for kind in alone if needs_every_request_alone(kind)] == [
        DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED,
        DisruptionKind.THROTTLE_STORM,
    ]


def test_a_submit_fault_waits_only_for_the_disruptions_still_before_their_submit():
    gate = FakeGate()
    events: list[str] = []
    polling = gate.shared()
    polling_turn = polling.__enter__()
    polling_turn.submitted()  # its job exists: it will only poll from now on
    starting = gate.shared()
    starting_turn = starting.__enter__()

    def submit_fault() -> None:
        with gate.alone(every_request=False):
            events.append("alone in")

    lone = _in_thread(submit_fault)
    time.sleep(0.1)
    assert events == [], "a disruption before its submit would take the fault"
    starting_turn.submitted()
    lone.join(timeout=5)
    assert events == ["alone in"], "the polling one does not hold a submit fault off"
    assert gate.before_submit == 0
    starting.__exit__(None, None, None)
    polling.__exit__(None, None, None)
    assert gate.in_flight == 0


def test_a_throttle_storm_waits_for_every_disruption_in_flight():
    gate = FakeGate()
    events: list[str] = []
    polling = gate.shared()
    polling.__enter__().submitted()

    def throttle() -> None:
        with gate.alone(every_request=True):
            events.append("alone in")

    lone = _in_thread(throttle)
    time.sleep(0.1)
    assert events == [], "a polling task would take the 429s"
    polling.__exit__(None, None, None)
    lone.join(timeout=5)
    assert events == ["alone in"]


def test_a_disruption_that_ends_before_its_submit_no_longer_counts_as_before_it():
    gate = FakeGate()
    with gate.shared():
        assert gate.before_submit == 1
    assert gate.before_submit == 0
