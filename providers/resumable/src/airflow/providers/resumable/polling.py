# Licensed under the Apache License, Version 2.0.
"""How often to ask the cloud about a running job."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class PollSchedule:
    """
    Poll intervals that start at ``initial`` and grow by ``factor`` up to ``maximum`` seconds.

    A job that has run for an hour is unlikely to finish in the next ten seconds, so backing off
    saves API calls (and rate-limit budget shared with everything else in the workspace) at a
    bounded cost in completion-detection latency: at most ``maximum`` seconds.

    :param initial: the first interval, in seconds.
    :param maximum: the longest interval, in seconds (``>= initial``).
    :param factor: growth per poll (``1.0`` polls at a constant ``initial``).
    """

    initial: float
    maximum: float
    factor: float = 1.5

    def __post_init__(self) -> None:
        if self.initial <= 0:
            raise ValueError(f"poll_interval must be positive, got {self.initial}")
        if self.maximum < self.initial:
            raise ValueError(
                f"max_poll_interval ({self.maximum}) must be at least poll_interval ({self.initial})"
            )
        if self.factor < 1.0:
            raise ValueError(f"the backoff factor must be at least 1.0, got {self.factor}")

    def intervals(self) -> Iterator[float]:
        """Yield the wait before each next poll, forever."""
        interval = self.initial
        while True:
            yield interval
            interval = min(self.maximum, interval * self.factor)


@dataclass(frozen=True)
class PollBudget:
    """
    How long one attempt may poll a job that is still going before it gives up (upstream's
    ``waiter_max_attempts`` x ``waiter_delay``, or Dataproc's ``wait_timeout``).

    Counted per attempt, as upstream's waiters count: a resumed attempt polls with a fresh budget.
    Both limits compose; ``None`` is no limit.

    :param max_polls: polls that find the job still going; the last one of them ends the wait.
    :param max_seconds: seconds from the start of the wait after which a poll that finds the job
        still going ends it.
    """

    max_polls: int | None = None
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.max_polls is not None and self.max_polls < 1:
            raise ValueError(f"a poll budget needs at least one poll, got {self.max_polls}")

    def start(self, now: float) -> PollAllowance:
        """A fresh allowance for a wait starting at ``now`` (a monotonic time)."""
        return PollAllowance(self, now)


class PollAllowance:
    """What is left of a :class:`PollBudget` in one wait.

    :param budget: the budget.
    :param started: when the wait started (a monotonic time).
    """

    def __init__(self, budget: PollBudget, started: float) -> None:
        self.budget = budget
        self.started = started
        self.active_polls = 0

    def spend(self, now: float) -> str | None:
        """Count a poll that found the job still going; why the budget is now spent, or ``None``."""
        self.active_polls += 1
        if self.budget.max_polls is not None and self.active_polls >= self.budget.max_polls:
            return f"{self.active_polls} polls"
        if self.budget.max_seconds is not None and now - self.started > self.budget.max_seconds:
            return f"{self.budget.max_seconds:g} s"
        return None
