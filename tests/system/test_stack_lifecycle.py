# Licensed under the Apache License, Version 2.0.
"""
A stack that cannot become healthy fails loudly, with its logs, and leaves no process behind; sqlite
stacks of one session migrate their database once.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest

from airflow.providers.resumable.testing.stack import (
    MIGRATED_DATABASES_ENV,
    AirflowStack,
    StackSettings,
    StackStartError,
)

pytestmark = pytest.mark.system


def test_stack_that_never_becomes_healthy_raises_with_logs_and_stops_everything(tmp_path: Path) -> None:
    # Two seconds is far less than the components need to import Airflow and heartbeat.
    stack = AirflowStack(tmp_path / "home", StackSettings(startup_timeout_seconds=2))

    with pytest.raises(StackStartError) as raised:
        stack.start()

    message = str(raised.value)
    assert "timed out" in message
    for component in AirflowStack.COMPONENTS:
        assert f"{component}.log" in message
    started = stack.started_pids()
    assert len(started) >= len(AirflowStack.COMPONENTS)
    assert not [pid for pid in started if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def _migrated(home: Path, settings: StackSettings) -> AirflowStack:
    stack = AirflowStack(home, settings)
    stack.component_logs.mkdir(parents=True)
    stack._migrate_database()
    return stack


def _pool_slots(stack: AirflowStack) -> int:
    [row] = stack.db.query("SELECT slots FROM slot_pool WHERE pool = 'default_pool'")
    return int(row["slots"])


def test_sqlite_stacks_on_one_interpreter_migrate_once_and_copy_the_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MIGRATED_DATABASES_ENV, str(tmp_path / "templates"))
    (tmp_path / "templates").mkdir()
    first = _migrated(tmp_path / "first", StackSettings())
    second = _migrated(tmp_path / "second", StackSettings())
    # What db migrate writes from the configuration is part of the key: this one migrates anew.
    other_pool = _migrated(
        tmp_path / "other", StackSettings(extra_env={"AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": "7"})
    )

    assert (first.component_logs / "db-migrate.log").exists()
    assert not (second.component_logs / "db-migrate.log").exists(), "the second stack migrated again"
    assert (other_pool.component_logs / "db-migrate.log").exists()
    assert len(list((tmp_path / "templates").glob("*.db"))) == 2
    assert not list((tmp_path / "templates").glob("*.partial"))
    head = "SELECT version_num FROM alembic_version"
    assert second.db.query(head)[0]["version_num"] == first.db.query(head)[0]["version_num"]
    assert second.db.path.read_bytes() == first.db.path.read_bytes()
    assert (_pool_slots(first), _pool_slots(second), _pool_slots(other_pool)) == (128, 128, 7)


def test_each_venv_has_its_own_migrated_database_although_their_pythons_resolve_alike(tmp_path: Path) -> None:
    # A venv's bin/python is a link to the base interpreter; the venv, not the binary, holds Airflow.
    other_venv_python = tmp_path / "other-venv" / "bin" / "python"
    other_venv_python.parent.mkdir(parents=True)
    other_venv_python.symlink_to(Path(sys.executable).resolve())

    ours = AirflowStack(tmp_path / "ours", python=Path(sys.executable))
    other = AirflowStack(tmp_path / "other", python=other_venv_python)

    assert ours._migration_key() != other._migration_key()
