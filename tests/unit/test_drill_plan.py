# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest

from airflow.providers.resumable.checkpoint import worker_loss_checkpoints_available
from airflow.providers.resumable.drill.plan import DisruptionKind, plan_drill
from airflow.providers.resumable.drill.real_clouds import DrillConfigError
from airflow.providers.resumable.drill.runner import check_drill_request, default_kinds


def test_the_same_seed_gives_the_same_plan_and_another_seed_another():
    kwargs = {"disruptions_per_cloud": 20, "clouds": ["databricks", "emr"], "kinds": list(DisruptionKind)}
    assert plan_drill(seed=11, **kwargs) == plan_drill(seed=11, **kwargs)
    assert plan_drill(seed=11, **kwargs) != plan_drill(seed=12, **kwargs)


def test_every_cloud_gets_its_count_and_every_kind_at_least_once():
    plan = plan_drill(
        disruptions_per_cloud=20, clouds=["databricks", "emr"], kinds=list(DisruptionKind), seed=3
    )
    for cloud in ("databricks", "emr"):
        kinds = [d.kind for d in plan if d.cloud == cloud]
        assert len(kinds) == 20
        assert set(kinds) == set(DisruptionKind)
    assert [d.number for d in plan] == list(range(1, 41))


def test_by_default_only_kinds_that_need_no_retry_on_this_airflow_are_drilled():
    kinds = default_kinds()
    assert DisruptionKind.SIGTERM_MID_POLL in kinds
    patched = worker_loss_checkpoints_available()
    assert (DisruptionKind.SIGTERM_DURING_STARTUP in kinds) == patched
    assert any(k.kills_the_worker for k in kinds) == patched
    assert not any(k.disrupts_the_triggerer for k in kinds), "a task polling from the worker has no trigger"
    if patched:
        assert set(kinds) == set(DisruptionKind) - set(TRIGGERER_KINDS) - set(CELERY_KINDS), (
            "with the patch no kind costs a retry"
        )
    assert not any(k.celery_only for k in kinds), "the LocalExecutor has no Celery worker to shut down"


CELERY_KINDS = (DisruptionKind.COLD_SHUTDOWN, DisruptionKind.POD_EVICTION)
TRIGGERER_KINDS = (
    DisruptionKind.TRIGGERER_SIGKILL,
    DisruptionKind.TRIGGERER_SIGTERM,
    DisruptionKind.TRIGGERER_FREEZE_MOVES,
)


def test_a_deferrable_drill_adds_the_triggerer_kinds_and_drops_those_that_strike_a_polling_worker():
    kinds = default_kinds(deferrable=True)

    assert set(TRIGGERER_KINDS) <= set(kinds)
    for kind in (DisruptionKind.SIGTERM_MID_POLL, DisruptionKind.HEARTBEAT_STALL):
        assert kind not in kinds
    assert DisruptionKind.SIGTERM_IN_SUBMIT in kinds, "the submission stays in the worker"
    assert DisruptionKind.THROTTLE_STORM in kinds
    for kind in TRIGGERER_KINDS:
        assert kind.expected.dag_run_state == "success"
        assert not kind.expected.job_cancelled
        assert not kind.costs_a_retry(worker_loss_checkpoints=False), "a triggerer's loss is never a retry"


def test_a_drill_refuses_kinds_that_cannot_strike_its_tasks():
    with pytest.raises(DrillConfigError, match="add --deferrable"):
        check_drill_request(["databricks"], [DisruptionKind.TRIGGERER_SIGKILL], {})
    with pytest.raises(DrillConfigError, match="drop --deferrable"):
        check_drill_request(["databricks"], [DisruptionKind.SIGTERM_MID_POLL], {}, deferrable=True)
    assert check_drill_request(["emr"], [DisruptionKind.TRIGGERER_FREEZE_MOVES], {}, deferrable=True) == [
        DisruptionKind.TRIGGERER_FREEZE_MOVES
    ]


@pytest.mark.parametrize(
    "kind",
    [
        DisruptionKind.SIGKILL_MID_POLL,
        DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW,
        DisruptionKind.SIGTERM_DURING_STARTUP,
        DisruptionKind.HEARTBEAT_STALL,
    ],
)
def test_a_lost_worker_or_a_stopped_start_costs_a_retry_only_without_the_core_patch(kind: DisruptionKind):
    assert kind.costs_a_retry(worker_loss_checkpoints=False)
    assert not kind.costs_a_retry(worker_loss_checkpoints=True)


def test_a_sigterm_once_the_task_runs_never_costs_a_retry():
    for kind in (DisruptionKind.SIGTERM_MID_POLL, DisruptionKind.SIGTERM_IN_SUBMIT):
        assert not kind.costs_a_retry(worker_loss_checkpoints=False)


def test_a_plan_needs_something_to_do():
    with pytest.raises(ValueError, match="at least one disruption"):
        plan_drill(disruptions_per_cloud=0, clouds=["databricks"], kinds=list(DisruptionKind), seed=1)


def test_a_heartbeat_stall_freezes_the_worker_and_needs_no_fault_injection():
    kind = DisruptionKind.HEARTBEAT_STALL
    assert kind.freezes_the_worker
    assert not kind.kills_the_worker
    assert not kind.shuts_the_worker_down
    assert not kind.needs_fault_injection  # a real deployment can be drilled with it too
    assert [k for k in DisruptionKind if k.freezes_the_worker] == [kind]


def test_a_persons_decision_ends_the_run_failed_with_its_job_cancelled_on_the_try_it_implies():
    mark = DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED.expected
    clear = DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED.expected
    assert (mark.dag_run_state, mark.job_cancelled, mark.try_number) == ("failed", True, 1)
    assert (clear.dag_run_state, clear.job_cancelled, clear.try_number) == ("failed", True, 2)
    others = [k for k in DisruptionKind if not k.is_a_persons_decision]
    assert {(k.expected.dag_run_state, k.expected.job_cancelled, k.expected.try_number) for k in others} == {
        ("success", False, 1)
    }


def test_only_the_refused_cancel_needs_a_fake_among_a_persons_decisions():
    assert DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED.needs_fault_injection
    assert not DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED.needs_fault_injection
    for kind in (
        DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED,
        DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED,
    ):
        assert not kind.costs_a_retry(worker_loss_checkpoints=False)  # the job reaper needs no patch


def test_kinds_across_clouds_runs_every_kind_once_and_spreads_them_evenly():
    clouds = ["databricks", "emr", "dataproc"]
    kinds = list(DisruptionKind)
    plans = [
        plan_drill(disruptions_per_cloud=20, clouds=clouds, kinds=kinds, seed=seed, kinds_across_clouds=True)
        for seed in range(30)
    ]
    for plan in plans:
        assert sorted(d.kind.value for d in plan) == sorted(k.value for k in kinds)
        counts = [sum(d.cloud == cloud for d in plan) for cloud in clouds]
        assert max(counts) - min(counts) <= 1, counts
        assert [d.number for d in plan] == list(range(1, len(kinds) + 1))
    # Over successive seeds every kind meets every cloud.
    met = {(d.kind, d.cloud) for plan in plans for d in plan}
    assert met == {(kind, cloud) for kind in kinds for cloud in clouds}


def test_kinds_on_every_cloud_run_once_on_each_and_the_rest_are_dealt():
    clouds = ["databricks", "emr", "dataproc"]
    kinds = list(DisruptionKind)
    everywhere = [DisruptionKind.HEARTBEAT_STALL, DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED]
    for seed in range(30):
        plan = plan_drill(
            disruptions_per_cloud=1,
            clouds=clouds,
            kinds=kinds,
            seed=seed,
            kinds_across_clouds=True,
            on_every_cloud=everywhere,
        )
        for kind in everywhere:
            assert sorted(d.cloud for d in plan if d.kind is kind) == sorted(clouds), (seed, kind)
        dealt = sorted(d.kind.value for d in plan if d.kind not in everywhere)
        assert dealt == sorted(k.value for k in kinds if k not in everywhere)
        counts = [sum(d.cloud == cloud for d in plan) for cloud in clouds]
        assert max(counts) - min(counts) <= 1, counts
        assert [d.number for d in plan] == list(range(1, len(kinds) + len(everywhere) * 2 + 1))


def test_kinds_on_every_cloud_come_only_from_the_kinds_drawn_and_need_kinds_dealt_across():
    clouds = ["databricks", "emr", "dataproc"]
    kinds = list(DisruptionKind)
    across = dict(disruptions_per_cloud=1, clouds=clouds, kinds=kinds, seed=7, kinds_across_clouds=True)
    # A kind not drawn from is not added: on a stock Airflow the plan has no start-up SIGTERM.
    without = [k for k in kinds if k is not DisruptionKind.SIGTERM_DURING_STARTUP]
    plan = plan_drill(**{**across, "kinds": without}, on_every_cloud=[DisruptionKind.SIGTERM_DURING_STARTUP])
    assert DisruptionKind.SIGTERM_DURING_STARTUP not in {d.kind for d in plan}
    with pytest.raises(ValueError, match="dealt across"):
        plan_drill(
            disruptions_per_cloud=3,
            clouds=clouds,
            kinds=kinds,
            seed=7,
            on_every_cloud=[DisruptionKind.HEARTBEAT_STALL],
        )
