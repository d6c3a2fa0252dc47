# Licensed under the Apache License, Version 2.0.
"""
What a drill will do, decided up front from a seed: pure, so a failing drill replays exactly.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from airflow.providers.resumable._compat import StrEnum


class DisruptionKind(StrEnum):
    """One way the world can go wrong under a running resumable task."""

    SIGTERM_DURING_STARTUP = "sigterm_during_startup"
    """Worker shutdown while Airflow is still starting the task (loading its DAG), before any of
    the operator's code runs. A stock Airflow 3.3.2 fails the task then (the task runner's SIGTERM
    handler is not installed yet), which uses a retry; the core patch's supervisor checkpoints it."""
    SIGTERM_IN_SUBMIT = "sigterm_in_submit"
    """Worker shutdown once the ledger's intent is written: before, during or just after the submit."""
    SIGTERM_MID_POLL = "sigterm_mid_poll"
    """Worker shutdown while the task polls its running job (an eviction, a deploy)."""
    SIGKILL_MID_POLL = "sigkill_mid_poll"
    """The worker and its task vanish while polling (OOM kill, node loss)."""
    HEARTBEAT_STALL = "heartbeat_stall"
    """The worker and its task freeze while polling (a paused VM, a cgroup freeze) past the heartbeat
    timeout, then thaw: the scheduler has meanwhile resumed the task in another attempt, which the
    thawed one must not disturb (no cancel, no report onto the live attempt's row)."""
    MARK_FAILED_WHILE_CHECKPOINTED = "mark_failed_while_checkpointed"
    """A worker shutdown checkpoints the task, then a person marks it failed while no attempt runs:
    the job reaper must cancel the job, once, through the ledger."""
    CLEAR_WHILE_RUNNING_CANCEL_REFUSED = "clear_while_running_cancel_refused"
    """A person clears the task while its job runs, and the cloud refuses the cancels (HTTP 403,
    twice): no second job may start beside the first, the task fails naming it, and the job reaper
    cancels it once the cloud accepts."""
    SIGKILL_IN_SUBMIT_WINDOW = "sigkill_in_submit_window"
    """The worker vanishes after the cloud committed the job but before its id was persisted."""
    THROTTLE_STORM = "throttle_storm"
    """Status polls answered with 429 and Retry-After, several in a row."""
    SERVER_ERRORS = "server_errors"
    """The submit answered with 503, several times."""
    DROPPED_RESPONSE = "dropped_response"
    """The submit succeeded but its response was lost on the wire."""
    TRIGGERER_SIGKILL = "triggerer_sigkill"
    """(``--deferrable``) The triggerer polling the deferred task's job vanishes (node loss), and a new
    one starts: it must pick the trigger up and see the job through, with no cancel."""
    TRIGGERER_SIGTERM = "triggerer_sigterm"
    """(``--deferrable``) The triggerer is stopped (a redeploy) and a new one starts."""
    TRIGGERER_FREEZE_MOVES = "triggerer_freeze_moves"
    """(``--deferrable``) A second triggerer joins, the first freezes past
    ``[triggerer] triggerer_health_check_threshold`` so the trigger moves, then thaws: Airflow 3.3.2
    calls the thawed copy's ``on_kill`` (apache/airflow#73454), which must not cancel the job."""
    COLD_SHUTDOWN = "cold_shutdown"
    """(``--executor celery``) SIGQUIT to the Celery worker running the polling task: Celery terminates
    its pool at once, the task's supervisor forwards SIGTERM to the task, which must checkpoint."""
    POD_EVICTION = "pod_eviction"
    """(``--executor celery``) SIGTERM to every process of the worker running the polling task at once
    (a kubelet stopping a pod whose init signals the process group), SIGKILL to what is left after a
    grace period: the task gets SIGTERM itself and must checkpoint."""

    @property
    def disrupts_the_triggerer(self) -> bool:
        """A triggerer kind: only a deferred task has a trigger to disrupt (``--deferrable``)."""
        return self in (
            DisruptionKind.TRIGGERER_SIGKILL,
            DisruptionKind.TRIGGERER_SIGTERM,
            DisruptionKind.TRIGGERER_FREEZE_MOVES,
        )

    @property
    def celery_only(self) -> bool:
        """A kind that only a Celery worker can meet (a cold shutdown, a pod-style termination of the
        worker's tree): drilled with ``--executor celery`` only."""
        return self in (DisruptionKind.COLD_SHUTDOWN, DisruptionKind.POD_EVICTION)

    @property
    def strikes_a_deferred_task(self) -> bool:
        """Whether a deferrable task meets this disruption: a task polling from the triggerer has no
        worker mid-poll, so the kinds that strike a polling worker (or a checkpointed task) do not apply."""
        return self not in (
            DisruptionKind.SIGTERM_MID_POLL,
            DisruptionKind.SIGKILL_MID_POLL,
            DisruptionKind.HEARTBEAT_STALL,
            DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED,
            DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED,
            DisruptionKind.COLD_SHUTDOWN,
            DisruptionKind.POD_EVICTION,
        )

    @property
    def shuts_the_worker_down(self) -> bool:
        """A SIGTERM reaches the task: the task must end the attempt as a checkpoint."""
        return self in (
            DisruptionKind.SIGTERM_DURING_STARTUP,
            DisruptionKind.SIGTERM_IN_SUBMIT,
            DisruptionKind.SIGTERM_MID_POLL,
            DisruptionKind.COLD_SHUTDOWN,
            DisruptionKind.POD_EVICTION,
        )

    def costs_a_retry(self, *, worker_loss_checkpoints: bool) -> bool:
        """
        Whether Airflow itself fails the task under this disruption, before or after the operator
        could act (the ledger still reconnects the next try to the same job, but that try is a retry).

        :param worker_loss_checkpoints: the core patch checkpoints a declared task whose worker is
            lost, and a task that a worker shutdown stopped while it was still starting up.
        """
        if self is DisruptionKind.SIGTERM_DURING_STARTUP or self.kills_the_worker or self.freezes_the_worker:
            return not worker_loss_checkpoints
        return False

    @property
    def needs_fault_injection(self) -> bool:
        """The drill must make the cloud misbehave (or hold a submit open): possible on a fake only."""
        return self in (
            DisruptionKind.THROTTLE_STORM,
            DisruptionKind.SERVER_ERRORS,
            DisruptionKind.DROPPED_RESPONSE,
            DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW,
            DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED,
        )

    @property
    def is_a_persons_decision(self) -> bool:
        """A person ends the task: its job is to be cancelled, not completed."""
        return self in (
            DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED,
            DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED,
        )

    @property
    def expected(self) -> Expectation:
        """How a run under this disruption must end for the promise to hold."""
        if self is DisruptionKind.MARK_FAILED_WHILE_CHECKPOINTED:
            return Expectation(dag_run_state="failed", job_cancelled=True, try_number=1)
        if self is DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED:
            # The clear starts a new try, which fails at once rather than start a second job.
            return Expectation(dag_run_state="failed", job_cancelled=True, try_number=2)
        return Expectation()

    @property
    def freezes_the_worker(self) -> bool:
        """A SIGSTOP past the heartbeat timeout: Airflow declares the worker lost, then it comes back."""
        return self is DisruptionKind.HEARTBEAT_STALL

    @property
    def kills_the_worker(self) -> bool:
        """A SIGKILL: nothing in the task runs; only the next attempt can pick up."""
        return self in (DisruptionKind.SIGKILL_MID_POLL, DisruptionKind.SIGKILL_IN_SUBMIT_WINDOW)


@dataclass(frozen=True)
class Expectation:
    """
    How a drilled run must end.

    :param dag_run_state: the dag run's final state.
    :param job_cancelled: the one job ends cancelled (a person's decision); otherwise it is never
        cancelled and the run succeeds with it.
    :param try_number: the task instance's try at the end: 1 (no retry used), 2 after a clear.
    """

    dag_run_state: str = "success"
    job_cancelled: bool = False
    try_number: int = 1


@dataclass(frozen=True)
class Disruption:
    """One planned disruption.

    :param number: 1-based position in the drill.
    :param cloud: which fake (or real) cloud the disrupted task runs on.
    :param kind: what goes wrong.
    :param delay: seconds to wait, once the moment is reached, before striking (random jitter).
    :param times: how many faults in a row (for the fault kinds).
    """

    number: int
    cloud: str
    kind: DisruptionKind
    delay: float
    times: int


def plan_drill(
    *,
    disruptions_per_cloud: int,
    clouds: Sequence[str],
    kinds: Sequence[DisruptionKind],
    seed: int,
    kinds_across_clouds: bool = False,
    on_every_cloud: Sequence[DisruptionKind] = (),
) -> list[Disruption]:
    """
    ``disruptions_per_cloud`` disruptions for each cloud, kinds drawn so that every kind occurs.

    :param disruptions_per_cloud: how many per cloud (at least 1).
    :param clouds: cloud names, in the order their disruptions are numbered.
    :param kinds: the kinds to draw from (each appears at least once per cloud when there are enough).
    :param seed: the seed; the same arguments always give the same plan.
    :param kinds_across_clouds: instead, every kind exactly once in all, dealt to the clouds in a
        seeded order (``disruptions_per_cloud`` is then ignored): the breadth of the kinds at a third
        of the cost, each kind meeting every cloud over successive seeds.
    :param on_every_cloud: with ``kinds_across_clouds``, those of ``kinds`` that still run once on
        every cloud (where a kind's outcome depends on each cloud's cancel and status semantics);
        only the others are dealt.
    """
    if disruptions_per_cloud < 1:
        raise ValueError("a drill needs at least one disruption per cloud")
    if not kinds:
        raise ValueError("a drill needs at least one kind of disruption")
    if on_every_cloud and not kinds_across_clouds:
        raise ValueError("on_every_cloud only applies when the kinds are dealt across the clouds")
    rng = random.Random(seed)
    per_cloud: dict[str, list[DisruptionKind]] = {}
    if kinds_across_clouds:
        everywhere = [kind for kind in kinds if kind in on_every_cloud]
        dealt = [kind for kind in kinds if kind not in everywhere]
        rng.shuffle(dealt)
        offset = rng.randrange(len(clouds))
        for index, kind in enumerate(dealt):
            per_cloud.setdefault(clouds[(index + offset) % len(clouds)], []).append(kind)
        if everywhere:  # (without them the plan stays what earlier seeds gave: replays still replay)
            for cloud in clouds:
                mixed = per_cloud.setdefault(cloud, []) + everywhere
                rng.shuffle(mixed)
                per_cloud[cloud] = mixed
    else:
        for cloud in clouds:
            # Every kind once (as far as the count allows), the rest drawn at random, then shuffled.
            drawn = list(kinds)[:disruptions_per_cloud]
            drawn += [rng.choice(list(kinds)) for _ in range(disruptions_per_cloud - len(drawn))]
            rng.shuffle(drawn)
            per_cloud[cloud] = drawn
    plan: list[Disruption] = []
    for cloud in clouds:
        for kind in per_cloud.get(cloud, []):
            plan.append(
                Disruption(
                    number=len(plan) + 1,
                    cloud=cloud,
                    kind=kind,
                    delay=round(rng.uniform(0.0, 2.0), 2),
                    times=rng.randint(2, 5),
                )
            )
    return plan
