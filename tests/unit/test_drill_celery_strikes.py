# Licensed under the Apache License, Version 2.0.
"""
What each disruption kind does to a Celery worker: the table the Celery drill strikes by.

A kind about a polling task whose worker is shut down is a warm shutdown of that worker (the
drain-aware line checkpoints the task at once); a kind about the task's own moment (its start-up, its
submit window) is a SIGTERM to its supervisor, since a drain does not signal a task that has not
declared itself resumable yet; a SIGKILL kind is the host lost; a stall is a freeze of the tree.
"""

from __future__ import annotations

import pytest

from airflow.providers.resumable.drill.celery_strikes import CeleryStrike, celery_strike_for
from airflow.providers.resumable.drill.plan import DisruptionKind
from airflow.providers.resumable.drill.real_clouds import DrillConfigError
from airflow.providers.resumable.drill.runner import celery_workers, check_drill_request, default_kinds

WORKER_KINDS = [
    kind
    for kind in DisruptionKind
    if kind.shuts_the_worker_down
    or kind.kills_the_worker
    or kind.freezes_the_worker
    or kind is DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED
]


@pytest.mark.parametrize(
    ("kind", "strike"),
    [
        (DisruptionKind.SIGTERM_MID_POLL, CeleryStrike.WARM_SHUTDOWN),
        (DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED, CeleryStrike.WARM_SHUTDOWN),
        (DisruptionKind.SIGTERM_DURING_STARTUP, CeleryStrike.SUPERVISOR_SIGTERM),
        (DisruptionKind.SIGTERM_IN_SUBMIT, CeleryStrike.SUPERVISOR_SIGTERM),
        (DisruptionKind.SIGKILL_MID_POLL, CeleryStrike.HOST_LOST),
        (DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW, CeleryStrike.HOST_LOST),
        (DisruptionKind.HEARTBEAT_STALL, CeleryStrike.FREEZE),
        (DisruptionKind.COLD_SHUTDOWN, CeleryStrike.COLD_SHUTDOWN),
        (DisruptionKind.POD_EVICTION, CeleryStrike.POD_EVICTION),
    ],
)
def test_each_worker_kind_is_what_production_does_to_a_celery_worker(kind, strike):
    assert celery_strike_for(kind) is strike


def test_every_kind_that_strikes_a_worker_has_a_celery_strike_and_no_other_kind_has_one():
    for kind in DisruptionKind:
        if kind in WORKER_KINDS:
            assert isinstance(celery_strike_for(kind), CeleryStrike), kind
        else:
            with pytest.raises(ValueError, match="does not strike a Celery worker"):
                celery_strike_for(kind)


def test_only_the_supervisor_sigterm_leaves_the_worker_up_and_only_a_freeze_keeps_its_processes():
    whole = {strike for strike in CeleryStrike if strike.takes_a_worker_slot}
    assert whole == set(CeleryStrike) - {CeleryStrike.SUPERVISOR_SIGTERM}
    restarted = {strike for strike in CeleryStrike if strike.restarts_the_worker}
    assert restarted == whole - {CeleryStrike.FREEZE}


def test_strikes_that_stop_every_task_on_the_worker_wait_for_the_tasks_there_to_be_resumable():
    # A drain signals only tasks that declared themselves resumable; a SIGKILL, a SIGSTOP, a SIGTERM
    # to every process or a cold shutdown (each supervisor forwards SIGTERM) stop a task still
    # loading its DAG too.
    assert {strike for strike in CeleryStrike if strike.kills_tasks} == {
        CeleryStrike.HOST_LOST,
        CeleryStrike.FREEZE,
        CeleryStrike.POD_EVICTION,
        CeleryStrike.COLD_SHUTDOWN,
    }


def test_the_celery_only_kinds_shut_the_worker_down_and_are_drilled_only_on_celery():
    for kind in (DisruptionKind.COLD_SHUTDOWN, DisruptionKind.POD_EVICTION):
        assert kind.celery_only
        assert kind.shuts_the_worker_down, "the task must end its attempt as a checkpoint"
        assert not kind.strikes_a_deferred_task
        assert kind not in default_kinds()
        assert kind in default_kinds(executor="celery")
    assert [k for k in DisruptionKind if k.celery_only] == [
        DisruptionKind.COLD_SHUTDOWN,
        DisruptionKind.POD_EVICTION,
    ]


def test_a_celery_kind_on_the_local_executor_is_refused_before_anything_starts():
    with pytest.raises(DrillConfigError, match="add --executor celery"):
        check_drill_request(["databricks"], [DisruptionKind.COLD_SHUTDOWN], {})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"executor": "kubernetes"}, "unknown executor"),
        ({"executor": "celery", "deferrable": True}, "drop --deferrable"),
        ({"concurrency": 0}, "at least 1"),
    ],
)
def test_a_drill_that_cannot_run_on_the_executor_asked_for_is_refused(arguments, message):
    with pytest.raises(DrillConfigError, match=message):
        check_drill_request(["databricks"], None, {}, **arguments)


def test_a_concurrent_celery_drill_runs_more_workers_so_strikes_can_overlap_while_one_stays_up():
    assert celery_workers(1) == ("worker-a", "worker-b")
    assert celery_workers(2) == ("worker-a", "worker-b", "worker-c")
    assert celery_workers(4) == ("worker-a", "worker-b", "worker-c", "worker-d")
    assert len(celery_workers(50)) == 5
