# Licensed under the Apache License, Version 2.0.
"""
``python -m bench.celery_drain`` (what ``make bench-drain`` runs): drain a Celery worker that runs N
long Databricks tasks, upstream's operator against ours, and write the table into docs/benchmarks.md.

Each scenario runs on the production flavour of the stack (``CeleryAirflowStack``: Postgres, a Redis
broker, the CeleryExecutor, the core patch applied): only ``worker-a`` runs while the N tasks start,
so all N are on it; once every job runs, ``worker-b`` is started and ``worker-a`` gets SIGTERM (a
Celery warm shutdown, what a deploy or a node drain sends). The bench then records, from the
database, when each task instance checkpointed and when it was running again on ``worker-b``, when
``worker-a``'s main process exited, and from the fake workspace how many runs were created and
cancelled. Scenarios: ours and upstream's on a stack with the configuration line
(``celery_drain.py``), and ours on a stack without it (``--skip-without-line`` leaves it out).

The results go to ``bench/results/celery_drain.json``; the page's section between the
``bench-drain`` markers is replaced (or appended), and ``make bench`` keeps it as it keeps every
``bench-NAME`` section.
A benchmark: it measures and writes down, nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.drain_probes import (
    SCHEDULER_LOOP_LOG_ENV,
    HealthProbe,
    loop_durations,
    loops_between,
    summarise_health,
)
from bench.page_section import PageSection, place_section
from bench.recording import run_interruptibly, write_results

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
BASELINE_SECONDS = 20.0
"""How long the bench watches the scheduler and the API server with every task running, before the SIGTERM."""


def output_for(label: str) -> PageSection:
    """Where a drain run writes: ``make bench-drain`` (label "": 16 tasks, every scenario) and ``make
    bench-drain-64`` (label "64") keep separate files and sections, so neither overwrites the other.

    :param label: "" or the suffix of the results file and the section name.
    """
    suffix = f"-{label}" if label else ""
    return PageSection(f"bench-drain{suffix}", ROOT / "bench" / "results" / f"celery_drain{suffix}.json")


DEFAULT_OUTPUT = output_for("")
RESULTS = DEFAULT_OUTPUT.results
SECTION_START = DEFAULT_OUTPUT.start
SECTION_END = DEFAULT_OUTPUT.end
DRAINED, OTHER = "worker-a", "worker-b"
CHECKPOINT_STATES = ("checkpointed", "up_for_reschedule")
TERMINAL_RUN_STATES = ("success", "failed")


@dataclass
class DrainOutcome:
    """What one drain of ``worker-a`` did to N task instances of one operator."""

    operator: str
    configuration_line: bool
    tasks: int
    job_seconds: float
    on_drained_worker: int = 0
    """Task instances running on worker-a when it got SIGTERM."""
    worker_exit_seconds: float | None = None
    checkpointed: int = 0
    all_checkpointed_seconds: float | None = None
    running_again_on_other: int = 0
    all_running_again_seconds: float | None = None
    finished_on_other: int = 0
    succeeded: int = 0
    jobs: int = 0
    cancellations: int = 0
    retries_used: int = 0
    dag_run: str = "not started"
    seconds: float = 0.0
    error: str | None = None
    per_task_checkpointed: list[float] = field(default_factory=list)
    scheduler_loops_before: dict[str, Any] = field(default_factory=dict)
    """Scheduler loop times in the BASELINE_SECONDS before the SIGTERM (``drain_probes.py``)."""
    scheduler_loops_during: dict[str, Any] = field(default_factory=dict)
    """From the SIGTERM until every task ran again (or the run ended)."""
    health_before: dict[str, Any] = field(default_factory=dict)
    health_during: dict[str, Any] = field(default_factory=dict)
    load_average_at_sigterm: float | None = None
    """The machine's 1-minute load average when worker-a got SIGTERM (it has 2 cores here)."""
    last_task_ended_seconds: float | None = None
    """When worker-a's last supervisor logged its workload finished: the rest of its exit is Celery's."""
    rescheduled_at_startup: int = 0
    """Resumed attempts that Airflow rescheduled while they started (the DAG file's import timed out)."""

    @property
    def duplicates(self) -> int:
        return max(0, self.jobs - self.tasks)


def _say(started: float, text: str) -> None:
    sys.stdout.write(f"[{time.monotonic() - started:7.1f}s] {text}\n")
    sys.stdout.flush()


class CeleryDrainBench:
    """One stack per configuration (with the line, without it); one drain per operator on it."""

    def __init__(
        self,
        *,
        tasks: int,
        job_seconds: float,
        without_line: bool,
        sides: tuple[str, ...] = ("ours", "upstream"),
    ) -> None:
        """
        :param tasks: task instances on the drained worker.
        :param job_seconds: how long each Databricks run runs.
        :param without_line: also drain ours on a stack without the configuration line.
        :param sides: the operators drained on the stack with the line (``ours``, ``upstream``).
        """
        self.tasks = tasks
        self.job_seconds = job_seconds
        self.without_line = without_line
        self.sides = list(sides)
        self.started = time.monotonic()

    def run(self) -> list[DrainOutcome]:
        from airflow.providers.resumable.testing.clouds import FakeDatabricksCloud

        outcomes: list[DrainOutcome] = []
        plan = [(True, self.sides)] + ([(False, ["ours"])] if self.without_line else [])
        with ExitStack() as cleanup:
            # One fake for every scenario: run ids never repeat, so the job reaper (which cancels a
            # run a finished task's ledger names when it sees that id running again) has nothing to do.
            fake = FakeDatabricksCloud(run_seconds=self.job_seconds)
            fake.start()
            cleanup.callback(fake.stop)
            for line, sides in plan:
                with ExitStack() as stack_cleanup:
                    stack = self._start_stack(line, fake, stack_cleanup)
                    for side in sides:
                        outcome = self._drain(stack, fake, side, line)
                        outcomes.append(outcome)
                        _say(self.started, f"{_describe(outcome)}")
        return outcomes

    def _start_stack(self, line: bool, fake: Any, cleanup: ExitStack) -> Any:
        from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
        from airflow.providers.resumable.testing.stack import StackSettings
        from bench import celery_drain_dags

        home = Path(tempfile.mkdtemp(prefix="airflow-resumable-bench-drain-"))
        _say(
            self.started,
            f"starting the Celery/Postgres stack {'with' if line else 'without'} the line in {home}",
        )
        settings = StackSettings(
            parallelism=2 * self.tasks + 4,
            extra_env={
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(self.tasks),
                # default_pool has 128 slots; a larger drain must not queue on it.
                "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": str(max(128, 2 * self.tasks)),
                "RESUMABLE_BENCH_CELERY_DRAIN_TASKS": str(self.tasks),
                **SCHEDULER_LOOP_LOG_ENV,
            },
        )
        stack = CeleryAirflowStack(home, settings, worker_concurrency=self.tasks, drain_aware=line)
        cleanup.callback(stack.stop)
        stack.start()
        stack.put_connection(fake.connection(celery_drain_dags.CONN_ID))
        stack.add_dag_file(Path(celery_drain_dags.__file__))
        for side in celery_drain_dags.OPERATORS:
            stack.wait_for_dag(celery_drain_dags.dag_id(side), timeout=180)
        return stack

    def _drain(self, stack: Any, fake: Any, side: str, line: bool) -> DrainOutcome:
        from bench import celery_drain_dags

        operator = celery_drain_dags.OPERATORS[side].__name__
        outcome = DrainOutcome(operator, line, self.tasks, self.job_seconds)
        began = time.monotonic()
        dag_id = celery_drain_dags.dag_id(side)
        probe: HealthProbe | None = None
        try:
            # Only worker-a takes work while the tasks start, so all of them run on it.
            if stack.worker_running(OTHER):
                stack.stop_worker(OTHER)
            if not stack.worker_running(DRAINED):
                stack.start_worker(DRAINED)
            before = fake.counts()
            run_id = stack.trigger_dag(dag_id)
            _say(self.started, f"{operator}: {self.tasks} tasks triggered on {DRAINED}")
            deadline = time.monotonic() + 600
            while True:
                rows = _rows(stack, dag_id, run_id)
                running = [r for r in rows if r["state"] == "running" and r["hostname"] == DRAINED]
                jobs_running = _running_jobs(fake)
                if len(running) == self.tasks and jobs_running >= self.tasks:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"only {len(running)} tasks and {jobs_running} jobs running after 600s"
                    )
                time.sleep(0.5)
            stack.start_worker(OTHER)
            outcome.on_drained_worker = len(running)
            probe = HealthProbe(stack.base_url).start()
            baseline_from = time.time()
            time.sleep(BASELINE_SECONDS)
            struck_wall = time.time()
            outcome.load_average_at_sigterm = round(os.getloadavg()[0], 1)
            struck = time.monotonic()
            os.kill(stack.worker_pid(DRAINED), signal.SIGTERM)
            _say(self.started, f"{operator}: SIGTERM to {DRAINED} with {len(running)} tasks running")
            checkpointed: dict[str, float] = {}
            running_again: dict[str, float] = {}
            final = None
            end_by = struck + self.job_seconds + 600
            while final not in TERMINAL_RUN_STATES and time.monotonic() < end_by:
                now = time.monotonic() - struck
                if outcome.worker_exit_seconds is None and not stack.worker_running(DRAINED):
                    outcome.worker_exit_seconds = round(now, 2)
                for row in _rows(stack, dag_id, run_id):
                    task = row["task_id"]
                    if row["state"] in CHECKPOINT_STATES:
                        checkpointed.setdefault(task, now)
                    if row["hostname"] == OTHER and row["state"] in ("running", "success"):
                        running_again.setdefault(task, now)
                final = stack.db.dag_run_state(dag_id, run_id)
                time.sleep(0.25)
            drain_over = (
                time.time() if len(running_again) < self.tasks else struck_wall + max(running_again.values())
            )
            probe.stop()
            loops = loop_durations(stack.component_logs / "scheduler.log")
            outcome.scheduler_loops_before = loops_between(loops, baseline_from, struck_wall)
            outcome.scheduler_loops_during = loops_between(loops, struck_wall, drain_over)
            outcome.health_before = summarise_health(probe.answers, baseline_from, struck_wall)
            outcome.health_during = summarise_health(probe.answers, struck_wall, drain_over)
            if outcome.worker_exit_seconds is None:
                stack.wait_for_worker_exit(DRAINED, timeout=120)
                outcome.worker_exit_seconds = round(time.monotonic() - struck, 2)
            outcome.dag_run = final or "timed out"
            rows = _rows(stack, dag_id, run_id)
            after = fake.counts()
            outcome.checkpointed = len(checkpointed)
            outcome.per_task_checkpointed = sorted(round(s, 2) for s in checkpointed.values())
            outcome.last_task_ended_seconds = last_workload_finished(
                stack.component_logs / f"{DRAINED}.log", struck_wall
            )
            outcome.rescheduled_at_startup = rescheduled_at_startup(stack.task_logs, dag_id, run_id)
            outcome.all_checkpointed_seconds = _all_within(checkpointed, self.tasks)
            outcome.running_again_on_other = len(running_again)
            outcome.all_running_again_seconds = _all_within(running_again, self.tasks)
            outcome.finished_on_other = sum(r["hostname"] == OTHER for r in rows)
            outcome.succeeded = sum(r["state"] == "success" for r in rows)
            outcome.retries_used = sum(max(0, int(r["try_number"]) - 1) for r in rows)
            outcome.jobs = after.submissions - before.submissions
            outcome.cancellations = after.cancellations - before.cancellations
        except Exception as err:  # a bench records what went wrong and carries on
            outcome.error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        finally:
            if probe is not None:
                probe.stop()
        outcome.seconds = round(time.monotonic() - began, 1)
        return outcome


_WORKLOAD_FINISHED = re.compile(r"^(\S+Z) .*Workload finished")
STARTUP_RESCHEDULE = "Rescheduling task during startup"
"""Airflow's task runner, when the task's DAG could not be loaded as the attempt started."""


def last_workload_finished(worker_log: Path, since: float) -> float | None:
    """Seconds from ``since`` (epoch) to the worker's last "Workload finished" line after it.

    :param worker_log: the worker's log.
    :param since: the SIGTERM, epoch seconds.
    """
    ends = []
    for line in worker_log.read_text(errors="replace").splitlines():
        match = _WORKLOAD_FINISHED.search(line)
        if match:
            at = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
            if at >= since:
                ends.append(at - since)
    return round(max(ends), 2) if ends else None


def rescheduled_at_startup(task_logs: Path, dag_id: str, run_id: str) -> int:
    """How many task instances of the run had an attempt rescheduled while it started.

    :param task_logs: the stack's task log folder.
    :param dag_id: the DAG.
    :param run_id: the run.
    """
    run_folder = task_logs / f"dag_id={dag_id}" / f"run_id={run_id}"
    return sum(
        1
        for log in run_folder.glob("task_id=*/attempt=*.log")
        if STARTUP_RESCHEDULE in log.read_text(errors="replace")
    )


def _rows(stack: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return list(
        stack.db.query(
            "SELECT task_id, state, hostname, try_number FROM task_instance "
            "WHERE dag_id = ? AND run_id = ? AND map_index = -1",
            (dag_id, run_id),
        )
    )


def _running_jobs(fake: Any) -> int:
    return sum(fake.job_state(str(run["run_id"])) == "RUNNING" for run in fake.service.runs())


def _all_within(seen: dict[str, float], tasks: int) -> float | None:
    return round(max(seen.values()), 2) if len(seen) == tasks else None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _describe(o: DrainOutcome) -> str:
    return (
        f"{o.operator} ({'with' if o.configuration_line else 'without'} the line): worker exited "
        f"{_fmt(o.worker_exit_seconds)} after SIGTERM; checkpointed {o.checkpointed}/{o.tasks}; running again "
        f"on {OTHER} {o.running_again_on_other}/{o.tasks}; jobs {o.jobs}, cancels {o.cancellations}, "
        f"retries {o.retries_used}; run {o.dag_run}" + (f" ({o.error})" if o.error else "")
    )


def _loops(figures: dict[str, Any]) -> str:
    if not figures.get("loops"):
        return "-"
    return (
        f"{figures['p50_ms']:.0f} / {figures['p95_ms']:.0f} / {figures['max_ms']:.0f} ms ({figures['loops']})"
    )


def _health(figures: dict[str, Any]) -> str:
    if not figures.get("polls"):
        return "-"
    age = figures.get("scheduler_heartbeat_age_max_s")
    return (
        f"{figures['polls']} polls, {figures['failed']} failed, {figures['latency_p50_s']:.2f} / "
        f"{figures['latency_max_s']:.2f} s; heartbeat age max {'-' if age is None else f'{age:.1f} s'}"
    )


def render_probes(outcomes: list[DrainOutcome]) -> list[str]:
    """The table of what the scheduler and the API server felt, for outcomes that measured it.

    :param outcomes: the run's drains.
    """
    measured = [o for o in outcomes if o.scheduler_loops_before or o.health_before]
    if not measured:
        return []
    out = [
        "### The scheduler and the API server through the drain\n",
        f"*Before*: the {BASELINE_SECONDS:.0f} s before the SIGTERM, every task running on `worker-a` and "
        "`worker-b` idle. *During*: from the SIGTERM until every task ran again on `worker-b` (or the run "
        "ended). Scheduler loop time: p50 / p95 / max of Airflow's own per-loop timing (the figure it sends "
        "as `scheduler.scheduler_loop_duration`; read from the scheduler's DEBUG line \"Ran scheduling "
        'loop in N ms", because the `statsd` client package is not in the venv), with the number of loops. '
        "Health: `GET /api/v2/monitor/health` every 0.5 s from the bench, latency p50 / max; a failure "
        "is no answer within 10 s, a status other than 200, or an unhealthy metadatabase or scheduler; "
        "heartbeat age is the scheduler's last heartbeat as the answer gave it (it heartbeats every 2 s "
        "here). The stack runs no triggerer, so the endpoint reports none.\n",
        "| operator | line | scheduler loop before | scheduler loop during | health before | health during |",
        "|---|---|---|---|---|---|",
    ]
    for o in measured:
        out.append(
            f"| `{o.operator}` | {'yes' if o.configuration_line else 'no'} | {_loops(o.scheduler_loops_before)} "
            f"| {_loops(o.scheduler_loops_during)} | {_health(o.health_before)} | {_health(o.health_during)} |"
        )
    out.append("")
    return out


def render_section(body: dict[str, Any], output: PageSection = DEFAULT_OUTPUT) -> str:
    """The page's section for one bench run.

    :param body: what :func:`main` wrote to the results file.
    :param output: which run it is (its section's name and target).
    """
    outcomes = [DrainOutcome(**{k: v for k, v in o.items()}) for o in body["outcomes"]]
    tasks = outcomes[0].tasks if outcomes else 0
    scale = output != DEFAULT_OUTPUT
    title = "Mass drain of a Celery worker" + (f", {tasks} tasks" if scale else "")
    out = [output.start, f"## {title}\n"]
    out.append(
        f"Generated by `{output.target}` ({body['started']}, {body['wall_seconds'] / 60:.0f} minutes; "
        f"`bench/results/{output.results.name}`). On the production flavour of the stack (Postgres, a Redis "
        f"broker, the CeleryExecutor, two workers, the core patch applied), {tasks} Databricks tasks run "
        f"on `worker-a` against the fake workspace, each polling a {body['job_seconds']:.0f} s run; once "
        "every run is running, `worker-b` is started and `worker-a` gets SIGTERM (Celery's warm "
        "shutdown: what a deploy or a node drain sends). *With the line* means the stack sets "
        "`[celery] celery_config_options = airflow.providers.resumable.celery_drain.DRAIN_AWARE_CELERY_CONFIG` "
        "(see the Celery and Kubernetes page). Times are from the SIGTERM; *running again* is the task "
        "instance running (or done) on `worker-b`. Duplicates: runs created beyond one per task.\n"
    )
    out.append(
        "| operator | line | worker-a exited | checkpointed | all checkpointed within | running again on worker-b "
        "| all running again within | finished on worker-b | runs | duplicates | cancels | retries | dag run |"
    )
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for o in outcomes:
        out.append(
            f"| `{o.operator}` | {'yes' if o.configuration_line else 'no'} | {_fmt(o.worker_exit_seconds)} "
            f"| {o.checkpointed}/{o.tasks} | {_fmt(o.all_checkpointed_seconds)} "
            f"| {o.running_again_on_other}/{o.tasks} | {_fmt(o.all_running_again_seconds)} "
            f"| {o.finished_on_other}/{o.tasks} | {o.jobs} | {o.duplicates} | {o.cancellations} "
            f"| {o.retries_used} | {o.dag_run}" + (f" ({o.error})" if o.error else "") + " |"
        )
    out.append("")
    out.append(
        "Target (#17): the drained worker exits within 10 s and all tasks run again on the other worker, "
        "0 duplicates, 0 cancels, 0 retries"
        + (", every task checkpointed within 10 s" if scale else "")
        + ". Running again waits for the tasks' `resume_after` "
        "(10 s in these DAGs) plus the scheduler's and the other worker's pick-up.\n"
    )
    out.extend(render_targets(outcomes) if scale else [])
    out.extend(render_probes(outcomes))
    out.append(f"Environment: {body.get('environment', '?')}.\n")
    out.append(output.end)
    return "\n".join(out) + "\n"


def render_targets(outcomes: list[DrainOutcome]) -> list[str]:
    """Met or missed, per target of #17's drain at scale, for ours with the line.

    :param outcomes: the run's drains.
    """
    ours = [o for o in outcomes if o.configuration_line and o.operator.startswith("Resumable")]
    if not ours:
        return []
    o = ours[0]
    checks = [
        (
            f"every task checkpointed within 10 s of the SIGTERM ({o.tasks})",
            f"{o.checkpointed}/{o.tasks} in {_fmt(o.all_checkpointed_seconds)}",
            o.checkpointed == o.tasks and (o.all_checkpointed_seconds or 99) <= 10,
        ),
        (
            "the drained worker exits within 10 s",
            _fmt(o.worker_exit_seconds),
            (o.worker_exit_seconds or 999) <= 10,
        ),
        (
            "every task runs again on the other worker",
            f"{o.running_again_on_other}/{o.tasks}",
            o.running_again_on_other == o.tasks,
        ),
        (
            "0 duplicates, 0 cancels, 0 retries",
            f"{o.duplicates}, {o.cancellations}, {o.retries_used}",
            (o.duplicates, o.cancellations, o.retries_used) == (0, 0, 0),
        ),
    ]
    out = ["| target | measured | |", "|---|---|---|"]
    out += [f"| {what} | {measured} | {'met' if ok else '**missed**'} |" for what, measured, ok in checks]
    out.append("")
    out.extend(_where_the_time_went(o))
    return out


def _where_the_time_went(o: DrainOutcome) -> list[str]:
    """What the run says about its exit and its resumes, when those took long.

    :param o: ours, with the line.
    """
    notes = []
    load = (
        ""
        if o.load_average_at_sigterm is None
        else f" (1-minute load average {o.load_average_at_sigterm} on 2 cores)"
    )
    if (
        o.worker_exit_seconds is not None
        and o.worker_exit_seconds > 10
        and o.last_task_ended_seconds is not None
    ):
        notes.append(
            f"**Where the exit went.** `worker-a`'s last task ended {o.last_task_ended_seconds:.1f} s after the "
            f"SIGTERM{load}: each of the {o.tasks} tasks asks the API server why it was stopped, reports its "
            "checkpoint, and its supervisor reports the attempt's end, all at once on the machine's cores. "
            f"Celery's own shutdown of its {o.tasks}-process pool took the remaining "
            f"{o.worker_exit_seconds - o.last_task_ended_seconds:.1f} s. Meeting 10 s at this scale takes more "
            "cores for the drained worker (the checkpoints are CPU-bound here), or fewer tasks per worker "
            "(`worker_concurrency`; `make bench-drain` measures the same drain at 16)."
        )
    if o.rescheduled_at_startup:
        notes.append(
            f"**Where the resumes went.** {o.rescheduled_at_startup} of the {o.tasks} resumed attempts could not "
            "load their DAG file within `[core] dagbag_import_timeout` (30 s) while all of them started at once "
            f'on `worker-b`, and Airflow rescheduled them during start-up ("{STARTUP_RESCHEDULE}", '
            "`up_for_reschedule`, same try, the server's 60 s default), which is what the slowest *running "
            "again* waited for; a larger import timeout, or resumes spread over more workers, avoid it."
        )
    return [note + "\n" for note in notes]


def write_section(page_path: Path = PAGE, output: PageSection = DEFAULT_OUTPUT) -> None:
    """Put the output's last results into the page, in place of its previous section.

    :param page_path: the page.
    :param output: which run's results and section.
    """
    if output.results.exists() and page_path.exists():
        section = render_section(json.loads(output.results.read_text()), output)
        page_path.write_text(place_section(page_path.read_text(), section, output))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_drain", description=__doc__)
    parser.add_argument("--tasks", type=int, default=16, help="task instances on the drained worker")
    parser.add_argument("--job-seconds", type=float, default=180.0, help="how long each Databricks run runs")
    parser.add_argument("--skip-without-line", action="store_true", help="skip ours without the line")
    parser.add_argument(
        "--sides",
        default="ours,upstream",
        help="operators drained on the stack with the line, comma-separated (ours, upstream)",
    )
    parser.add_argument(
        "--label",
        default="",
        help="suffix of the results file and the page section (make bench-drain-64: 64); default: bench-drain's",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="rewrite the section from its results file"
    )
    args = parser.parse_args(argv)
    output = output_for(args.label)
    if not args.report_only:
        wall = time.time()
        bench = CeleryDrainBench(
            tasks=args.tasks,
            job_seconds=args.job_seconds,
            without_line=not args.skip_without_line,
            sides=tuple(side for side in args.sides.split(",") if side),
        )
        outcomes = run_interruptibly(bench.run)
        if outcomes is None:
            return 130
        write_results(
            output.results, wall, job_seconds=args.job_seconds, outcomes=[asdict(o) for o in outcomes]
        )
    write_section(PAGE, output)
    print(f"page: {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
