# Licensed under the Apache License, Version 2.0.
"""
Race the upstream operators against ours on one real Airflow stack, on the same fakes and the same
seeded disruption schedule, and write down what happened to every task instance.

Phases: an undisturbed run of every operator (API calls, completion-detection latency, metadata
writes, peak memory), then the disruptions (each planned disruption is applied to the upstream
operator and to ours in turn), then a mass drain of resumable tasks SIGTERMed together.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from airflow.providers.resumable.drill.plan import Disruption, DisruptionKind, plan_drill
from airflow.providers.resumable.testing.stack import AirflowStack, StackSettings, TaskProcesses, poll_until
from bench import bench_dags
from bench.bench_dags import DRAIN_TASKS, TASK_ID, conn_id, dag_id
from bench.measure import PeakMemory, install_write_log, metadata_writes
from bench.streams import (
    SERVERLESS_APP_VARIABLE,
    DatabricksPairFake,
    DataprocPairFake,
    EmrServerlessPairFake,
    EmrStepsPairFake,
    JobLife,
    JobWatcher,
    SharedEmr,
    Side,
    Stream,
)

BENCH_KINDS = (
    DisruptionKind.SIGTERM_MID_POLL,
    DisruptionKind.SIGTERM_IN_SUBMIT,
    DisruptionKind.SIGKILL_MID_POLL,
    DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW,
    DisruptionKind.DROPPED_RESPONSE,
    DisruptionKind.SERVER_ERRORS,
    DisruptionKind.THROTTLE_STORM,
)
"""Every kind the drill knows except a SIGTERM during task start-up: the task process dies before any
operator code exists, so it cannot tell the operators apart (stock Airflow fails either; the patched
supervisor checkpoints either); see docs/benchmarks.md."""
ATTEMPT_ENDED = ("checkpointed", "up_for_reschedule", "up_for_retry", "failed", "success")
RUN_TIMEOUT = 420.0


@dataclass
class RunRecord:
    """One task instance of the bench, and what happened to it."""

    stream: str
    side: str
    operator: str
    phase: str
    kind: str | None
    number: int
    run_id: str = ""
    final_state: str = "not started"
    try_number: int = 0
    checkpoints: int = 0
    jobs: list[str] = field(default_factory=list)
    kept_job: str | None = None
    cancellations: int = 0
    api_calls: int = 0
    wasted_seconds: float = 0.0
    strike_to_attempt_end: float | None = None
    attempt_end_state: str | None = None
    attempt_end_to_running: float | None = None
    metadata_writes: dict[str, int] = field(default_factory=dict)
    peak_rss_mib: float | None = None
    job_seconds: float | None = None
    detection_latency: float | None = None
    seconds: float = 0.0
    error: str | None = None
    faults_left_before: int = 0
    """Faults an earlier task instance left queued, dropped before this one started."""

    @property
    def retries_used(self) -> int:
        return max(0, self.try_number - 1)


@dataclass
class DrainResult:
    tasks: int
    all_checkpointed_seconds: float | None
    per_task_seconds: list[float]
    checkpointed: int
    succeeded: int
    jobs: int
    cancellations: int
    retries_used: int
    health_checks: int
    health_failures: int
    health_max_seconds: float
    error: str | None = None


@dataclass
class BenchResult:
    seed: int
    disruptions_per_operator: int
    run_seconds: float
    baseline_run_seconds: float
    poll_seconds: int
    grace_seconds: float
    started: str
    wall_seconds: float
    records: list[RunRecord]
    drain: DrainResult | None
    skipped: dict[str, str]
    environment: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        return body


class Bench:
    """The bench's stack, fakes and streams; :meth:`run` does the three phases."""

    def __init__(
        self,
        *,
        seed: int,
        disruptions: int,
        run_seconds: float,
        baseline_run_seconds: float,
        poll_seconds: int,
        grace_seconds: float,
        streams: Sequence[str] | None,
        drain: bool,
        out: Any = sys.stdout,
    ) -> None:
        self.seed = seed
        self.disruptions = disruptions
        self.run_seconds = run_seconds
        self.baseline_run_seconds = baseline_run_seconds
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.only = set(streams) if streams else None
        self.drain_enabled = drain
        self.out = out
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.records: list[RunRecord] = []
        self.watchers: dict[str, JobWatcher] = {}
        self.skipped: dict[str, str] = {}

    # ------------------------------------------------------------------ output

    def say(self, text: str) -> None:
        with self._lock:
            self.out.write(f"[{time.monotonic() - self.started:7.1f}s] {text}\n")
            self.out.flush()

    # ------------------------------------------------------------------ set-up

    def _streams(self, cleanup: ExitStack) -> list[Stream]:
        databricks_submit = DatabricksPairFake(run_seconds=self.run_seconds, submit_operation="runs/submit")
        databricks_run_now = DatabricksPairFake(run_seconds=self.run_seconds, submit_operation="jobs/run-now")
        emr = SharedEmr(run_seconds=self.run_seconds)
        dataproc = DataprocPairFake(run_seconds=self.run_seconds)
        for fake in (databricks_submit, databricks_run_now, emr, dataproc):
            fake.start()
            cleanup.callback(fake.stop)
        self.emr = emr
        self.connections = {
            "databricks_submit": databricks_submit.connection(conn_id("databricks_submit")),
            "databricks_run_now": databricks_run_now.connection(conn_id("databricks_run_now")),
            "emr_steps": emr.connection(conn_id("emr_steps")),
            "emr_serverless": emr.connection(conn_id("emr_serverless")),
            "dataproc_job": dataproc.connection(conn_id("dataproc_job")),
        }

        def side(stream: str, which: str, operator: str, poll: str) -> Side:
            return Side(dag_id=dag_id(stream, which), operator=operator, poll_operation=poll)

        streams = [
            Stream(
                "databricks_submit",
                "databricks",
                side("databricks_submit", "upstream", "DatabricksSubmitRunOperator", "runs/get"),
                side("databricks_submit", "ours", "ResumableDatabricksSubmitRunOperator", "runs/get"),
                databricks_submit,
            ),
            Stream(
                "databricks_run_now",
                "databricks",
                side("databricks_run_now", "upstream", "DatabricksRunNowOperator", "runs/get"),
                side("databricks_run_now", "ours", "ResumableDatabricksRunNowOperator", "runs/get"),
                databricks_run_now,
            ),
            Stream(
                "emr_steps",
                "emr",
                side("emr_steps", "upstream", "EmrAddStepsOperator", "DescribeStep"),
                side("emr_steps", "ours", "ResumableEmrAddStepsOperator", "ListSteps"),
                EmrStepsPairFake(emr),
            ),
            Stream(
                "emr_serverless",
                "emr",
                side("emr_serverless", "upstream", "EmrServerlessStartJobOperator", "GetJobRun"),
                side("emr_serverless", "ours", "ResumableEmrServerlessStartJobOperator", "GetJobRun"),
                EmrServerlessPairFake(emr),
            ),
            Stream(
                "dataproc_job",
                "dataproc",
                side("dataproc_job", "upstream", "DataprocSubmitJobOperator", "GetJob"),
                side("dataproc_job", "ours", "ResumableDataprocSubmitJobOperator", "GetJob"),
                dataproc,
            ),
        ]
        try:
            import airflow.providers.google  # noqa: F401
        except ImportError:
            reason = "apache-airflow-providers-google is not installed in this venv (make bench installs it)"
            streams[-1].upstream = None
            streams[-1].skipped_upstream_reason = reason
            self.skipped["DataprocSubmitJobOperator"] = reason
        return [s for s in streams if self.only is None or s.name in self.only]

    def _start_stack(self, cleanup: ExitStack) -> AirflowStack:
        home = Path(tempfile.mkdtemp(prefix="airflow-resumable-bench-"))
        self.say(f"starting Airflow (scheduler, API server, dag processor; LocalExecutor, sqlite) in {home}")
        settings = StackSettings(
            parallelism=max(12, DRAIN_TASKS + 6),
            task_heartbeat_timeout_seconds=10,
            extra_env={
                "AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER": "10",
                "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": str(max(16, DRAIN_TASKS)),
                "RESUMABLE_BENCH_POLL_SECONDS": str(self.poll_seconds),
                "RESUMABLE_BENCH_DRAIN_TASKS": str(DRAIN_TASKS),
                # The bench package is imported by its DAG file from the repository.
                "PYTHONPATH": os.pathsep.join(
                    [str(Path(__file__).resolve().parent.parent), os.environ.get("PYTHONPATH", "")]
                ).rstrip(os.pathsep),
            },
        )
        stack = AirflowStack(home, settings, python=Path(sys.executable))
        cleanup.callback(stack.stop)
        stack.start()
        install_write_log(stack.db.path)
        return stack

    def _deploy(self, stack: AirflowStack, streams: list[Stream]) -> None:
        for stream in streams:
            response = stack.rest.post("/connections", json=self.connections[stream.name])
            response.raise_for_status()
        if any(s.name == "emr_serverless" for s in streams):
            stack.rest.post(
                "/variables", json={"key": SERVERLESS_APP_VARIABLE, "value": self.emr.application_id}
            ).raise_for_status()
        stack.add_dag_file(Path(bench_dags.__file__))
        for stream in streams:
            for side in stream.sides:
                stack.wait_for_dag(side.dag_id, timeout=120)
        self.say(f"stack up at {stack.base_url}; {sum(len(s.sides) for s in streams)} bench DAGs parsed")

    # ------------------------------------------------------------------ phases

    def run(self) -> BenchResult:
        wall_start = time.time()
        drain: DrainResult | None = None
        plan = plan_drill(
            disruptions_per_cloud=self.disruptions,
            clouds=["schedule"],
            kinds=BENCH_KINDS,
            seed=self.seed,
        )
        self.say(
            f"bench: {len(plan)} disruptions per operator, seed {self.seed} "
            f"(replay with --seed {self.seed}); jobs run {self.run_seconds:.0f}s"
        )
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            with ExitStack() as cleanup:
                stack = self._start_stack(cleanup)
                # After the stack: forking its components while gRPC threads run can abort them.
                streams = self._streams(cleanup)
                for stream in streams:
                    watcher = JobWatcher(stream.fake).start()
                    cleanup.callback(watcher.stop)
                    self.watchers[stream.name] = watcher
                self._deploy(stack, streams)
                for stream in streams:
                    stream.fake.set_run_seconds(self.baseline_run_seconds)
                self._in_parallel(streams, lambda s: self._baseline(stack, s))
                for stream in streams:
                    stream.fake.set_run_seconds(self.run_seconds)
                self._in_parallel(streams, lambda s: self._disrupt(stack, s, plan))
                self._account_orphans()
                if self.drain_enabled:
                    drain = self._mass_drain(stack, cleanup)
        finally:
            signal.signal(signal.SIGTERM, previous)
        return BenchResult(
            seed=self.seed,
            disruptions_per_operator=len(plan),
            run_seconds=self.run_seconds,
            baseline_run_seconds=self.baseline_run_seconds,
            poll_seconds=self.poll_seconds,
            grace_seconds=self.grace_seconds,
            started=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(wall_start)),
            wall_seconds=time.time() - wall_start,
            records=sorted(self.records, key=lambda r: (r.stream, r.phase, r.number, r.side)),
            drain=drain,
            skipped=self.skipped,
            environment={},
        )

    def _in_parallel(self, streams: list[Stream], work: Callable[[Stream], None]) -> None:
        with ThreadPoolExecutor(max_workers=len(streams), thread_name_prefix="bench") as pool:
            for future in [pool.submit(work, stream) for stream in streams]:
                future.result()

    def _baseline(self, stack: AirflowStack, stream: Stream) -> None:
        """One undisturbed, longer run of each side: API calls, detection latency, writes, memory."""
        for side in stream.sides:
            record = self._execute(stack, stream, side, None, phase="baseline")
            self.say(
                f"baseline {stream.name:<18} {side.operator:<38} {record.final_state}: "
                f"{record.api_calls} API calls, detection {_fmt(record.detection_latency)}s, "
                f"writes {sum(record.metadata_writes.values())}, peak RSS {_fmt(record.peak_rss_mib)} MiB"
            )

    def _disrupt(self, stack: AirflowStack, stream: Stream, plan: list[Disruption]) -> None:
        for disruption in plan:
            for side in stream.sides:
                record = self._execute(stack, stream, side, disruption, phase="disruption")
                self.say(
                    f"#{disruption.number:<3} {stream.name:<18} {side.operator:<38} "
                    f"{disruption.kind.value:<24} jobs {len(record.jobs)} cancels {record.cancellations} "
                    f"retries {record.retries_used} -> {record.final_state}"
                    + (f" ({record.error})" if record.error else "")
                )

    # ------------------------------------------------------------------ one task instance

    def _execute(
        self, stack: AirflowStack, stream: Stream, side: Side, disruption: Disruption | None, *, phase: str
    ) -> RunRecord:
        kind = disruption.kind if disruption else None
        record = RunRecord(
            stream=stream.name,
            side="upstream" if side is stream.upstream else "ours",
            operator=side.operator,
            phase=phase,
            kind=kind.value if kind else None,
            number=disruption.number if disruption else 0,
        )
        fake, watcher = stream.fake, self.watchers[stream.name]
        record.faults_left_before = fake.discard_faults()
        watcher.look()
        known_before = watcher.known()
        calls_before, cancels_before = fake.api_calls(), fake.cancel_requests()
        held: threading.Event | None = None
        if kind is DisruptionKind.THROTTLE_STORM:
            fake.throttle(side.poll_operation, times=disruption.times if disruption else 1)
        elif kind is DisruptionKind.SERVER_ERRORS:
            fake.inject_submit_fault("server_error", times=disruption.times if disruption else 1)
        elif kind is DisruptionKind.DROPPED_RESPONSE:
            fake.inject_submit_fault("drop_submit_response", times=1)
        elif kind in (DisruptionKind.SIGTERM_IN_SUBMIT, DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW):
            held = fake.hold_next_submit()
        started = time.monotonic()
        memory: PeakMemory | None = None
        recorder = None
        struck_at: float | None = None
        try:
            record.run_id = stack.trigger_dag(side.dag_id)
            recorder = stack.record_ti_states(side.dag_id, record.run_id)
            processes = stack.find_task_processes(side.dag_id, TASK_ID, run_id=record.run_id, timeout=180)
            memory = PeakMemory(processes.task_pid).start()
            if kind in (DisruptionKind.SIGTERM_IN_SUBMIT, DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW):
                # The fake committed the job and holds its answer: the operator has not seen the id.
                poll_until(
                    lambda: _new_jobs(watcher, known_before),
                    timeout=120,
                    interval=0.05,
                    describe=lambda: "the submitted job",
                )
                struck_at = _strike(kind, processes, grace=self.grace_seconds)
            elif kind in (DisruptionKind.SIGTERM_MID_POLL, DisruptionKind.SIGKILL_MID_POLL):
                poll_until(
                    lambda: _new_jobs(watcher, known_before),
                    timeout=120,
                    interval=0.05,
                    describe=lambda: "the running job",
                )
                time.sleep(0.5 + (disruption.delay if disruption else 0.0))
                struck_at = _strike(kind, processes, grace=self.grace_seconds)
            if held is not None:
                held.set()
            record.final_state = stack.wait_for_dag_run(side.dag_id, record.run_id, timeout=RUN_TIMEOUT)
        except Exception as err:  # a bench records what went wrong and carries on
            record.error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        finally:
            if held is not None:
                held.set()
            if recorder is not None:
                recorder.stop()
            if memory is not None:
                record.peak_rss_mib = memory.stop()
        record.seconds = time.monotonic() - started
        watcher.look()
        new = {
            job: life
            for job, life in watcher.created_between(started - 1, time.monotonic()).items()
            if job not in known_before
        }
        record.jobs = sorted(new, key=lambda job: new[job].first_seen)
        record.kept_job = _kept(new)
        record.api_calls = fake.api_calls() - calls_before
        record.cancellations = fake.cancel_requests() - cancels_before
        if record.run_id:
            rows = stack.db.task_instances(side.dag_id, record.run_id)
            row = rows.get(TASK_ID)
            record.try_number = row.try_number if row else 0
            record.checkpoints = len(stack.db.task_reschedules(side.dag_id, record.run_id, TASK_ID))
            record.metadata_writes = dict(metadata_writes(stack.db, side.dag_id, record.run_id))
            if record.kept_job and row and row.end_date and phase == "baseline":
                life = new[record.kept_job]
                if life.ended is not None:
                    record.job_seconds = life.ended - life.first_seen
                    record.detection_latency = row.end_date.timestamp() - life.ended_wall
            if struck_at is not None and recorder is not None:
                _strike_latencies(record, recorder.history(TASK_ID), struck_at)
        with self._lock:
            self.records.append(record)
        return record

    def _account_orphans(self) -> None:
        """Let duplicate jobs that nobody cancelled run out, then price every job nobody kept."""
        if any(
            life.ended is None
            for watcher in self.watchers.values()
            for life in watcher.created_between(0, time.monotonic()).values()
        ):
            self.say("waiting for orphaned jobs to finish, to price them")
            deadline = time.monotonic() + self.run_seconds * 2 + 10
            while time.monotonic() < deadline:
                pending = [
                    life
                    for watcher in self.watchers.values()
                    for life in watcher.created_between(0, time.monotonic()).values()
                    if life.ended is None
                ]
                if not pending:
                    break
                time.sleep(1)
        for record in self.records:
            watcher = self.watchers[record.stream]
            lives = watcher.created_between(0, time.monotonic())
            wasted = 0.0
            for job in record.jobs:
                if job == record.kept_job or job not in lives:
                    continue
                life = lives[job]
                wasted += (life.ended or time.monotonic()) - life.first_seen
            record.wasted_seconds = round(wasted, 2)

    # ------------------------------------------------------------------ mass drain

    def _mass_drain(self, stack: AirflowStack, cleanup: ExitStack) -> DrainResult:
        fake = DatabricksPairFake(run_seconds=max(60.0, self.run_seconds), submit_operation="runs/submit")
        fake.start()
        cleanup.callback(fake.stop)
        stack.rest.post("/connections", json=fake.connection(conn_id("mass_drain"))).raise_for_status()
        stack.wait_for_dag("bench_mass_drain", timeout=120)
        self.say(f"mass drain: {DRAIN_TASKS} resumable tasks, every worker SIGTERMed at once")
        run_id = stack.trigger_dag("bench_mass_drain")
        task_ids = [f"{TASK_ID}_{index:02d}" for index in range(DRAIN_TASKS)]
        try:
            poll_until(
                lambda: len([s for s in fake.sightings() if not s.terminal]) >= DRAIN_TASKS or None,
                timeout=300,
                interval=0.05,
                describe=lambda: f"{DRAIN_TASKS} running jobs",
            )
            workers = [
                stack.find_task_processes("bench_mass_drain", task_id, run_id=run_id, timeout=60).worker_pid
                for task_id in task_ids
            ]
        except Exception as err:
            return DrainResult(DRAIN_TASKS, None, [], 0, 0, 0, 0, 0, 0, 0, 0.0, error=str(err)[:300])
        health: list[tuple[bool, float]] = []
        stop_health = threading.Event()

        def probe_health() -> None:
            while not stop_health.is_set():
                asked = time.monotonic()
                try:
                    response = stack.rest.get("/monitor/health", timeout=10)
                    body = response.json()
                    ok = response.status_code == 200 and body["scheduler"]["status"] == "healthy"
                except Exception:
                    ok = False
                health.append((ok, time.monotonic() - asked))
                stop_health.wait(0.5)

        prober = threading.Thread(target=probe_health, daemon=True)
        prober.start()
        struck = time.monotonic()
        for pid in workers:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        checkpointed_at: dict[str, float] = {}
        deadline = struck + 120
        while len(checkpointed_at) < DRAIN_TASKS and time.monotonic() < deadline:
            now = time.monotonic()
            for task_id, ti in stack.db.task_instances("bench_mass_drain", run_id).items():
                if ti.state in ("checkpointed", "up_for_reschedule") and task_id not in checkpointed_at:
                    checkpointed_at[task_id] = now - struck
            time.sleep(0.1)
        all_seconds = max(checkpointed_at.values()) if len(checkpointed_at) == DRAIN_TASKS else None
        self.say(
            f"mass drain: {len(checkpointed_at)}/{DRAIN_TASKS} checkpointed"
            + (f", all within {all_seconds:.1f}s" if all_seconds is not None else "")
        )
        final, error = "unknown", None
        try:
            final = stack.wait_for_dag_run("bench_mass_drain", run_id, timeout=600)
        except Exception as err:
            error = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
        stop_health.set()
        prober.join(timeout=15)
        rows = stack.db.task_instances("bench_mass_drain", run_id)
        self.say(
            f"mass drain: run {final}; health checks {len(health)}, failed {sum(not ok for ok, _ in health)}"
        )
        return DrainResult(
            tasks=DRAIN_TASKS,
            all_checkpointed_seconds=all_seconds,
            per_task_seconds=sorted(checkpointed_at.values()),
            checkpointed=len(checkpointed_at),
            succeeded=sum(row.state == "success" for row in rows.values()),
            jobs=len(fake.sightings()),
            cancellations=fake.cancel_requests(),
            retries_used=sum(max(0, row.try_number - 1) for row in rows.values()),
            health_checks=len(health),
            health_failures=sum(not ok for ok, _ in health),
            health_max_seconds=max((seconds for _, seconds in health), default=0.0),
            error=error,
        )


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _new_jobs(watcher: JobWatcher, known_before: set[str]) -> set[str] | None:
    watcher.look()
    return (watcher.known() - known_before) or None


def _kept(new: dict[str, JobLife]) -> str | None:
    """The job the task finally used: the newest one that succeeded."""
    succeeded = [job for job, life in new.items() if life.succeeded]
    return max(succeeded, key=lambda job: new[job].first_seen) if succeeded else None


def _strike(kind: DisruptionKind, processes: TaskProcesses, *, grace: float) -> float:
    """
    SIGKILL the worker and its task (a node loss), or SIGTERM the worker and SIGKILL whatever of
    the task is still there ``grace`` seconds later, as Kubernetes does when it evicts a pod (its
    default grace is 30 s; a long job outlives any grace, so the bench uses a shorter one than the
    job's remaining time). Stock Airflow's task runner only calls ``on_kill()`` on SIGTERM: a task
    that carries on is ended by that SIGKILL.
    """
    struck = time.monotonic()
    if kind.kills_the_worker:
        for pid in (processes.worker_pid, processes.task_pid):
            _kill_if_still(pid, processes.ti_id, signal.SIGKILL)
        return struck
    _kill_if_still(processes.worker_pid, processes.ti_id, signal.SIGTERM)

    def after_grace() -> None:
        for pid in (processes.worker_pid, processes.task_pid):
            _kill_if_still(pid, processes.ti_id, signal.SIGKILL)

    timer = threading.Timer(grace, after_grace)
    timer.daemon = True
    timer.start()
    return struck


def _kill_if_still(pid: int, ti_id: str, signum: int) -> None:
    """Signal ``pid`` only while it still runs that task instance (LocalExecutor reuses workers)."""
    hex_digits = ti_id.replace("-", "").lower()
    try:
        title = " ".join(psutil.Process(pid).cmdline()).replace("-", "").lower()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return
    if hex_digits in title:
        with suppress(ProcessLookupError):
            os.kill(pid, signum)


def _strike_latencies(record: RunRecord, history: list[Any], struck_at: float) -> None:
    """From the state samples: strike -> the attempt's end in the DB, and that -> running again."""
    ended = next((c for c in history if c.monotonic >= struck_at and c.state in ATTEMPT_ENDED), None)
    if ended is None:
        return
    record.strike_to_attempt_end = round(ended.monotonic - struck_at, 3)
    record.attempt_end_state = ended.state
    resumed = next((c for c in history if c.monotonic > ended.monotonic and c.state == "running"), None)
    if resumed is not None:
        record.attempt_end_to_running = round(resumed.monotonic - ended.monotonic, 3)
