# Licensed under the Apache License, Version 2.0.
"""
Race the upstream operators against ours on one real Airflow stack, on the same fakes and the same
seeded disruption schedule, and write down what happened to every task instance.

Phases: an undisturbed run of every operator (API calls, completion-detection latency, metadata
writes, peak memory), then the disruptions (each planned disruption is applied to the upstream
operator and to ours in turn), then a mass drain of resumable tasks SIGTERMed together.

With ``deferrable`` (``make bench-deferrable``) both operators of every pair run with
``deferrable=True`` on a stack with a triggerer: the undisturbed phase runs each pair's sync and
deferrable DAGs (how long each holds a worker slot per hour of job), the worker and fault kinds
that can meet a deferred task run as above, and each triggerer kind strikes the one triggerer tier
once under every pair's upstream operator, then once under every pair's ours (:class:`TierStrike`).
"""

from __future__ import annotations

import dataclasses
import importlib.util
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
from airflow.providers.resumable.drill.triggerers import MOVE_TIMEOUT_SECONDS, THAW_SECONDS, wait_for_trigger
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
DEFERRABLE_SUFFIX = "_deferrable"
"""How a deferrable bench DAG's id ends (:func:`bench.bench_dags.dag_id`)."""
DEFERRABLE_KINDS = (
    DisruptionKind.SIGTERM_IN_SUBMIT,
    DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW,
    DisruptionKind.DROPPED_RESPONSE,
    DisruptionKind.SERVER_ERRORS,
    DisruptionKind.THROTTLE_STORM,
    DisruptionKind.TRIGGERER_SIGKILL,
    DisruptionKind.TRIGGERER_SIGTERM,
    DisruptionKind.TRIGGERER_FREEZE_MOVES,
)
"""The deferrable bench's kinds: :data:`BENCH_KINDS` that can meet a deferred task (a task polling
from the triggerer has no worker mid-poll to signal), plus the drill's triggerer kinds."""
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
    mode: str = "sync"
    """``deferrable`` when both operators ran with ``deferrable=True``."""
    worker_slot_seconds: float | None = None
    """Seconds the task instance spent ``running`` (holding a worker slot), from its state samples."""
    worker_slot_seconds_while_job_ran: float | None = None
    """The part of :attr:`worker_slot_seconds` while the job it ended with ran: the polling."""
    kept_job_seconds: float | None = None
    """How long the job the task ended with ran, from the fake's job list."""

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
    deferrable: bool = False
    triggerer_run_seconds: float | None = None

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
        deferrable: bool = False,
        triggerer_run_seconds: float = 75.0,
        kinds: Sequence[DisruptionKind] = (),
        out: Any = sys.stdout,
    ) -> None:
        self.seed = seed
        self.disruptions = disruptions
        self.run_seconds = run_seconds
        self.baseline_run_seconds = baseline_run_seconds
        self.poll_seconds = poll_seconds
        self.grace_seconds = grace_seconds
        self.only = set(streams) if streams else None
        self.drain_enabled = drain and not deferrable
        self.deferrable = deferrable
        self.triggerer_run_seconds = triggerer_run_seconds
        self.kinds = tuple(kinds) or (DEFERRABLE_KINDS if deferrable else BENCH_KINDS)
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
            return Side(
                dag_id=dag_id(stream, which, deferrable=self.deferrable),
                operator=operator,
                poll_operation=poll,
            )

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
        if self.deferrable and importlib.util.find_spec("aiobotocore") is None:
            # The amazon provider's triggers need it ([aiobotocore] extra); its newest release
            # requires an older botocore than the one the bench pins with Airflow's constraints.
            reason = (
                "aiobotocore is not installed in this venv: the amazon provider's deferrable mode needs "
                "it, and no release of it accepts the botocore that Airflow 3.3.2's constraints pin"
            )
            for stream in streams:
                if stream.cloud == "emr" and stream.upstream is not None:
                    self.skipped[f"{stream.upstream.operator} (deferrable)"] = reason
                    stream.upstream, stream.skipped_upstream_reason = None, reason
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
            triggerers=1 if self.deferrable else 0,
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
        dags = [side.dag_id for stream in streams for _, side in self._baseline_sides(stream)]
        for dag in dags:
            stack.wait_for_dag(dag, timeout=120)
        self.say(f"stack up at {stack.base_url}; {len(dags)} bench DAGs parsed")

    # ------------------------------------------------------------------ phases

    def run(self) -> BenchResult:
        wall_start = time.time()
        drain: DrainResult | None = None
        plan = plan_drill(
            disruptions_per_cloud=self.disruptions,
            clouds=["schedule"],
            kinds=self.kinds,
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
                on_workers = [d for d in plan if not d.kind.disrupts_the_triggerer]
                self._in_parallel(streams, lambda s: self._disrupt(stack, s, on_workers))
                on_tier = [d for d in plan if d.kind.disrupts_the_triggerer]
                if on_tier:
                    for stream in streams:
                        stream.fake.set_run_seconds(self.triggerer_run_seconds)
                    self._strike_tier(stack, streams, on_tier)
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
            deferrable=self.deferrable,
            triggerer_run_seconds=self.triggerer_run_seconds if self.deferrable else None,
        )

    def _in_parallel(self, streams: list[Stream], work: Callable[[Stream], None]) -> None:
        with ThreadPoolExecutor(max_workers=len(streams), thread_name_prefix="bench") as pool:
            for future in [pool.submit(work, stream) for stream in streams]:
                future.result()

    def _baseline_sides(self, stream: Stream) -> list[tuple[str, Side]]:
        """The sides an undisturbed run races, by role: deferrable ones are compared with sync ones."""
        sides = [("upstream" if side is stream.upstream else "ours", side) for side in stream.sides]
        if not self.deferrable:
            return sides
        sync = [
            (role, dataclasses.replace(side, dag_id=side.dag_id.removesuffix(DEFERRABLE_SUFFIX)))
            for role, side in sides
        ]
        return sync + sides

    def _baseline(self, stack: AirflowStack, stream: Stream) -> None:
        """One undisturbed, longer run of each side: API calls, detection latency, writes, memory."""
        for role, side in self._baseline_sides(stream):
            record = self._execute(stack, stream, side, None, phase="baseline", role=role)
            self.say(
                f"baseline {stream.name:<18} {side.operator:<38} {record.mode:<10} {record.final_state}: "
                f"{record.api_calls} API calls, detection {_fmt(record.detection_latency)}s, "
                f"writes {sum(record.metadata_writes.values())}, peak RSS {_fmt(record.peak_rss_mib)} MiB, "
                f"worker slot {_fmt(record.worker_slot_seconds)}s "
                f"({_fmt(record.worker_slot_seconds_while_job_ran)}s while the job ran) "
                f"for a {_fmt(record.kept_job_seconds)}s job"
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

    def _strike_tier(self, stack: AirflowStack, streams: list[Stream], plan: list[Disruption]) -> None:
        """Each triggerer disruption once under every pair's upstream operator, then under ours."""
        for disruption in plan:
            for role in ("upstream", "ours"):
                racing = [
                    (stream, side)
                    for stream in streams
                    if (side := stream.upstream if role == "upstream" else stream.ours) is not None
                ]
                tier = TierStrike(stack, disruption.kind, parties=len(racing), say=self.say)

                def one(
                    item: tuple[Stream, Side], tier: TierStrike = tier, disruption: Disruption = disruption
                ) -> None:
                    stream, side = item
                    record = self._execute(stack, stream, side, disruption, phase="disruption", tier=tier)
                    self.say(
                        f"#{disruption.number:<3} {stream.name:<18} {side.operator:<38} "
                        f"{disruption.kind.value:<24} jobs {len(record.jobs)} cancels {record.cancellations} "
                        f"retries {record.retries_used} -> {record.final_state}"
                        + (f" ({record.error})" if record.error else "")
                    )

                with ThreadPoolExecutor(max_workers=len(racing), thread_name_prefix="bench-tier") as pool:
                    futures = [pool.submit(one, item) for item in racing]
                    # Here, not in a pool thread: the triggerer it starts gets SIGTERM when the thread
                    # that started it ends (PR_SET_PDEATHSIG), and it must outlive this round.
                    tier.strike_when_all_in()
                    for future in futures:
                        future.result()

    # ------------------------------------------------------------------ one task instance

    def _execute(
        self,
        stack: AirflowStack,
        stream: Stream,
        side: Side,
        disruption: Disruption | None,
        *,
        phase: str,
        role: str | None = None,
        tier: TierStrike | None = None,
    ) -> RunRecord:
        kind = disruption.kind if disruption else None
        record = RunRecord(
            stream=stream.name,
            side=role or ("upstream" if side is stream.upstream else "ours"),
            operator=side.operator,
            phase=phase,
            kind=kind.value if kind else None,
            number=disruption.number if disruption else 0,
            mode="deferrable" if side.dag_id.endswith(DEFERRABLE_SUFFIX) else "sync",
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
            elif kind is not None and kind.disrupts_the_triggerer:
                assert tier is not None, "a triggerer kind strikes the tier (_strike_tier)"
                tier.join(side.dag_id, record.run_id)
            if held is not None:
                held.set()
            record.final_state = stack.wait_for_dag_run(side.dag_id, record.run_id, timeout=RUN_TIMEOUT)
        except Exception as err:  # a bench records what went wrong and carries on
            record.error = f"{type(err).__name__}: {(str(err).splitlines() or [''])[0][:200]}"
            if tier is not None:
                tier.abort()  # the others must not wait for a strike this task will never join
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
            running = _intervals_in(recorder.history(TASK_ID), "running") if recorder is not None else None
            if running is not None:
                record.worker_slot_seconds = round(sum(end - start for start, end in running), 2)
            if record.kept_job and (ended := new[record.kept_job].ended) is not None:
                began = new[record.kept_job].first_seen
                record.kept_job_seconds = round(ended - began, 2)
                if running is not None:
                    record.worker_slot_seconds_while_job_ran = round(
                        sum(max(0.0, min(end, ended) - max(start, began)) for start, end in running), 2
                    )
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


class TierStrike:
    """
    One strike on the triggerer tier under several deferred task instances at once.

    The pairs race side by side on one triggerer tier, so a triggerer strike hits every trigger on
    it: rather than pretend otherwise, each triggerer disruption is one strike under one task
    instance of every pair (all upstream, then all ours), and each counts it as its disruption.
    Every party :meth:`join` s once its trigger runs; once all are in, :meth:`strike_when_all_in`
    strikes (as the drill does: :mod:`airflow.providers.resumable.drill.triggerers`), and the parties
    return once every trigger has moved to the new triggerer or its task has stopped waiting on one.

    :param stack: the bench's stack (started with one triggerer; left with one).
    :param kind: a triggerer kind.
    :param parties: how many task instances take the strike.
    :param say: the bench's progress line.
    """

    JOIN_TIMEOUT_SECONDS = 300.0
    """How long a party waits for the others: every pair's task started, submitted and deferred."""

    def __init__(
        self, stack: AirflowStack, kind: DisruptionKind, *, parties: int, say: Callable[[str], None]
    ) -> None:
        self.stack = stack
        self.kind = kind
        self.say = say
        self.error: str | None = None
        self.parties = parties
        self._deferred: list[tuple[str, str, int]] = []
        self._aborted = False
        self._all_in = threading.Condition()
        self._struck = threading.Event()

    def join(self, dag_id: str, run_id: str) -> None:
        """Wait until this task's trigger runs, then for the strike (once all are in) to pass."""
        triggerer = wait_for_trigger(self.stack, dag_id, run_id, timeout=180)
        with self._all_in:
            self._deferred.append((dag_id, run_id, triggerer))
            self._all_in.notify_all()
        if not self._struck.wait(timeout=self.JOIN_TIMEOUT_SECONDS + MOVE_TIMEOUT_SECONDS + 60):
            raise RuntimeError(f"the {self.kind.value} strike never came")
        if self.error is not None:
            raise RuntimeError(self.error)

    def abort(self) -> None:
        """A party failed before joining: strike no one (the others' strike is reported missed)."""
        with self._all_in:
            self._aborted = True
            self._all_in.notify_all()

    def strike_when_all_in(self) -> None:
        """Wait until every party's trigger runs, strike once, and release the parties."""
        with self._all_in:
            all_in = self._all_in.wait_for(
                lambda: self._aborted or len(self._deferred) == self.parties,
                timeout=self.JOIN_TIMEOUT_SECONDS,
            )
            if self._aborted or not all_in:
                self.error = f"missed: not every task was deferred for the {self.kind.value} strike"
        try:
            if self.error is None:
                self._strike()
        finally:
            self._struck.set()

    def _strike(self) -> None:
        stack = self.stack
        self.say(f"{self.kind.value}: striking the triggerer tier under {len(self._deferred)} deferred tasks")
        try:
            if self.kind is DisruptionKind.TRIGGERER_FREEZE_MOVES:
                frozen = stack.live_triggerers()
                stack.start_triggerer()
                for name in frozen:  # a frozen pod: the triggerer and its trigger runner together
                    stack.signal_triggerer(name, signal.SIGSTOP, whole_group=True)
                try:
                    self._wait_moved()
                finally:
                    for name in frozen:
                        stack.signal_triggerer(name, signal.SIGCONT, whole_group=True)
                time.sleep(THAW_SECONDS)  # the thawed triggerer finds its triggers gone: on_kill
                for name in frozen:  # back to one triggerer for the next strike
                    stack.signal_triggerer(name, signal.SIGTERM, whole_group=False)
                    stack.wait_for_triggerer_exit(name)
                return
            # SIGKILL: a node lost, trigger runner included; SIGTERM: a redeploy stops the triggerer.
            signum = signal.SIGKILL if self.kind is DisruptionKind.TRIGGERER_SIGKILL else signal.SIGTERM
            for name in stack.live_triggerers():
                stack.signal_triggerer(name, signum, whole_group=signum == signal.SIGKILL)
                stack.wait_for_triggerer_exit(name)
            stack.start_triggerer()
            self._wait_moved()
        except Exception as err:  # reported by every party; the bench carries on
            self.error = f"the {self.kind.value} strike failed: {type(err).__name__}: {err}"

    def _wait_moved(self) -> None:
        def moved() -> bool | None:
            for dag, run_id, before in self._deferred:
                trigger = self.stack.trigger_of(dag, run_id, TASK_ID)
                if trigger is not None and trigger[1] in (None, before):
                    return None  # still on the struck triggerer, or not picked up yet
            return True

        poll_until(moved, timeout=MOVE_TIMEOUT_SECONDS, describe=lambda: "every trigger to move")


def _intervals_in(history: Sequence[Any], state: str) -> list[tuple[float, float]]:
    """When the samples were in ``state`` (monotonic; a state held at the last sample lasts until now)."""
    return [
        (change.monotonic, following.monotonic if following is not None else time.monotonic())
        for change, following in zip(history, [*history[1:], None], strict=True)
        if change.state == state
    ]


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
