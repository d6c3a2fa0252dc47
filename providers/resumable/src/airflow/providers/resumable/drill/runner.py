# Licensed under the Apache License, Version 2.0.
"""
Carry out a drill plan on a real Airflow stack and check every disruption for exactly-once.

Each cloud's disruptions run ``concurrency`` at a time (one after another by default) against that
cloud's own fake, and the clouds run side by side. Jobs are attributed to a task instance by the
ledger's nonce, which prefixes every idempotency key it ever sent; a fault queued on a fake, or a
submit held open on it, belongs to whichever request comes next, so a disruption that sets one up has
its fake to itself until its task instance took it (:mod:`airflow.providers.resumable.drill.concurrency`).

On the LocalExecutor a strike signals the task's own processes; on Celery (``executor="celery"``) it
does to the worker running the task what production does to a Celery worker, and brings the worker
back (:mod:`airflow.providers.resumable.drill.celery_strikes`).

Given :class:`~airflow.providers.resumable.drill.real_clouds.RealTarget` s, the same runner drills
your own workspace, account or project instead of a fake: only the kinds that need no fault
injection, counted through the cloud's own API
(:mod:`airflow.providers.resumable.drill.real_clouds`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import TextIO, TypeVar

from airflow.providers.resumable.checkpoint import worker_loss_checkpoints_available
from airflow.providers.resumable.drill.celery_strikes import CeleryWorkerStrikes
from airflow.providers.resumable.drill.concurrency import (
    AloneTurn,
    FakeGate,
    SharedTurn,
    needs_every_request_alone,
    needs_the_fake_alone,
    shares_the_fake_after_its_setup,
)
from airflow.providers.resumable.drill.interruption import Interruption
from airflow.providers.resumable.drill.naming import (
    DRILL_TASK_ID,
    drill_conn_id,
    drill_dag_id,
    drill_job_env,
)
from airflow.providers.resumable.drill.plan import Disruption, DisruptionKind, Expectation, plan_drill
from airflow.providers.resumable.drill.real_clouds import (
    DrillConfigError,
    RealTarget,
    connection_env_value,
    real_cloud,
)
from airflow.providers.resumable.drill.triggerers import strike_triggerers, wait_for_trigger
from airflow.providers.resumable.drill.worker_strikes import (
    LocalWorkerStrikes,
    StrikeTarget,
    WorkerStrikes,
)
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.celery_stack import WORKERS, CeleryAirflowStack
from airflow.providers.resumable.testing.clouds import (
    FakeCloud,
    FakeDatabricksCloud,
    FakeDataprocCloud,
    FakeEmrCloud,
)
from airflow.providers.resumable.testing.protocols import DrillCloud, DrilledTask
from airflow.providers.resumable.testing.stack import EXECUTORS, AirflowStack, StackSettings, leave_home

T = TypeVar("T")

_DRILL_DAGS = Path(__file__).with_name("drill_dags.py")
"""The drill's DAG file, copied into the stack's dags folder (found by path: importing it here would
import the operators into the runner)."""

DRILL_JOB_SECONDS = 6.0
"""How long each fake job runs: long enough to strike while it runs, short enough for many drills."""
TRIGGERER_DRILL_JOB_SECONDS = 75.0
"""How long a fake job runs under a triggerer strike: a strike waits its turn on the one triggerer tier
(another cloud's freeze takes up to a minute) and a trigger takes the health-check threshold to move."""
DRILL_HEARTBEAT_TIMEOUT_SECONDS = 10
"""The drill stack's task heartbeat timeout: a SIGKILLed or frozen worker is declared lost after it."""
STALL_PAST_HEARTBEAT_TIMEOUT_SECONDS = 15.0
"""How long a ``heartbeat_stall`` keeps the worker frozen beyond the heartbeat timeout."""
ORPHAN_WAIT_SECONDS = 45.0
"""How long after its task instance ended a job may still run before it counts as orphaned: the job
reaper's grace period (15 s) and sweep (5 s), with room for a loaded machine."""
PERSON_RETRIES = 5
"""How often the drill's person marks a task failed, or clears it, again when the API answers 5xx: on
sqlite under a drill's load the audit log's write, committed before the route runs, can wait out the
busy timeout (seen in CI, for both: HTTP 500 'Database error', the mark or clear never made, the job
left to run)."""
CELERY_DRILL_JOB_SECONDS = 60.0
"""How long each fake job runs on Celery: a whole-worker strike there may wait its turn while others
are brought back (a worker takes 10 to 40 s to start on a busy machine), and must still land while
the job runs."""
CELERY_HEARTBEAT_TIMEOUT_SECONDS = 15
"""The Celery stack's task heartbeat timeout: a little longer than the LocalExecutor's, since a loaded
Celery stack (a worker starting up beside running tasks) delays heartbeats more."""
CELERY_VISIBILITY_ENV = {
    # A message of a worker that was lost (or shut down before acking a prefetched one) goes back on
    # the queue after 30 s instead of the celery provider's default 24 hours, so its task instance
    # is not stuck queued.
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "30",
    # kombu sweeps for such messages every interval x throttle seconds (100 s by default).
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__UNACKED_RESTORE_INTERVAL": "2",
    "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__UNACKED_RESTORE_THROTTLE": "1",
}
LANE_STAGGER_SECONDS = 20.0
"""With ``concurrency`` above 1, how far apart each cloud's lanes (its disruptions in flight) start."""
SETUP_TAKEN_TIMEOUT_SECONDS = 60.0
"""How long a disruption that needs its fake alone waits for its task to take the faults it queued."""
INTERRUPTED_EXIT_CODE = 130
"""What an interrupted drill exits with (SIGTERM or Ctrl-C before every disruption finished): what a
shell reports for a command stopped by Ctrl-C, as the demo and the benches exit too. Not a pass, and
not 1 either: the disruptions that finished may all be ok."""
_WATCH_SECONDS = 0.2
"""How often the main thread looks at the lanes and at the signals received."""

FAKE_CLOUDS: dict[str, type[FakeDatabricksCloud] | type[FakeEmrCloud] | type[FakeDataprocCloud]] = {
    "databricks": FakeDatabricksCloud,
    "emr": FakeEmrCloud,
    "dataproc": FakeDataprocCloud,
}
"""The clouds a drill can run against fakes."""
REAL_DISRUPTIONS_PER_CLOUD = 3
"""The default count against a real deployment: every disruption starts (and pays for) a real job."""


@dataclass(frozen=True)
class DisruptionResult:
    """What one disruption did to its task instance."""

    disruption: Disruption
    run_id: str
    final_state: str
    jobs: tuple[str, ...]
    """Jobs the cloud created for this task instance (any generation of its ledger's key)."""
    job_in_ledger: str | None
    cancellations: int
    try_number: int
    checkpoints: int
    """Times the attempt ended as a checkpoint (``checkpointed`` or the ``up_for_reschedule`` fallback)."""
    seconds: float
    error: str | None = None
    orphans: int = 0
    """Jobs still running :data:`ORPHAN_WAIT_SECONDS` after their task instance ended."""
    deferred: bool = False
    """(``--deferrable``) The try handed its job to the triggerer: a SIGTERM that lands just after the
    submit ends the attempt by deferring, a safe point like a checkpoint (no worker is needed then)."""
    collateral: tuple[int, ...] = ()
    """Other disruptions (by number) whose strike on a whole Celery worker also hit this task instance.
    Their checkpoints count for nothing here, and the verdict is the same: the promise holds for every
    task on a struck worker."""

    @property
    def duplicates(self) -> int:
        return max(0, len(self.jobs) - 1)

    @property
    def expected(self) -> Expectation:
        return self.disruption.kind.expected

    @property
    def retries_used(self) -> int:
        return max(0, self.try_number - self.expected.try_number)

    @property
    def shutdown_cancellations(self) -> int:
        """Cancels nobody asked for: any cancel, unless a person's decision ended the task."""
        return 0 if self.expected.job_cancelled else self.cancellations

    @property
    def lost(self) -> bool:
        """The run did not end as it must: in success with the job the ledger records, or (after a
        person's decision) in failure with its one job cancelled exactly once."""
        if self.final_state != self.expected.dag_run_state or self.job_in_ledger not in self.jobs:
            return True
        return self.expected.job_cancelled and self.cancellations != 1

    @property
    def missed(self) -> bool:
        """A worker shutdown that never turned into a checkpoint (or a deferral): the strike did not land."""
        return self.disruption.kind.shuts_the_worker_down and self.checkpoints == 0 and not self.deferred

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and not self.missed
            and self.duplicates == 0
            and self.shutdown_cancellations == 0
            and self.retries_used == 0
            and self.orphans == 0
            and not self.lost
        )

    def verdict(self) -> str:
        if self.ok:
            return "ok"
        problems = [
            f"{self.duplicates} duplicate(s)" if self.duplicates else "",
            f"{self.shutdown_cancellations} cancellation(s)" if self.shutdown_cancellations else "",
            f"{self.retries_used} retry(ies) used" if self.retries_used else "",
            f"{self.orphans} orphaned job(s)" if self.orphans else "",
            "run lost" if self.lost else "",
            "no checkpoint (nor deferral) after the SIGTERM" if self.missed else "",
            self.error or "",
        ]
        return "FAILED: " + "; ".join(p for p in problems if p)


class Unfinished(Enum):
    """Why a planned disruption has no result; the value is its verdict in the results table."""

    OUT_OF_TIME = "FAILED: out of time"
    """Not started: the drill's ``--timeout`` had passed. A failure: the plan was not carried out."""
    INTERRUPTED = "not run: interrupted"
    """Not started: the drill was interrupted before its turn."""
    ABANDONED = "not finished: abandoned when interrupted"
    """Started, but the drill was interrupted and stopped waiting for it (a second signal, or it
    outlived its own time limit after the first)."""

    @property
    def final_state(self) -> str:
        """What the results table says of its run."""
        return "in flight" if self is Unfinished.ABANDONED else "not run"


@dataclass(frozen=True)
class PlanOutcome:
    """What a drill's plan came to: the results of the disruptions that finished, and why the others have none."""

    results: list[DisruptionResult]
    """In plan order."""
    unfinished: dict[int, Unfinished]
    """By disruption number."""

    @property
    def interrupted(self) -> bool:
        """A signal cut the plan short (one that came after everything finished did not)."""
        return any(why is not Unfinished.OUT_OF_TIME for why in self.unfinished.values())

    def count(self, why: Unfinished) -> int:
        """
        Disruptions left unfinished for ``why``.

        :param why: the cause.
        """
        return sum(cause is why for cause in self.unfinished.values())


def default_kinds(*, deferrable: bool = False, executor: str = "local") -> list[DisruptionKind]:
    """Every kind this Airflow can come through without using a retry, for a task polling from the
    worker, or (``deferrable``) from the triggerer: the triggerer kinds instead of those that strike a
    polling worker; on Celery (``executor="celery"``) with the kinds only a Celery worker meets.

    A SIGKILL leaves nothing running to checkpoint: a stock Airflow 3.3.2 fails the task once its
    heartbeat times out; with the core patch, a task that declared itself resumable is checkpointed
    instead, so the SIGKILL kinds are drilled by default there. A SIGTERM while Airflow is still
    loading the task's DAG kills the task process before its SIGTERM handler exists: a stock
    supervisor fails the task, the patched one checkpoints it, so that kind too is drilled by
    default only where the core patch is applied.
    """
    worker_loss_checkpoints = worker_loss_checkpoints_available()
    return [
        kind
        for kind in DisruptionKind
        if not kind.costs_a_retry(worker_loss_checkpoints=worker_loss_checkpoints)
        and (kind.strikes_a_deferred_task if deferrable else not kind.disrupts_the_triggerer)
        and (executor == "celery" or not kind.celery_only)
    ]


def default_real_kinds(*, deferrable: bool = False) -> list[DisruptionKind]:
    """:func:`default_kinds` that need no fault injection: what a real cloud can be drilled with."""
    return [kind for kind in default_kinds(deferrable=deferrable) if not kind.needs_fault_injection]


def check_drill_request(
    clouds: Sequence[str],
    kinds: Sequence[DisruptionKind] | None,
    real: Mapping[str, RealTarget],
    *,
    deferrable: bool = False,
    executor: str = "local",
    concurrency: int = 1,
) -> list[DisruptionKind]:
    """
    Refuse a drill that cannot run, before anything starts; return the kinds it will draw from.

    :param clouds: the clouds asked for.
    :param kinds: the kinds asked for (``None``: the defaults for fakes, or for real clouds).
    :param real: the clouds to drill on a real deployment, by name (the others run on fakes).
    :param deferrable: the drilled tasks poll from the triggerer (``--deferrable``).
    :param executor: ``local`` or ``celery`` (:data:`~airflow.providers.resumable.testing.stack.EXECUTORS`).
    :param concurrency: task instances of each cloud in flight at once.
    """
    unknown = [cloud for cloud in clouds if cloud not in FAKE_CLOUDS]
    if unknown:
        raise DrillConfigError(f"unknown cloud {', '.join(unknown)}; known: {', '.join(FAKE_CLOUDS)}")
    if executor not in EXECUTORS:
        raise DrillConfigError(f"unknown executor {executor!r}; choose from {', '.join(EXECUTORS)}")
    if concurrency < 1:
        raise DrillConfigError(f"--concurrency must be at least 1, got {concurrency}")
    if executor == "celery" and (deferrable or real):
        raise DrillConfigError(
            "--executor celery drills the fakes with tasks polling from the worker: drop "
            + ("--deferrable" if deferrable else "--conn/--job")
        )
    celery_only = [kind.value for kind in kinds or () if kind.celery_only and executor != "celery"]
    if celery_only:
        raise DrillConfigError(f"{', '.join(celery_only)} strike(s) a Celery worker: add --executor celery")
    misfit = [
        kind.value
        for kind in kinds or ()
        if (not kind.strikes_a_deferred_task if deferrable else kind.disrupts_the_triggerer)
    ]
    if misfit:
        raise DrillConfigError(
            f"{', '.join(misfit)} cannot strike a task that polls from the "
            + ("triggerer (drop --deferrable for it)" if deferrable else "worker (add --deferrable for it)")
        )
    if not real:
        return list(kinds or default_kinds(deferrable=deferrable, executor=executor))
    fakes = [cloud for cloud in clouds if cloud not in real]
    if fakes:
        raise DrillConfigError(
            f"{', '.join(fakes)} has no --conn/--job: a drill against your deployment runs only the clouds "
            "you give a connection and a job spec (drill the fakes in a separate run)"
        )
    faulty = [kind.value for kind in kinds or () if kind.needs_fault_injection]
    if faulty:
        raise DrillConfigError(
            f"{', '.join(faulty)} need(s) fault injection, which only the fakes can do; against a real "
            "cloud choose from "
            + ", ".join(kind.value for kind in DisruptionKind if not kind.needs_fault_injection)
        )
    return list(kinds or default_real_kinds(deferrable=deferrable))


class Printer:
    """Thread-safe lines with the elapsed time."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            self.out.write(f"[{time.monotonic() - self.started:6.1f}s] {text}\n")
            self.out.flush()


def run_drill(
    *,
    disruptions_per_cloud: int,
    clouds: Sequence[str],
    seed: int,
    kinds: Sequence[DisruptionKind] | None = None,
    timeout: float = 1800.0,
    out: TextIO = sys.stdout,
    real: Mapping[str, RealTarget] | None = None,
    kinds_across_clouds: bool = False,
    on_every_cloud: Sequence[DisruptionKind] = (),
    deferrable: bool = False,
    executor: str = "local",
    concurrency: int = 1,
    results_sink: list[DisruptionResult] | None = None,
) -> int:
    """
    Plan and run a drill on a private Airflow stack, against fake clouds or your own deployment; 0
    when every disruption passed, 1 otherwise, :data:`INTERRUPTED_EXIT_CODE` when interrupted.

    The first SIGTERM or Ctrl-C (SIGINT) while the disruptions run starts no new one and waits for
    those in flight, up to their own time limit (the run's, and the orphan check's); a second one
    stops waiting. Either way the results of the disruptions that finished are printed (and put in
    ``results_sink``), the others marked as not run or abandoned, and the stack is stopped. A signal
    while the stack starts stops it at once. The stack's Airflow home is removed at the end, or kept
    (and its path printed) when a disruption failed.

    :param disruptions_per_cloud: disruptions per cloud.
    :param clouds: the clouds to drill (names in :data:`FAKE_CLOUDS`).
    :param seed: the plan's seed, printed so a failing drill can be replayed.
    :param kinds: the kinds to draw from (default: :func:`default_kinds`, or
        :func:`default_real_kinds` against a real deployment).
    :param timeout: seconds for the whole drill; disruptions not started by then count as failed.
    :param out: where the progress and the results table go.
    :param real: the clouds to drill on your deployment (from
        :func:`~airflow.providers.resumable.drill.real_clouds.real_targets`); every cloud drilled must
        have one then. Raises :class:`~airflow.providers.resumable.drill.real_clouds.DrillConfigError`
        for a drill that cannot run, before anything starts.
    :param kinds_across_clouds: every kind once in all, dealt to the clouds, instead of
        ``disruptions_per_cloud`` each (see :func:`~airflow.providers.resumable.drill.plan.plan_drill`).
    :param on_every_cloud: with ``kinds_across_clouds``, the kinds that still run on every cloud.
    :param deferrable: drill the deferrable DAGs (``deferrable=True``: polling from a triggerer the
        stack starts), with the triggerer kinds.
    :param executor: ``"local"`` (the LocalExecutor on sqlite) or ``"celery"`` (Postgres, Redis and
        Celery workers, the drain-aware configuration line; the Celery-only kinds are added, and
        strikes hit the worker running the task: see :mod:`~airflow.providers.resumable.drill.celery_strikes`).
    :param concurrency: task instances of each cloud in flight at once (the fault kinds still have
        their fake to themselves until their task took the fault).
    :param results_sink: where to put the result of every disruption that finished too (a benchmark
        tabulates them; after an interruption, only those).
    """
    real = dict(real or {})
    kinds = check_drill_request(
        clouds, kinds, real, deferrable=deferrable, executor=executor, concurrency=concurrency
    )
    plan = plan_drill(
        disruptions_per_cloud=disruptions_per_cloud,
        clouds=clouds,
        kinds=kinds,
        seed=seed,
        kinds_across_clouds=kinds_across_clouds,
        on_every_cloud=on_every_cloud,
    )
    printer = Printer(out)
    spread = "every kind once, across" if kinds_across_clouds else f"{disruptions_per_cloud} per cloud on"
    if kinds_across_clouds and on_every_cloud:
        spread = f"every kind once, {', '.join(kind.value for kind in on_every_cloud)} on each cloud, across"
    at_once = f", {concurrency} at a time per cloud" if concurrency > 1 else ""
    printer.line(
        f"drill: {len(plan)} disruptions ({spread} {', '.join(clouds)}{at_once}), seed {seed} "
        f"(replay with --seed {seed})"
    )
    for target in real.values():
        printer.line(f"{target.describe()}; every disruption starts one real job")
    interruption = Interruption()
    home = Path(tempfile.mkdtemp(prefix="airflow-resumable-drill-"))
    try:
        with interruption.installed(), ExitStack() as cleanup:
            job_seconds = CELERY_DRILL_JOB_SECONDS if executor == "celery" else DRILL_JOB_SECONDS
            fakes: dict[str, FakeCloud] = {
                name: FAKE_CLOUDS[name](run_seconds=job_seconds) for name in clouds if name not in real
            }
            emr = fakes.get("emr")
            if isinstance(emr, FakeEmrCloud):
                # EMR runs a cluster's steps one at a time unless told otherwise: N task instances in
                # flight need StepConcurrencyLevel N, or their steps queue and the operators' waiters
                # give up (seen: "still PENDING after 60 polls").
                emr.step_concurrency = concurrency
            stack = _start_stack(
                printer,
                cleanup,
                home,
                len(clouds),
                _real_env(real),
                deferrable=deferrable,
                executor=executor,
                concurrency=concurrency,
            )
            # After the stack: its components are forked from this process, and a fork while the
            # Dataproc fake's gRPC threads run can abort the child (seen: the dag processor died
            # with SIGABRT, "epoll_wait error: Bad file descriptor").
            for fake in fakes.values():
                fake.start()
                cleanup.callback(fake.stop)
            drilled: dict[str, DrillCloud] = {**fakes, **{name: real_cloud(t) for name, t in real.items()}}
            _deploy(printer, stack, fakes, [drill_dag_id(name, deferrable=deferrable) for name in clouds])
            strikes: WorkerStrikes = (
                CeleryWorkerStrikes(stack)
                if isinstance(stack, CeleryAirflowStack)
                else LocalWorkerStrikes(stack)
            )
            cleanup.callback(strikes.close)  # before the stack stops: a worker may be coming back
            outcome = _run_plan(
                printer,
                stack,
                drilled,
                plan,
                deadline=time.monotonic() + timeout,
                deferrable=deferrable,
                strikes=strikes,
                interruption=interruption,
                concurrency=concurrency,
            )
            if outcome.interrupted:
                printer.line("stopping the stack")
            recovery_errors = list(getattr(strikes, "errors", ()))
    except KeyboardInterrupt:
        printer.line(
            f"drill interrupted ({interruption.describe()}) before any disruption started; "
            "every process it started was stopped"
        )
        leave_home(home, say=printer.line, keep=False)
        return INTERRUPTED_EXIT_CODE
    results = outcome.results
    if results_sink is not None:
        results_sink.extend(results)
    _print_results(out, outcome, plan)
    passed = sum(result.ok for result in results)
    failed = len(plan) - passed  # a disruption that never ran (out of time) has failed too
    for problem in recovery_errors:
        printer.line(f"worker recovery: {problem}")
    unquiet = list(getattr(strikes, "unquiet_strikes", ()))
    if unquiet:
        # Not a failure in itself: the results say whether any task paid for it.
        printer.line(
            f"strikes without a quiet moment (a task still starting may have been stopped): "
            f"#{', #'.join(map(str, sorted(unquiet)))}"
        )
    failed += len(recovery_errors)
    totals = (
        f"duplicates {sum(r.duplicates for r in results)}, shutdown "
        f"cancellations {sum(r.shutdown_cancellations for r in results)}, lost runs "
        f"{sum(r.lost for r in results)}, retries used {sum(r.retries_used for r in results)}, "
        f"orphans {sum(r.orphans for r in results)} (seed {seed})"
    )
    if outcome.interrupted:
        abandoned = outcome.count(Unfinished.ABANDONED)
        if abandoned and real:
            printer.line(
                f"the jobs of the {abandoned} abandoned disruption(s) may still run on your deployment"
            )
        printer.line(
            f"drill INTERRUPTED ({interruption.describe()}) after {len(results)} of {len(plan)} "
            f"disruptions ({abandoned} abandoned in flight, "
            f"{len(plan) - len(results) - abandoned} not run): {passed}/{len(results)} finished ok; {totals}"
        )
        leave_home(home, say=printer.line, keep=passed < len(results) or bool(recovery_errors))
        return INTERRUPTED_EXIT_CODE
    printer.line(
        f"drill {'PASSED' if not failed else 'FAILED'}: {passed}/{len(plan)} disruptions ok; {totals}"
    )
    leave_home(home, say=printer.line, keep=bool(failed))
    return 0 if not failed else 1


def _real_env(real: Mapping[str, RealTarget]) -> dict[str, str]:
    """The stack's view of the user's deployment: each connection under the drill's id, each job spec."""
    env = {}
    for name, target in real.items():
        env[f"AIRFLOW_CONN_{drill_conn_id(name).upper()}"] = connection_env_value(target.connection)
        env[drill_job_env(name)] = json.dumps(target.job)
    return env


def heartbeat_timeout(executor: str) -> int:
    """The drill stack's task heartbeat timeout on ``executor``: a lost or frozen worker is noticed then.

    :param executor: ``local`` or ``celery``.
    """
    return CELERY_HEARTBEAT_TIMEOUT_SECONDS if executor == "celery" else DRILL_HEARTBEAT_TIMEOUT_SECONDS


def celery_workers(concurrency: int) -> tuple[str, ...]:
    """
    The Celery workers of a drill stack: two for one task instance per cloud at a time, one more per
    two more in flight (five at most), so whole-worker strikes, which take turns keeping one worker
    up, can overlap as the rate of strikes grows.

    :param concurrency: task instances of each cloud in flight at once.
    """
    extra = min(concurrency // 2, 3)
    return (*WORKERS, *(f"worker-{letter}" for letter in "cde"[:extra]))


def _start_stack(
    printer: Printer,
    cleanup: ExitStack,
    home: Path,
    clouds: int,
    env: Mapping[str, str],
    *,
    deferrable: bool,
    executor: str = "local",
    concurrency: int = 1,
) -> AirflowStack:
    components = "scheduler, API server, dag processor" + (", triggerer" if deferrable else "")
    in_flight = clouds * concurrency
    workers = celery_workers(concurrency)
    flavour = (
        f"CeleryExecutor with {', '.join(workers)}, Postgres, Redis"
        if executor == "celery"
        else "LocalExecutor, sqlite"
    )
    printer.line(f"starting Airflow ({components}; {flavour}) in {home}")
    settings = StackSettings(
        triggerers=1 if deferrable else 0,
        # A task slot per drilled task instance in flight, plus headroom for resumes.
        parallelism=max(4, 2 * in_flight),
        # A SIGKILLed worker is noticed after this long (workers heartbeat every 2 s).
        task_heartbeat_timeout_seconds=heartbeat_timeout(executor),
        # A worker-loss checkpoint resumes after the resume_after the operator declared; this default
        # is for a task its worker's shutdown stopped before any attempt of the try could declare one.
        # Connections and job specs of a real deployment travel in the environment: never on disk.
        extra_env={
            "AIRFLOW__CORE__DEFAULT_CHECKPOINT_RESUME_AFTER": "10",
            **(CELERY_VISIBILITY_ENV if executor == "celery" else {}),
            **env,
        },
    )
    stack: AirflowStack
    if executor == "celery":
        # Each worker can take every task in flight: the others may all be down at once but one.
        stack = CeleryAirflowStack(home, settings, worker_concurrency=in_flight + 2, workers=workers)
    else:
        stack = AirflowStack(home, settings, python=Path(sys.executable))
    cleanup.callback(stack.stop)
    stack.start()
    return stack


def _deploy(
    printer: Printer, stack: AirflowStack, fakes: Mapping[str, FakeCloud], dag_ids: Sequence[str]
) -> None:
    for name, fake in fakes.items():
        stack.put_connection(fake.connection(drill_conn_id(name)))
    stack.add_dag_file(_DRILL_DAGS)
    for dag_id in dag_ids:
        stack.wait_for_dag(dag_id)
    printer.line(f"stack up at {stack.base_url}; drill DAGs parsed")


class _Lanes:
    """
    What the lanes of a running plan share: what is in flight, what finished, what was given up, and
    whether the report is out (after which a lane adds nothing: what it ran was abandoned).
    """

    def __init__(self, plan: Sequence[Disruption], clouds: Sequence[str], concurrency: int) -> None:
        self.lock = threading.Lock()
        self.queues = {name: [d for d in plan if d.cloud == name] for name in clouds}
        self.results: list[DisruptionResult] = []
        self.in_flight: set[int] = set()
        self.unfinished: dict[int, Unfinished] = {}
        self.failures: list[Exception] = []
        self.running = len(clouds) * concurrency
        self.reported = False
        self.over = threading.Event()

    def next_of(self, name: str, *, deadline: float, interruption: Interruption) -> Disruption | None:
        """
        The cloud's next disruption, in plan order; ``None`` when the lane should end.

        :param name: the cloud.
        :param deadline: past it, the cloud's remaining disruptions are out of time.
        :param interruption: once requested, nothing more is handed out.
        """
        with self.lock:
            queue = self.queues[name]
            if interruption.requested or not queue:
                return None
            if time.monotonic() > deadline:
                self.unfinished.update(dict.fromkeys((d.number for d in queue), Unfinished.OUT_OF_TIME))
                queue.clear()
                return None
            return queue.pop(0)

    def start(self, disruption: Disruption, interruption: Interruption) -> bool:
        """
        Whether ``disruption`` may start now that its turn came (not once the drill is stopping).

        :param disruption: the disruption whose turn it is.
        :param interruption: the drill's signals.
        """
        with self.lock:  # under the lock: the report's list of what was in flight is then exact
            if interruption.requested or self.reported:
                return False
            self.in_flight.add(disruption.number)
            return True

    def finished(self, result: DisruptionResult) -> int | None:
        """
        Keep ``result``; how many have finished, or ``None`` when the report is out already.

        :param result: a disruption's result.
        """
        with self.lock:
            if self.reported:
                return None
            self.in_flight.discard(result.disruption.number)
            self.results.append(result)
            return len(self.results)

    def lane_ended(self, failure: Exception | None) -> None:
        """
        A lane has nothing more to run.

        :param failure: what it raised, if anything.
        """
        with self.lock:
            self.running -= 1
            if failure is not None:
                self.failures.append(failure)

    def report(self, plan: Sequence[Disruption], interruption: Interruption) -> PlanOutcome:
        """
        Close the plan: what finished, and why every other disruption did not.

        :param plan: the drill's plan.
        :param interruption: the drill's signals.
        """
        with self.lock:
            self.reported = True
            finished = {r.disruption.number for r in self.results}
            stopped = Unfinished.INTERRUPTED if interruption.requested else Unfinished.OUT_OF_TIME
            for disruption in plan:
                if disruption.number in self.in_flight:
                    self.unfinished[disruption.number] = Unfinished.ABANDONED
                elif disruption.number not in finished:
                    self.unfinished.setdefault(disruption.number, stopped)
            outcome = PlanOutcome(
                sorted(self.results, key=lambda r: r.disruption.number), dict(self.unfinished)
            )
        self.over.set()
        return outcome


def _run_plan(
    printer: Printer,
    stack: AirflowStack,
    clouds: Mapping[str, DrillCloud],
    plan: list[Disruption],
    *,
    deadline: float,
    deferrable: bool,
    strikes: WorkerStrikes,
    interruption: Interruption,
    concurrency: int = 1,
) -> PlanOutcome:
    """
    Run each cloud's disruptions on ``concurrency`` lanes, the clouds side by side, until the plan is
    done, ``deadline`` has passed, or ``interruption`` says stop (see :func:`run_drill`).

    The lanes are daemon threads: one abandoned after an interruption must not keep the process alive
    (its calls may wait minutes on a stack that has stopped).

    :param printer: where the progress goes.
    :param stack: the drill's stack.
    :param clouds: the clouds drilled, by name.
    :param plan: the disruptions, in plan order.
    :param deadline: ``time.monotonic()`` after which no disruption starts (they are out of time).
    :param deferrable: the drilled tasks poll from the triggerer.
    :param strikes: what a strike does on this executor.
    :param interruption: the drill's signals; from now on they are only counted.
    :param concurrency: lanes per cloud.
    """
    interruption.count_only()
    lanes = _Lanes(plan, list(clouds), concurrency)
    gates = {name: FakeGate() for name in clouds}

    def drill_cloud(name: str, lane: int) -> None:
        # A cloud's lanes start apart: disruptions started together strike together, and whole-worker
        # strikes take turns, so a late turn could come after its job ended.
        interruption.sleep(lane * LANE_STAGGER_SECONDS)
        while disruption := lanes.next_of(name, deadline=deadline, interruption=interruption):
            result = _execute_in_turn(
                stack,
                clouds[name],
                disruption,
                gates[name],
                strikes,
                deferrable,
                may_start=lambda d: lanes.start(d, interruption),
            )
            if result is None:
                return  # the drill was interrupted while it waited for its turn on the fake
            done = lanes.finished(result)
            if done is None:
                return  # abandoned: the results are out already
            bar = "#" * (20 * done // len(plan))
            hit = f" (also hit by #{', #'.join(map(str, result.collateral))})" if result.collateral else ""
            printer.line(
                f"[{bar:<20}] {done}/{len(plan)}  #{disruption.number} {name} {disruption.kind.value}: "
                f"{result.verdict()} ({result.seconds:.0f}s){hit}"
            )

    def lane(name: str, number: int) -> None:
        failure: Exception | None = None
        try:
            drill_cloud(name, number)
        except Exception as err:  # raised by the main thread once the lanes are done, as before
            failure = err
        finally:
            lanes.lane_ended(failure)
            # Alive until the plan is over: a process this thread started (a strike's new triggerer)
            # gets PR_SET_PDEATHSIG when the thread that forked it ends, not the whole process.
            lanes.over.wait()

    for name in clouds:
        for number in range(concurrency):
            threading.Thread(
                target=lane, args=(name, number), name=f"drill-{name}-{number}", daemon=True
            ).start()
    try:
        # Their own time limit: the run's, then the orphan check's.
        grace = max(cloud.run_timeout for cloud in clouds.values()) + ORPHAN_WAIT_SECONDS
        abandoned = _watch(printer, lanes, interruption, grace)
    finally:
        outcome = lanes.report(plan, interruption)
    if lanes.failures and not abandoned:
        raise lanes.failures[0]
    return outcome


def _watch(printer: Printer, lanes: _Lanes, interruption: Interruption, grace: float) -> bool:
    """
    Wait for the lanes to end, saying what each signal does; whether the disruptions still in flight
    were abandoned (a second signal, or ``grace`` seconds passed since the first).

    :param printer: where to say it.
    :param lanes: the running plan's lanes.
    :param interruption: the drill's signals.
    :param grace: how long the disruptions in flight may take after the first signal.
    """
    signals_seen = 0
    while True:
        with lanes.lock:
            running, in_flight = lanes.running, len(lanes.in_flight)
        if not running:
            return False
        if interruption.signals != signals_seen:
            signals_seen = interruption.signals
            signal_name = interruption.describe()
            if interruption.abandon_in_flight:
                printer.line(f"{signal_name} again: abandoning the {in_flight} disruption(s) in flight")
                return True
            printer.line(
                f"{signal_name}: starting no new disruption; waiting for the {in_flight} in flight, "
                f"up to {grace:.0f} s ({signal_name} again abandons them)"
            )
        if interruption.first_at is not None and time.monotonic() - interruption.first_at > grace:
            printer.line(
                f"the {in_flight} disruption(s) in flight did not finish within {grace:.0f} s of the "
                "interruption: abandoning them"
            )
            return True
        time.sleep(_WATCH_SECONDS)


def _execute_in_turn(
    stack: AirflowStack,
    cloud: DrillCloud,
    disruption: Disruption,
    gate: FakeGate,
    strikes: WorkerStrikes,
    deferrable: bool,
    *,
    may_start: Callable[[Disruption], bool],
) -> DisruptionResult | None:
    """
    :func:`_execute`, alone on the cloud's fake while what it sets up there is not taken yet; ``None``
    when ``may_start`` says no once its turn came (the drill was interrupted while it waited).
    """
    kind = disruption.kind
    if cloud.faults is not None and needs_the_fake_alone(kind):
        with gate.alone(every_request=needs_every_request_alone(kind)) as turn:
            if not may_start(disruption):
                return None
            return _execute(stack, cloud, disruption, strikes=strikes, deferrable=deferrable, turn=turn)
    with gate.shared() as shared:
        if not may_start(disruption):
            return None
        return _execute(stack, cloud, disruption, strikes=strikes, deferrable=deferrable, shared=shared)


def _say_when_submitted(stack: AirflowStack, dag_id: str, run_id: str, shared: SharedTurn) -> None:
    """Tell the gate once the run's ledger names its job (polled gently, until the turn ends)."""

    def watch() -> None:
        while shared.before_submit:
            ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY)
            if ledger and ledger.get("external_id"):
                shared.submitted()
                return
            time.sleep(0.5)

    threading.Thread(target=watch, name=f"drill-submitted-{run_id}", daemon=True).start()


def _execute(
    stack: AirflowStack,
    cloud: DrillCloud,
    disruption: Disruption,
    *,
    deferrable: bool,
    strikes: WorkerStrikes | None = None,
    turn: AloneTurn | None = None,
    shared: SharedTurn | None = None,
) -> DisruptionResult:
    """Trigger one run, strike as planned, wait for the run to end, and account for its jobs."""
    strikes = strikes or LocalWorkerStrikes(stack)
    kind, faults = disruption.kind, cloud.faults
    dag_id = drill_dag_id(cloud.name, deferrable=deferrable)
    if kind.needs_fault_injection and faults is None:  # check_drill_request refuses this up front
        raise DrillConfigError(f"{kind.value} needs fault injection, which {cloud.name} cannot do")
    if faults is not None and kind is DisruptionKind.THROTTLE_STORM:
        faults.inject("throttle", times=disruption.times)
    elif faults is not None and kind is DisruptionKind.SERVER_ERRORS:
        faults.inject("server_error", times=disruption.times)
    elif faults is not None and kind is DisruptionKind.DROPPED_RESPONSE:
        faults.inject("drop_submit_response", times=1)
    elif faults is not None and kind is DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED:
        # The attempt's cancel on the clear, and the next try's before it would start another job.
        faults.inject("cancel_refused", times=2)
    if faults is not None and kind.is_a_persons_decision:
        faults.jobs_run_until_cancelled(True)  # else the job might end before anyone decides
    elif faults is not None and kind.disrupts_the_triggerer:
        # Long enough to still run when the strike comes (it may wait for another cloud's strike on
        # the one triggerer tier) and to be polled by the triggerer the trigger moves to.
        faults.jobs_run_for(TRIGGERER_DRILL_JOB_SECONDS)
    held = (
        faults.hold_next_submit()
        if faults is not None and kind is DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW
        else None
    )
    restored = False
    started, triggered_at = time.monotonic(), datetime.now(timezone.utc)
    run_id, final_state, error = "", "not started", None
    try:
        run_id = stack.trigger_dag(dag_id)
        final_state = "did not end"  # until the run is seen to end
        if shared is not None:
            _say_when_submitted(stack, dag_id, run_id, shared)
        try:
            _strike(stack, cloud, disruption, dag_id, run_id, held, triggered_at, strikes)
        except Exception as err:
            # The strike never landed (the moment never came, or the run ended before its turn):
            # a failure of the drill, but the run is still seen to its end and accounted for.
            error = f"strike missed: {type(err).__name__}: {err}"
        if faults is not None and turn is not None and shares_the_fake_after_its_setup(kind):
            # Its task took what it set up (its faults, its held submit, its endless job): the
            # cloud's other disruptions may come in for the rest of its run.
            _wait_for(
                lambda: faults.faults_pending() == 0 or None,
                what="the task to take its faults",
                timeout=SETUP_TAKEN_TIMEOUT_SECONDS,
                interval=0.1,
            )
            if kind.is_a_persons_decision:
                faults.jobs_run_until_cancelled(False)
                restored = True
            turn.share()
        final_state = stack.wait_for_dag_run(dag_id, run_id, timeout=cloud.run_timeout) or "unknown"
    except Exception as err:  # a drill reports what went wrong and carries on with the next one
        error = error or f"{type(err).__name__}: {err}"
    finally:
        if held is not None:
            held.set()
        if (
            faults is not None
            and not restored
            and (kind.is_a_persons_decision or kind.disrupts_the_triggerer)
        ):
            faults.jobs_run_until_cancelled(False)
    ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY) if run_id else None
    jobs: tuple[str, ...] = ()
    cancellations = orphans = 0
    if ledger:
        try:
            jobs = tuple(cloud.jobs_of(DrilledTask(dag_id, run_id, ledger["nonce"], triggered_at)))
            orphans = _orphans(cloud, jobs)
            cancellations = sum(cloud.cancellations_of(job) for job in jobs)
        except Exception as err:  # a real cloud's API can fail too: report it, never pass unaccounted
            error = error or f"accounting failed: {type(err).__name__}: {err}"
    rows = stack.db.task_instances(dag_id, run_id) if run_id else {}
    row = rows.get(DRILL_TASK_ID)
    return DisruptionResult(
        disruption=disruption,
        run_id=run_id,
        final_state=final_state,
        jobs=jobs,
        job_in_ledger=(ledger or {}).get("external_id"),
        cancellations=cancellations,
        try_number=row.try_number if row else 0,
        checkpoints=len(stack.db.task_reschedules(dag_id, run_id, DRILL_TASK_ID)) if run_id else 0,
        seconds=time.monotonic() - started,
        error=error,
        orphans=orphans,
        deferred=deferrable and run_id != "" and _deferred(stack, dag_id, run_id),
        collateral=tuple(n for n in strikes.collateral_of(run_id) if n != disruption.number)
        if run_id
        else (),
    )


def _deferred(stack: AirflowStack, dag_id: str, run_id: str) -> bool:
    """Whether the try's log says the operator deferred (its own "Deferring: ..." line)."""
    folder = stack.task_logs / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={DRILL_TASK_ID}"
    log = folder / "attempt=1.log"
    return log.exists() and '"Deferring: ' in log.read_text(errors="replace")


def _orphans(cloud: DrillCloud, jobs: Sequence[str]) -> int:
    """Jobs of an ended task instance still running :data:`ORPHAN_WAIT_SECONDS` later."""
    deadline = time.monotonic() + ORPHAN_WAIT_SECONDS
    while running := [job for job in jobs if cloud.is_running(job)]:
        if time.monotonic() > deadline:
            return len(running)
        time.sleep(max(cloud.poll_seconds, 0.5))
    return 0


def _strike(
    stack: AirflowStack,
    cloud: DrillCloud,
    disruption: Disruption,
    dag_id: str,
    run_id: str,
    held: threading.Event | None,
    triggered_at: datetime,
    strikes: WorkerStrikes,
) -> None:
    """Wait for the disruption's moment, then strike (what a strike does is the executor's: ``strikes``)."""
    kind = disruption.kind
    if kind in (DisruptionKind.THROTTLE_STORM, DisruptionKind.SERVER_ERRORS, DisruptionKind.DROPPED_RESPONSE):
        return  # the fault is already queued on the fake
    if kind.disrupts_the_triggerer:
        wait_for_trigger(stack, dag_id, run_id, timeout=max(90.0, cloud.run_timeout / 2))
        time.sleep(min(disruption.delay, DRILL_JOB_SECONDS / 8))  # mid-poll, with the job still running
        strike_triggerers(
            stack, kind, dag_id, run_id, lambda: _running_job(stack, cloud, dag_id, run_id) is not None
        )
        return
    target = StrikeTarget(disruption.number, dag_id, run_id, DRILL_TASK_ID)
    stall = heartbeat_timeout("celery" if isinstance(stack, CeleryAirflowStack) else "local")
    stall_seconds = stall + STALL_PAST_HEARTBEAT_TIMEOUT_SECONDS
    if kind is DisruptionKind.SIGTERM_DURING_STARTUP:
        strikes.strike(kind, target, stall_seconds=stall_seconds)
        return
    stack.find_task_processes(dag_id, DRILL_TASK_ID, run_id=run_id, timeout=90)
    if kind is DisruptionKind.SIGTERM_IN_SUBMIT:
        _wait_for(lambda: _ledger_nonce(stack, dag_id, run_id), what="the ledger's intent")
        time.sleep(disruption.delay / 8)
        strikes.strike(kind, target, stall_seconds=stall_seconds)
        return
    if kind is DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW:
        # The fake has committed the job and holds its answer: the id is not in the ledger yet.
        nonce = _wait_for(lambda: _ledger_nonce(stack, dag_id, run_id), what="the ledger's intent")
        task = DrilledTask(dag_id, run_id, nonce, triggered_at)
        _wait_for(lambda: cloud.jobs_of(task), what="the cloud to commit the job")
        strikes.strike(kind, target, stall_seconds=stall_seconds)
        assert held is not None
        held.set()
        return
    if kind is DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED:
        _wait_for_running_job(stack, cloud, dag_id, run_id)
        strikes.strike(kind, target, stall_seconds=stall_seconds)
        stack.wait_for_ti_state(
            dag_id, run_id, DRILL_TASK_ID, ("checkpointed", "up_for_reschedule"), timeout=60
        )
        # Nobody runs the task now: only the job reaper can act on the person's decision.
        stack.rest.json(
            "PATCH",
            f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{DRILL_TASK_ID}",
            json={"new_state": "failed"},
            retries=PERSON_RETRIES,
        )
        return
    if kind is DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED:
        _wait_for_running_job(stack, cloud, dag_id, run_id)
        stack.rest.json(
            "POST",
            f"/dags/{dag_id}/clearTaskInstances",
            json={"dag_run_id": run_id, "task_ids": [DRILL_TASK_ID], "dry_run": False, "only_failed": False},
            retries=PERSON_RETRIES,
        )
        return
    _wait_for_running_job(stack, cloud, dag_id, run_id)
    time.sleep(min(disruption.delay, DRILL_JOB_SECONDS / 4))
    # Mid-poll: a worker shutdown (SIGTERM_MID_POLL, and on Celery a cold shutdown or a pod eviction),
    # a freeze past the heartbeat timeout, or a lost worker.
    strikes.strike(kind, target, stall_seconds=stall_seconds)


def _wait_for_running_job(stack: AirflowStack, cloud: DrillCloud, dag_id: str, run_id: str) -> str:
    # A real job may wait for cluster capacity: give it the run's own time limit, polled gently.
    return _wait_for(
        lambda: _running_job(stack, cloud, dag_id, run_id),
        what="the job to be running",
        timeout=max(90.0, cloud.run_timeout / 2),
        interval=cloud.poll_seconds,
    )


def _ledger_nonce(stack: AirflowStack, dag_id: str, run_id: str) -> str | None:
    ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY)
    return ledger["nonce"] if ledger else None


def _running_job(stack: AirflowStack, cloud: DrillCloud, dag_id: str, run_id: str) -> str | None:
    ledger = stack.db.task_state_value(dag_id, run_id, DRILL_TASK_ID, LEDGER_KEY)
    job = (ledger or {}).get("external_id")
    return job if job and cloud.is_running(job) else None


def _wait_for(
    probe: Callable[[], T | None], *, what: str, timeout: float = 90.0, interval: float = 0.05
) -> T:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)
    return value


def _print_results(out: TextIO, outcome: PlanOutcome, plan: list[Disruption]) -> None:
    header = (
        "#",
        "cloud",
        "disruption",
        "jobs",
        "cancels",
        "retries",
        "orphans",
        "checkpoints",
        "final state",
        "seconds",
        "verdict",
    )
    rows = [
        (
            str(r.disruption.number),
            r.disruption.cloud,
            r.disruption.kind.value,
            str(len(r.jobs)),
            str(r.cancellations),
            str(r.retries_used),
            str(r.orphans),
            str(r.checkpoints),
            r.final_state,
            f"{r.seconds:.0f}",
            r.verdict(),
        )
        for r in outcome.results
    ]
    rows += [
        (str(d.number), d.cloud, d.kind.value, "-", "-", "-", "-", "-", why.final_state, "-", why.value)
        for d in plan
        if (why := outcome.unfinished.get(d.number)) is not None
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, tuple("-" * w for w in widths), *rows):
        out.write(
            "    " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )
    out.flush()
