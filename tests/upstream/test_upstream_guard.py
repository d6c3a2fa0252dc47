# Licensed under the Apache License, Version 2.0.
"""The guard is guarded: `make upstream-tests` fails when a hunk of the core patch is broken."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow.providers.resumable.checkpoint import checkpointed_state_available
from upstream_tests.runner import Interpreter, stock_copy

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not checkpointed_state_available() or sys.prefix == sys.base_prefix,
    reason="needs this interpreter to be the patched project venv (make patch-venv)",
)

# The supervisor hunk that routes a task's CheckpointTask to the Execution API.
CHECKPOINT_ROUTING = b"""        elif isinstance(msg, CheckpointTask):
            self._send_terminal_state_msg(msg)
"""


def _venv_with_broken_supervisor_hunk(root: Path) -> Path:
    """A hard-linked copy of this venv whose supervisor no longer routes CheckpointTask."""
    copy = root / "venv-broken"
    subprocess.run(["cp", "-al", sys.prefix, str(copy)], check=True)
    import airflow.sdk.execution_time.supervisor as supervisor

    target = copy / Path(supervisor.__file__).relative_to(sys.prefix)
    content = target.read_bytes()
    assert content.count(CHECKPOINT_ROUTING) == 1, "the patched supervisor changed: update this test"
    # Replace the hard link rather than write through it: the original venv must stay intact.
    broken = target.with_name("supervisor.py.broken")
    broken.write_bytes(content.replace(CHECKPOINT_ROUTING, b""))
    os.replace(broken, target)
    for cached in (target.parent / "__pycache__").glob("supervisor.*"):
        cached.unlink()
    return copy / "bin" / "python"


def test_a_broken_supervisor_hunk_fails_the_upstream_tests(tmp_path: Path):
    stock = stock_copy(Interpreter.inspect(Path(sys.executable)), tmp_path / "venv-stock")
    broken = _venv_with_broken_supervisor_hunk(tmp_path)

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "upstream_tests",
            "--python",
            str(broken),
            "--work",
            str(tmp_path / "work"),
            "run",
            "--stock-python",
            str(stock.python),
            "--file",
            "execution_time/test_supervisor.py",
            "--",
            "-k",
            "handle_requests or direct_api or covered",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )

    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert (
        "NEW TEST failed: tests.task_sdk.execution_time.test_supervisor.TestHandleRequest::"
        "test_handle_requests[patch_task_instance_to_checkpointed]"
    ) in output, output
    assert ">> FAILED" in output, output
    # This project's venv is untouched by the experiment.
    assert checkpointed_state_available()
    assert Interpreter.inspect(Path(sys.executable)).patched
