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
``celery-drain`` markers is replaced (or appended), and ``make bench`` keeps it (:func:`keep_section`).
A benchmark: it measures and writes down, nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "celery_drain.json"
PAGE = ROOT / "docs" / "benchmarks.md"
SECTION_START = "<!-- celery-drain:start (make bench-drain writes this section) -->"
SECTION_END = "<!-- celery-drain:end -->"
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

    @property
    def duplicates(self) -> int:
        return max(0, self.jobs - self.tasks)


def _say(started: float, text: str) -> None:
    sys.stdout.write(f"[{time.monotonic() - started:7.1f}s] {text}\n")
    sys.stdout.flush()


class CeleryDrainBench:
    """One stack per configuration (with the line, without it); one drain per operator on it."""

    def __init__(self, *, tasks: int, job_seconds: float, without_line: bool) -> None:
        self.tasks = tasks
        self.job_seconds = job_seconds
        self.without_line = without_line
        self.started = time.monotonic()

    def run(self) -> list[DrainOutcome]:
        from airflow.providers.resumable.testing.clouds import FakeDatabricksCloud

        outcomes: list[DrainOutcome] = []
        plan = [(True, ["ours", "upstream"])] + ([(False, ["ours"])] if self.without_line else [])
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
                "RESUMABLE_BENCH_CELERY_DRAIN_TASKS": str(self.tasks),
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
            if outcome.worker_exit_seconds is None:
                stack.wait_for_worker_exit(DRAINED, timeout=120)
                outcome.worker_exit_seconds = round(time.monotonic() - struck, 2)
            outcome.dag_run = final or "timed out"
            rows = _rows(stack, dag_id, run_id)
            after = fake.counts()
            outcome.checkpointed = len(checkpointed)
            outcome.per_task_checkpointed = sorted(round(s, 2) for s in checkpointed.values())
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
        outcome.seconds = round(time.monotonic() - began, 1)
        return outcome


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


def render_section(body: dict[str, Any]) -> str:
    """The page's section for one bench run (``body``: what :func:`main` wrote to the results file)."""
    outcomes = [DrainOutcome(**{k: v for k, v in o.items()}) for o in body["outcomes"]]
    tasks = outcomes[0].tasks if outcomes else 0
    out = [SECTION_START, "## Mass drain of a Celery worker\n"]
    out.append(
        f"Generated by `make bench-drain` ({body['started']}, {body['wall_seconds'] / 60:.0f} minutes; "
        f"`bench/results/celery_drain.json`). On the production flavour of the stack (Postgres, a Redis "
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
        "0 duplicates, 0 cancels, 0 retries. Running again waits for the tasks' `resume_after` "
        "(10 s in these DAGs) plus the scheduler's and the other worker's pick-up.\n"
    )
    out.append(f"Environment: {body.get('environment', '?')}.\n")
    out.append(SECTION_END)
    return "\n".join(out) + "\n"


def place_section(page: str, section: str) -> str:
    """``page`` with its celery-drain section replaced by ``section`` (appended when it has none)."""
    if SECTION_START in page and SECTION_END in page:
        head, rest = page.split(SECTION_START, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n")
        return head + section + ("\n" + tail if tail else "")
    return page.rstrip("\n") + "\n\n" + section


def keep_section(page_path: Path = PAGE) -> None:
    """Put the last Celery drain results back into a page that ``make bench`` has just rewritten."""
    if RESULTS.exists() and page_path.exists():
        section = render_section(json.loads(RESULTS.read_text()))
        page_path.write_text(place_section(page_path.read_text(), section))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.celery_drain", description=__doc__)
    parser.add_argument("--tasks", type=int, default=16, help="task instances on the drained worker")
    parser.add_argument("--job-seconds", type=float, default=180.0, help="how long each Databricks run runs")
    parser.add_argument("--skip-without-line", action="store_true", help="skip ours without the line")
    parser.add_argument("--report-only", action="store_true", help=f"rewrite the section from {RESULTS.name}")
    args = parser.parse_args(argv)
    if not args.report_only:
        from bench.__main__ import _machine, _versions

        wall = time.time()
        bench = CeleryDrainBench(
            tasks=args.tasks, job_seconds=args.job_seconds, without_line=not args.skip_without_line
        )
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            outcomes = bench.run()
        except KeyboardInterrupt:
            print("bench interrupted; every process it started was stopped", file=sys.stderr)
            return 130
        finally:
            signal.signal(signal.SIGTERM, previous)
        body = {
            "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(wall)),
            "wall_seconds": time.time() - wall,
            "job_seconds": args.job_seconds,
            "outcomes": [asdict(o) for o in outcomes],
            "environment": f"{_machine()}; {_versions()}",
        }
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(body, indent=1) + "\n")
        print(f"results: {RESULTS}")
    keep_section(PAGE)
    print(f"page: {PAGE}")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
