# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os

import pytest

# System tests fork Airflow components from this process, which also serves fake Dataproc over gRPC.
# With gRPC's fork support on, a fork while its threads run can abort the child before it execs (seen:
# a dag processor died with SIGABRT, "epoll_wait error: Bad file descriptor"). The children exec a
# new interpreter at once and need nothing from gRPC's fork handlers. Read when grpc is first imported,
# so it is set here, before any test module imports it.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")


# ``make test`` runs pytest-xdist with ``--dist loadgroup``: tests of one group run on one worker, in
# order. Each group below owns what is expensive to build (an Airflow stack: ~20 s of a core to start)
# or must not run twice at once; ungrouped tests (the unit tests) spread over every worker.
_MODULE_GROUPS = {
    "tests/system/test_kill_campaign.py": "campaign",
    "tests/system/test_demo.py": "demo",
    "tests/system/test_drill_real_mode.py": "drill-real-mode",
    "tests/system/test_mixed_fleet.py": "stack-mixed-fleet",
    "tests/system/test_worker_loss.py": "stack-worker-loss",
    "tests/system/test_deferrable.py": "stack-deferrable",
    "tests/packaging/test_install.py": "packaging",
}
_STACK_FIXTURES = {"airflow_stack", "system_dags", "checkpoint_flavour"}


def _xdist_group(item: pytest.Item) -> str | None:
    path = item.nodeid.split("::")[0]
    if path in _MODULE_GROUPS:
        return _MODULE_GROUPS[path]
    if path.startswith("tests/upstream/"):
        return "upstream"  # each runs Airflow's own test files, three pytest processes at a time
    fixtures = set(getattr(item, "fixturenames", ()))
    if not fixtures & _STACK_FIXTURES:
        return None
    callspec = getattr(item, "callspec", None)
    flavour = callspec.params.get("checkpoint_flavour") if callspec is not None else None
    return "stack-stock" if flavour == "up_for_reschedule" else "stack-patched"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.pluginmanager.hasplugin("xdist"):
        return  # ``-p no:xdist``: the marker is not registered, and --strict-markers would refuse it
    for item in items:
        if (group := _xdist_group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
