# Licensed under the Apache License, Version 2.0.
"""
A drill stopped by SIGTERM or Ctrl-C while disruptions run on several lanes (``run_drill``), and what
a drill leaves behind when it ends.

The runner's own lane scheduling runs, with every seam that would start Airflow stubbed: the stack
and its deployment, the fake clouds, the worker strikes, and the per-disruption work (``_execute``),
which here only records that it started and returns an ok result when the test lets it. The signal
is a real one, sent to this process from a lane, as a CI runner or a terminal would.
"""

from __future__ import annotations

import dataclasses
import io
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from airflow.providers.resumable.drill import runner
from airflow.providers.resumable.drill.plan import Disruption, DisruptionKind
from airflow.providers.resumable.drill.runner import DisruptionResult, run_drill
from tests.unit.drill_results import ok_result

KIND = DisruptionKind.SIGTERM_MID_POLL
WAIT = 10.0
"""How long a stub waits for the drill before giving up (a drill that never stops fails, not hangs)."""


class _Cloud:
    """A fake cloud that starts and stops instantly and takes no faults (every disruption shares it)."""

    faults = None
    run_timeout = 30.0
    poll_seconds = 0.1

    def __init__(self, run_seconds: float) -> None:
        self.run_seconds = run_seconds

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


class _Strikes:
    errors: tuple[str, ...] = ()
    unquiet_strikes: tuple[int, ...] = ()

    def __init__(self, stack: object) -> None:
        pass

    def close(self) -> None:
        pass


def _until(probe: Callable[[], bool], timeout: float = WAIT) -> bool:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@dataclass
class Drill:
    """What the stubbed drill did: which disruptions started (and whether after the signal)."""

    out: io.StringIO = field(default_factory=io.StringIO)
    started: list[tuple[int, bool]] = field(default_factory=list)
    signalled: threading.Event = field(default_factory=threading.Event)
    torn_down: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    work: Callable[[Drill, Disruption, int], None] = lambda drill, disruption, order: None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def text(self) -> str:
        return self.out.getvalue()

    def execute(self, stack: object, cloud: object, disruption: Disruption, **_: Any) -> DisruptionResult:
        with self.lock:
            self.started.append((disruption.number, self.signalled.is_set()))
            order = len(self.started)
        self.work(self, disruption, order)
        return ok_result(disruption, seconds=0.1)

    def signal(self, signum: int) -> None:
        os.kill(os.getpid(), signum)
        self.signalled.set()

    def run(self, **kwargs: Any) -> tuple[int, list[DisruptionResult], float]:
        sink: list[DisruptionResult] = []
        began = time.monotonic()
        code = run_drill(seed=7, kinds=[KIND], out=self.out, results_sink=sink, **kwargs)
        return code, sink, time.monotonic() - began


@pytest.fixture
def drill(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Drill]:
    state = Drill()
    # The drill's Airflow home is made with mkdtemp: here, where the tests can look for it.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    def start_stack(printer: object, cleanup: Any, *args: Any, **kwargs: Any) -> object:
        cleanup.callback(state.torn_down.set)
        return object()

    monkeypatch.setattr(runner, "FAKE_CLOUDS", {"databricks": _Cloud, "emr": _Cloud})
    monkeypatch.setattr(runner, "_start_stack", start_stack)
    monkeypatch.setattr(runner, "_deploy", lambda *args, **kwargs: None)
    monkeypatch.setattr(runner, "LocalWorkerStrikes", _Strikes)
    monkeypatch.setattr(runner, "_execute", state.execute)
    monkeypatch.setattr(runner, "LANE_STAGGER_SECONDS", 0.0)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    yield state
    state.release.set()  # let abandoned stubs end
    for signum, handler in previous.items():
        assert signal.getsignal(signum) == handler, "the drill puts the previous handlers back"


def _verdicts(text: str, verdict: str) -> int:
    return sum(line.rstrip().endswith(verdict) for line in text.splitlines())


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl-c"])
def test_a_signal_mid_drill_starts_nothing_new_and_reports_the_disruptions_in_flight(drill, signum):
    # Four lanes (two clouds, two at a time), eight disruptions: the signal comes once four are in
    # flight, and they finish once the drill has taken it.
    def work(drill: Drill, disruption: Disruption, order: int) -> None:
        if order > 4:
            return
        if order == 4:
            drill.signal(signum)
        assert drill.signalled.wait(WAIT)
        _until(lambda: "starting no new disruption" in drill.text())

    drill.work = work
    code, sink, _ = drill.run(disruptions_per_cloud=4, clouds=["databricks", "emr"], concurrency=2)
    text = drill.text()

    assert [number for number, after in drill.started if after] == [], "nothing started after the signal"
    assert len(drill.started) == 4
    assert sorted(r.disruption.number for r in sink) == sorted(n for n, _ in drill.started)
    assert all(r.ok for r in sink)
    assert code == runner.INTERRUPTED_EXIT_CODE == 130
    assert _verdicts(text, "ok") == 4
    assert _verdicts(text, "not run: interrupted") == 4
    assert "out of time" not in text
    assert "drill INTERRUPTED" in text
    assert "4 of 8" in text
    assert drill.torn_down.is_set()


def test_a_second_signal_abandons_the_disruptions_in_flight_and_still_reports_what_finished(drill):
    # Four in flight at the signal: two finish, two hang until abandoned by a second signal.
    def work(drill: Drill, disruption: Disruption, order: int) -> None:
        if order > 4:
            return
        if order == 4:
            drill.signal(signal.SIGTERM)
        assert drill.signalled.wait(WAIT)
        _until(lambda: "starting no new disruption" in drill.text())
        if order in (3, 4):
            drill.release.wait(WAIT)

    def second_signal() -> None:
        if _until(lambda: "2/6" in drill.text()):
            os.kill(os.getpid(), signal.SIGTERM)

    drill.work = work
    threading.Thread(target=second_signal, daemon=True).start()
    code, sink, seconds = drill.run(disruptions_per_cloud=3, clouds=["databricks", "emr"], concurrency=2)
    text = drill.text()

    assert seconds < WAIT / 2, "the second signal does not wait for the disruptions in flight"
    assert code == 130
    assert len(sink) == 2
    assert _verdicts(text, "ok") == 2
    assert _verdicts(text, "not finished: abandoned when interrupted") == 2
    assert _verdicts(text, "not run: interrupted") == 2
    assert "drill INTERRUPTED" in text
    assert drill.torn_down.is_set()
    drill.release.set()
    time.sleep(0.2)
    assert len(sink) == 2, "an abandoned disruption that ends after the report is not added to it"
    assert _verdicts(drill.text(), "ok") == 2


def test_disruptions_in_flight_are_abandoned_after_their_own_time_limit(drill, monkeypatch):
    # Their own limit: the run's (the cloud's run_timeout) and the orphan check after it.
    monkeypatch.setattr(_Cloud, "run_timeout", 0.5)
    monkeypatch.setattr(runner, "ORPHAN_WAIT_SECONDS", 0.0)

    def work(drill: Drill, disruption: Disruption, order: int) -> None:
        if order == 2:
            drill.signal(signal.SIGTERM)
        drill.release.wait(WAIT)

    drill.work = work
    code, sink, seconds = drill.run(disruptions_per_cloud=2, clouds=["databricks", "emr"], concurrency=1)

    assert seconds < WAIT / 2
    assert code == 130
    assert sink == []
    assert _verdicts(drill.text(), "not finished: abandoned when interrupted") == 2
    assert _verdicts(drill.text(), "not run: interrupted") == 2
    assert drill.torn_down.is_set()


def test_a_signal_while_the_stack_starts_stops_at_once(drill, monkeypatch):
    def start_stack(printer: object, cleanup: Any, *args: Any, **kwargs: Any) -> object:
        cleanup.callback(drill.torn_down.set)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(WAIT)  # a slow start: the signal cuts it short
        return object()

    monkeypatch.setattr(runner, "_start_stack", start_stack)
    code, sink, seconds = drill.run(disruptions_per_cloud=2, clouds=["databricks"])

    assert seconds < WAIT / 2
    assert code == 130
    assert drill.started == []
    assert sink == []
    assert drill.torn_down.is_set()
    assert "interrupted" in drill.text()
    assert _homes() == [], "nothing failed: the stack's home is removed"


def test_disruptions_the_drill_had_no_time_for_fail_as_out_of_time(drill):
    code, sink, _ = drill.run(disruptions_per_cloud=2, clouds=["databricks", "emr"], timeout=-1.0)

    assert code == 1
    assert sink == []
    assert _verdicts(drill.text(), "FAILED: out of time") == 4
    assert "drill FAILED" in drill.text()


def _homes() -> list[Path]:
    return sorted(Path(tempfile.gettempdir()).glob("airflow-resumable-drill-*"))


@pytest.mark.parametrize(("jobs", "kept"), [(1, False), (2, True)], ids=["passed", "failed"])
def test_the_stacks_home_is_removed_after_a_drill_that_passed_and_kept_after_one_that_failed(
    drill, monkeypatch, jobs, kept
):
    def execute(stack: object, cloud: object, disruption: Disruption, **_: Any) -> DisruptionResult:
        result = ok_result(disruption, seconds=0.1)
        return dataclasses.replace(result, jobs=result.jobs * jobs)  # two jobs: a duplicate

    monkeypatch.setattr(runner, "_execute", execute)
    code, _, _ = drill.run(disruptions_per_cloud=1, clouds=["databricks"])

    assert code == (1 if kept else 0)
    homes = _homes()
    assert len(homes) == (1 if kept else 0)
    if kept:
        assert (
            f"kept the stack's Airflow home, with every component's and task's log: {homes[0]}"
            in drill.text()
        )
