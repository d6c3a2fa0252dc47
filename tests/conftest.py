# Licensed under the Apache License, Version 2.0.
from __future__ import annotations

import os
import shutil
import tempfile

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
    "tests/system/test_kill_campaign_celery.py": "campaign-celery",
    "tests/system/test_drill_real_mode.py": "drill-real-mode",
    "tests/system/test_mixed_fleet.py": "stack-mixed-fleet",
    "tests/system/test_worker_loss.py": "stack-worker-loss",
    "tests/system/test_celery_stack.py": "stack-celery",
    "tests/system/test_resume_race_celery.py": "stack-celery",
    "tests/system/test_celery_disruptions.py": "stack-celery-disruptions",
    "tests/packaging/test_install.py": "packaging",
}
_STACK_FIXTURES = {"airflow_stack", "system_dags", "checkpoint_flavour", "executor_flavour"}
CELERY_FLAVOUR = "celery"
"""The parameter value of the Celery flavour of a test that runs on both (tests/system/conftest.py)."""
_CELERY_STACK_FIXTURES = {"celery_stack", "celery_airflow_stack"}
# Celery tests that only `make test-celery` runs (with the Celery flavour of the tests that run on
# both): each costs a Celery stack, and `make test` keeps test_celery_stack.py and
# test_resume_race_celery.py as its real Celery/Postgres tests.
_CELERY_ONLY_MODULES = {"tests/system/test_celery_disruptions.py"}
CELERY_TESTS_ENV = "RESUMABLE_CELERY_SYSTEM_TESTS"


def _celery_flavour(item: pytest.Item) -> bool:
    """Whether the item is the Celery flavour of a test parametrised over both stacks.

    :param item: the collected test.
    """
    callspec = getattr(item, "callspec", None)
    return callspec is not None and CELERY_FLAVOUR in callspec.params.values()


def _on_celery(item: pytest.Item) -> bool:
    """Whether the item runs on a Celery stack (what ``make test-celery`` selects, ``-m celery``).

    :param item: the collected test.
    """
    return _celery_flavour(item) or bool(set(getattr(item, "fixturenames", ())) & _CELERY_STACK_FIXTURES)


def _xdist_group(item: pytest.Item) -> str | None:
    path = item.nodeid.split("::")[0]
    if _celery_flavour(item):
        return "stack-celery-session"  # one session Celery stack for every both-flavour test
    if path == DEFERRABLE_MODULE:
        return _deferrable_group(item)
    if path == "tests/system/test_demo.py":
        # Each demo starts a stack of its own: side by side, they take three workers a third as long.
        return f"demo-{getattr(item, 'originalname', item.name)}"
    if path in _MODULE_GROUPS:
        return _MODULE_GROUPS[path]
    if path.startswith("tests/upstream/"):
        return "upstream"  # each runs Airflow's own test files, three pytest processes at a time
    fixtures = set(getattr(item, "fixturenames", ()))
    if not fixtures & _STACK_FIXTURES:
        return None
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    flavour = params.get("checkpoint_flavour", params.get("executor_flavour"))
    return "stack-stock" if flavour == "up_for_reschedule" else "stack-patched"


def _deferrable_group(item: pytest.Item) -> str:
    # One stack per flavour (the fixture's parameter), each on its own worker.
    callspec = getattr(item, "callspec", None)
    flavour = callspec.params.get("deferrable_flavour") if callspec is not None else None
    return f"stack-deferrable-{flavour}"


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist registers this marker; with `-p no:xdist` (one process) --strict-markers would
    # otherwise reject the groups added below.
    config.addinivalue_line("markers", "xdist_group(name): tests that must share one xdist worker")
    from airflow.providers.resumable.testing.stack import MIGRATED_DATABASES_ENV

    if not hasattr(config, "workerinput") and MIGRATED_DATABASES_ENV not in os.environ:
        # The session's sqlite stacks migrate once per interpreter and copy the result (testing/stack.py);
        # set before the xdist workers start, so they inherit it.
        directory = tempfile.mkdtemp(prefix="resumable-migrated-databases-")
        os.environ[MIGRATED_DATABASES_ENV] = directory
        config.add_cleanup(lambda: shutil.rmtree(directory, ignore_errors=True))


DEFERRABLE_MODULE = "tests/system/test_deferrable.py"
_CLOUDS = ("databricks", "dataproc", "emr")


def _quick_deferrable_matrix(items: list[pytest.Item]) -> set[str]:
    """
    The deferrable system tests ``make test`` runs: every scenario once, on a cloud and a flavour
    that rotate with it (all of them: ``RESUMABLE_FULL_DEFERRABLE_MATRIX=1``, ``make test-deferrable``).

    The full matrix (8 scenarios x 3 clouds x 2 flavours, each with a 45 s job) takes about 40
    minutes of one worker; the clouds' trigger polls are also covered, on every run, by the
    deferrable contract suite through each cloud's real client.
    """
    scenarios: list[str] = []
    for item in items:
        if item.nodeid.startswith(DEFERRABLE_MODULE) and hasattr(item, "callspec"):
            _flavour, _cloud, *rest = item.callspec.id.split("-")
            scenario = "-".join([getattr(item, "originalname", item.name), *rest])
            if scenario not in scenarios:
                scenarios.append(scenario)
    chosen = set()
    for index, scenario in enumerate(scenarios):
        flavour = "patched" if index % 2 == 0 else "unpatched"
        if scenario.endswith("submit_window_then_defers_with_one_job-sigkill"):
            flavour = "patched"  # a stock Airflow fails the lost try (skipped there)
        chosen.add(f"{scenario}|{flavour}|{_CLOUDS[index % len(_CLOUDS)]}")
    return chosen


def _deselect_outside_the_quick_deferrable_matrix(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("RESUMABLE_FULL_DEFERRABLE_MATRIX"):
        return
    chosen = _quick_deferrable_matrix(items)
    if not chosen:
        return
    kept, dropped = [], []
    for item in items:
        if item.nodeid.startswith(DEFERRABLE_MODULE) and hasattr(item, "callspec"):
            flavour, cloud, *rest = item.callspec.id.split("-")
            scenario = "-".join([getattr(item, "originalname", item.name), *rest])
            if f"{scenario}|{flavour}|{cloud}" not in chosen:
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _name_the_group_in_the_node_id(item: pytest.Item, group: str) -> None:
    """
    What pytest-xdist's worker does for an ``xdist_group`` marker, done so that it works: its
    scheduler groups tests by a ``@group`` suffix of their node ids.

    pytest-xdist 3.8 writes the suffix to ``item._nodeid``; pytest 9.2 reads node ids from
    ``item._id`` (a ``NodeId``) instead, so the suffix never reached the scheduler: every test of a
    group was a unit of its own, and each worker that drew one started a stack of its own.
    """
    if getattr(item.config.option, "loadgroup", False):  # set on xdist workers under --dist loadgroup
        from _pytest.nodeid import NodeId

        item._id = NodeId.parse(f"{item.nodeid}@{group}")  # type: ignore[attr-defined]


def _deselect_celery_only_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the Celery flavour and the Celery-only modules to ``make test-celery`` (CELERY_TESTS_ENV).

    :param config: the session's configuration (its hook reports the deselected items).
    :param items: the collected tests, changed in place.
    """
    if os.environ.get(CELERY_TESTS_ENV):
        return
    dropped = [
        item for item in items if _celery_flavour(item) or item.nodeid.split("::")[0] in _CELERY_ONLY_MODULES
    ]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook reads the markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _deselect_outside_the_quick_deferrable_matrix(config, items)
    _deselect_celery_only_tests(config, items)
    for item in items:
        if _on_celery(item):
            item.add_marker(pytest.mark.celery)
    if not config.pluginmanager.hasplugin("xdist"):
        return  # ``-p no:xdist``: the marker is not registered, and --strict-markers would refuse it
    for item in items:
        if (group := _xdist_group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
            if hasattr(item, "_id"):
                _name_the_group_in_the_node_id(item, group)


# Every run leaves what each test cost and where it ran in .tmp/test-durations.json, so the suite's
# critical path (the xdist worker that finishes last) can be read after the fact: `--durations` lists
# only the slowest tests and a CI log may cut it off.
_DURATIONS: dict[str, dict[str, object]] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    entry = _DURATIONS.setdefault(report.nodeid, {"seconds": 0.0})
    entry["seconds"] = round(float(entry["seconds"]) + report.duration, 2)  # type: ignore[arg-type]
    node = getattr(report, "node", None)
    if node is not None:
        entry["worker"] = node.gateway.id
    if report.when == "call":
        entry["outcome"] = report.outcome
    if report.when == "setup":
        entry["started"] = round(report.start, 1)
    if report.when == "teardown":
        entry["ended"] = round(report.stop, 1)


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput") or not _DURATIONS:
        return  # an xdist worker: the controller writes the file
    import json
    from pathlib import Path

    out = Path(session.config.rootpath) / ".tmp" / "test-durations.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(sorted(_DURATIONS.items())), indent=1) + "\n")
