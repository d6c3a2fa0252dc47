# Licensed under the Apache License, Version 2.0.
"""
The drill's strikes on the CeleryExecutor: what production does to a Celery worker, aimed at the
worker that runs the drilled task.

What it is for: on Celery a disruption does not reach one task's processes the way the
LocalExecutor's do; a deploy, a node drain, a lost node or a pod eviction hit the whole ``celery
worker``, and every task on it. :func:`celery_strike_for` says which of those each
:class:`~airflow.providers.resumable.drill.plan.DisruptionKind` is (a pure table, tested as one);
:class:`CeleryWorkerStrikes` carries it out on a
:class:`~airflow.providers.resumable.testing.celery_stack.CeleryAirflowStack`.

How it works: a strike that takes a worker down (warm or cold shutdown, host lost, pod eviction) or
freezes it takes one of ``len(workers) - 1`` slots, so one worker always stays up to resume the
tasks on; a second strike aimed at a worker already down waits until it is back. The worker is then
started again, as a deploy brings a replacement, in the background: the strike returns once its
signal landed, so what follows it (a checkpoint to watch, a person's decision) is not delayed by a
worker's start-up. A strike that stops every task on the worker (host lost, freeze, pod eviction,
cold shutdown) first waits, briefly, until every task on that worker has declared itself resumable:
a task killed while Airflow still loads its DAG costs a retry on any Airflow, which says nothing
about the provider. Every drill task instance found on a struck worker is recorded as collateral of that
strike, so a result can say what else hit it.

What it does not do: strike a worker that a strike of its own already took down; signal anything
but the processes of the worker's tree (:mod:`airflow.providers.resumable.testing.worker_signals`).
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import suppress

import psutil

from airflow.providers.resumable._compat import StrEnum
from airflow.providers.resumable.checkpoint import worker_loss_checkpoints_available
from airflow.providers.resumable.drill.plan import DisruptionKind
from airflow.providers.resumable.drill.worker_strikes import StrikeTarget, send
from airflow.providers.resumable.ledger_store import LEDGER_KEY
from airflow.providers.resumable.testing.celery_stack import CeleryAirflowStack
from airflow.providers.resumable.testing.stack import TaskProcesses
from airflow.providers.resumable.testing.worker_signals import (
    POD_GRACE_SECONDS,
    freeze,
    lose_host,
    signal_all,
    thaw,
    wait_gone,
)

RESUME_ON_WORKER_LOSS_KEY = "airflow.resume_on_worker_loss"
"""The task state store key of the core patch's worker-loss declaration (``{"pid": ..., ...}``)."""
DECLARED_WAIT_SECONDS = 30.0
"""How long a strike that stops every task waits for the tasks on its worker to declare themselves
resumable (a task takes a few seconds to start on a busy machine)."""
WARM_SHUTDOWN_TIMEOUT_SECONDS = 120.0
"""How long a warm shutdown may take before the worker is treated as lost (SIGKILL of its tree): a
drain waits for any task that is not resumable yet, and a drill job runs well under this."""
EXIT_TIMEOUT_SECONDS = 30.0
"""How long a cold shutdown, a lost host or an eviction may take to leave no process behind."""


class CeleryStrike(StrEnum):
    """What production does to a Celery worker (or to one task on it)."""

    WARM_SHUTDOWN = "warm_shutdown"
    """SIGTERM to the ``celery worker`` main process (a deploy, a node drain, ``celery stop``): with the
    drain-aware line every resumable task on it checkpoints at once, then the worker exits."""
    COLD_SHUTDOWN = "cold_shutdown"
    """SIGQUIT to the main process: Celery terminates its pool, each supervisor forwards SIGTERM."""
    SUPERVISOR_SIGTERM = "supervisor_sigterm"
    """SIGTERM to the pool process supervising the task only: the supervisor forwards it to its task.
    For the kinds about the task's own moment (its start-up, its submit window), which a drain does
    not reach: a drain signals only tasks that declared themselves resumable."""
    HOST_LOST = "host_lost"
    """SIGKILL to every process of the worker's tree (node loss, OOM kill of the pod)."""
    POD_EVICTION = "pod_eviction"
    """SIGTERM to every process of the tree at once, SIGKILL after a grace period."""
    FREEZE = "freeze"
    """SIGSTOP to every process of the tree past the heartbeat timeout, then SIGCONT."""

    @property
    def takes_a_worker_slot(self) -> bool:
        """Whether the whole worker is struck (so another one must stay up meanwhile)."""
        return self is not CeleryStrike.SUPERVISOR_SIGTERM

    @property
    def restarts_the_worker(self) -> bool:
        """Whether the worker exits and a new one is started (everything but a freeze)."""
        return self.takes_a_worker_slot and self is not CeleryStrike.FREEZE

    @property
    def kills_tasks(self) -> bool:
        """Whether every task on the worker is stopped, not only those that declared themselves
        resumable (as a drain does): killed, frozen, or SIGTERMed directly or by its supervisor. The
        strike waits, briefly, for them to be resumable first."""
        return self in (
            CeleryStrike.HOST_LOST,
            CeleryStrike.FREEZE,
            CeleryStrike.POD_EVICTION,
            CeleryStrike.COLD_SHUTDOWN,
        )


_STRIKES: dict[DisruptionKind, CeleryStrike] = {
    DisruptionKind.SIGTERM_DURING_STARTUP: CeleryStrike.SUPERVISOR_SIGTERM,
    DisruptionKind.SIGTERM_IN_SUBMIT: CeleryStrike.SUPERVISOR_SIGTERM,
    DisruptionKind.SIGTERM_MID_POLL: CeleryStrike.WARM_SHUTDOWN,
    DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED: CeleryStrike.WARM_SHUTDOWN,
    DisruptionKind.SIGKILL_MID_POLL: CeleryStrike.HOST_LOST,
    DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW: CeleryStrike.HOST_LOST,
    DisruptionKind.HEARTBEAT_STALL: CeleryStrike.FREEZE,
    DisruptionKind.COLD_SHUTDOWN: CeleryStrike.COLD_SHUTDOWN,
    DisruptionKind.POD_EVICTION: CeleryStrike.POD_EVICTION,
}


def celery_strike_for(kind: DisruptionKind) -> CeleryStrike:
    """
    What ``kind`` does to a Celery worker.

    :param kind: a kind that strikes a worker.
    :raises ValueError: for a kind that strikes no worker (a fault, a clear, a triggerer kind).
    """
    try:
        return _STRIKES[kind]
    except KeyError:
        raise ValueError(f"{kind.value} does not strike a Celery worker") from None


class CeleryWorkerStrikes:
    """
    Carry out :func:`celery_strike_for` on a Celery stack, one worker down at most while another
    stays up, and bring every worker taken down back.

    :param stack: the drill's Celery stack.
    :param drill_dag_prefix: the drill DAGs' ids start with it (to find the drill tasks on a worker).
    """

    def __init__(self, stack: CeleryAirflowStack, *, drill_dag_prefix: str = "resumable_drill_") -> None:
        self.stack = stack
        self.drill_dag_prefix = drill_dag_prefix
        # One worker always stays up: at most all but one are struck (down or frozen) at a time.
        self._slots = threading.BoundedSemaphore(len(stack.workers) - 1)
        self._struck: set[str] = set()
        self._changed = threading.Condition()
        self._collateral: dict[str, set[int]] = defaultdict(set)
        self._recoveries: list[threading.Thread] = []
        self.errors: list[str] = []
        """What went wrong bringing a worker back (the drill fails on any)."""
        self.unquiet_strikes: list[int] = []
        """Disruptions whose strike came without a quiet moment: a task on the worker (or on its way
        to it) may have been stopped before it declared itself resumable."""
        # Workers are started from one thread that lives as long as this process: the stack starts
        # each with PR_SET_PDEATHSIG, which the kernel fires when the *thread* that forked it ends,
        # so a worker started from a short-lived recovery thread got SIGTERM (a warm shutdown) as
        # soon as that thread returned.
        self._launches: queue.Queue[tuple[Callable[[], None], threading.Event, list[BaseException]]] = (
            queue.Queue()
        )
        threading.Thread(target=self._launcher, name="drill-worker-launcher", daemon=True).start()

    def _launcher(self) -> None:
        while True:
            launch, done, failures = self._launches.get()
            try:
                launch()
            except BaseException as err:  # handed back to the recovery that asked
                failures.append(err)
            finally:
                done.set()

    def _start_worker(self, worker: str) -> None:
        """Start ``worker`` again from the launcher thread, then wait until it is ready here."""
        done, failures = threading.Event(), list[BaseException]()
        self._launches.put((lambda: self.stack.start_worker(worker, wait=False), done, failures))
        done.wait()
        if failures:
            raise failures[0]
        self.stack.wait_for_worker_ready(worker)

    # ---------------------------------------------------------------- the strike

    def strike(self, kind: DisruptionKind, target: StrikeTarget, *, stall_seconds: float) -> None:
        strike = celery_strike_for(kind)
        if not strike.takes_a_worker_slot:
            processes = self._find(target)
            send(processes.worker_pid, signal.SIGTERM)
            return
        self._slots.acquire()
        worker = ""
        try:
            worker = self._claim_the_worker_of(target)
            if strike.kills_tasks and not self._wait_until_declared(worker):
                self.unquiet_strikes.append(target.number)
            tree = self.stack.worker_processes(worker)
            self._record_collateral(worker, target.number)
            self._signal(strike, tree)
        except BaseException:
            self._release(worker)
            raise
        # The worker comes back (or thaws) in the background: the strike itself has landed.
        recovery = threading.Thread(
            target=self._recover,
            args=(strike, worker, tree, stall_seconds),
            name=f"drill-recover-{worker}",
            daemon=True,
        )
        self._recoveries.append(recovery)
        recovery.start()

    def _find(self, target: StrikeTarget) -> TaskProcesses:
        return self.stack.find_task_processes(target.dag_id, target.task_id, run_id=target.run_id, timeout=90)

    def _claim_the_worker_of(self, target: StrikeTarget) -> str:
        """The worker whose tree runs the target's task process, once no strike of ours holds it."""
        deadline = time.monotonic() + 120
        while True:
            processes = self._find(target)
            worker = self._worker_running(processes.task_pid)
            with self._changed:
                if worker is not None and worker not in self._struck:
                    self._struck.add(worker)
                    return worker
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the worker of {target.run_id} stayed struck")
                # Its worker is being struck already: the task is about to move; look again then.
                self._changed.wait(timeout=1.0)

    def _worker_running(self, pid: int) -> str | None:
        for name in self.stack.workers:
            if not self.stack.worker_running(name):
                continue
            try:
                if any(process.pid == pid for process in self.stack.worker_processes(name)):
                    return name
            except psutil.NoSuchProcess:
                continue
        return None

    def _drill_tasks_on(self, worker: str) -> list[tuple[str, str, str]]:
        rows = self.stack.db.query(
            "SELECT dag_id, run_id, task_id FROM task_instance WHERE hostname = ? AND state = 'running'",
            (worker,),
        )
        return [
            (row["dag_id"], row["run_id"], row["task_id"])
            for row in rows
            if str(row["dag_id"]).startswith(self.drill_dag_prefix)
        ]

    def _undeclared_tasks_on(self, worker: str) -> int:
        """
        Workloads on ``worker`` whose task has not declared itself resumable yet: a pool process with a
        child (the supervisor has forked its task) whose task instance's ledger holds no intent yet.

        Found from the worker's process tree, not from the task instances' hostnames: a workload
        starts before ``ti_run`` records its hostname, and a resumed attempt killed then is the worst
        case (seen: its task instance stayed ``queued``, the patched scheduler ignoring the executor's
        event as one of the attempt before the checkpoint).
        """
        undeclared = 0
        pool = self.stack.worker_processes(worker)[0].children()
        for pool_process in pool:
            with suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                for child in pool_process.children():
                    title = " ".join(child.cmdline())
                    if not title.startswith("airflow worker --"):
                        undeclared += 1  # forked, not yet titled: still starting
                        continue
                    ti_id = title.split("--", 1)[1].strip()
                    if not self._declared(ti_id, child.pid):
                        undeclared += 1
        return undeclared

    def _declared(self, ti_id: str, pid: int) -> bool:
        """Whether the task process ``pid`` of task instance ``ti_id`` has declared itself resumable on
        worker loss: the declaration names the pid of the attempt that made it, so a resumed attempt
        is not taken for declared by its predecessor's ledger or declaration."""
        rows = self.stack.db.query(
            "SELECT dag_id, run_id, task_id, state FROM task_instance WHERE id = ?", (ti_id,)
        )
        if not rows or rows[0]["state"] != "running":
            return False  # not started (ti_run) yet: nothing of it can be resumable
        row = rows[0]
        if not worker_loss_checkpoints_available():
            # No declaration without the core patch: the ledger's intent is the best sign there is.
            return bool(
                self.stack.db.task_state_value(row["dag_id"], row["run_id"], row["task_id"], LEDGER_KEY)
            )
        declaration = self.stack.db.task_state_value(
            row["dag_id"], row["run_id"], row["task_id"], RESUME_ON_WORKER_LOSS_KEY
        )
        return isinstance(declaration, dict) and declaration.get("pid") == pid

    def _starting_anywhere(self) -> int:
        """Drill task instances on their way to a worker (``scheduled``, ``queued``): a resume that
        lands on the worker just before the strike would be stopped before it declared itself."""
        rows = self.stack.db.query(
            "SELECT count(*) AS n FROM task_instance WHERE dag_id LIKE ? AND state IN ('scheduled', 'queued')",
            (f"{self.drill_dag_prefix}%",),
        )
        return int(rows[0]["n"]) if rows else 0

    def _wait_until_declared(self, worker: str) -> bool:
        """
        Until every task on ``worker`` has written its ledger's intent (and so declared itself
        resumable) and no drill task is on its way to a worker, for :data:`DECLARED_WAIT_SECONDS` at
        most; whether that moment came (a strike after the wait may stop a task still starting, which
        Airflow fails: a used retry, reported as such).
        """
        deadline = time.monotonic() + DECLARED_WAIT_SECONDS
        while time.monotonic() < deadline:
            try:
                if not self._undeclared_tasks_on(worker) and not self._starting_anywhere():
                    # The declaration follows the intent's write within milliseconds.
                    time.sleep(0.3)
                    return True
            except psutil.NoSuchProcess:
                return True
            time.sleep(0.2)
        return False

    def _record_collateral(self, worker: str, number: int) -> None:
        with self._changed:
            for _dag_id, run_id, _task_id in self._drill_tasks_on(worker):
                self._collateral[run_id].add(number)

    @staticmethod
    def _signal(strike: CeleryStrike, tree: list[psutil.Process]) -> None:
        main = tree[0]
        if strike is CeleryStrike.WARM_SHUTDOWN:
            signal_all([main], signal.SIGTERM)
        elif strike is CeleryStrike.COLD_SHUTDOWN:
            signal_all([main], signal.SIGQUIT)
        elif strike is CeleryStrike.HOST_LOST:
            lose_host(tree)
        elif strike is CeleryStrike.FREEZE:
            freeze(tree)
        elif strike is CeleryStrike.POD_EVICTION:
            signal_all(tree, signal.SIGTERM)  # the SIGKILL after the grace period comes in _recover

    # ---------------------------------------------------------------- the worker comes back

    def _recover(self, strike: CeleryStrike, worker: str, tree: list[psutil.Process], stall: float) -> None:
        try:
            if strike is CeleryStrike.FREEZE:
                time.sleep(stall)
                thaw(tree)
                return
            if strike is CeleryStrike.POD_EVICTION:
                # The grace period, then SIGKILL to what is left (not a second SIGTERM: a supervisor
                # would forward it into a checkpoint under way).
                survivors = wait_gone(tree, timeout=POD_GRACE_SECONDS)
                lose_host([process for process in tree if process.pid in survivors])
            timeout = (
                WARM_SHUTDOWN_TIMEOUT_SECONDS
                if strike is CeleryStrike.WARM_SHUTDOWN
                else EXIT_TIMEOUT_SECONDS
            )
            left = wait_gone(tree, timeout=timeout)
            if left:
                # A shutdown that does not end is cut short, as a supervisor's stop timeout does.
                self.errors.append(
                    f"{worker}: {strike.value} left {len(left)} process(es) after {timeout:.0f}s"
                )
                lose_host(tree)
                wait_gone(tree, timeout=10)
            self.stack.wait_for_worker_exit(worker, timeout=10)
            self._start_worker(worker)
        except Exception as err:  # reported by the drill; the stack's stop() cleans up
            self.errors.append(f"{worker}: bringing it back after {strike.value} failed: {err}")
        finally:
            self._release(worker)

    def _release(self, worker: str) -> None:
        with self._changed:
            if worker in self._struck:
                self._struck.discard(worker)
                self._slots.release()
            elif not worker:
                self._slots.release()
            self._changed.notify_all()

    def collateral_of(self, run_id: str) -> tuple[int, ...]:
        with self._changed:
            return tuple(sorted(self._collateral.get(run_id, ())))

    def close(self) -> None:
        for recovery in self._recoveries:
            recovery.join(timeout=WARM_SHUTDOWN_TIMEOUT_SECONDS + 120)
