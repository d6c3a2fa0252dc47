# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import pytest

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


def test_by_default_no_disruption_kills_the_worker_outright():
    assert default_kinds()
    assert not any(kind.kills_the_worker for kind in default_kinds())


def test_a_plan_needs_something_to_do():
    with pytest.raises(ValueError, match="at least one disruption"):
        plan_drill(disruptions_per_cloud=0, clouds=["databricks"], kinds=list(DisruptionKind), seed=1)
