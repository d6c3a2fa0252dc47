# Licensed under the Apache License, Version 2.0.
"""
``execution_timeout`` counted over a whole try, resumes included.

Airflow arms ``execution_timeout`` afresh in every attempt, and a resume is a new attempt of the same
try. A job that hangs on a worker drained more often than the timeout would never time out. So the
operators count the try's budget from when the try first took the ledger up (wrote its intent, or
reconnected to its job in a new try), a wall-clock time kept in the ledger, and end the attempt
themselves when that budget is spent: the job is cancelled and the task fails, exactly as when
Airflow's own timer fires (which still runs per attempt, and can only fire later).

Wall clocks of different workers may disagree: the budget is as exact as their synchronisation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class TryDeadline:
    """
    When a try's ``execution_timeout`` runs out, on this process's monotonic clock.

    :param timeout: the task's ``execution_timeout``.
    :param try_started_at: when the try first took the ledger up (UTC, from the ledger).
    :param at: the monotonic time at which the budget is spent.
    """

    timeout: timedelta
    try_started_at: datetime
    at: float

    @classmethod
    def of(cls, timeout: timedelta, try_started_at: datetime, *, now: datetime) -> TryDeadline:
        """
        The deadline of a try that started at ``try_started_at``, seen at wall-clock ``now``.

        :param timeout: the task's ``execution_timeout``.
        :param try_started_at: when the try first took the ledger up (UTC).
        :param now: the wall-clock time now (UTC), read together with the monotonic clock.
        """
        remaining = timeout - (now - try_started_at)
        return cls(timeout, try_started_at, time.monotonic() + remaining.total_seconds())

    def remaining(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.at - time.monotonic())

    @property
    def spent(self) -> bool:
        """Whether the budget is used up."""
        return self.remaining() <= 0.0

    def bound(self, seconds: float) -> float:
        """``seconds``, or less if the budget runs out sooner: how long a wait may last."""
        return min(seconds, self.remaining())

    def explain(self) -> str:
        """The sentence for the log and the timeout error."""
        return (
            f"execution_timeout {self.timeout} counted from the start of this try at "
            f"{self.try_started_at.isoformat()}, resumes included"
        )
