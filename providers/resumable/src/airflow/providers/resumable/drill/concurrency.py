# Licensed under the Apache License, Version 2.0.
"""
Several task instances of one cloud in flight at once, without losing who a fault belongs to.

What it is for: ``--concurrency N`` runs N of a cloud's disruptions at a time. Jobs stay attributable
(by the ledger's nonce), but a fake's faults do not: a queued 429, a held submit, or "new jobs run
until cancelled" applies to whichever request of that fake comes next, from any task instance. So a
disruption that sets something up on the fake must have the fake to itself until its own task
instance has taken it; every other disruption shares the fake.

How it works: :class:`FakeGate` is a readers-writer gate per cloud. Most setups only reach a request
that creates something (a submit's error, a lost or held answer, how long new jobs run, a refused
cancel, which only a person's decision asks for): a disruption of such a kind
(:func:`needs_the_fake_alone`) enters :meth:`FakeGate.alone` and waits until no other disruption of
the cloud is *before its submit* (one past it never submits again: a resume reconnects), holding new
ones off; a throttle storm reaches every status poll, and a refused cancel every cancel (the job
reaper's too), so they wait until nothing else of the cloud is in flight
(:func:`needs_every_request_alone`). Once its own task instance has taken what it set up,
:meth:`AloneTurn.share` lets the others in again for the rest of its run. Every other disruption
enters :meth:`FakeGate.shared` and says :meth:`SharedTurn.submitted` once its ledger names its job.

What it does not do: scope a fault to one task instance on the fake itself (which would let fault
kinds overlap too): the fakes' fault queues are per operation.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from airflow.providers.resumable.drill.plan import DisruptionKind


def needs_the_fake_alone(kind: DisruptionKind) -> bool:
    """
    Whether a disruption of ``kind`` changes its fake for whoever asks next: it queues faults, holds
    a submit, or changes how long new jobs run (a person's decision needs its job to run until
    cancelled; a triggerer strike, for 75 s).

    :param kind: the disruption's kind.
    """
    return kind.needs_fault_injection or kind.is_a_persons_decision or kind.disrupts_the_triggerer


def needs_every_request_alone(kind: DisruptionKind) -> bool:
    """
    Whether a disruption of ``kind`` sets up faults that a request of its fake other than a submit
    would take: a throttle storm's 429s go to whichever task polls next, and a refused cancel's 403s
    to whichever cancel comes next, which may be the job reaper's for another disruption past its
    submit (a person marked its task failed). Seen: the reaper took a clear's refusal, the clear's
    cancel went through, and the cleared try rightly started a second job.

    :param kind: the disruption's kind.
    """
    return kind in (DisruptionKind.THROTTLE_STORM, DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED)


def shares_the_fake_after_its_setup(kind: DisruptionKind) -> bool:
    """
    Whether a disruption that needed the fake alone can share it once its own task instance has
    taken what it set up (its faults consumed, its job created). Not a refused cancel: its refusals
    wait for the clear's cancels, which come late, and another task's cancel would take them.

    :param kind: the disruption's kind.
    """
    return needs_the_fake_alone(kind) and kind is not DisruptionKind.CLEAR_WHILE_RUNNING_CANCEL_REFUSED


class AloneTurn:
    """A disruption's turn alone on its fake; :meth:`share` ends it early."""

    def __init__(self, gate: FakeGate) -> None:
        self._gate = gate
        self.alone = True

    def share(self) -> None:
        """Its setup is taken: let the cloud's other disruptions in for the rest of the run."""
        if self.alone:
            self.alone = False
            self._gate._downgrade()


class SharedTurn:
    """A disruption's turn beside others on its fake; :meth:`submitted` once its job exists."""

    def __init__(self, gate: FakeGate) -> None:
        self._gate = gate
        self.before_submit = True

    def submitted(self) -> None:
        """Its ledger names its job: it will not submit again, so a submit fault may be queued."""
        self._gate._submitted(self)


class FakeGate:
    """
    A readers-writer gate over one fake, writers first (a fault kind is not starved by a stream of
    sharing disruptions); a writer that only needs the submits to itself waits only for the sharers
    still before their submit.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._sharing = 0
        self._before_submit = 0
        self._alone = False
        self._waiting_alone = 0

    @property
    def in_flight(self) -> int:
        """Disruptions in flight on this fake now (sharing, plus one alone)."""
        with self._changed:
            return self._sharing + int(self._alone)

    @property
    def before_submit(self) -> int:
        """Sharing disruptions whose job does not exist yet."""
        with self._changed:
            return self._before_submit

    @contextmanager
    def shared(self) -> Iterator[SharedTurn]:
        """Run beside the cloud's other sharing disruptions; call the turn's :meth:`SharedTurn.submitted`."""
        with self._changed:
            self._changed.wait_for(lambda: not self._alone and not self._waiting_alone)
            self._sharing += 1
            self._before_submit += 1
        turn = SharedTurn(self)
        try:
            yield turn
        finally:
            with self._changed:
                self._sharing -= 1
                if turn.before_submit:
                    turn.before_submit = False
                    self._before_submit -= 1
                self._changed.notify_all()

    def _submitted(self, turn: SharedTurn) -> None:
        with self._changed:
            if turn.before_submit:
                turn.before_submit = False
                self._before_submit -= 1
                self._changed.notify_all()

    @contextmanager
    def alone(self, *, every_request: bool = True) -> Iterator[AloneTurn]:
        """
        Run with nothing else of the cloud in flight (``every_request``), or nothing else before its
        submit, until the turn's :meth:`AloneTurn.share`.

        :param every_request: the setup reaches every request (a throttle storm), not only submits.
        """
        with self._changed:
            self._waiting_alone += 1
            try:
                self._changed.wait_for(
                    lambda: not self._alone and not (self._sharing if every_request else self._before_submit)
                )
            finally:
                self._waiting_alone -= 1
            self._alone = True
        turn = AloneTurn(self)
        try:
            yield turn
        finally:
            with self._changed:
                if turn.alone:
                    self._alone = False
                else:
                    self._sharing -= 1
                self._changed.notify_all()

    def _downgrade(self) -> None:
        with self._changed:
            self._alone = False
            self._sharing += 1
            self._changed.notify_all()
