# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest

from airflow.providers.resumable.checkpoint import worker_loss_checkpoints_available
from airflow.providers.resumable.drill.plan import DisruptionKind, plan_drill
from airflow.providers.resumable.drill.runner import default_kinds


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
    assert DisruptionKind.SIGTERM_DURING_STARTUP not in kinds
    assert any(k.kills_the_worker for k in kinds) == worker_loss_checkpoints_available()


def test_a_sigkill_costs_a_retry_only_without_worker_loss_checkpoints():
    assert DisruptionKind.SIGKILL_MID_POLL.costs_a_retry(worker_loss_checkpoints=False)
    assert not DisruptionKind.SIGKILL_MID_POLL.costs_a_retry(worker_loss_checkpoints=True)
    assert DisruptionKind.SIGTERM_DURING_STARTUP.costs_a_retry(worker_loss_checkpoints=True)


def test_a_plan_needs_something_to_do():
    with pytest.raises(ValueError, match="at least one disruption"):
        plan_drill(disruptions_per_cloud=0, clouds=["databricks"], kinds=list(DisruptionKind), seed=1)
