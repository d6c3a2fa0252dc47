# Licensed under the Apache License, Version 2.0.
"""A stack that cannot become healthy fails loudly, with its logs, and leaves no process behind."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest

from airflow.providers.resumable.testing.stack import AirflowStack, StackSettings, StackStartError

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
