# Licensed under the Apache License, Version 2.0.
"""The ``airflow-resumable`` command line: what it accepts is what its runners run."""

from __future__ import annotations

import pytest

from airflow.providers.resumable.cli import build_parser
from airflow.providers.resumable.testing.stack import EXECUTORS


@pytest.mark.parametrize("command", ["demo", "drill"])
def test_executor_accepts_exactly_the_stack_flavours_the_runners_start(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser()
    for executor in EXECUTORS:
        assert parser.parse_args([command, "--executor", executor]).executor == executor

    with pytest.raises(SystemExit):
        parser.parse_args([command, "--executor", "kubernetes"])
    error = capsys.readouterr().err
    assert "invalid choice" in error
    assert all(executor in error for executor in EXECUTORS), error
