# Licensed under the Apache License, Version 2.0.
"""
``python -m bench.celery_table`` (what ``make bench-celery-table`` runs): #17's table of Celery worker
disruptions, upstream's ``DatabricksSubmitRunOperator`` against ours, re-measured on the production
flavour of the stack, and written into docs/benchmarks.md.

What it is for: the issue's table was tried by hand; this measures it again the same way every time.

How it works: one ``CeleryAirflowStack`` (Postgres, Redis, the CeleryExecutor, two workers, the core
patch, the drain-aware configuration line, heartbeat timeout 20 s) runs the mass-drain bench's DAGs
with one task each (``bench/celery_drain_dags.py``: ``retries=1``, ``retry_delay`` = our
``resume_after`` = 10 s, the same payload and poll interval). For each row and operator, one task
instance at a time: trigger it, wait until its Databricks run (a 60 s run on the fake, 200 s where
the row says so) is running, then disrupt the worker whose name the task instance carries, with the
same functions the system tests use (``testing/celery_disruptions.py``), while a loop samples the
task instance every 0.25 s and the worker's main process. The lost worker is started again only once
the dag run has ended, so a task that runs again runs on the other worker or nowhere. Recorded: runs
created and cancelled (the fake's counters), the try number at the end, when the task instance was
running again after leaving ``running`` and on which worker, when the worker's main process exited.

The results go to ``bench/results/celery_table.json`` and the page's section between the
``bench-celery-table`` markers. A benchmark: it measures and writes down, nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.page_section import PageSection, place_section
from bench.recording import run_interruptibly, write_results

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results" / "celery_table.json"
SECTION = PageSection("bench-celery-table", RESULTS)
TERMINAL_RUN_STATES = ("success", "failed")
POD_GRACE_SECONDS = 30.0
"""Kubernetes' default terminationGracePeriodSeconds."""
DRAIN_GRACE_SECONDS = 120.0
"""The grace period of the issue's "cut short" row."""


@dataclass(frozen=True)
class Row:
    """One disruption of the table: what to call it, how long the job runs, how to strike."""

    key: str
    title: str
    job_seconds: float
    strike: Callable[..., Any]
    """``(stack, worker, tree) -> Struck``, from ``testing/celery_disruptions.py``."""


def _rows() -> dict[str, Row]:
    from airflow.providers.resumable.testing import celery_disruptions as d

    rows = [
        Row("warm_shutdown", "warm shutdown (SIGTERM to the worker)", 60, d.warm_shutdown),
        Row(
            "warm_shutdown_cut_short",
            f"warm shutdown, 200 s job, SIGKILL at a {DRAIN_GRACE_SECONDS:.0f} s grace period",
            200,
            functools.partial(d.warm_shutdown_cut_short, grace_seconds=DRAIN_GRACE_SECONDS),
        ),
        Row("cold_shutdown", "cold shutdown (SIGQUIT)", 60, d.cold_shutdown),
        Row("host_lost", "worker host lost (SIGKILL of the tree)", 60, d.lose_host),
        Row(
            "pod_sigterm",
            f"pod-style SIGTERM to every process, SIGKILL after {POD_GRACE_SECONDS:.0f} s",
            60,
            functools.partial(d.evict_pod, grace_seconds=POD_GRACE_SECONDS),
        ),
    ]
    return {row.key: row for row in rows}


@dataclass
class Measured:
    """What one disruption did to one task instance of one operator."""

    row: str
    operator: str
    job_seconds: float
    configuration_line: bool = True
    """Whether the stack set the drain-aware configuration line (``celery_drain.py``)."""
    lost_worker: str = ""
    runs: int = 0
    cancels: int = 0
    try_number: int = 0
    final_state: str = ""
    dag_run: str = "not started"
    ran_again_seconds: float | None = None
    """From the first signal until the task instance was ``running`` again after leaving it."""
    ran_again_on: str | None = None
    worker_exit_seconds: float | None = None
    killed_after_grace: int = 0
    """Processes of the worker still there when the row's grace period ended (then SIGKILLed)."""
    states: list[str] = field(default_factory=list)
    error: str | None = None


def _say(started: float, text: str) -> None:
    sys.stdout.write(f"[{time.monotonic() - started:7.1f}s] {text}\n")
    sys.stdout.flush()


class CeleryTableBench:
    """One stack, one task instance at a time, every row for every operator asked for."""

    def __init__(self, *, rows: list[Row], sides: list[str], lines: list[bool]) -> None:
        """
        :param rows: the disruptions to measure, in order.
        :param sides: the operators (``ours``, ``upstream``), in the order each row measures them.
        :param lines: a stack with the drain-aware configuration line (True), without it (False), or both.
        """
        self.rows = rows
        self.sides = sides
        self.lines = lines
        self.started = time.monotonic()

    def run(self) -> list[Measured]:
        from airflow.providers.resumable.testing.clouds import FakeDatabricksCloud

        measured: list[Measured] = []
        with ExitStack() as cleanup:
            fake = FakeDatabricksCloud(run_seconds=60)
            fake.start()
            cleanup.callback(fake.stop)
            for line in self.lines:
                with ExitStack() as stack_cleanup:
                    stack = self._start_stack(fake, line, stack_cleanup)
                    for row in self.rows:
                        for side in self.sides:
                            outcome = self._measure(stack, fake, row, side)
                            outcome.configuration_line = line
                            measured.append(outcome)
                            _say(self.started, _describe(outcome))
        return measured

    def _start_stack(self, fake: Any, line: bool, cleanup: ExitStack) -> Any:
        """Start the Celery stack, with or without the drain-aware line, and deploy the DAGs.

        :param fake: the fake Databricks workspace (its connection is created).
        :param line: whether the stack sets the drain-aware configuration line.
        :param cleanup: stops the stack when it unwinds.
        """
        from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
        from airflow.providers.resumable.testing.stack import StackSettings
        from bench import celery_drain_dags

        home = Path(tempfile.mkdtemp(prefix="airflow-resumable-bench-celery-table-"))
        _say(
            self.started,
            f"starting the Celery/Postgres stack {'with' if line else 'without'} the line in {home}",
        )
        # One task per DAG: the drain bench's DAGs, each with a single task instance.
        settings = StackSettings(
            task_heartbeat_timeout_seconds=20, extra_env={"RESUMABLE_BENCH_CELERY_DRAIN_TASKS": "1"}
        )
        stack = CeleryAirflowStack(home, settings, worker_concurrency=2, drain_aware=line)
        cleanup.callback(stack.stop)
        stack.start()
        stack.put_connection(fake.connection(celery_drain_dags.CONN_ID))
        stack.add_dag_file(Path(celery_drain_dags.__file__))
        for side in self.sides:
            stack.wait_for_dag(celery_drain_dags.dag_id(side), timeout=180)
        return stack

    def _measure(self, stack: Any, fake: Any, row: Row, side: str) -> Measured:
        """Trigger one task instance, strike its worker as ``row`` says, and record what happened.

        :param stack: the Celery stack.
        :param fake: the fake Databricks workspace.
        :param row: the disruption.
        :param side: ``ours`` or ``upstream``.
        """
        from airflow.providers.resumable.testing.celery_stack import WORKERS
        from bench import celery_drain_dags

        outcome = Measured(row.key, celery_drain_dags.OPERATORS[side].__name__, row.job_seconds)
        dag_id, task_id = celery_drain_dags.dag_id(side), celery_drain_dags.task_id(0)
        try:
            for name in WORKERS:
                if not stack.worker_running(name):
                    stack.start_worker(name)
            fake.jobs_run_for(row.job_seconds)
            before = fake.counts()
            run_id = stack.trigger_dag(dag_id)
            lost = self._wait_until_the_job_runs(stack, fake, before, dag_id, run_id, task_id)
            outcome.lost_worker = lost
            tree = stack.worker_processes(lost)
            struck: dict[str, Any] = {}
            striker = threading.Thread(
                target=lambda: struck.setdefault("struck", row.strike(stack, lost, tree)), daemon=True
            )
            at = time.monotonic()
            striker.start()
            _say(self.started, f"{row.key} / {outcome.operator}: struck {lost}")
            self._watch(stack, dag_id, run_id, task_id, lost, at, row, outcome)
            striker.join(timeout=DRAIN_GRACE_SECONDS + 30)
            if "struck" in struck:
                outcome.killed_after_grace = len(struck["struck"].killed_after_grace)
            after = fake.counts()
            outcome.runs = after.submissions - before.submissions
            outcome.cancels = after.cancellations - before.cancellations
            ti = stack.db.task_instance(dag_id, run_id, task_id)
            outcome.try_number, outcome.final_state = ti.try_number, str(ti.state)
        except Exception as err:  # a bench records what went wrong and carries on
            outcome.error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        return outcome

    @staticmethod
    def _wait_until_the_job_runs(
        stack: Any, fake: Any, before: Any, dag_id: str, run_id: str, task_id: str
    ) -> str:
        """The worker running the task instance, once its run is created and running.

        :param stack: the Celery stack.
        :param fake: the fake Databricks workspace.
        :param before: the fake's counts before the trigger.
        :param dag_id: the DAG.
        :param run_id: its run.
        :param task_id: its one task.
        """
        from airflow.providers.resumable.testing.celery_stack import WORKERS
        from airflow.providers.resumable.testing.stack import poll_until

        def running() -> str | None:
            ti = stack.db.task_instance(dag_id, run_id, task_id)
            worker = stack.worker_of(dag_id, run_id, task_id)
            created = fake.counts().submissions > before.submissions
            jobs = [run for run in fake.service.runs() if fake.job_state(str(run["run_id"])) == "RUNNING"]
            return worker if ti.state == "running" and worker in WORKERS and created and jobs else None

        return poll_until(
            running, timeout=180, interval=0.25, describe=lambda: f"{dag_id}'s run to be running"
        )

    @staticmethod
    def _watch(
        stack: Any, dag_id: str, run_id: str, task_id: str, lost: str, at: float, row: Row, outcome: Measured
    ) -> None:
        """Sample until the dag run ends: states, when and where it ran again, the worker's exit.

        :param stack: the Celery stack.
        :param dag_id: the DAG.
        :param run_id: its run.
        :param task_id: its one task.
        :param lost: the disrupted worker.
        :param at: ``time.monotonic()`` of the strike.
        :param row: the disruption (its job length bounds the wait).
        :param outcome: filled in place.
        """
        left_running = False
        end_by = at + row.job_seconds + 600
        while time.monotonic() < end_by:
            now = round(time.monotonic() - at, 1)
            if outcome.worker_exit_seconds is None and not stack.worker_running(lost):
                outcome.worker_exit_seconds = now
            ti = stack.db.task_instance(dag_id, run_id, task_id)
            state = str(ti.state)
            if not outcome.states or outcome.states[-1] != state:
                outcome.states.append(state)
            if state != "running":
                left_running = True
            elif left_running and outcome.ran_again_seconds is None:
                outcome.ran_again_seconds = now
                outcome.ran_again_on = stack.worker_of(dag_id, run_id, task_id)
            run_state = stack.db.dag_run_state(dag_id, run_id)
            if run_state in TERMINAL_RUN_STATES:
                outcome.dag_run = run_state
                break
            time.sleep(0.25)
        else:
            outcome.dag_run = "timed out"
        if outcome.worker_exit_seconds is None:
            stack.wait_for_worker_exit(lost, timeout=DRAIN_GRACE_SECONDS + 30)
            outcome.worker_exit_seconds = round(time.monotonic() - at, 1)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _ran_again(m: Measured) -> str:
    if m.ran_again_seconds is None:
        return "did not (ran to the end where it was)" if m.final_state == "success" else "did not"
    where = m.ran_again_on or "?"
    other = " (the other worker)" if m.ran_again_on and m.ran_again_on != m.lost_worker else ""
    return f"{m.ran_again_seconds:.1f} s on {where}{other}"


def _describe(m: Measured) -> str:
    return (
        f"{m.row} / {m.operator}: runs {m.runs}, cancels {m.cancels}, try {m.try_number} ({m.final_state}), "
        f"ran again {_ran_again(m)}, {m.lost_worker} exited {_fmt(m.worker_exit_seconds)}; states {m.states}"
        + (f" ({m.error})" if m.error else "")
    )


def render_section(body: dict[str, Any]) -> str:
    """The page's section for one run of this bench.

    :param body: what :func:`main` wrote to the results file.
    """
    measured = [Measured(**m) for m in body["measured"]]
    titles = {row.key: row.title for row in _rows().values()}
    out = [SECTION.start, "## Celery worker disruptions, upstream vs ours\n"]
    out.append(
        f"Generated by `make bench-celery-table` ({body['started']}, {body['wall_seconds'] / 60:.0f} minutes; "
        "`bench/results/celery_table.json`). #17's table measured on the production flavour of the stack "
        "(Postgres, a Redis broker, the CeleryExecutor, `worker-a` and `worker-b`, the core patch, task "
        "heartbeat timeout 20 s; *line*: the drain-aware configuration line of the Celery and Kubernetes "
        "page, which changes what a warm shutdown does): one Databricks task at a time "
        "(`retries=1`, `retry_delay` = our `resume_after` = 10 s), its run on the fake workspace lasting "
        "60 s unless the row says otherwise, and the worker running it disrupted once the run is running "
        "(`testing/celery_disruptions.py`, the same functions the system tests use). The disrupted worker "
        "stays down until the dag run ends. Times are from the first signal; *ran again* is the task "
        "instance `running` again after it left `running`, and where; *states* are the task instance's "
        "states as sampled every 0.25 s, so a state shorter than that may not show.\n"
    )
    out.append(
        "| disruption | operator | line | runs | cancels | try at the end | ran again | worker exited | "
        "killed after grace | end | states |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for m in measured:
        states = " -> ".join(m.states)
        out.append(
            f"| {titles.get(m.row, m.row)} | `{m.operator}` | {'yes' if m.configuration_line else 'no'} | {m.runs} | {m.cancels} | {m.try_number} "
            f"| {_ran_again(m)} | {_fmt(m.worker_exit_seconds)} | {m.killed_after_grace} "
            f"| {m.dag_run}" + (f" ({m.error})" if m.error else "") + f" | {states} |"
        )
    out.append("")
    missing = [row.title for row in _rows().values() if row.key not in {m.row for m in measured}]
    if missing:
        out.append("Not measured in this run: " + "; ".join(missing) + " (`--rows` chose fewer).\n")
    out.append(f"Environment: {body.get('environment', '?')}.\n")
    out.append(SECTION.end)
    return "\n".join(out) + "\n"


def write_section(page_path: Path = PAGE) -> None:
    """Put the last results into the page, in place of the previous section.

    :param page_path: the page.
    """
    if RESULTS.exists() and page_path.exists():
        section = render_section(json.loads(RESULTS.read_text()))
        page_path.write_text(place_section(page_path.read_text(), section, SECTION))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_table", description=__doc__)
    parser.add_argument(
        "--rows",
        default=",".join(_rows()),
        help=f"disruptions to measure, comma-separated, from: {', '.join(_rows())}",
    )
    parser.add_argument(
        "--sides", default="upstream,ours", help="operators, comma-separated (upstream, ours)"
    )
    parser.add_argument(
        "--lines",
        default="yes",
        help="stacks with the drain-aware configuration line (yes), without it (no), or both (yes,no)",
    )
    parser.add_argument("--report-only", action="store_true", help=f"rewrite the section from {RESULTS.name}")
    args = parser.parse_args(argv)
    if not args.report_only:
        rows = _rows()
        unknown = set(args.rows.split(",")) - set(rows)
        if unknown:
            parser.error(f"no such rows: {sorted(unknown)}")
        wall = time.time()
        bench = CeleryTableBench(
            rows=[rows[key] for key in args.rows.split(",")],
            sides=[s for s in args.sides.split(",") if s],
            lines=[value == "yes" for value in args.lines.split(",") if value],
        )
        measured = run_interruptibly(bench.run)
        if measured is None:
            return 130
        write_results(RESULTS, wall, measured=[asdict(m) for m in measured])
    write_section(PAGE)
    print(f"page: {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
