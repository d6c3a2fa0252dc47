# Licensed under the Apache License, Version 2.0.
"""
The fakes' one job-lifecycle clock: scripted phases, then an outcome; a forced end; a cancel that
may take a while.

What it is for: a fake job (a Databricks run, a Dataproc job or batch, an EMR step or job run, a
fake-job-service job) is pending, then running, then over after a scripted time, unless the test
ends it or a client cancels it. Each fake used to time this itself; the timing lives here once and
the fakes only render the state in their API's words.

How it works: a :class:`JobClock` is a pure function of the monotonic time it is asked about: the
phases ``[(state, seconds), ...]`` run one after the other from :attr:`JobClock.started_at` (a
``None`` duration lasts until the job is ended), then :attr:`JobClock.final` holds. :meth:`finish`
forces a state from now on; :meth:`cancel` puts the job in :attr:`JobClock.cancelling` for
``cancel_seconds`` (``None``: for ever), then in :attr:`JobClock.cancelled`. The latest of a forced
end and a cancel wins. A state is any value: an enum, a word, or a tuple carrying a message.

What it does not do: take a lock or move anything; the fake holds its own lock and asks the clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

__all__ = ["JobClock"]

S = TypeVar("S")


@dataclass
class JobClock(Generic[S]):
    """
    When a job is in which state.

    :param phases: ``(state, seconds)`` in order; ``None`` seconds stays there until ended.
    :param final: the state once every phase is over.
    :param cancelling: the state of a cancelled job while the cancel takes effect.
    :param cancelled: the state of a cancelled job afterwards.
    :param cancel_seconds: how long a cancel takes (``0``: at once; ``None``: never).
    :param started_at: monotonic time the first phase began.
    """

    phases: Sequence[tuple[S, float | None]]
    final: S
    cancelling: S
    cancelled: S
    cancel_seconds: float | None = 0.0
    started_at: float = field(default_factory=time.monotonic)
    forced: tuple[S, float] | None = None
    """(state, since) set by :meth:`finish`."""
    cancelled_at: float | None = None

    def at(self, now: float) -> tuple[S, float]:
        """(state, monotonic time it began) at ``now``."""
        if self.forced is not None:
            return self.forced
        if self.cancelled_at is not None:
            if self.cancel_seconds is None or now < self.cancelled_at + self.cancel_seconds:
                return self.cancelling, self.cancelled_at
            return self.cancelled, self.cancelled_at + self.cancel_seconds
        start = self.started_at
        for state, seconds in self.phases:
            if seconds is None or now < start + seconds:
                return state, start
            start += seconds
        return self.final, start

    def state(self, now: float) -> S:
        """The state at ``now``."""
        return self.at(now)[0]

    def is_over(self, now: float) -> bool:
        """Whether the job has ended (finished, cancelled, or past its phases); a cancelling one has not."""
        state = self.state(now)
        return self.forced is not None or state == self.final or state == self.cancelled

    def history(self, now: float) -> list[tuple[S, float]]:
        """Earlier (state, start) pairs, oldest first, as far as the scripted phases went."""
        current = self.state(now)
        past: list[tuple[S, float]] = []
        start = self.started_at
        for state, seconds in self.phases:
            if state == current or start > now:
                break
            past.append((state, start))
            if seconds is None:
                break
            start += seconds
        return past

    def finish(self, state: S, now: float | None = None) -> None:
        """End the job in ``state`` from ``now`` on, whatever it was doing."""
        self.forced = (state, time.monotonic() if now is None else now)
        self.cancelled_at = None

    def cancel(self, now: float | None = None) -> bool:
        """
        Cancel the job, if it is neither over nor being cancelled already; whether this did.

        It is :attr:`cancelling` for :attr:`cancel_seconds`, then :attr:`cancelled`.
        """
        now = time.monotonic() if now is None else now
        if self.cancelled_at is not None or self.is_over(now):
            return False
        self.cancelled_at = now
        return True

    def restart(
        self,
        now: float | None = None,
        *,
        phases: Sequence[tuple[S, float | None]] | None = None,
        final: S | None = None,
    ) -> None:
        """Start the phases (new ones, if given) again from ``now``: a repaired run, a step's turn."""
        self.started_at = time.monotonic() if now is None else now
        if phases is not None:
            self.phases = phases
        if final is not None:
            self.final = final
        self.forced = None
        self.cancelled_at = None
